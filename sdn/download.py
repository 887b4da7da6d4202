"""Verified, atomic downloads with a progress bar: the only code of sdn that reaches the network.

:func:`download` streams a URL (http, https or file) into a temporary file beside its target
(:func:`sdn.fileio.atomic_path`), lets the caller check the bytes, and only then moves the file
into place. On any failure, Ctrl-C included, the temporary file is removed, the target is
untouched, and folders the call created are removed again. Callers: :func:`sdn.data.fetch` and
:func:`sdn.homula.fetch_archive`.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .fileio import atomic_path

__all__ = ["FetchError", "check_url", "download"]


class FetchError(RuntimeError):
    """A download failed (offline, HTTP error, or the downloaded bytes failed verification)."""


def check_url(url: str, option: str = "--base-url") -> str:
    """``url`` if it is an http, https or file URL; ValueError naming ``option`` otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
        raise ValueError(f"{option} {url!r} is not a URL: give one starting with https://, "
                         f"http:// or file://")
    return url


def download(url: str, target: Path, timeout: float, what: str, check=None, progress: bool = True,
             offline_hint: str = "", max_bytes: int | None = None) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check it, then move it into place.

    Parameters
    ----------
    url : str
        http, https or file URL.
    target : pathlib.Path
        Where the file goes; folders this call creates are removed again on failure.
    timeout : float
        Seconds per connection.
    what : str
        Name of the download, for messages and the progress bar.
    check : callable, optional
        ``check(tmp_path)`` raises HashMismatchError (or ValueError) to reject the bytes.
    progress : bool
        Show a progress bar (on a terminal).
    offline_hint : str
        What to do instead, appended to the message when the URL cannot be reached.
    max_bytes : int, optional
        The most bytes to accept (a registered file's size): a server that announces or sends
        more is cut off there, so that no mirror can fill the disk.

    Raises
    ------
    FetchError
        Offline, HTTP error, more than ``max_bytes``, or the bytes failed ``check``; nothing is
        left behind.
    """
    from tqdm.auto import tqdm

    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    ok = False
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as err:
                raise FetchError(f"download of {what} from {url} failed: HTTP {err.code} {err.reason}") from err
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise FetchError(f"could not download {what} from {url}: {reason}. Are you offline? "
                                 f"{offline_hint}".strip()) from err
            total = response.headers.get("Content-Length")
            too_many = f"download of {what} from {url} is larger than the {max_bytes} bytes registered for it"
            if max_bytes is not None and total and total.isdigit() and int(total) > max_bytes:
                response.close()
                raise FetchError(f"{too_many} ({total} announced); nothing was written")
            received = 0
            with response, tqdm(total=int(total) if total and total.isdigit() else None, unit="B",
                                unit_scale=True, desc=what, leave=False,
                                disable=None if progress else True) as bar:
                while True:
                    try:
                        chunk = response.read(1 << 16)
                    except OSError as err:  # the connection broke off; a disk error is not caught
                        raise FetchError(f"download of {what} from {url} broke off: {err}") from err
                    if not chunk:
                        break
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise FetchError(f"{too_many}; nothing was written")
                    handle.write(chunk)
                    bar.update(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
            if check is not None:
                try:
                    check(tmp)
                except ValueError as err:
                    raise FetchError(f"{err}; nothing was written") from err
        ok = True
    finally:
        if not ok:  # remove the folders this call created, if still empty
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
