"""Measured room impulse responses: the registry of known files, where they are, download, verify.

Where files are found (:func:`data_path`), in this order:

1. **shipped** with the repository: ``data/homula-rir/rir-S1-R2-HOM1.wav`` and
   ``rir-S2-R2-HOM1.wav`` (HOMULA-RIR, CC BY 4.0; see ``data/README.md``), in a source checkout;
2. ``$SDN_DATA_DIR/<folder>/<file>``, when ``SDN_DATA_DIR`` is set;
3. nowhere else: a missing file is an error that says how to get it. Only
   ``python -m sdn.data fetch`` (or :func:`fetch`) downloads, into :func:`data_dir`; nothing else
   in sdn reaches the network.

Every download is verified against the file's git blob id (``sha1(b"blob <size>\\0" + content)``)
and, where known, its size and sha256, and written atomically with :func:`sdn.fileio.atomic_path`
(temporary file in the target folder, verified, then moved into place): a failed, corrupted or
interrupted download leaves nothing behind. ``fetch --from-zenodo`` downloads the dataset's
canonical archive instead (:mod:`sdn.homula`).

Command line (exit status 0 on success, 1 when a download or a verification fails, 2 for a bad
option or path, 130 on Ctrl-C; errors are one line)::

    python -m sdn.data list
    python -m sdn.data verify [NAMES]
    python -m sdn.data fetch [NAMES] [--dest DIR] [--base-url URL] [--from-zenodo]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .download import FetchError, check_url, download
from .fileio import NotRegularFileError, not_regular

__all__ = [
    "DATA_DIR_ENV", "BASE_URL_ENV", "CITATION", "RemoteFile", "REGISTRY", "HashMismatchError",
    "data_dir", "search_dirs", "data_path", "resolve", "git_blob_id", "sha256sum",
    "check_bytes", "verify_file", "fetch", "main",
]

DATA_DIR_ENV = "SDN_DATA_DIR"
BASE_URL_ENV = "SDN_DATA_BASE_URL"
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The repository's own data folder (shipped files), or None outside a source checkout.
SHIPPED_DIR: Path | None = REPO_ROOT / "data" if (REPO_ROOT / "pyproject.toml").is_file() else None

_HOM_URL = "https://github.com/pasinsilvia/MAE-Capstone-L08/raw/main/data/audio/original_RIR/"
_ULA_URL = "https://github.com/ilic-mezza/differentiable-sdn/raw/main/data/homula-rir/"
CITATION = (
    "HOMULA-RIR (Miotello et al., ICASSP Workshops 2024, arXiv 2402.13896; Zenodo record 10479726), "
    "CC BY 4.0"
)


@dataclass(frozen=True)
class RemoteFile:
    """A known measured file: where it lives under the data folder and how to check it.

    Attributes
    ----------
    name : str
        File name, e.g. ``"rir-S1-R2-HOM1.wav"``.
    folder : str
        Sub-folder of the data directory, e.g. ``"homula-rir"``.
    url : str
        Public download URL.
    git_blob : str
        40 hex digits, ``sha1(b"blob <size>\\0" + content)``.
    size : int or None
        Bytes, when known.
    sha256 : str or None
        64 hex digits, when known.
    """

    name: str
    folder: str
    url: str
    git_blob: str
    size: int | None = None
    sha256: str | None = None

    @property
    def relpath(self) -> str:
        """``"<folder>/<name>"``."""
        return f"{self.folder}/{self.name}"


#: Registered files by name. The HOMULA-RIR files are also in the dataset's Zenodo archive
#: (:data:`sdn.homula.ARCHIVE_URL`).
REGISTRY: dict[str, RemoteFile] = {
    entry.name: entry
    for entry in (
        *(RemoteFile(name, "homula-rir", _HOM_URL + name, blob, 1536136, sha256) for name, blob, sha256 in (
            ("rir-S1-R2-HOM1.wav", "6e407c9baad26659588245798bdf6b1abb406478",
             "f98591cd2a5d13ace77b6687b3d9381a4d011f8ff4f6b5c9049df8fda61185fb"),
            ("rir-S2-R2-HOM1.wav", "c430ab23fdcb2a0f11a969b9b6df2a15fd64d5fb",
             "1a915aab1484d54bbdc259cb69e09a86d338139c1559f17cdf4b44a018edf2f8"),
        )),
        RemoteFile(
            name="rir-S1-ULA.wav",
            folder="homula-rir",
            url=_ULA_URL + "rir-S1-ULA.wav",
            git_blob="c5bbc082a99839a5f24b9cdff26e33bf7f451a19",
        ),
    )
}


class HashMismatchError(ValueError):
    """A file's content does not match its registered size, git blob id or sha256."""


