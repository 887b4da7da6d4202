"""Room-acoustic analysis of impulse responses (ISO 3382-1 parameters).

All functions are pure, take the time on the last axis and accept any leading batch
dimensions: signals ``(..., T)``, octave bands ``(..., B, T)``. They accept ``torch.Tensor``
or ``numpy.ndarray`` input (floating point only) and return the same kind: a tensor with the
input's device and dtype, or a float64 numpy array. Where a parameter cannot be estimated
for one signal of a batch (silent signal, decay range not reached) its value is NaN and the
reason is documented on the function; malformed input (wrong dtype or shape, NaN/inf samples)
raises a ``TypeError``/``ValueError`` before any computation.

Contents: :func:`energy_decay_curve`, :func:`impulse_response_onset`,
:func:`reverberation_time` (T20, T30, EDT, broadband or octave bands), :func:`clarity` (C50,
C80), :func:`definition` (D50), :func:`drr`, :func:`edc_error_db`, :func:`relative_error`,
:func:`mel_energy_decay_relief`, :func:`normalized_echo_density`, :func:`mixing_time`,
:func:`octave_bands` / :func:`octave_band_centres` and :func:`room_acoustic_parameters`
(everything at once). Only :func:`energy_decay_curve` (linear) and
:func:`mel_energy_decay_relief` are differentiable; the ISO parameters are evaluation metrics
computed on detached float64 copies.

What is *not* done (as in pyrato's low-level functions): no noise compensation or
truncation of the decay curve (Lundeby, Chu), no averaging over source/receiver positions; the
Schroeder integral runs to the end of the record. The dynamic-range check of
:func:`reverberation_time` flags (NaN) rather than corrects noisy decays.
"""
from __future__ import annotations

import functools
import math
from typing import Union

import numpy as np
import torch

from .echo_density import echo_density_profile
from .filterbank import octave_band_centres
from .filterbank import octave_bands as _octave_bands_tensor

ArrayLike = Union[torch.Tensor, np.ndarray]

#: Decay ranges (upper, lower) in dB of the normalised EDC, ISO 3382-1 section A.2.
DECAY_RANGES = {
    "EDT": (0.0, -10.0),
    "T20": (-5.0, -25.0),
    "T30": (-5.0, -35.0),
}

#: ISO 3382-1 start threshold: the RIR starts where it first rises to 20 dB below its peak.
ONSET_THRESHOLD_DB = 20.0


# --------------------------------------------------------------------------- input handling


def _as_tensor(h: ArrayLike, name: str = "h", min_length: int = 1) -> tuple[torch.Tensor, bool]:
    """Validate a signal and return it as a floating-point tensor plus a 'was numpy' flag."""
    was_numpy = isinstance(h, np.ndarray)
    if was_numpy:
        if not np.issubdtype(h.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {h.dtype}")
        h = torch.from_numpy(np.array(h, dtype=np.float64, copy=True))
    elif isinstance(h, torch.Tensor):
        if not h.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {h.dtype}")
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(h).__name__}")
    if h.ndim == 0:
        raise ValueError(f"{name} must have a time axis (shape (..., T)), got a scalar")
    if h.shape[-1] < min_length:
        raise ValueError(f"{name} needs at least {min_length} samples on its last axis, got shape {tuple(h.shape)}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError(f"{name} contains NaN or inf samples")
    return h, was_numpy


def _check_sample_rate(sample_rate: float) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"sample_rate must be a number, got {type(sample_rate).__name__}")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be positive and finite, got {sample_rate}")
    return float(sample_rate)


def _output(x: torch.Tensor, was_numpy: bool, like: torch.Tensor | None = None) -> ArrayLike:
    """Return ``x`` as float64 numpy (numpy input) or as a tensor in the input's dtype."""
    if was_numpy:
        return x.detach().cpu().to(torch.float64).numpy()
    if like is not None:
        x = x.to(dtype=like.dtype)
    return x


# --------------------------------------------------------------------------- decay curves


def _schroeder(h: torch.Tensor) -> torch.Tensor:
    """Backward cumulative sum of h^2 (summed from the tail, which keeps the precision)."""
    return torch.flip(torch.cumsum(torch.flip(h * h, dims=(-1,)), dim=-1), dims=(-1,))


