r"""Measured room impulse responses: read, select a channel, resample, trim, normalise.

Preprocessing of a measured target (DAFx25 paper, Sec. 4; :func:`load_rir`):

1. read the multichannel file with soundfile, time on the last axis ``(C, T)``;
2. take one channel (index, negative allowed) or the mean over channels (``"mean"``);
   optionally remove a known measurement latency :math:`\tau` (:func:`advance`: the signal is
   advanced by :math:`\tau f` samples, :math:`f` the file's sampling rate, with a band-limited
   fractional shift, and its first :math:`\lceil \tau f \rceil` samples are dropped), so that
   the direct sound arrives at the propagation delay :math:`d_{SM}/c` as in the SDN's output;
3. resample with soxr (libsoxr, "VHQ"; linear phase, output aligned with the input so sample 0
   stays time 0), e.g. 48 kHz -> 16 kHz;
4. trim to the reverberation time extrapolated from a 30 dB decay: broadband T30 of the resampled
   signal (ISO 3382-1: Schroeder backward integral, least-squares line from -5 to -35 dB, RT = 60 dB
   over its slope; :func:`sdn.acoustics.reverberation_time`). The length counts **from sample 0**:
   :math:`n = \mathrm{round}(T_{30} f_s)` samples, so the pre-delay (propagation time and any
   measurement latency not removed in step 2) is kept and time 0 stays aligned with the start of
   the measurement, as in the SDN's output;
5. scale to unit Euclidean norm.

Registered files (``"rir-S1-R2-HOM1.wav"``) are found and verified by :mod:`sdn.data`.

References
----------
- A. Ilic Mezza, R. Giampiccolo, E. De Sena, A. Bernardini, "Differentiable scattering delay
  networks for artificial reverberation", Proc. DAFx25, 2025.
- ISO 3382-1:2009, Acoustics - Measurement of room acoustic parameters - Part 1:
  Performance spaces.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["MIN_SAMPLES", "read_audio", "select_channel", "advance", "resample", "MeasuredRIR", "load_rir"]

#: Fewest samples per channel of a measured RIR file (1.3 ms at 48 kHz); shorter files hold no
#: room response and are refused with a clear message.
MIN_SAMPLES = 64


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file with soundfile.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile reads (WAV, FLAC, ...).

    Returns
    -------
    data : ndarray, shape (C, T)
        float64 samples, time last.
    sample_rate : int
        Hz.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        For an unreadable or unsupported format, or a path that names a folder, a FIFO or another
        thing that is not a file (:class:`sdn.fileio.NotRegularFileError`).
    """
    import soundfile as sf

    from .fileio import NotRegularFileError, not_regular

    path = Path(path)
    kind = not_regular(path)
    if kind is not None:
        raise NotRegularFileError(f"{path} is {kind}, not an audio file: name a WAV file")
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


def select_channel(data: np.ndarray, channel: int | str) -> np.ndarray:
    """One channel by index, or the mean of the channels.

    Parameters
    ----------
    data : ndarray, shape (C, T)
        Multichannel signal, time last.
    channel : int or str
        Index (negative counts from the end) or ``"mean"``.

    Returns
    -------
    ndarray, shape (T,)

    Raises
    ------
    IndexError
        For an index out of range.
    ValueError, TypeError
        For anything else than an integer or ``"mean"``.
    """
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


def advance(signal: np.ndarray, samples: float) -> np.ndarray:
    r"""Shift a signal earlier in time by a (fractional) number of samples, band-limited.

    .. math:: y(n) = x(n + D), \qquad n = 0, \dots, T - \lceil D \rceil - 1,

    evaluated as the ideal band-limited shift :math:`X(e^{j\omega}) e^{j\omega D}` on an FFT
    grid at least twice the signal's length (zero-padded, so nothing wraps into the output).
    Exact for a signal band-limited below half the sampling rate; the samples before :math:`D`
    (the latency) are discarded.

    Parameters
    ----------
    signal : ndarray, shape (T,)
        Samples.
    samples : float
        The advance :math:`D`, samples, with :math:`0 \le D < T`.

    Returns
    -------
    ndarray, shape (T - ceil(D),)
        float64.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    x = np.asarray(signal, dtype=np.float64)
    if not 0.0 <= samples < x.shape[-1]:
        raise ValueError(f"the advance must lie in [0, {x.shape[-1]}) samples, got {samples}")
    if float(samples).is_integer():
        return x[int(samples):].copy()
    n_fft = next_fast_len(2 * x.shape[-1], real=True)
    phase = np.exp(2j * np.pi * samples * np.arange(n_fft // 2 + 1) / n_fft)
    return irfft(rfft(x, n_fft) * phase, n_fft)[: x.shape[-1] - int(np.ceil(samples))]


def resample(signal: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along the last axis with soxr ("VHQ", linear phase, time-aligned).

    Parameters
    ----------
    signal : ndarray, shape (T,) or (T, C)
        Samples at ``rate_in``.
    rate_in : int
        Hz.
    rate_out : int
        Hz.

    Returns
    -------
    ndarray
        float64 at ``rate_out``, about ``T * rate_out / rate_in`` samples.
    """
    if rate_in == rate_out:
        return np.asarray(signal, dtype=np.float64)
    import soxr

    x = np.asarray(signal, dtype=np.float64)
    return np.asarray(soxr.resample(x, rate_in, rate_out, quality="VHQ"))