# --------------------------------------------------------------------------------------------
# Locating and verifying files
# --------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The download target: ``$SDN_DATA_DIR``, else ``<repo>/data`` in a source checkout, else ``./data``.

    Raises
    ------
    FileNotFoundError
        When ``SDN_DATA_DIR`` names something that exists and is not a folder.
    """
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            raise FileNotFoundError(f"{DATA_DIR_ENV}={value} is not a folder: point it at a folder "
                                     f"(it will hold homula-rir/...) or unset it")
        return path
    return SHIPPED_DIR if SHIPPED_DIR is not None else Path.cwd() / "data"


def search_dirs() -> list[Path]:
    """Data folders searched for a file, in order: the shipped folder, then :func:`data_dir`."""
    folders = [SHIPPED_DIR] if SHIPPED_DIR is not None else []
    return list(dict.fromkeys(folders + [data_dir()]))


def _registry_entry(name: str) -> RemoteFile:
    key = Path(name).name
    if key not in REGISTRY:
        raise KeyError(f"unknown data file {name!r}; known files: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def _how_to_get(entry: RemoteFile) -> str:
    return (
        f"Download it with `python -m sdn.data fetch {entry.name}` (into {data_dir()}), or set "
        f"{DATA_DIR_ENV} to a folder holding {entry.relpath}."
    )


def data_path(name: str, must_exist: bool = True) -> Path:
    """Path of a registered file: the first of :func:`search_dirs` that holds it.

    Parameters
    ----------
    name : str
        A registry name (``"rir-S1-R2-HOM1.wav"``) or ``"<folder>/<name>"``.
    must_exist : bool
        Raise FileNotFoundError (saying how to get the file) when no folder holds it; otherwise
        return where :func:`fetch` would put it.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> from sdn.data import data_path
    >>> path = data_path("rir-S1-R2-HOM1.wav")      # shipped: found without any download
    >>> path.parent.name, path.stat().st_size
    ('homula-rir', 1536136)
    """
    entry = _registry_entry(name)
    for folder in search_dirs():
        path = folder / entry.relpath
        if path.is_file():
            return path
    if must_exist:
        searched = ", ".join(str(f / entry.folder) for f in search_dirs())
        raise FileNotFoundError(f"measured RIR {entry.name} not found in {searched}. "
                                f"{_how_to_get(entry)}")
    return data_dir() / entry.relpath


def resolve(name_or_path: str | os.PathLike) -> tuple[Path, RemoteFile | None]:
    """A registered name (or ``"<folder>/<name>"``) or a path, as (existing file, registry entry).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        What a user or a room config names.

    Returns
    -------
    path : pathlib.Path
        The file (it exists).
    entry : RemoteFile or None
        Its registry entry, None for a path that is not a registered name.

    Raises
    ------
    FileNotFoundError
        When no such file exists (saying how to get a registered one).
    sdn.fileio.NotRegularFileError
        When the path names a folder, a FIFO or another thing that is not a file.
    """
    text = str(name_or_path)
    key = Path(text).name
    if key in REGISTRY and text in (key, REGISTRY[key].relpath):
        return data_path(key), REGISTRY[key]
    path = Path(name_or_path)
    kind = not_regular(path)
    if kind is not None:
        raise NotRegularFileError(f"measured RIR {path} is {kind}, not an audio file: name a WAV file")
    if not path.is_file():
        hint = f" {_how_to_get(REGISTRY[key])}" if key in REGISTRY else ""
        raise FileNotFoundError(f"measured RIR not found: {path}.{hint}")
    return path, None


def git_blob_id(data: bytes | str | os.PathLike) -> str:
    """Git blob id of some bytes or of a file: ``sha1(b"blob <size>\\0" + content)`` (hex)."""
    if not isinstance(data, (bytes, bytearray)):
        data = Path(data).read_bytes()
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def sha256sum(data: bytes | str | os.PathLike) -> str:
    """sha256 (hex) of some bytes or of a file."""
    if not isinstance(data, (bytes, bytearray)):
        data = Path(data).read_bytes()
    return hashlib.sha256(data).hexdigest()


def check_bytes(content: bytes, entry: RemoteFile, where: str) -> None:
    """Raise HashMismatchError naming ``where`` unless ``content`` matches ``entry``.

    Parameters
    ----------
    content : bytes
        The file's content.
    entry : RemoteFile
        What it should be (size, git blob id, sha256 where known).
    where : str
        Where the content comes from, for the message.
    """
    if entry.size is not None and len(content) != entry.size:
        raise HashMismatchError(
            f"{where}: size {len(content)} bytes, expected {entry.size} for {entry.name}"
        )
    blob = git_blob_id(content)
    if blob != entry.git_blob:
        raise HashMismatchError(
            f"{where}: git blob id {blob} does not match {entry.git_blob} registered for "
            f"{entry.name} (corrupted or modified file; delete it and fetch it again)"
        )
    if entry.sha256 is not None and sha256sum(content) != entry.sha256:
        raise HashMismatchError(f"{where}: sha256 does not match the value registered for {entry.name}")


def verify_file(path: str | os.PathLike, name: str | None = None) -> RemoteFile:
    """Check a file against its registry entry (size, git blob id, sha256 where known).

    Parameters
    ----------
    path : str or os.PathLike
        The file to check.
    name : str, optional
        Registry name; defaults to the file's base name.

    Returns
    -------
    RemoteFile
        The registry entry it matches.

    Raises
    ------
    HashMismatchError
        On any mismatch.
    FileNotFoundError
        When the file is absent.
    KeyError
        When the name is not registered.
    """
    path = Path(path)
    entry = _registry_entry(name or path.name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. {_how_to_get(entry)}")
    check_bytes(path.read_bytes(), entry, str(path))
    return entry


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _url_for(entry: RemoteFile, base_url: str | None) -> str:
    if base_url is not None:
        return check_url(base_url).rstrip("/") + "/" + entry.name
    if os.environ.get(BASE_URL_ENV):
        return check_url(os.environ[BASE_URL_ENV], BASE_URL_ENV).rstrip("/") + "/" + entry.name
    return entry.url


def _valid(path: Path, entry: RemoteFile) -> bool:
    try:
        check_bytes(path.read_bytes(), entry, str(path))
        return True
    except HashMismatchError:
        return False


def fetch(
    names=None,
    *,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Download registered files, verified, into ``<dest>/<folder>/<name>``.

    Parameters
    ----------
    names : iterable of str, optional
        Registry names; None means every registered file.
    dest : str or os.PathLike, optional
        Data directory; default :func:`data_dir`. Without ``dest``, a valid copy anywhere on
        :func:`search_dirs` (a shipped file) counts as present.
    base_url : str, optional
        Mirror to download from (``<base_url>/<name>``); default ``$SDN_DATA_BASE_URL`` or, when
        unset, each file's public URL.
    timeout : float
        Seconds per connection.
    force : bool
        Download even when a verified copy is already present.
    progress : bool
        Show a progress bar per file.

    Returns
    -------
    list of pathlib.Path
        The verified files. A file already present and valid is not downloaded again.

    Raises
    ------
    FetchError
        Offline, HTTP error, bad content; no partial or unverified file is left behind.
    ValueError
        For a base URL that is not a URL.
    KeyError
        For an unknown name.
    """
    root = Path(dest) if dest is not None else data_dir()
    entries = [_registry_entry(n) for n in names] if names else list(REGISTRY.values())
    folders = [root] if dest is not None else search_dirs()
    paths = []
    for entry in entries:
        present = [f / entry.relpath for f in folders if (f / entry.relpath).is_file()]
        valid = [p for p in present if not force and _valid(p, entry)]
        if valid:
            paths.append(valid[0])
            continue
        target, url = root / entry.relpath, _url_for(entry, base_url)
        download(url, target, timeout, entry.name, progress=progress, max_bytes=entry.size,
                 check=lambda tmp, entry=entry, url=url: check_bytes(tmp.read_bytes(), entry,
                                                                     f"download from {url}"),
                 offline_hint=f"Copy the file into {target.parent} by hand, set {DATA_DIR_ENV} to a "
                              f"folder holding {entry.relpath}, or point {BASE_URL_ENV} / --base-url "
                              f"at a mirror.")
        paths.append(target)
    return paths


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sdn.data",
        description=f"Measured RIRs for sdn: shipped files, then ${DATA_DIR_ENV}; fetch downloads.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download and verify files (default: all registered)")
    p_fetch.add_argument("names", nargs="*", help=f"files among: {', '.join(REGISTRY)} (with "
                                                  f"--from-zenodo also the pos-*.csv files)")
    p_fetch.add_argument("--dest", help=f"data directory (default: ${DATA_DIR_ENV} or <repo>/data)")
    p_fetch.add_argument("--base-url", help=f"mirror base URL (default: ${BASE_URL_ENV} or the public URLs)")
    p_fetch.add_argument("--from-zenodo", action="store_true",
                         help="download the dataset's Zenodo archive and extract the files we use "
                              "and the published positions (sdn.homula)")
    p_fetch.add_argument("--archive-url", help="URL of the archive for --from-zenodo (default: Zenodo)")
    p_fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    p_fetch.add_argument("--force", action="store_true", help="download even if a valid copy exists")
    p_verify = sub.add_parser("verify", help="verify the named files (default: those present)")
    p_verify.add_argument("names", nargs="*")
    sub.add_parser("list", help="list registered files")
    return parser


