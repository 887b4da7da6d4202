"""The HOMULA-RIR dataset: its canonical Zenodo archive and its published positions.

HOMULA-RIR (Miotello et al., ICASSP Workshops 2024, arXiv 2402.13896) is published on Zenodo,
record 10479726, as one archive, ``HOMULA-RIR.zip`` (CC BY 4.0). Besides the RIRs it holds the
acoustically calibrated position of every microphone capsule and of both sources.

Archive layout. sdn assumes the layout described by the dataset's README and sample code
(github.com/polimi-ispl/homula-rir); it could not be checked against the archive itself, which
these machines cannot reach. Paths below an optional single top folder (``HOMULA-RIR/``)::

    pos-sources.csv                     the two sources
    hom/row<r>/rir-<S>-R<r>-HOM<c>.wav  8-capsule Spatial Mic <c> of row <r>, source <S>
    hom/row<r>/pos-R<r>-HOM<c>.csv      its capsule positions
    ula/rir-<S>-ULA.wav, ula/pos-ULA.csv

Position files (also assumed): comma-separated text, a header row, then one row per capsule (or
source) with x, y, z in metres in the room's frame (x across the 5.46 m width, y along the
14.52 m length, z up). Columns are taken by their header names ``x``, ``y``, ``z`` when present,
otherwise the file must have exactly three numeric columns, in that order. A non-numeric column,
if any, labels the rows (``S1``, ``S2``); without one, the sources are in the order S1, S2. Every
position must lie inside the room: a file in other units or another frame fails with a message
naming the file and the row, instead of giving wrong positions.

What :func:`fetch_archive` verifies: the registered RIRs in the archive against their registry
hashes (:mod:`sdn.data`), the zip's own CRC-32 of every member read, and the position files
against the rules above. What it cannot verify: the archive as a whole and the position files'
content (no published checksum is known here), and members sdn does not extract.
"""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import data
from .download import FetchError, download
from .fileio import atomic_path

__all__ = [
    "ZENODO_RECORD", "ARCHIVE_NAME", "ARCHIVE_URL", "ROOM_SIZE", "FOLDER", "ARCHIVE_MEMBERS",
    "fetch_archive", "read_positions", "published_position",
]

ZENODO_RECORD = "10479726"
ARCHIVE_NAME = "HOMULA-RIR.zip"
ARCHIVE_URL = f"https://zenodo.org/records/{ZENODO_RECORD}/files/{ARCHIVE_NAME}?download=1"
#: The seminar room, (Lx, Ly, Lz) in metres.
ROOM_SIZE = (5.46, 14.52, 3.38)
#: Sub-folder of the data directory that receives the extracted files.
FOLDER = "homula-rir"
#: Files extracted by :func:`fetch_archive`: name -> path inside the archive (assumed layout).
ARCHIVE_MEMBERS = {
    "rir-S1-R2-HOM1.wav": "hom/row2/rir-S1-R2-HOM1.wav",
    "rir-S2-R2-HOM1.wav": "hom/row2/rir-S2-R2-HOM1.wav",
    "rir-S1-ULA.wav": "ula/rir-S1-ULA.wav",
    "pos-R2-HOM1.csv": "hom/row2/pos-R2-HOM1.csv",
    "pos-ULA.csv": "ula/pos-ULA.csv",
    "pos-sources.csv": "pos-sources.csv",
}
_TOLERANCE = 0.05  # metres a published position may lie outside the nominal room
_AXIS = re.compile(r"\s*([xyz])\s*(?:\[m\]|\(m\)|_m|\[metres\])?\s*", re.IGNORECASE)
_ARRAY = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")


def _member(archive: zipfile.ZipFile, path: str) -> zipfile.ZipInfo:
    """The archive member at ``path``, directly or below one top folder."""
    matches = [info for info in archive.infolist() if not info.is_dir() and
               (info.filename == path or re.fullmatch(r"[^/]+/" + re.escape(path), info.filename))]
    if len(matches) != 1:
        found = "no member" if not matches else f"{len(matches)} members"
        raise FetchError(
            f"{ARCHIVE_NAME} has {found} at [<top folder>/]{path}: its layout differs from the one "
            f"sdn assumes (see sdn.homula); extract {Path(path).name} by hand into the data folder's "
            f"{FOLDER}/")
    return matches[0]


