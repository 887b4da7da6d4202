"""Shared fixtures. The two HOMULA-RIR files the tests need ship in data/homula-rir/."""
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("rir-S1-R2-HOM1.wav", "rir-S2-R2-HOM1.wav")


def require_compiled_kernels() -> None:
    """Skip where no C compiler exists (the kernels cannot be built); fail where one exists and the
    kernels did not build."""
    from sdn import native

    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler!r}): sdn.native's kernels cannot be built here")
    assert native.available(torch.zeros(1)), "the C kernels did not build (see sdn.native)"


@pytest.fixture
def compiled_kernels(monkeypatch) -> None:
    """The compiled kernels (sdn.native), whatever SDN_NATIVE says; skipped without a C compiler."""
    monkeypatch.setenv("SDN_NATIVE", "1")
    require_compiled_kernels()


@pytest.fixture(params=["native", "torch"])
def kernels(request, monkeypatch) -> str:
    """Run a test with the compiled kernels (sdn.native) and with PyTorch alone."""
    monkeypatch.setenv("SDN_NATIVE", "1" if request.param == "native" else "0")
    if request.param == "native":
        require_compiled_kernels()
    return request.param


@pytest.fixture(scope="session")
def homula_dir() -> Path:
    """The repository's data/homula-rir/, holding the shipped HOMULA-RIR files."""
    folder = REPO / "data" / "homula-rir"
    missing = [name for name in SHIPPED if not (folder / name).is_file()]
    if missing:
        pytest.fail(f"{missing} missing from {folder}: they ship with the repository (git checkout)")
    return folder


@pytest.fixture
def nothing_shipped(tmp_path, monkeypatch) -> Path:
    """Pretend the repository ships no data (an installed package): an empty shipped folder."""
    from sdn import data

    empty = tmp_path / "no-shipped-data"
    empty.mkdir()
    monkeypatch.setattr(data, "SHIPPED_DIR", empty)
    monkeypatch.delenv("SDN_DATA_DIR", raising=False)
    return empty


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/'mirror'; yields (folder, base_url)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/files"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory) -> tuple[Path, Path]:
    """``python pipeline.py --quick`` into a fresh folder: (results folder, built HTML folder).

    Session-scoped, so it runs at most once however many tests ask for it, and pytest keeps its
    failure: every later test that needs it fails with the same message instead of running it
    again. No wall-clock limit on the whole run: the pipeline limits each cell.
    """
    import subprocess
    import sys

    results = tmp_path_factory.mktemp("sdn-quick") / "results"
    done = subprocess.run([sys.executable, str(REPO / "pipeline.py"), "--quick", "--results", str(results)],
                          cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pipeline --quick failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return results, results / "book" / "_build" / "html"