def _message(err: Exception) -> str:
    """One line for a user: a KeyError's text without its quotes."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())


def _verify(names) -> int:
    status, checked = 0, 0
    for name in names or list(REGISTRY):
        try:
            path = data_path(name, must_exist=bool(names))
            if not path.is_file():
                print(f"absent   {name}")
                continue
            verify_file(path, name)
            checked += 1
            print(f"ok       {name}  ({path})")
        except (FileNotFoundError, HashMismatchError, KeyError) as err:
            print(f"FAILED   {name}: {_message(err)}", file=sys.stderr)
            status = 1
    if not names and checked == 0:
        print(f"error: no registered file is present in {', '.join(map(str, search_dirs()))}; "
              f"run `python -m sdn.data fetch`", file=sys.stderr)
        return 1
    return status


def main(argv=None) -> int:
    """Command line of ``python -m sdn.data`` (see the module docstring); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "fetch" and args.from_zenodo and (args.base_url or args.force):
        parser.error("--base-url and --force do not apply to --from-zenodo (use --archive-url)")
    if args.command == "fetch" and args.archive_url and not args.from_zenodo:
        parser.error("--archive-url needs --from-zenodo")
    try:
        if args.command == "list":
            for entry in REGISTRY.values():
                path = data_path(entry.name, must_exist=False)
                print(f"{entry.relpath}\t{'present' if path.is_file() else 'absent'}\t{entry.url}")
            print(f"Source: {CITATION}")
            return 0
        if args.command == "verify":
            return _verify(args.names)
        if args.from_zenodo:
            from .homula import ARCHIVE_URL, fetch_archive

            url = check_url(args.archive_url, "--archive-url") if args.archive_url else ARCHIVE_URL
            paths = fetch_archive(args.names or None, dest=args.dest, url=url, timeout=args.timeout)
        else:
            paths = fetch(args.names or None, dest=args.dest, base_url=args.base_url,
                          timeout=args.timeout, force=args.force)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left; files verified before stay", file=sys.stderr)
        return 130
    except (FetchError, HashMismatchError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, OSError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"verified {path}")
    print(f"Source: {CITATION}. Cite the paper when you use these files.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