@dataclass(frozen=True)
class MeasuredRIR:
    """A preprocessed measured RIR and where it came from.

    Attributes
    ----------
    signal : torch.Tensor
        float32, shape (T,); unit norm unless loaded with ``normalize=False``.
    sample_rate : int
        Hz, of ``signal``.
    path : pathlib.Path
        The source file.
    channel : int or str
        The channel index used, or ``"mean"``.
    n_channels : int
        Channels in the file.
    original_sample_rate : int
        Hz, of the file.
    original_length : int
        Samples in the file (at ``original_sample_rate``).
    rt60 : float or None
        Seconds, broadband T30 of the resampled channel used for trimming (None when
        ``trim=False``).
    peak_index : int
        Sample (at ``sample_rate``) of the absolute peak, a marker of the direct sound.
    scale : float
        Factor applied for unit norm (1.0 when ``normalize=False``).
    latency : float
        Seconds removed from the start of the recording (0: none).
    sha256 : str or None
        SHA-256 (hexadecimal) of the file read, which identifies the target of a run
        (:func:`sdn.train.resume_hash`); None for a target made in memory.
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
    latency: float = 0.0
    sha256: str | None = None

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
            "latency": self.latency,
            "sha256": self.sha256,
        }


def _sample_rate(value) -> int:
    """A positive whole number of Hz (Python or numpy int or integral float) as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {value!r}")
    if not (np.isfinite(value) and value > 0 and float(value).is_integer()):
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {value!r}")
    return int(value)


def load_rir(
    name_or_path: str | os.PathLike,
    channel: int | str = 0,
    sample_rate: int = 16000,
    trim: bool = True,
    normalize: bool = True,
    verify: bool | None = None,
    latency: float = 0.0,
) -> MeasuredRIR:
    """Load and preprocess a measured RIR as an SDN target (see the module docstring).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A registered name (``"rir-S1-R2-HOM1.wav"``) or ``"homula-rir/<name>"``, found by
        :func:`sdn.data.data_path` (shipped files first, then ``$SDN_DATA_DIR``), or a path to any
        audio file soundfile reads.
    channel : int or str
        Channel index (negative counts from the end) or ``"mean"`` (average of the channels).
    sample_rate : int
        Hz of the output (soxr VHQ resampling).
    trim : bool
        Cut to :math:`\\mathrm{round}(T_{30} f_s)` samples counted from sample 0.
    normalize : bool
        Scale to unit Euclidean norm.
    verify : bool, optional
        Check the file against the registry (git blob id, sha256); default True for registered
        names, False for paths.
    latency : float
        Measurement latency to remove, seconds, >= 0 and shorter than the file: the selected
        channel is advanced by ``latency`` times the file's sampling rate (:func:`advance`)
        before resampling. The trimming length then counts from the new sample 0.

    Returns
    -------
    MeasuredRIR
        ``signal`` is a float32 torch tensor of shape (T,).

    Raises
    ------
    FileNotFoundError
        When the file is absent (the message says how to get it).
    sdn.data.HashMismatchError
        When a registered file's content differs from the registry.
    IndexError
        For a channel out of range.
    ValueError
        For a file shorter than :data:`MIN_SAMPLES`, a non-finite or silent signal, an unsupported
        format, a bad sample rate, a latency that is negative or not shorter than the file, or no
        30 dB decay to trim at.

    Examples
    --------
    >>> from sdn.rir import load_rir
    >>> target = load_rir("rir-S1-R2-HOM1.wav", channel="mean")   # shipped with the repository
    >>> target.sample_rate, target.n_channels, target.original_sample_rate
    (16000, 8, 48000)
    >>> abs(float(target.signal.norm()) - 1.0) < 1e-5                  # unit norm (float32)
    True
    """
    import torch

    from . import data

    path, entry = data.resolve(name_or_path)
    if verify is None:
        verify = entry is not None
    if verify:
        data.verify_file(path, entry.name if entry else None)
    sample_rate = _sample_rate(sample_rate)
    digest = data.sha256sum(path)
    audio, rate = read_audio(path)
    if audio.shape[1] < MIN_SAMPLES:
        raise ValueError(f"{path} holds {audio.shape[1]} sample(s) per channel; a room impulse "
                         f"response file needs at least {MIN_SAMPLES}")
    h = select_channel(audio, channel)
    if not np.all(np.isfinite(h)):
        raise ValueError(f"{path} (channel {channel}) contains non-finite samples (NaN or inf)")
    peak = float(np.max(np.abs(h)))
    if peak < 1e-12:
        raise ValueError(f"{path} (channel {channel}) is silent (peak |h| = {peak:g})")
    if latency:
        if not (np.isfinite(latency) and 0 < latency < h.shape[-1] / rate):
            raise ValueError(f"{path}: latency must be a number of seconds in [0, {h.shape[-1] / rate:g}) "
                             f"(the file's duration), got {latency!r}")
        h = advance(h, latency * rate)
    h = resample(h, rate, sample_rate)
    rt60 = None
    if trim:
        from .acoustics import reverberation_time

        rt60 = float(np.asarray(reverberation_time(h, sample_rate, decay="T30")))
        if not np.isfinite(rt60) or rt60 <= 0:
            raise ValueError(
                f"{path}: no usable 30 dB decay for trimming (T30 = {rt60}); pass trim=False"
            )
        h = h[: min(h.shape[-1], max(1, int(round(rt60 * sample_rate))))]
    scale = 1.0
    if normalize:
        norm = float(np.linalg.norm(h))
        if norm == 0.0:
            raise ValueError(f"{path} (channel {channel}) is silent after trimming")
        scale = 1.0 / norm
        h = h * scale
    return MeasuredRIR(
        signal=torch.as_tensor(h, dtype=torch.float32),
        sample_rate=sample_rate,
        path=path,
        channel=channel if isinstance(channel, str) else int(channel),
        n_channels=int(audio.shape[0]),
        original_sample_rate=rate,
        original_length=int(audio.shape[1]),
        rt60=rt60,
        peak_index=int(np.argmax(np.abs(h))),
        scale=scale,
        latency=float(latency),
        sha256=digest,
    )