def energy_decay_curve(h: ArrayLike, db: bool = False) -> ArrayLike:
    r"""Schroeder energy decay curve (EDC) of an impulse response.

    .. math:: E(n) = \sum_{k=n}^{T-1} h^2(k)

    (Schroeder 1965; the backward integral of the squared impulse response that ISO 3382-1
    prescribes for the integrated impulse response method). The sum runs over samples
    (multiply by ``1/fs`` for a time integral).

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s), time on the last axis.
    db : bool
        If False (default) return the linear EDC :math:`E(n)` (differentiable, used by
        :class:`sdn.losses.EDCLoss`). If True return :math:`10 \log_{10}(E(n)/E(0))`, i.e. the
        curve normalised to 0 dB at the first sample; it is ``-inf`` where :math:`E(n)=0`
        (exact zeros at the end of the record) and NaN for an all-zero signal.

    Returns
    -------
    EDC : same kind as ``h``, shape (..., T)

    Notes
    -----
    No onset detection, noise compensation or truncation: the integral starts at sample 0
    and runs to the end of the record. :func:`reverberation_time` applies the ISO 3382-1
    onset detection itself.
    """
    x, was_numpy = _as_tensor(h)
    edc = _schroeder(x)
    if db:
        edc = 10.0 * torch.log10(edc / edc[..., :1])
    return _output(edc, was_numpy)


def impulse_response_onset(h: ArrayLike, threshold_db: float = ONSET_THRESHOLD_DB) -> ArrayLike:
    """Start sample of an impulse response (ISO 3382-1, A.3.4).

    The first sample at which :math:`h^2` reaches ``threshold_db`` (20 dB) below its maximum.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
    threshold_db : float
        Threshold in dB below the peak of :math:`h^2`.

    Returns
    -------
    onset : int64 tensor or ndarray, shape (...)
        Sample index; 0 for an all-zero signal.
    """
    x, was_numpy = _as_tensor(h)
    return _onset(x, threshold_db).cpu().numpy() if was_numpy else _onset(x, threshold_db)


def _onset(x: torch.Tensor, threshold_db: float = ONSET_THRESHOLD_DB) -> torch.Tensor:
    energy = x.detach() * x.detach()
    peak = energy.amax(dim=-1, keepdim=True)
    above = (energy >= peak * 10.0 ** (-threshold_db / 10.0)) & (peak > 0)
    # argmax of a boolean returns the first True; all-False (silent) gives 0
    return above.to(torch.uint8).argmax(dim=-1)


def _decay_range(decay) -> tuple[float, float]:
    """(upper, lower) dB limits for a decay name or an explicit pair."""
    message = f"decay must be one of {sorted(DECAY_RANGES)} or an (upper, lower) dB pair, got {decay!r}"
    if isinstance(decay, str):
        if decay not in DECAY_RANGES:
            raise ValueError(message)
        return DECAY_RANGES[decay]
    try:
        upper, lower = (float(v) for v in decay)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (0.0 >= upper > lower and math.isfinite(lower)):
        raise ValueError(f"a decay range needs 0 >= upper > lower (dB), got ({upper}, {lower})")
    return upper, lower


def _decay_fit(
    x: torch.Tensor,
    sample_rate: float,
    decay: str,
    onset: torch.Tensor,
    min_margin_db: float | None,
) -> torch.Tensor:
    """Least-squares decay time of ``x`` (..., T) with per-signal onset (...,). Float64."""
    upper, lower = _decay_range(decay)
    x = x.detach().to(torch.float64)
    n = x.shape[-1]
    edc = _schroeder(x)
    ref = torch.gather(edc, -1, onset.unsqueeze(-1))  # EDC at the onset: the 0 dB reference
    idx = torch.arange(n, device=x.device)
    after = idx >= onset.unsqueeze(-1)
    with torch.no_grad():
        level = 10.0 * torch.log10(edc / ref)  # -inf at exact zeros, NaN if silent
    in_range = after & (level <= upper) & (level >= lower)
    # least-squares line level = a + b t over the samples in the decay range (closed form)
    w = in_range.to(torch.float64)
    count = w.sum(-1)
    t = idx.to(torch.float64) / sample_rate
    y = torch.where(in_range, level, torch.zeros_like(level))
    mean_t = (w * t).sum(-1) / count
    mean_y = y.sum(-1) / count
    dt = (t - mean_t.unsqueeze(-1)) * w
    slope = (dt * (y - mean_y.unsqueeze(-1))).sum(-1) / (dt * dt).sum(-1)  # dB per second
    rt = -60.0 / slope
    # range reached? the EDC must actually fall below the lower limit after the onset
    reached = (after & (level < lower)).any(-1)
    valid = reached & (count >= 3) & (slope < 0) & torch.isfinite(rt)
    if min_margin_db is not None:
        valid &= _margin_ok(x, edc, level, in_range, slope, sample_rate, onset, min_margin_db)
    return torch.where(valid, rt, torch.full_like(rt, float("nan")))