def _read_members(archive_path: Path, names) -> dict[str, bytes]:
    """Content of each wanted member, checked (zip CRC, registry hashes, position rules)."""
    contents = {}
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for name in names:
                contents[name] = archive.read(_member(archive, ARCHIVE_MEMBERS[name]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise FetchError(f"{ARCHIVE_NAME} is not a readable zip archive ({err}); download it again") from err
    for name, content in contents.items():
        where = f"{ARCHIVE_NAME}:{ARCHIVE_MEMBERS[name]}"
        try:
            if name in data.REGISTRY:
                data.check_bytes(content, data.REGISTRY[name], where)
            else:
                read_positions(content, where)
        except ValueError as err:
            raise FetchError(f"{err}; nothing was written") from err
    return contents


def fetch_archive(names=None, *, dest: str | os.PathLike | None = None, url: str = ARCHIVE_URL,
                  timeout: float = 60.0, progress: bool = True) -> list[Path]:
    """Download the HOMULA-RIR archive, verify what can be verified, extract the files sdn uses.

    The archive is downloaded (with a progress bar) into a temporary folder that is removed
    afterwards, whatever happens. Every wanted member is read and checked before anything is
    written (see the module docstring for what is and is not verified); then each file is written
    atomically into ``<dest>/homula-rir/``. An error or Ctrl-C leaves no partial file.

    Parameters
    ----------
    names : iterable of str, optional
        Files among :data:`ARCHIVE_MEMBERS`; default all of them (the three registered RIRs and
        the position files).
    dest : str or os.PathLike, optional
        Data directory; default :func:`sdn.data.data_dir`.
    url : str
        Where the archive is; default the Zenodo record (any http, https or file URL of an
        archive with the same layout works).
    timeout : float
        Seconds per connection.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    FetchError
        Offline, HTTP error, unreadable archive, a member missing or failing its checks.
    KeyError
        For a name not in :data:`ARCHIVE_MEMBERS`.
    """
    names = list(names) if names else list(ARCHIVE_MEMBERS)
    unknown = [n for n in names if n not in ARCHIVE_MEMBERS]
    if unknown:
        raise KeyError(f"not extracted from the archive: {unknown}; known: {', '.join(ARCHIVE_MEMBERS)}")
    folder = (Path(dest) if dest is not None else data.data_dir()) / FOLDER
    with tempfile.TemporaryDirectory(prefix="sdn-homula-") as scratch:
        archive_path = Path(scratch) / ARCHIVE_NAME
        download(url, archive_path, timeout, ARCHIVE_NAME, progress=progress,
                 offline_hint=f"Download {ARCHIVE_NAME} from https://zenodo.org/records/{ZENODO_RECORD} "
                              f"on another machine and pass its path as --archive-url file:///...")
        contents = _read_members(archive_path, names)
    written = []
    for name in names:
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(contents[name])
        written.append(folder / name)
    return written


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_positions(source: str | os.PathLike | bytes, where: str | None = None) -> tuple[list[str] | None, np.ndarray]:
    """Read a HOMULA-RIR position file (layout in the module docstring).

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The file, or its content.
    where : str, optional
        Name of the file for messages (default: the path).

    Returns
    -------
    labels : list of str or None
        The row labels, when the file has a label column.
    positions : ndarray, shape (N, 3)
        x, y, z in metres.

    Raises
    ------
    ValueError
        For a file that does not follow the layout, naming the file and the row.
    """
    where = where or str(source)
    text = (source if isinstance(source, bytes) else Path(source).read_bytes()).decode("utf-8-sig")
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    header = rows[0] if rows and any(_number(c) is None for c in rows[0]) else None
    body = rows[1:] if header is not None else rows
    if not body or len({len(r) for r in body} | ({len(header)} if header else set())) != 1:
        raise ValueError(f"{where}: expected a header and rows of equal length with x, y, z in metres")
    named = [i for axis in "xyz" for i, c in enumerate(header or []) if (m := _AXIS.fullmatch(c))
             and m.group(1).lower() == axis]
    numeric = [i for i in range(len(body[0])) if all(_number(r[i]) is not None for r in body)]
    columns = named if len(named) == 3 else numeric if len(numeric) == 3 else None
    if columns is None:
        raise ValueError(f"{where}: cannot tell the x, y, z columns (header {header}); expected "
                         f"columns named x, y, z or exactly three numeric columns")
    text_columns = [i for i in range(len(body[0])) if i not in numeric]
    labels = [r[text_columns[0]] for r in body] if len(text_columns) == 1 else None
    positions = np.array([[_number(r[i]) if i in numeric else np.nan for i in columns] for r in body])
    for k, point in enumerate(positions):
        if not (np.all(np.isfinite(point)) and np.all(point >= -_TOLERANCE)
                and np.all(point <= np.asarray(ROOM_SIZE) + _TOLERANCE)):
            raise ValueError(
                f"{where}: row {k + 1 + (header is not None)} {point.tolist()} is not a position in "
                f"metres inside the {' x '.join(map(str, ROOM_SIZE))} m room (x across, y along, z up)")
    return labels, positions


def _position_file(name: str) -> Path:
    for folder in data.search_dirs():
        path = folder / FOLDER / name
        if path.is_file():
            return path
    searched = ", ".join(str(f / FOLDER) for f in data.search_dirs())
    raise FileNotFoundError(f"published positions {name} not found in {searched}: run "
                            f"`python -m sdn.data fetch --from-zenodo` (downloads the HOMULA-RIR "
                            f"archive from Zenodo record {ZENODO_RECORD})")


def published_position(name: str, capsule: int | None = None) -> np.ndarray:
    """A position published with HOMULA-RIR, read from the extracted position files.

    Parameters
    ----------
    name : str
        A source (``"S1"``, ``"S2"``) or an array (``"R2-HOM1"``, ``"ULA"``).
    capsule : int, optional
        For an array, one capsule's row (negative from the end); default the centre of the
        capsules (their mean), the point an omnidirectional model of the array stands for.

    Returns
    -------
    ndarray, shape (3,)
        Metres, in the room's frame.

    Raises
    ------
    FileNotFoundError
        When the position file is not present (the message says how to get it).
    ValueError
        For a bad name or capsule, or a file that does not follow the layout.
    """
    if not isinstance(name, str) or not _ARRAY.fullmatch(name):
        raise ValueError(f"published position name must be like S1, R2-HOM1 or ULA, got {name!r}")
    if re.fullmatch(r"S\d+", name):
        if capsule is not None:
            raise ValueError(f"{name} is a source: it has no capsules")
        path = _position_file("pos-sources.csv")
        labels, positions = read_positions(path)
        index = labels.index(name) if labels and name in labels else -1 if labels else int(name[1:]) - 1
        if not 0 <= index < len(positions):
            raise ValueError(f"{path} holds no position for source {name}")
        return positions[index]
    path = _position_file(f"pos-{name}.csv")
    _, positions = read_positions(path)
    if capsule is None:
        return positions.mean(axis=0)
    if not -len(positions) <= capsule < len(positions):
        raise ValueError(f"{path} holds {len(positions)} capsules; capsule {capsule} is out of range")
    return positions[capsule]
