"""sdn.fileio: atomic writes with the umask, never through links or special files, no leftovers."""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sdn
from sdn.fileio import NotRegularFileError, atomic_path, not_regular, write_float_wav, write_text

REPO = Path(__file__).resolve().parents[1]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "new.txt", "x")
        (tmp_path / "old.txt").write_text("old")
        os.chmod(tmp_path / "old.txt", 0o600)
        write_text(tmp_path / "old.txt", "replaced")  # a replaced file gets the umask's mode too
        model = sdn.SDN(sdn.Room((4, 5, 3), (1, 1, 1), (2, 3, 1.5)))
        model.save(tmp_path / "model.pt")
    finally:
        os.umask(old)
    for name in ("new.txt", "old.txt", "model.pt"):
        assert _mode(tmp_path / name) == mode, name
    assert (tmp_path / "old.txt").read_text() == "replaced"


def _special(tmp_path, kind) -> Path:
    path = tmp_path / f"target-{kind}"
    if kind == "symlink":
        (tmp_path / "real.txt").write_text("the link's target")
        path.symlink_to(tmp_path / "real.txt")
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere.txt")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "device":
        try:  # a copy of /dev/null's device (1, 3): saving to it must not replace it
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root (the FIFO and link cases run everywhere)")
    return path


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo", "folder", "device"])
def test_never_replaces_a_link_or_special_file(tmp_path, kind):
    path = _special(tmp_path, kind)
    before = os.lstat(path)
    with pytest.raises(NotRegularFileError, match="choose another path"):
        write_text(path, "x")
    model = sdn.SDN(sdn.Room((4, 5, 3), (1, 1, 1), (2, 3, 1.5)))
    with pytest.raises(NotRegularFileError, match=str(path)):
        model.save(path)
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino, after.st_dev) == (before.st_mode, before.st_ino, before.st_dev)
    if kind == "symlink":
        assert (tmp_path / "real.txt").read_text() == "the link's target"
    assert not list(tmp_path.glob(".*.tmp"))


def test_target_replaced_by_a_link_during_the_write_is_not_replaced(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(NotRegularFileError):
        with atomic_path(path) as tmp:
            tmp.write_text("new")
            path.symlink_to(tmp_path / "elsewhere")
    assert path.is_symlink() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_write_leaves_the_target_and_no_temporary_file(tmp_path, error):
    path = tmp_path / "metrics.json"
    path.write_text("previous")
    with pytest.raises(error):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise error()
    assert path.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_parent_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(NotADirectoryError, match="a file stands where a folder"):
        write_text(tmp_path / "runs" / "a" / "config.json", "{}")


_KILLED_WRITER = """
import os, signal, sys
from sdn.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half-written")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_leftover_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.pt"
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    assert len(leftovers) == 1 and not target.exists()
    # temporaries of a running writer (this process) and of other targets are not touched
    rest = leftovers[0].name[len(".checkpoint.pt."):]  # <host>.<pid>.<token>.tmp
    host = rest.rsplit(".", 3)[0]
    alive = tmp_path / f".checkpoint.pt.{host}.{os.getpid()}.0123abcd.tmp"
    alive.write_text("a write in progress")
    other = tmp_path / f".other.pt.{rest}"
    other.write_text("another target's")
    write_text(target, "complete")
    assert target.read_text() == "complete"
    assert not leftovers[0].exists() and alive.exists() and other.exists()


# ------------------------------------------------------------------ WAV files without a time stamp


@pytest.mark.parametrize("shape", [(1000,), (2, 333)])
def test_float_wav_reads_back_exactly_and_holds_no_peak_chunk(tmp_path, shape):
    import numpy as np
    import soundfile as sf

    samples = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    write_float_wav(tmp_path / "a.wav", samples, 16000)
    read, rate = sf.read(tmp_path / "a.wav", dtype="float32", always_2d=True)
    assert rate == 16000 and np.array_equal(read.T, np.atleast_2d(samples))
    assert sf.info(tmp_path / "a.wav").subtype == "FLOAT"
    content = (tmp_path / "a.wav").read_bytes()
    assert b"PEAK" not in content and len(content) == 58 + 4 * samples.size  # RIFF, fmt, fact, data


def test_float_wavs_of_equal_samples_are_identical_files(tmp_path):
    import numpy as np

    samples = np.linspace(-1, 1, 4001, dtype=np.float32)
    write_float_wav(tmp_path / "a.wav", samples, 48000)
    time.sleep(1.1)  # a time stamp with a resolution of one second would differ
    write_float_wav(tmp_path / "b.wav", samples.copy(), 48000)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


@pytest.mark.parametrize("rate", [0, -1, 16000.0, True])
def test_float_wav_refuses_a_bad_sample_rate_and_writes_nothing(tmp_path, rate):
    with pytest.raises(ValueError, match="sample_rate"):
        write_float_wav(tmp_path / "a.wav", [0.0, 1.0], rate)
    assert not list(tmp_path.iterdir())


def test_not_regular_names_what_a_path_is(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert not_regular(tmp_path / "fifo") == "a FIFO" and not_regular(tmp_path) == "a folder"
    assert not_regular(tmp_path / "file") is None and not_regular(tmp_path / "link") is None  # links followed
    assert not_regular(tmp_path / "absent") is None and not_regular(tmp_path / "file" / "below") is None