def _margin_ok(x, edc, level, in_range, slope, sample_rate, onset, min_margin_db):
    """Dynamic-range check in the spirit of ISO 3382-1 (5.3.3): the bottom of the range must
    lie ``min_margin_db`` above the level at the end of the record.

    The squared-envelope level at the last sample of the decay range is estimated from the
    EDC and the fitted slope, :math:`p(n) = E(n)(1 - 10^{s/(10 f_s)})` (exact for an
    exponential decay), and compared with the mean of :math:`h^2` over the last 10 % of the
    record after the onset (the noise floor, or the truncation level of a clean record).
    """
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device)
    last = torch.where(in_range, idx, torch.full_like(idx, -1)).amax(-1).clamp(min=0)
    e_last = torch.gather(edc, -1, last.unsqueeze(-1)).squeeze(-1)
    per_sample_decay = 1.0 - torch.pow(10.0, slope.clamp(max=0) / (10.0 * sample_rate))
    envelope = e_last * per_sample_decay
    tail_start = onset + ((n - onset) * 9) // 10
    tail = (idx >= tail_start.unsqueeze(-1)).to(x.dtype)
    tail_power = (x * x * tail).sum(-1) / tail.sum(-1).clamp(min=1)
    return envelope >= tail_power * 10.0 ** (min_margin_db / 10.0)


def reverberation_time(
    h: ArrayLike,
    sample_rate: float,
    decay: str | tuple[float, float] = "T30",
    bands: str | None = None,
    min_margin_db: float | None = 10.0,
) -> ArrayLike:
    r"""Reverberation time T20/T30 or early decay time EDT (ISO 3382-1), in seconds.

    Procedure (ISO 3382-1 annex A, impulse-response method):

    1. onset: the first sample where :math:`h^2` rises to 20 dB below its peak
       (:func:`impulse_response_onset`, computed on the broadband signal);
    2. Schroeder integral :math:`E(n)=\sum_{k\ge n} h^2(k)` from the onset, in dB relative to
       :math:`E(\text{onset})`;
    3. least-squares line :math:`L(t) = a + b t` through all samples whose level lies in the
       decay range: EDT 0 to -10 dB, T20 -5 to -25 dB, T30 -5 to -35 dB;
    4. extrapolation to 60 dB: :math:`T = -60 / b`.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s).
    sample_rate : float
        Sampling rate in Hz.
    decay : {"T30", "T20", "EDT"} or (upper, lower)
        Decay range; a pair of dB levels (e.g. ``(-0.1, -10.1)``, pyrato's EDT range, or
        ``(-5, -20)`` for T15) fits that range instead, still extrapolated to 60 dB.
    bands : None or "octave"
        ``None``: broadband, output shape (...). ``"octave"``: octave bands of
        :func:`octave_band_centres` (filtered by :func:`octave_bands`), output shape (..., B).
    min_margin_db : float or None
        Dynamic-range requirement (ISO 3382-1 5.3.3 asks for the bottom of the evaluation range
        to be 10 dB above the noise): the estimated squared-envelope level at the bottom of the
        range must exceed the mean power of the last 10 % of the record by this many dB.
        ``None`` disables the check.

    Returns
    -------
    T : same kind as ``h``, shape (...) or (..., B), seconds
        NaN where it cannot be estimated: all-zero signal, EDC not falling below the lower
        limit, fewer than 3 samples in the range, non-decaying fit, or the dynamic-range
        requirement not met (record too short or too noisy for the range).

    Notes
    -----
    Not done: noise compensation (Lundeby/Chu), EDC truncation, averaging over positions.
    Not differentiable (the fit runs on detached float64 values).
    """
    _decay_range(decay)  # validate before any work
    x, signals, onset, was_numpy, fs = _prepare(h, sample_rate, bands)
    rt = _decay_fit(signals, fs, decay, onset, min_margin_db)
    return _output(rt, was_numpy, like=x)


