"""Shared fixtures. The two HOMULA-RIR files the tests need ship in data/homula-rir/."""
import functools
import http.server
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("rir-S1-R2-HOM1.wav", "rir-S2-R2-HOM1.wav")


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
