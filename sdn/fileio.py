"""Safe file writes: atomic, with the process umask, never through links or special files.

Every file sdn writes (run folders, checkpoints, tables, fetched data) goes through
:func:`atomic_path`:

- **Atomic.** The content is written to a temporary file beside the target and moved into place
  with :func:`os.replace` only when the writer returns without error. A reader, a crash or Ctrl-C
  never leaves a half-written target: on any exception (``KeyboardInterrupt`` included) the
  temporary file is removed and the target is untouched.
- **Permissions.** The temporary file is created with mode ``0o666`` filtered by the process
  umask, as :func:`open` does, so a result written into a shared folder is as readable as any
  other file its owner creates there (umask 022 gives ``rw-r--r--``).
- **Only regular files are replaced.** A target that exists and is a symbolic link, a FIFO, a
  device, a socket or a folder is refused with :class:`NotRegularFileError`: saving to
  ``/dev/null`` or through a link never replaces it.
- **Leftovers.** A write killed without a chance to clean up (``SIGKILL``, power loss) leaves its
  temporary file, named ``.<target>.<host>.<pid>.<token>.tmp``. The next write to the same target
  removes every such leftover whose process, on this host, no longer runs; temporary files of
  running processes and of other hosts (a network folder) are left alone.

:func:`write_float_wav` writes audio the same way, with nothing in the file that varies from run
to run (libsndfile adds a ``PEAK`` chunk that holds the time of writing), so that equal samples
give equal files. :func:`not_regular` says what a path to be read is when it is not a file.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
import struct
from pathlib import Path

__all__ = ["NotRegularFileError", "atomic_path", "not_regular", "write_float_wav", "write_text"]


class NotRegularFileError(FileExistsError, ValueError):
    """The target of a write exists and is not a regular file (link, FIFO, device, folder)."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular file."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def not_regular(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is not a regular file (links followed), else None.

    Parameters
    ----------
    path : str or os.PathLike
        A file to be read.

    Returns
    -------
    str or None
        ``"a folder"``, ``"a FIFO"``, ... for something that cannot be read as a file (reading a
        FIFO would wait for a writer); None for a regular file or a path that does not exist.
    """
    try:
        return _kind(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _check_target(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    kind = _kind(mode)
    if kind is not None:
        raise NotRegularFileError(
            f"{path} is {kind}; sdn writes only regular files and never replaces a link, FIFO, "
            f"device or folder: choose another path"
        )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: leave its file alone
    return True


def _remove_leftovers(path: Path, host: str) -> None:
    """Delete temporaries of ``path`` left on this host by processes that no longer run."""
    prefix = f".{path.name}.{host}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid, _, rest = entry.name[len(prefix):].partition(".")
        if pid.isdigit() and re.fullmatch(r"[0-9a-f]{8}\.tmp", rest) and not _running(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Missing parent folders are created. An existing ``path`` must be a
        regular file.

    Yields
    ------
    pathlib.Path
        An empty file (mode ``0o666`` minus the umask) in the same folder, for the caller to write.

    Raises
    ------
    NotRegularFileError
        When ``path`` exists and is a symbolic link, FIFO, device, socket or folder (checked
        before writing and again just before the replacement).
    NotADirectoryError
        When a file stands where a parent folder should be.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("{}")
    >>> target.read_text()
    '{}'
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise NotADirectoryError(
            f"cannot write {path}: a file stands where a folder of its path should be ({err})"
        ) from err
    _check_target(path)
    host = _host()
    _remove_leftovers(path, host)
    while True:
        tmp = path.with_name(f".{path.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        _check_target(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a UTF-8 text file (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    text : str
        Its content.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_float_wav(path: str | os.PathLike, samples, sample_rate: int) -> None:
    """Atomically write samples as a 32-bit IEEE float WAV file, the same bytes for the same samples.

    The file holds the ``fmt``, ``fact`` and ``data`` chunks of the WAVE format (format tag 3,
    IEEE float) and nothing else: no time stamp, unlike libsndfile's ``PEAK`` chunk, so two runs
    that compute the same samples write identical files. Any WAV reader (soundfile, scipy,
    ``sox``) reads it.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (see :func:`atomic_path`).
    samples : array_like, shape (T,) or (C, T)
        One channel, or C channels with time last; converted to float32.
    sample_rate : int
        Hz, positive.

    Raises
    ------
    ValueError
        For a sample rate that is not a positive integer, or more data than a WAV file holds (4 GiB).
    """
    import numpy as np

    data = np.asarray(samples, dtype=np.float32)
    frames = np.ascontiguousarray(np.atleast_2d(data).T, dtype="<f4")  # (T, C): channels interleaved
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not 0 < sample_rate < 2**31:
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    n_frames, channels = frames.shape
    payload = frames.tobytes()
    block = 4 * channels
    fmt = struct.pack("<HHIIHHH", 3, channels, int(sample_rate), int(sample_rate) * block, block, 32, 0)
    chunks = [(b"fmt ", fmt), (b"fact", struct.pack("<I", n_frames)), (b"data", payload)]
    size = 4 + sum(8 + len(body) for _, body in chunks)
    if size >= 2**32:
        raise ValueError(f"{path}: {n_frames} frames of {channels} channel(s) exceed the 4 GiB a WAV file holds")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", size) + b"WAVE")
        for name, body in chunks:  # every body has an even length: no pad bytes
            handle.write(name + struct.pack("<I", len(body)) + body)