def octave_bands(h: ArrayLike, sample_rate: float) -> ArrayLike:
    """Zero-phase octave-band split of ``h`` (..., T) into (..., B, T).

    See :mod:`sdn.filterbank` for the design (4th-order Butterworth band-passes from scipy,
    applied with zero phase); the centre frequencies are :func:`octave_band_centres`.
    Returns the same kind as ``h`` (tensor in its dtype/device, or float64 ndarray).
    """
    sample_rate = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h)
    return _output(_octave_bands_tensor(x, sample_rate), was_numpy)


# --------------------------------------------------------------------------- energy ratios


def _energy_split(x: torch.Tensor, onset: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy in [onset, onset + samples) and in [onset + samples, T), plus validity, float64."""
    x = x.detach().to(torch.float64)
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device)
    onset = onset.unsqueeze(-1)
    energy = x * x
    early = (energy * ((idx >= onset) & (idx < onset + samples))).sum(-1)
    late = (energy * (idx >= onset + samples)).sum(-1)
    fits = (onset.squeeze(-1) + samples) < n  # the record extends past the early limit
    return early, late, fits


def _prepare(h: ArrayLike, sample_rate: float, bands: str | None):
    """Validated float64 signals (..., T) or bands (..., B, T), their onsets, and the kind flag."""
    sample_rate = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h, min_length=2)
    onset = _onset(x)
    x64 = x.detach().to(torch.float64)
    if bands is None:
        return x, x64, onset, was_numpy, sample_rate
    if bands != "octave":
        raise ValueError(f"bands must be None or 'octave', got {bands!r}")
    xb = _octave_bands_tensor(x64, sample_rate)
    return x, xb, onset.unsqueeze(-1).expand(xb.shape[:-1]), was_numpy, sample_rate


def _nan_where(value: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, value, torch.full_like(value, float("nan")))


def _clarity(x64, onset, sample_rate, ms):
    early, late, fits = _energy_split(x64, onset, int(round(ms * 1e-3 * sample_rate)))
    return _nan_where(10.0 * torch.log10(early / late), fits & (early > 0) & (late > 0))


def _definition(x64, onset, sample_rate, ms):
    early, late, fits = _energy_split(x64, onset, int(round(ms * 1e-3 * sample_rate)))
    total = early + late
    return _nan_where(early / total, fits & (total > 0))


def clarity(h: ArrayLike, sample_rate: float, ms: float = 50.0, bands: str | None = None) -> ArrayLike:
    r"""Clarity :math:`C_{t_e}` (C50 for speech, C80 for music), ISO 3382-1 A.2.4, in dB.

    .. math:: C_{t_e} = 10\log_{10}\frac{\sum_{n_0 \le n < n_0 + N_e} h^2(n)}
                                       {\sum_{n \ge n_0 + N_e} h^2(n)},
       \qquad N_e = \operatorname{round}(t_e f_s),

    with :math:`n_0` the ISO 3382-1 onset (:func:`impulse_response_onset`, broadband).

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
    sample_rate : float
        Hz.
    ms : float
        Early time limit :math:`t_e` in milliseconds (50 or 80).
    bands : None or "octave"
        Broadband (output (...)) or octave bands (output (..., B), :func:`octave_band_centres`);
        the onset is detected once on the broadband signal.

    Returns
    -------
    same kind as ``h``, dB
        NaN for a silent signal, or when the record ends before :math:`n_0 + N_e`.

    Notes
    -----
    No noise compensation (the late energy includes the noise of the record).
    """
    _, x64, onset, was_numpy, fs = _prepare(h, sample_rate, bands)
    return _output(_clarity(x64, onset, fs, float(ms)), was_numpy, like=_like(h))


def definition(h: ArrayLike, sample_rate: float, ms: float = 50.0, bands: str | None = None) -> ArrayLike:
    r"""Definition :math:`D_{50}` (ISO 3382-1 A.2.4): early-to-total energy fraction, 0 to 1.

    .. math:: D_{t_e} = \frac{\sum_{n_0 \le n < n_0+N_e} h^2(n)}{\sum_{n \ge n_0} h^2(n)}
       = \frac{1}{1 + 10^{-C_{t_e}/10}}

    Same conventions and NaN cases as :func:`clarity` (``ms`` defaults to 50).
    """
    _, x64, onset, was_numpy, fs = _prepare(h, sample_rate, bands)
    return _output(_definition(x64, onset, fs, float(ms)), was_numpy, like=_like(h))


def _drr(x64, sample_rate, direct_ms):
    energy = x64 * x64
    n = x64.shape[-1]
    idx = torch.arange(n, device=x64.device)
    peak = energy.argmax(-1, keepdim=True)
    half = int(round(direct_ms * 1e-3 * sample_rate))
    direct = (energy * ((idx >= peak - half) & (idx <= peak + half))).sum(-1)
    reverberant = (energy * (idx > peak + half)).sum(-1)
    return _nan_where(10.0 * torch.log10(direct / reverberant), (direct > 0) & (reverberant > 0))


def drr(h: ArrayLike, sample_rate: float, direct_ms: float = 2.5) -> ArrayLike:
    r"""Direct-to-reverberant energy ratio in dB.

    .. math:: \mathrm{DRR} = 10\log_{10}\frac{\sum_{|n - n_d| \le N_d} h^2(n)}{\sum_{n > n_d + N_d} h^2(n)}

    :math:`n_d` is the peak of :math:`h^2` (the direct sound), :math:`N_d` = ``direct_ms``
    (2.5 ms, a common choice; ISO 3382-1 does not define the DRR) in samples. Energy before the
    direct window is ignored.

    Returns
    -------
    same kind as ``h``, shape (...), dB. NaN for a silent signal or no energy after the window.
    """
    fs = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h, min_length=2)
    return _output(_drr(x.detach().to(torch.float64), fs, float(direct_ms)), was_numpy, like=x)


def _like(h):
    return h if isinstance(h, torch.Tensor) else None


# --------------------------------------------------------------------------- comparisons


def edc_error_db(h_pred: ArrayLike, h_target: ArrayLike, floor_db: float = -60.0) -> ArrayLike:
    r"""Mean absolute difference of the dB energy decay curves of two RIRs, in dB.

    .. math:: \epsilon = \frac{1}{|\mathcal N|}\sum_{n\in\mathcal N}
              \big|\max(L_p(n), L_f) - L_t(n)\big|,\quad
              \mathcal N = \{n : L_t(n) \ge L_f\}

    where :math:`L(n) = 10\log_{10}(E(n)/E(0))` is each EDC normalised to 0 dB at its first
    sample (:func:`energy_decay_curve` with ``db=True``, so the error ignores a broadband gain),
    :math:`L_f` = ``floor_db`` (-60 dB): only the part of the target decay above the floor counts,
    and prediction levels below the floor count as the floor.

    Parameters
    ----------
    h_pred, h_target : tensor or ndarray, shape (..., T), same shape
    floor_db : float
        Lower limit of the evaluated range, dB (negative).

    Returns
    -------
    same kind as ``h_pred``, shape (...), dB. NaN if either signal is silent.
    """
    p, was_numpy = _as_tensor(h_pred, "h_pred")
    t, _ = _as_tensor(h_target, "h_target")
    if p.shape != t.shape:
        raise ValueError(f"h_pred and h_target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if not floor_db < 0:
        raise ValueError(f"floor_db must be negative, got {floor_db}")
    p64, t64 = p.detach().to(torch.float64), t.detach().to(torch.float64)
    ep, et = _schroeder(p64), _schroeder(t64)
    lp = 10.0 * torch.log10(ep / ep[..., :1]).clamp(min=floor_db)
    lt = 10.0 * torch.log10(et / et[..., :1])
    mask = lt >= floor_db
    err = (torch.where(mask, (lp - lt).abs(), torch.zeros_like(lt))).sum(-1) / mask.sum(-1)
    valid = (ep[..., 0] > 0) & (et[..., 0] > 0)
    return _output(_nan_where(err, valid), was_numpy, like=p)


def relative_error(estimate: ArrayLike, reference: ArrayLike) -> ArrayLike:
    r"""Signed relative error :math:`(\hat x - x)/x` (e.g. of reverberation times).

    Elementwise with broadcasting; NaN propagates (a NaN reverberation time gives a NaN error),
    a zero reference gives inf/NaN. Compare ``abs(...)`` with 0.05, the just-noticeable
    difference of reverberation time. Returns numpy if either input is numpy, else a tensor.
    """
    if isinstance(estimate, torch.Tensor) and isinstance(reference, torch.Tensor):
        return (estimate - reference) / reference
    def as_array(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)

    est, ref = as_array(estimate), as_array(reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (est - ref) / ref


# --------------------------------------------------------------------------- mel energy decay relief

#: STFT and mel settings of the paper's mel energy decay relief (DESIGN.md section 4).
MEL_N_FFT, MEL_WIN_LENGTH, MEL_HOP, MEL_BANDS, MEL_TOP_DB = 512, 320, 160, 64, 80.0


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: float, n_fft: int = MEL_N_FFT, n_mels: int = MEL_BANDS) -> torch.Tensor:
    """Mel filterbank (n_mels, n_fft//2 + 1), float64 CPU tensor, built once per sample rate.

    ``librosa.filters.mel`` with ``fmin=0``, ``fmax=sample_rate/2``, ``htk=True`` and
    ``norm=None``: triangular filters of unit peak on the HTK mel scale, the same filterbank as
    ``torchaudio.transforms.MelSpectrogram``'s defaults used by the paper's code.
    """
    import librosa  # imported lazily: only the mel EDR needs it

    fb = librosa.filters.mel(sr=float(sample_rate), n_fft=n_fft, n_mels=n_mels, fmin=0.0,
                             fmax=float(sample_rate) / 2.0, htk=True, norm=None, dtype=np.float64)
    return torch.from_numpy(fb)


def mel_energy_decay_relief(
    h: torch.Tensor,
    sample_rate: float,
    db: bool = True,
    filterbank: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Mel energy decay relief (EDR) of impulse responses, differentiable.

    Power mel spectrogram :math:`M(b, m)` (STFT: n_fft 512, periodic Hann window of 320
    samples, hop 160, centred frames with reflect padding; 64 mel bands from 0 to
    :math:`f_s/2`, see :func:`mel_filterbank`), integrated backwards over frames,

    .. math:: \mathrm{EDR}(b, m) = \sum_{m' \ge m} M(b, m'),

    and, if ``db``, :math:`10\log_{10}\mathrm{EDR}` floored at 80 dB below its maximum (the
    maximum over bands and frames of each signal, as ``AmplitudeToDB(top_db=80)`` in the paper's
    code; its extra absolute clamp at 1e-10 (-100 dB) is not applied: for unit-norm RIRs the
    relative floor lies far above it).

    Parameters
    ----------
    h : tensor, shape (..., T), T > 256
    sample_rate : float
        Hz.
    db : bool
        dB (default) or linear power.
    filterbank, window : tensor, optional
        Precomputed mel filterbank (64, 257) and window (320,) (e.g. module buffers); built
        (and cached) from ``sample_rate`` when omitted.

    Returns
    -------
    tensor, shape (..., 64, frames), frames = T // 160 + 1; dtype/device of ``h``.
    """
    if not isinstance(h, torch.Tensor) or not h.is_floating_point():
        raise TypeError("h must be a floating-point torch.Tensor of shape (..., T)")
    if h.ndim == 0 or h.shape[-1] <= MEL_N_FFT // 2:
        raise ValueError(f"the mel EDR needs more than {MEL_N_FFT // 2} samples, got shape {tuple(h.shape)}")
    if filterbank is None:
        filterbank = mel_filterbank(float(sample_rate))
    if window is None:
        window = torch.hann_window(MEL_WIN_LENGTH, periodic=True, dtype=torch.float64)
    filterbank = filterbank.to(device=h.device, dtype=h.dtype)
    window = window.to(device=h.device, dtype=h.dtype)
    batch_shape, n = h.shape[:-1], h.shape[-1]
    spec = torch.stft(h.reshape(-1, n), n_fft=MEL_N_FFT, hop_length=MEL_HOP, win_length=MEL_WIN_LENGTH,
                      window=window, center=True, pad_mode="reflect", return_complex=True)
    power = torch.view_as_real(spec).pow(2).sum(-1)  # |X|^2 without the sqrt of abs()
    mel = torch.matmul(filterbank, power)  # (N, 64, frames)
    edr = torch.flip(torch.cumsum(torch.flip(mel, dims=(-1,)), dim=-1), dims=(-1,))
    if db:
        tiny = torch.finfo(h.dtype).tiny
        edr = 10.0 * torch.log10(edr.clamp(min=tiny))
        peak = edr.amax(dim=(-2, -1), keepdim=True)
        edr = torch.maximum(edr, peak - MEL_TOP_DB)
    return edr.reshape(*batch_shape, *edr.shape[-2:])


# --------------------------------------------------------------------------- echo density


def normalized_echo_density(h: ArrayLike, sample_rate: float, **kwargs) -> ArrayLike:
    """Normalised echo density profile (Abel & Huang 2006), hard indicator, shape (..., T).

    About 1 for Gaussian noise (a fully diffuse tail), well below 1 for sparse early
    reflections. Accepts tensors and arrays (returns the same kind); see
    :func:`sdn.echo_density.echo_density_profile` for the definition, edge handling and the
    soft (differentiable) variant.
    """
    fs = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h)
    return _output(echo_density_profile(x.detach(), fs, soft=False, **kwargs), was_numpy)


def mixing_time(h: ArrayLike, sample_rate: float, threshold: float = 1.0) -> ArrayLike:
    """Time in seconds after the onset at which the echo density profile first reaches ``threshold``.

    Abel & Huang's mixing-time estimate (the profile reaching 1, Gaussian-like density).
    NaN if it never does. Shape (...).
    """
    fs = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h)
    profile = echo_density_profile(x.detach().to(torch.float64), fs, soft=False)
    onset = _onset(x)
    idx = torch.arange(x.shape[-1], device=x.device)
    hit = (profile >= threshold) & (idx >= onset.unsqueeze(-1))
    first = hit.to(torch.uint8).argmax(-1)
    t = (first - onset).to(torch.float64) / fs
    return _output(_nan_where(t, hit.any(-1)), was_numpy, like=x)


