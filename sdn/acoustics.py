"""Room-acoustic analysis of impulse responses (ISO 3382-1 parameters).

All functions are pure, take the time on the last axis and accept any leading batch
dimensions: signals ``(..., T)``, octave bands ``(..., B, T)``. They accept ``torch.Tensor``
or ``numpy.ndarray`` input (floating point only) and return the same kind: a tensor with the
input's device and dtype, or a float64 numpy array. Where a parameter cannot be estimated
for one signal of a batch (silent signal, decay range not reached) its value is NaN and the
reason is documented on the function; malformed input (wrong dtype or shape, NaN/inf samples)
raises a ``TypeError``/``ValueError`` before any computation.

What is *not* done (as in pyrato's low-level functions): no noise compensation or
truncation of the decay curve (Lundeby, Chu), no time-reversal correction; the Schroeder
integral runs to the end of the record.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

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
        h = torch.from_numpy(np.ascontiguousarray(h, dtype=np.float64))
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

    (Schroeder 1965; ISO 3382-1 eq. A.?: the backward integral of the squared impulse
    response). The sum is in samples (multiply by ``1/fs`` for J-like units).

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


def _decay_fit(
    x: torch.Tensor,
    sample_rate: float,
    decay: str,
    onset: torch.Tensor,
    min_margin_db: float | None,
) -> torch.Tensor:
    """Least-squares decay time of ``x`` (..., T) with per-signal onset (...,). Float64."""
    if decay not in DECAY_RANGES:
        raise ValueError(f"decay must be one of {sorted(DECAY_RANGES)}, got {decay!r}")
    upper, lower = DECAY_RANGES[decay]
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
    decay: str = "T30",
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
    decay : {"T30", "T20", "EDT"}
        Decay range.
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
    sample_rate = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h, min_length=2)
    onset = _onset(x)
    if bands is None:
        rt = _decay_fit(x, sample_rate, decay, onset, min_margin_db)
    elif bands == "octave":
        xb = _octave_bands_tensor(x.to(torch.float64), sample_rate)
        rt = _decay_fit(xb, sample_rate, decay, onset.unsqueeze(-1).expand(xb.shape[:-1]), min_margin_db)
    else:
        raise ValueError(f"bands must be None or 'octave', got {bands!r}")
    return _output(rt, was_numpy, like=x)


def octave_bands(h: ArrayLike, sample_rate: float) -> ArrayLike:
    """Zero-phase octave-band split of ``h`` (..., T) into (..., B, T).

    See :mod:`sdn.filterbank` for the design (3rd-order Butterworth band-passes from scipy,
    applied with zero phase); the centre frequencies are :func:`octave_band_centres`.
    Returns the same kind as ``h`` (tensor in its dtype/device, or float64 ndarray).
    """
    sample_rate = _check_sample_rate(sample_rate)
    x, was_numpy = _as_tensor(h)
    return _output(_octave_bands_tensor(x, sample_rate), was_numpy)
