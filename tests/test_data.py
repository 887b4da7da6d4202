"""sdn.data: registry and verification, where files are found, local-HTTP fetch, the command line."""
import http.server
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sdn import data
from sdn.data import FetchError, HashMismatchError
from sdn.fileio import NotRegularFileError

REPO = Path(__file__).resolve().parents[1]
S1 = "rir-S1-R2-HOM1.wav"
S2 = "rir-S2-R2-HOM1.wav"


def _serve(folder, name, content):
    (folder / "files").mkdir(exist_ok=True)
    (folder / "files" / name).write_bytes(content)


def _cli(*args, env=None, timeout=120):
    """Run ``python -m sdn.data`` in a fresh process: (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "sdn.data", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return done.returncode, done.stdout, done.stderr


def _one_line_error(stderr):
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in stderr


# ------------------------------------------------------------------ hashing and verification


def test_git_blob_id_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert data.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize("name", [S1, S2])
def test_shipped_files_are_byte_identical_to_the_registry(homula_dir, name):
    entry = data.verify_file(homula_dir / name)
    assert entry.name == name and entry.size == (homula_dir / name).stat().st_size
    # what git stores for the file is the registered blob (nothing rewrote it on commit)
    blob = subprocess.run(["git", "hash-object", str(homula_dir / name)], capture_output=True, text=True)
    if blob.returncode == 0:
        assert blob.stdout.strip() == entry.git_blob


def test_verify_rejects_modified_copy(homula_dir, tmp_path):
    content = bytearray((homula_dir / S1).read_bytes())
    content[5000] ^= 0x01
    copy = tmp_path / S1
    copy.write_bytes(bytes(content))
    with pytest.raises(HashMismatchError, match="git blob id"):
        data.verify_file(copy)


# ------------------------------------------------------------------ where files are found


def test_shipped_files_need_no_sdn_data_dir(homula_dir, monkeypatch):
    monkeypatch.delenv("SDN_DATA_DIR", raising=False)
    assert data.data_path(S1) == homula_dir / S1
    assert data.data_path(f"homula-rir/{S2}") == homula_dir / S2


def test_shipped_file_comes_before_sdn_data_dir(homula_dir, tmp_path, monkeypatch):
    (tmp_path / "homula-rir").mkdir()
    (tmp_path / "homula-rir" / S1).write_bytes(b"a stale copy")
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    assert data.data_path(S1) == homula_dir / S1
    assert data.search_dirs() == [REPO / "data", tmp_path]


def test_sdn_data_dir_holds_what_is_not_shipped(tmp_path, monkeypatch):
    (tmp_path / "homula-rir").mkdir()
    (tmp_path / "homula-rir" / "rir-S1-ULA.wav").write_bytes(b"x")
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    assert data.data_path("rir-S1-ULA.wav") == tmp_path / "homula-rir" / "rir-S1-ULA.wav"
    monkeypatch.delenv("SDN_DATA_DIR")
    with pytest.raises(FileNotFoundError, match=r"python -m sdn\.data fetch rir-S1-ULA\.wav"):
        data.data_path("rir-S1-ULA.wav")
    assert data.data_path("rir-S1-ULA.wav", must_exist=False) == REPO / "data/homula-rir/rir-S1-ULA.wav"


def test_sdn_data_dir_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("SDN_DATA_DIR", str(afile))
    with pytest.raises(FileNotFoundError, match="SDN_DATA_DIR=.*afile is not a folder"):
        data.data_path(S1)


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown data file"):
        data.fetch(["nope.wav"], dest="/nonexistent")


# ------------------------------------------------------------------ fetch against 127.0.0.1


def test_fetch_from_local_server_with_the_umask(homula_dir, mirror, tmp_path):
    folder, base = mirror
    _serve(folder, S1, (homula_dir / S1).read_bytes())
    dest = tmp_path / "data"
    old = os.umask(0o022)
    try:
        paths = data.fetch([S1], dest=dest, base_url=base, timeout=10, progress=False)
    finally:
        os.umask(old)
    assert paths == [dest / "homula-rir" / S1]
    assert data.git_blob_id(paths[0]) == data.REGISTRY[S1].git_blob
    assert sorted(p.name for p in (dest / "homula-rir").iterdir()) == [S1]
    # readable by colleagues in a shared folder, as any file created under umask 022
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o644


def test_fetch_cli_with_env_base_url(homula_dir, mirror, tmp_path, monkeypatch, capsys):
    folder, base = mirror
    _serve(folder, S2, (homula_dir / S2).read_bytes())
    monkeypatch.setenv("SDN_DATA_BASE_URL", base)
    dest = tmp_path / "data"
    assert data.main(["fetch", S2, "--dest", str(dest)]) == 0
    assert "verified" in capsys.readouterr().out
    data.verify_file(dest / "homula-rir" / S2)


def test_fetch_corrupted_download_leaves_nothing(homula_dir, mirror, tmp_path):
    folder, base = mirror
    content = bytearray((homula_dir / S1).read_bytes())
    content[1234] ^= 0xFF
    _serve(folder, S1, bytes(content))
    dest = tmp_path / "data"
    with pytest.raises(FetchError, match="git blob id"):
        data.fetch([S1], dest=dest, base_url=base, timeout=10, progress=False)
    assert not dest.exists()  # not even the folders it created


def test_fetch_keeps_existing_file_when_download_fails(mirror, tmp_path):
    folder, base = mirror  # serves nothing: HTTP 404
    dest = tmp_path / "data"
    (dest / "homula-rir").mkdir(parents=True)
    stale = b"not the right content"
    (dest / "homula-rir" / S1).write_bytes(stale)
    with pytest.raises(FetchError, match="404"):
        data.fetch([S1], dest=dest, base_url=base, timeout=10, progress=False)
    assert (dest / "homula-rir" / S1).read_bytes() == stale
    assert [p.name for p in (dest / "homula-rir").iterdir()] == [S1]


def test_fetch_offline_clear_message(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "data"
    code = data.main(["fetch", S1, "--dest", str(dest), "--base-url", f"http://127.0.0.1:{port}",
                      "--timeout", "5"])
    assert code == 1
    assert "offline" in capsys.readouterr().err
    assert not dest.exists()


def test_fetch_skips_valid_existing_file(homula_dir, tmp_path):
    dest = tmp_path / "data"
    (dest / "homula-rir").mkdir(parents=True)
    shutil.copy(homula_dir / S1, dest / "homula-rir" / S1)
    # an unreachable base URL proves nothing is downloaded
    assert data.fetch([S1], dest=dest, base_url="http://127.0.0.1:9", timeout=1) == [dest / "homula-rir" / S1]


def test_fetch_without_dest_finds_the_shipped_files(homula_dir, monkeypatch):
    monkeypatch.delenv("SDN_DATA_DIR", raising=False)
    assert data.fetch([S1, S2], base_url="http://127.0.0.1:9", timeout=1) == [homula_dir / S1, homula_dir / S2]


# ------------------------------------------------------------------ the command line


def test_verify_cli(homula_dir, capsys):
    assert data.main(["verify"]) == 0  # absent files (the ULA) are listed, not failures
    assert "ok       " + S1 in capsys.readouterr().out


def test_verify_cli_fails_when_nothing_is_present(nothing_shipped, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path / "empty"))
    assert data.main(["verify"]) == 1
    assert "no registered file is present" in capsys.readouterr().err
    assert data.main(["verify", S1]) == 1
    assert "fetch" in capsys.readouterr().err


@pytest.mark.parametrize("args, option", [
    (["fetch", S1, "--base-url", "notaurl"], "--base-url 'notaurl' is not a URL"),
    (["fetch", "--from-zenodo", "--archive-url", "zenodo"], "--archive-url 'zenodo' is not a URL"),
])
def test_cli_bad_url_is_one_line_exit_2(tmp_path, args, option):
    code, _, err = _cli(*args, "--dest", str(tmp_path / "d"))
    assert code == 2 and _one_line_error(err) and option in err
    assert not (tmp_path / "d").exists()


def test_cli_bad_env_url_names_the_variable(tmp_path):
    code, _, err = _cli("fetch", "rir-S1-ULA.wav", "--dest", str(tmp_path), env={"SDN_DATA_BASE_URL": "nope"})
    assert code == 2 and _one_line_error(err) and "SDN_DATA_BASE_URL 'nope' is not a URL" in err


@pytest.mark.parametrize("how", ["env", "dest"])
def test_cli_data_folder_that_is_a_file_is_one_line_exit_2(tmp_path, how):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    if how == "env":
        code, _, err = _cli("fetch", "rir-S1-ULA.wav", env={"SDN_DATA_DIR": str(afile)})
    else:
        code, _, err = _cli("fetch", "rir-S1-ULA.wav", "--dest", str(afile), "--base-url", "http://127.0.0.1:9")
    assert code == 2 and _one_line_error(err) and str(afile) in err
    assert afile.read_text() == "not a folder"


_SLOW_SERVER = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1536136")
        self.end_headers()
        self.wfile.write(b"R" * 65536)
        self.wfile.flush()
        time.sleep(60)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Slow)
print(server.server_address[1], flush=True)
server.handle_request()
"""


