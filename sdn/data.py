"""Measured room impulse responses: locate, download (verified), load, preprocess; room configs.

Data layout: ``$SDN_DATA_DIR/homula-rir/<file>.wav``. ``SDN_DATA_DIR`` defaults to ``data/`` at the
root of the repository; ``.ci/run`` and the tests point it at ``../shared/data``. The audio files
are never committed: ``python -m sdn.data fetch`` downloads them from their public URLs and
verifies each one against its git blob id (``sha1(b"blob <size>\\0" + content)``) and, where known,
its sha256, writing atomically (temporary file in the same folder, verified, then ``os.replace``).

Preprocessing of a measured target (DAFx25 paper, Sec. 4; ``load_rir``):

1. read the multichannel file with soundfile, time on the last axis ``(C, T)``;
2. take one channel (index, negative allowed) or the mean over channels (``"mean"``);
3. resample with soxr (libsoxr, "VHQ"; linear phase, output aligned with the input so sample 0
   stays time 0), e.g. 48 kHz -> 16 kHz;
4. trim to the reverberation time extrapolated from a 30 dB decay: broadband T30 of the resampled
   signal (ISO 3382-1: Schroeder backward integral, least-squares line from -5 to -35 dB, RT = 60 dB
   over its slope; ``sdn.acoustics.reverberation_time``). The length counts **from sample 0**:
   ``n = round(T30 * fs)`` samples, so the pre-delay (propagation time and any measurement latency)
   is kept and time 0 stays aligned with the start of the measurement, as in the SDN's output;
5. scale to unit Euclidean norm.

Room configurations (``config/rooms/*.yaml``) are strict: an unknown key is an error naming the key
and the file. See ``load_room_config``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import atomic_path

__all__ = [
    "DATA_DIR_ENV",
    "BASE_URL_ENV",
    "RemoteFile",
    "REGISTRY",
    "HashMismatchError",
    "FetchError",
    "data_dir",
    "data_path",
    "git_blob_id",
    "sha256sum",
    "verify_file",
    "fetch",
    "read_audio",
    "MeasuredRIR",
    "load_rir",
    "TargetSpec",
    "RoomConfig",
    "load_room_config",
]

DATA_DIR_ENV = "SDN_DATA_DIR"
BASE_URL_ENV = "SDN_DATA_BASE_URL"
REPO_ROOT = Path(__file__).resolve().parents[1]

_HOM_URL = "https://github.com/pasinsilvia/MAE-Capstone-L08/raw/main/data/audio/original_RIR/"
_ULA_URL = "https://github.com/ilic-mezza/differentiable-sdn/raw/main/data/homula-rir/"
_CITATION = (
    "HOMULA-RIR (Miotello et al., ICASSP Workshops 2024, arXiv 2402.13896; Zenodo 10479726), "
    "CC BY 4.0"
)


@dataclass(frozen=True)
class RemoteFile:
    """A known measured file: where it lives under the data folder and how to check it.

    Attributes
    ----------
    name : file name, e.g. ``"rir-S1-R2-HOM1.wav"``.
    folder : sub-folder of the data directory, e.g. ``"homula-rir"``.
    url : public download URL.
    git_blob : 40 hex digits, ``sha1(b"blob <size>\\0" + content)`` (always known).
    size : bytes, or None if unknown.
    sha256 : 64 hex digits, or None if unknown.
    """

    name: str
    folder: str
    url: str
    git_blob: str
    size: int | None = None
    sha256: str | None = None

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"


REGISTRY: dict[str, RemoteFile] = {
    entry.name: entry
    for entry in (
        RemoteFile(
            name="rir-S1-R2-HOM1.wav",
            folder="homula-rir",
            url=_HOM_URL + "rir-S1-R2-HOM1.wav",
            git_blob="6e407c9baad26659588245798bdf6b1abb406478",
            size=1536136,
            sha256="f98591cd2a5d13ace77b6687b3d9381a4d011f8ff4f6b5c9049df8fda61185fb",
        ),
        RemoteFile(
            name="rir-S2-R2-HOM1.wav",
            folder="homula-rir",
            url=_HOM_URL + "rir-S2-R2-HOM1.wav",
            git_blob="c430ab23fdcb2a0f11a969b9b6df2a15fd64d5fb",
            size=1536136,
            sha256="1a915aab1484d54bbdc259cb69e09a86d338139c1559f17cdf4b44a018edf2f8",
        ),
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


class FetchError(RuntimeError):
    """A download failed (offline, HTTP error, or the downloaded bytes failed verification)."""


# --------------------------------------------------------------------------------------------
# Locating and verifying files
# --------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The data directory: ``$SDN_DATA_DIR`` if set, else ``<repo>/data`` in a source checkout,
    else ``./data`` (an installed package, e.g. in Colab)."""
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data"
    return Path.cwd() / "data"