# --------------------------------------------------------------------------- all at once


def room_acoustic_parameters(h: ArrayLike, sample_rate: float, min_margin_db: float | None = 10.0) -> dict:
    """All evaluation metrics of one or more RIRs in one call.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
    sample_rate : float
        Hz.
    min_margin_db : float or None
        Dynamic-range requirement of the decay fits (see :func:`reverberation_time`).

    Returns
    -------
    dict
        Broadband, shape (...): ``T20``, ``T30``, ``EDT`` (s), ``C50``, ``C80`` (dB), ``D50``
        (fraction), ``DRR`` (dB), ``mixing_time`` (s). Octave bands, shape (..., B): the same
        keys with a ``_bands`` suffix for T20, T30, EDT, C50, C80, D50; ``band_centres`` (B,) Hz
        (ndarray). Values are of the kind of ``h`` (float64 ndarray, or tensors in ``h``'s
        dtype); NaN marks values that cannot be estimated (see the individual functions).
    """
    fs = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h, min_length=2)
    x64 = x.detach().to(torch.float64)
    onset = _onset(x)
    xb = _octave_bands_tensor(x64, fs)
    onset_b = onset.unsqueeze(-1).expand(xb.shape[:-1])
    out = {}
    for decay in ("T20", "T30", "EDT"):
        out[decay] = _decay_fit(x64, fs, decay, onset, min_margin_db)
        out[f"{decay}_bands"] = _decay_fit(xb, fs, decay, onset_b, min_margin_db)
    for name, ms in (("C50", 50.0), ("C80", 80.0)):
        out[name] = _clarity(x64, onset, fs, ms)
        out[f"{name}_bands"] = _clarity(xb, onset_b, fs, ms)
    out["D50"] = _definition(x64, onset, fs, 50.0)
    out["D50_bands"] = _definition(xb, onset_b, fs, 50.0)
    out["DRR"] = _drr(x64, fs, 2.5)
    result = {key: _output(value, was_numpy, like=x) for key, value in out.items()}
    result["mixing_time"] = mixing_time(h, fs)
    result["band_centres"] = octave_band_centres(fs)
    return result