def test_ctrl_c_during_fetch_exits_quietly_and_leaves_nothing(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", _SLOW_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        dest = tmp_path / "data"
        fetcher = subprocess.Popen(
            [sys.executable, "-m", "sdn.data", "fetch", S1, "--dest", str(dest), "--base-url",
             f"http://127.0.0.1:{port}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        folder = dest / "homula-rir"
        deadline = time.monotonic() + 60
        while not (folder.is_dir() and any(p.stat().st_size > 0 for p in folder.iterdir())):
            assert time.monotonic() < deadline and fetcher.poll() is None, "the download never started"
            time.sleep(0.05)
        fetcher.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the download
        out, err = fetcher.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert fetcher.returncode == 130
    assert _one_line_error(err) and "interrupted" in err
    assert not dest.exists() or not any(dest.rglob("*"))  # no partial file, no temporary file


# ------------------------------------------------------------------ downloads stop at the registered size


class _Endless(http.server.BaseHTTPRequestHandler):
    """Serves zeros without a Content-Length, until the client hangs up (at most 1 GB)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        chunk = bytes(1 << 16)
        try:
            for _ in range(1 << 14):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client hanging up mid-stream is the point of the test


def test_fetch_from_a_mirror_that_sends_endless_bytes_stops_at_the_registered_size(tmp_path):
    server = _QuietServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "data"
    try:
        with pytest.raises(FetchError, match=f"larger than the {data.REGISTRY[S1].size} bytes registered"):
            data.fetch([S1], dest=dest, base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=10,
                       progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert not dest.exists()


def test_fetch_refuses_a_download_announced_larger_than_the_registered_size(homula_dir, mirror, tmp_path):
    folder, base = mirror
    _serve(folder, S1, (homula_dir / S1).read_bytes() + b"\0")
    dest = tmp_path / "data"
    with pytest.raises(FetchError, match=rf"larger than the {data.REGISTRY[S1].size} bytes .*\({data.REGISTRY[S1].size + 1} announced\)"):
        data.fetch([S1], dest=dest, base_url=base, timeout=10, progress=False)
    assert not dest.exists()


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_resolve_names_a_path_that_is_not_a_file(tmp_path, kind):
    path = tmp_path / "x.wav"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(NotRegularFileError, match=f"{path} is a {kind}, not an audio file"):
        data.resolve(path)