def _registry_entry(name: str) -> RemoteFile:
    key = Path(name).name
    if key not in REGISTRY:
        raise KeyError(f"unknown data file {name!r}; known files: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def _how_to_get(entry: RemoteFile, root: Path) -> str:
    return (
        f"Download it with `python -m sdn.data fetch {entry.name}` (into {root}), or set "
        f"{DATA_DIR_ENV} to a folder holding {entry.relpath}."
    )


def data_path(name: str, must_exist: bool = True) -> Path:
    """Path of a registered file under the data directory.

    Parameters
    ----------
    name : a registry name (``"rir-S1-R2-HOM1.wav"``) or ``"<folder>/<name>"``.
    must_exist : raise FileNotFoundError (saying how to get the file) when it is absent.
    """
    entry = _registry_entry(name)
    root = data_dir()
    path = root / entry.folder / entry.name
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"measured RIR not found: {path}. {_how_to_get(entry, root)}")
    return path


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


def _check_bytes(content: bytes, entry: RemoteFile, where: str) -> None:
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
        raise HashMismatchError(
            f"{where}: sha256 does not match the value registered for {entry.name}"
        )


def verify_file(path: str | os.PathLike, name: str | None = None) -> RemoteFile:
    """Check a file against its registry entry (size, git blob id, sha256 where known).

    Parameters
    ----------
    path : the file to check.
    name : registry name; defaults to the file's base name.

    Returns
    -------
    The registry entry it matches. Raises HashMismatchError on any mismatch, FileNotFoundError
    when the file is absent, KeyError when the name is not registered.
    """
    path = Path(path)
    entry = _registry_entry(name or path.name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. {_how_to_get(entry, data_dir())}")
    _check_bytes(path.read_bytes(), entry, str(path))
    return entry


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _url_for(entry: RemoteFile, base_url: str | None) -> str:
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    if base:
        return base.rstrip("/") + "/" + entry.name
    return entry.url


def _download_verified(url: str, entry: RemoteFile, target: Path, timeout: float) -> None:
    """Stream url into a temporary file beside target, verify it, then move it into place."""
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    ok = False
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(1 << 16):
                        handle.write(chunk)
            except urllib.error.HTTPError as err:
                raise FetchError(
                    f"download of {entry.name} from {url} failed: HTTP {err.code} {err.reason}"
                ) from err
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise FetchError(
                    f"could not download {entry.name} from {url}: {reason}. Are you offline? "
                    f"Copy the file into {target.parent} by hand, set {DATA_DIR_ENV} to a folder "
                    f"holding {entry.relpath}, or point {BASE_URL_ENV} / --base-url at a mirror."
                ) from err
            handle.flush()
            os.fsync(handle.fileno())
            try:
                _check_bytes(tmp.read_bytes(), entry, f"download from {url}")
            except HashMismatchError as err:
                raise FetchError(f"{err}; nothing was written") from err
        ok = True
    finally:
        if not ok:  # remove the folders this call created, if still empty
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break


def fetch(
    names=None,
    *,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> list[Path]:
    """Download registered files, verified, into ``<dest>/<folder>/<name>``.

    Parameters
    ----------
    names : iterable of registry names; None means every registered file.
    dest : data directory; defaults to ``data_dir()``.
    base_url : mirror to download from (``<base_url>/<name>``); defaults to ``$SDN_DATA_BASE_URL``
        or, when unset, each file's public URL.
    timeout : seconds per connection.
    force : download even when a verified copy is already present.

    Returns
    -------
    Paths of the verified files. A file already present and valid is not downloaded again. Raises
    FetchError (offline, HTTP error, bad content); no partial or unverified file is left behind.
    """
    root = Path(dest) if dest is not None else data_dir()
    entries = [_registry_entry(n) for n in names] if names else list(REGISTRY.values())
    paths = []
    for entry in entries:
        target = root / entry.folder / entry.name
        if target.is_file() and not force:
            try:
                _check_bytes(target.read_bytes(), entry, str(target))
                paths.append(target)
                continue
            except HashMismatchError:
                pass  # replaced below, atomically, by a verified download
        _download_verified(_url_for(entry, base_url), entry, target, timeout)
        paths.append(target)
    return paths


# --------------------------------------------------------------------------------------------
# Loading and preprocessing
# --------------------------------------------------------------------------------------------


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float64 ``(C, T)`` (time last) and its sample rate in Hz.

    Raises FileNotFoundError when absent and ValueError for an unreadable or unsupported format.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise ValueError(
            f"unsupported or unreadable audio format: {path} ({err}); expected a file soundfile "
            f"can read (WAV, FLAC, ...)"
        ) from err
    return np.ascontiguousarray(data.T), int(rate)


@dataclass(frozen=True)
class MeasuredRIR:
    """A preprocessed measured RIR and where it came from.

    Attributes
    ----------
    signal : torch.Tensor, float32, shape (T,); unit norm unless loaded with normalize=False.
    sample_rate : Hz, of ``signal``.
    path : the source file.
    channel : the channel index used, or ``"mean"``.
    n_channels : channels in the file.
    original_sample_rate : Hz, of the file.
    original_length : samples in the file (at ``original_sample_rate``).
    rt60 : seconds, broadband T30 estimate of the resampled channel used for trimming (None when
        trim=False).
    peak_index : sample (at ``sample_rate``) of the absolute peak, a marker of the direct sound.
    scale : factor applied for unit norm (1.0 when normalize=False).
    """

    signal: object = field(repr=False)
    sample_rate: int
    path: Path
    channel: int | str
    n_channels: int
    original_sample_rate: int
    original_length: int
    rt60: float | None
    peak_index: int
    scale: float

    def __len__(self) -> int:
        return int(self.signal.shape[-1])

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self) / self.sample_rate

    def metadata(self) -> dict:
        """JSON-serialisable description (everything but the signal)."""
        return {
            "path": str(self.path),
            "channel": self.channel,
            "n_channels": self.n_channels,
            "original_sample_rate": self.original_sample_rate,
            "original_length": self.original_length,
            "sample_rate": self.sample_rate,
            "length": len(self),
            "rt60": self.rt60,
            "peak_index": self.peak_index,
            "scale": self.scale,
        }


def _resolve(name_or_path: str | os.PathLike) -> tuple[Path, RemoteFile | None]:
    """A registry name or relative registry path -> (file in the data dir, entry); else a path."""
    text = str(name_or_path)
    key = Path(text).name
    if key in REGISTRY and (text == key or text == REGISTRY[key].relpath):
        return data_path(key, must_exist=True), REGISTRY[key]
    path = Path(name_or_path)
    if not path.is_file():
        hint = f" {_how_to_get(REGISTRY[key], data_dir())}" if key in REGISTRY else ""
        raise FileNotFoundError(f"measured RIR not found: {path}.{hint}")
    return path, None


def select_channel(data: np.ndarray, channel: int | str) -> np.ndarray:
    """One channel of ``data`` (C, T) by index (negative allowed), or their mean (``"mean"``)."""
    n_channels = data.shape[0]
    if isinstance(channel, str):
        if channel != "mean":
            raise ValueError(f"channel must be an integer index or 'mean', got {channel!r}")
        return data.mean(axis=0)
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise TypeError(f"channel must be an integer index or 'mean', got {channel!r}")
    if not -n_channels <= channel < n_channels:
        raise IndexError(
            f"channel {channel} out of range for a file with {n_channels} channel(s) "
            f"(valid: 0..{n_channels - 1}, negative from the end, or 'mean')"
        )
    return data[channel]


def resample(signal: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis with soxr ("VHQ", linear phase, time-aligned). float64."""
    if rate_in == rate_out:
        return np.asarray(signal, dtype=np.float64)
    import soxr

    x = np.asarray(signal, dtype=np.float64)
    return np.asarray(soxr.resample(x, rate_in, rate_out, quality="VHQ"))


def load_rir(
    name_or_path: str | os.PathLike,
    channel: int | str = 0,
    sample_rate: int = 16000,
    trim: bool = True,
    normalize: bool = True,
    verify: bool | None = None,
) -> MeasuredRIR:
    """Load and preprocess a measured RIR as an SDN target.

    Parameters
    ----------
    name_or_path : a registry name (``"rir-S1-R2-HOM1.wav"``, found under ``$SDN_DATA_DIR``),
        ``"homula-rir/<name>"``, or a path to any audio file soundfile reads.
    channel : channel index (negative counts from the end) or ``"mean"`` (average of channels).
    sample_rate : Hz of the output (soxr VHQ resampling).
    trim : cut to ``round(T30 * sample_rate)`` samples counted from sample 0 (T30: broadband,
        extrapolated to 60 dB from a 30 dB decay; ISO 3382-1 via ``sdn.acoustics``).
    normalize : scale to unit Euclidean norm.
    verify : check the file against the registry (git blob id, sha256); default True for registry
        names, False for paths.

    Returns
    -------
    MeasuredRIR with ``signal`` a float32 torch tensor of shape (T,).

    Raises
    ------
    FileNotFoundError (with how to get the file), HashMismatchError, IndexError (channel out of
    range), ValueError (non-finite or silent signal, unsupported format, bad sample rate).
    """
    import torch

    path, entry = _resolve(name_or_path)
    if verify is None:
        verify = entry is not None
    if verify:
        verify_file(path, entry.name if entry else None)
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
            or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    data, rate = read_audio(path)
    if data.shape[1] == 0:
        raise ValueError(f"{path} holds no samples")
    h = select_channel(data, channel)
    if not np.all(np.isfinite(h)):
        raise ValueError(f"{path} (channel {channel}) contains non-finite samples (NaN or inf)")
    peak = float(np.max(np.abs(h)))
    if peak == 0.0 or peak < 1e-12:
        raise ValueError(f"{path} (channel {channel}) is silent (peak |h| = {peak:g})")
    h = resample(h, rate, int(sample_rate))
    rt60 = None
    if trim:
        from .acoustics import reverberation_time

        rt60 = float(np.asarray(reverberation_time(h, int(sample_rate), decay="T30")))
        if not np.isfinite(rt60) or rt60 <= 0:
            raise ValueError(
                f"{path}: no usable 30 dB decay for trimming (T30 = {rt60}); pass trim=False"
            )
        n = min(h.shape[-1], max(1, int(round(rt60 * sample_rate))))
        h = h[:n]
    scale = 1.0
    if normalize:
        norm = float(np.linalg.norm(h))
        if norm == 0.0:
            raise ValueError(f"{path} (channel {channel}) is silent after trimming")
        scale = 1.0 / norm
        h = h * scale
    return MeasuredRIR(
        signal=torch.as_tensor(h, dtype=torch.float32),
        sample_rate=int(sample_rate),
        path=path,
        channel=channel if isinstance(channel, str) else int(channel),
        n_channels=int(data.shape[0]),
        original_sample_rate=rate,
        original_length=int(data.shape[1]),
        rt60=rt60,
        peak_index=int(np.argmax(np.abs(h))),
        scale=scale,
    )


# --------------------------------------------------------------------------------------------
# Room configurations
# --------------------------------------------------------------------------------------------

_ROOM_KEYS = {"name", "description", "size", "source", "mic", "target"}
_REQUIRED_ROOM_KEYS = {"name", "size", "source", "mic"}
_TARGET_KEYS = {"file", "channel"}


@dataclass(frozen=True)
class TargetSpec:
    """Which measured RIR a room config is fitted to.

    Attributes
    ----------
    file : registry-relative path (``"homula-rir/rir-S1-R2-HOM1.wav"``) or a path.
    channel : channel index (negative from the end) or ``"mean"``.
    """

    file: str
    channel: int | str = 0

    def load(self, **kwargs) -> MeasuredRIR:
        """``load_rir(self.file, channel=self.channel, **kwargs)``."""
        return load_rir(self.file, channel=self.channel, **kwargs)


@dataclass(frozen=True)
class RoomConfig:
    """A room configuration: geometry (``sdn.Room``) and its measured target.

    Attributes
    ----------
    name : identifier (the YAML file's stem by convention).
    room : ``sdn.Room`` (size, source, mic in metres).
    target : TargetSpec or None.
    description : free text.
    path : the YAML file it was read from.
    """

    name: str
    room: object
    target: TargetSpec | None
    description: str = ""
    path: Path | None = None

    def load_target(self, **kwargs) -> MeasuredRIR:
        """Load the measured target (see ``load_rir`` for keyword arguments)."""
        if self.target is None:
            raise ValueError(f"room config {self.name!r} ({self.path}) has no target")
        return self.target.load(**kwargs)


def load_room_config(path: str | os.PathLike) -> RoomConfig:
    """Read a strict room YAML (keys: name, description, size, source, mic, target{file, channel}).

    Raises ValueError naming the key and the file for an unknown or missing key, and the
    ``sdn.Room`` validation errors for bad geometry.
    """
    import yaml

    from .geometry import Room

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"room config not found: {path}")
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a room config must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ROOM_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_ROOM_KEYS)}")
    missing = sorted(_REQUIRED_ROOM_KEYS - set(raw))
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    try:
        room = Room(size=raw["size"], source=raw["source"], mic=raw["mic"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    target = None
    if raw.get("target") is not None:
        spec = raw["target"]
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: target must be a mapping with keys {sorted(_TARGET_KEYS)}")
        unknown = sorted(set(spec) - _TARGET_KEYS)
        if unknown:
            raise ValueError(
                f"{path}: unknown key(s) {unknown} in target; allowed: {sorted(_TARGET_KEYS)}"
            )
        if "file" not in spec:
            raise ValueError(f"{path}: target needs a 'file'")
        channel = spec.get("channel", 0)
        if not (channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool))):
            raise ValueError(
                f"{path}: target channel must be an integer or 'mean', got {channel!r}"
            )
        target = TargetSpec(file=str(spec["file"]), channel=channel)
    return RoomConfig(
        name=str(raw["name"]),
        room=room,
        target=target,
        description=str(raw.get("description", "") or ""),
        path=path,
    )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sdn.data",
        description=f"Measured RIRs for sdn. Data directory: ${DATA_DIR_ENV} (now {data_dir()}).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download and verify files (default: all registered)")
    p_fetch.add_argument("names", nargs="*", help=f"files among: {', '.join(REGISTRY)}")
    p_fetch.add_argument("--dest", help="data directory (default: $SDN_DATA_DIR or <repo>/data)")
    p_fetch.add_argument(
        "--base-url", help=f"mirror base URL (default: ${BASE_URL_ENV} or the public URLs)"
    )
    p_fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    p_fetch.add_argument(
        "--force", action="store_true", help="download even if a valid copy exists"
    )
    p_verify = sub.add_parser(
        "verify", help="verify the named files (default: those present in the data directory)"
    )
    p_verify.add_argument("names", nargs="*")
    sub.add_parser("list", help="list registered files")
    args = parser.parse_args(argv)

    if args.command == "list":
        for entry in REGISTRY.values():
            present = (data_dir() / entry.relpath).is_file()
            print(f"{entry.relpath}\t{'present' if present else 'absent'}\t{entry.url}")
        print(f"Source: {_CITATION}")
        return 0
    if args.command == "verify":
        status = 0
        for name in args.names or list(REGISTRY):
            try:
                path = data_path(name, must_exist=False)
                if not path.is_file() and not args.names:
                    print(f"absent   {name}")
                    continue
                verify_file(path, name)
                print(f"ok       {name}")
            except (FileNotFoundError, HashMismatchError, KeyError) as err:
                print(f"FAILED   {name}: {err}", file=sys.stderr)
                status = 1
        return status
    try:
        paths = fetch(args.names or None, dest=args.dest, base_url=args.base_url,
                      timeout=args.timeout, force=args.force)
    except (FetchError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"verified {path}")
    print(f"Source: {_CITATION}. Cite the paper when you use these files.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
