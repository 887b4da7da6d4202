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
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
from pathlib import Path

__all__ = ["NotRegularFileError", "atomic_path", "write_text"]


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
