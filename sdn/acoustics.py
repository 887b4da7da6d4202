"""Room-acoustic parameters of impulse responses (ISO 3382-1) and their comparison.

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
:func:`normalized_echo_density`, :func:`mixing_time` and :func:`room_acoustic_parameters`
(everything at once). Octave bands come from :mod:`sdn.filterbank`, the Schroeder integral and
the mel energy decay relief from :mod:`sdn.features`. Only :func:`energy_decay_curve` (linear)
is differentiable; the ISO parameters are evaluation metrics computed on detached float64
copies.

What is *not* done (as in pyrato's low-level functions): no noise compensation or
truncation of the decay curve (Lundeby, Chu), no averaging over source/receiver positions; the
Schroeder integral runs to the end of the record. The dynamic-range check of
:func:`reverberation_time` flags (NaN) rather than corrects noisy decays.

References
----------
ISO 3382-1:2009, Acoustics -- Measurement of room acoustic parameters -- Part 1: Performance
spaces.

M. R. Schroeder, "New method of measuring reverberation time," J. Acoust. Soc. Am. 37(3),
409-412, 1965.

J. S. Abel and P. Huang, "A simple, robust measure of reverberation echo density," 121st AES
Convention, 2006.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .arrays import ONSET_THRESHOLD_DB, ArrayLike, as_tensor, check_sample_rate, find_onset, nan_where, prepare, to_kind
from .energy_ratios import clarity, definition, drr
from .echo_density import echo_density_profile
from .features import schroeder_integral
from .filterbank import octave_band_centres, octave_bands

#: Decay ranges (upper, lower) in dB of the normalised EDC, ISO 3382-1 section A.2.
DECAY_RANGES = {
    "EDT": (0.0, -10.0),
    "T20": (-5.0, -25.0),
    "T30": (-5.0, -35.0),
}

# --------------------------------------------------------------------------- decay curves


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
    same kind as ``h``, shape (..., T)
        The EDC, linear (in the units of :math:`h^2`) or in dB.

    Examples
    --------
    >>> import numpy as np
    >>> from sdn.acoustics import energy_decay_curve
    >>> energy_decay_curve(np.array([2.0, 1.0, 1.0]))
    array([6., 2., 1.])

    Notes
    -----
    No onset detection, noise compensation or truncation: the integral starts at sample 0
    and runs to the end of the record. :func:`reverberation_time` applies the ISO 3382-1
    onset detection itself.
    """
    x, was_numpy = as_tensor(h)
    edc = schroeder_integral(x * x)
    if db:
        edc = 10.0 * torch.log10(edc / edc[..., :1])
    return to_kind(edc, was_numpy)


def impulse_response_onset(h: ArrayLike, threshold_db: float = ONSET_THRESHOLD_DB) -> ArrayLike:
    """Start sample of an impulse response (ISO 3382-1, A.3.4).

    The first sample at which :math:`h^2` reaches ``threshold_db`` (20 dB) below its maximum.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s).
    threshold_db : float
        Threshold in dB below the peak of :math:`h^2`.

    Returns
    -------
    int64 tensor or ndarray, shape (...)
        Sample index of the onset; 0 for an all-zero signal.
    """
    x, was_numpy = as_tensor(h)
    start = find_onset(x, threshold_db)
    return start.cpu().numpy() if was_numpy else start


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


def _decay_fits(
    x: torch.Tensor,
    sample_rate: float,
    decays: tuple,
    onset: torch.Tensor,
    min_margin_db: float | None,
) -> list[torch.Tensor]:
    """Least-squares decay times of ``x`` (..., T) with per-signal onset (...), one per range of
    ``decays``, shape (...) each. Float64.

    The EDC is computed once for all ranges. It never increases (a sum of non-negative terms
    from the end), so a range's samples after the onset are one stretch ``[first, end)`` of every
    signal, found by a binary search of the level; the fit reads only that stretch.
    """
    x = x.detach().to(torch.float64)
    n = x.shape[-1]
    edc = schroeder_integral(x * x)
    onset = onset.unsqueeze(-1)
    ref = torch.gather(edc, -1, onset)  # EDC at the onset: the 0 dB reference
    level = 10.0 * torch.log10(edc / ref)  # -inf at exact zeros, NaN if silent
    rising = (-level).contiguous()  # non-decreasing, as searchsorted needs
    tail = _tail_power(x, onset.squeeze(-1)) if min_margin_db is not None else None
    fits = []
    for decay in decays:
        upper, lower = _decay_range(decay)
        # first sample at or below `upper` from the onset on, and first sample below `lower`
        first = torch.maximum(torch.searchsorted(rising, torch.full_like(ref, -upper)), onset).squeeze(-1)
        end = torch.searchsorted(rising, torch.full_like(ref, -lower), right=True).squeeze(-1)
        count = (end - first).clamp(min=0)
        slope = torch.full(count.shape, math.nan, dtype=torch.float64, device=x.device)
        for row in torch.nonzero(count >= 3).tolist():  # least-squares line through the stretch
            row = tuple(row)
            segment = level[(*row, slice(int(first[row]), int(end[row])))]
            centred = torch.arange(len(segment), dtype=torch.float64, device=x.device) - (len(segment) - 1) / 2
            slope[row] = (centred @ segment) / (centred @ centred) * sample_rate  # dB per second
        rt = -60.0 / slope
        # range reached: the EDC falls below the lower limit before the end of the record
        valid = (ref.squeeze(-1) > 0) & (end < n) & (count >= 3) & (slope < 0) & torch.isfinite(rt)
        if tail is not None:
            valid &= _margin_ok(edc, end - 1, slope, sample_rate, tail, min_margin_db)
        fits.append(nan_where(rt, valid))
    return fits


def _tail_power(x: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
    """Mean of :math:`h^2` over the last 10 % of the record after the onset, shape (...)."""
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device)
    tail = (idx >= (onset + ((n - onset) * 9) // 10).unsqueeze(-1)).to(x.dtype)
    return (x * x * tail).sum(-1) / tail.sum(-1).clamp(min=1)


def _margin_ok(edc, last, slope, sample_rate, tail_power, min_margin_db):
    """Dynamic-range check in the spirit of ISO 3382-1 (5.3.3): the bottom of the range must
    lie ``min_margin_db`` above the level at the end of the record.

    The squared-envelope level at the last sample of the decay range, ``last``, is estimated
    from the EDC and the fitted slope, :math:`p(n) = E(n)(1 - 10^{s/(10 f_s)})` (exact for an
    exponential decay), and compared with ``tail_power``, the mean of :math:`h^2` over the last
    10 % of the record after the onset (:func:`_tail_power`: the noise floor, or the truncation
    level of a clean record).
    """
    e_last = torch.gather(edc, -1, last.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    per_sample_decay = 1.0 - torch.pow(10.0, slope.nan_to_num(0.0).clamp(max=0) / (10.0 * sample_rate))
    return e_last * per_sample_decay >= tail_power * 10.0 ** (min_margin_db / 10.0)


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
        Impulse response(s) from before the onset; the record must reach the end of the decay range.
    sample_rate : float
        Sampling rate in Hz.
    decay : {"T30", "T20", "EDT"} or (upper, lower)
        Decay range; a pair of dB levels (e.g. ``(-0.1, -10.1)``, pyrato's EDT range, or
        ``(-5, -20)`` for T15) fits that range instead, still extrapolated to 60 dB.
    bands : None or "octave"
        ``None``: broadband, output shape (...). ``"octave"``: the octave bands of
        :func:`sdn.filterbank.octave_bands` (centres :func:`sdn.filterbank.octave_band_centres`),
        output shape (..., B).
    min_margin_db : float or None
        Dynamic-range requirement (ISO 3382-1 5.3.3 asks for the bottom of the evaluation range
        to be 10 dB above the noise): the estimated squared-envelope level at the bottom of the
        range must exceed the mean power of the last 10 % of the record by this many dB.
        ``None`` disables the check.

    Returns
    -------
    same kind as ``h``, shape (...) or (..., B)
        Reverberation time in seconds; NaN where it cannot be estimated: all-zero signal, EDC not falling below the lower
        limit, fewer than 3 samples in the range, non-decaying fit, or the dynamic-range
        requirement not met (record too short or too noisy for the range).

    Notes
    -----
    Not done: noise compensation (Lundeby/Chu), EDC truncation, averaging over positions.
    Not differentiable (the fit runs on detached float64 values).

    Examples
    --------
    >>> import numpy as np
    >>> from sdn.acoustics import reverberation_time
    >>> h = 10.0 ** (-3.0 * np.arange(16000) / (0.5 * 16000))  # energy falls 60 dB in 0.5 s
    >>> round(float(reverberation_time(h, 16000, "T30")), 4)
    0.5
    """
    _decay_range(decay)  # validate before any work
    x, signals, starts, was_numpy, fs = prepare(h, sample_rate, bands)
    rt, = _decay_fits(signals, fs, (decay,), starts, min_margin_db)
    return to_kind(rt, was_numpy, like=x)


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
    h_pred : tensor or ndarray, shape (..., T)
        Predicted impulse response(s).
    h_target : tensor or ndarray, shape (..., T)
        Target impulse response(s), same shape.
    floor_db : float
        Lower limit of the evaluated range, dB (negative).

    Returns
    -------
    same kind as ``h_pred``, shape (...)
        Error in dB; NaN if either signal is silent.
    """
    p, was_numpy = as_tensor(h_pred, "h_pred")
    t, _ = as_tensor(h_target, "h_target")
    if p.shape != t.shape:
        raise ValueError(f"h_pred and h_target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if not floor_db < 0:
        raise ValueError(f"floor_db must be negative, got {floor_db}")
    p64, t64 = p.detach().to(torch.float64), t.detach().to(torch.float64)
    ep, et = schroeder_integral(p64 * p64), schroeder_integral(t64 * t64)
    lp = 10.0 * torch.log10(ep / ep[..., :1]).clamp(min=floor_db)
    lt = 10.0 * torch.log10(et / et[..., :1])
    mask = lt >= floor_db
    err = (torch.where(mask, (lp - lt).abs(), torch.zeros_like(lt))).sum(-1) / mask.sum(-1)
    valid = (ep[..., 0] > 0) & (et[..., 0] > 0)
    return to_kind(nan_where(err, valid), was_numpy, like=p)


def relative_error(estimate: ArrayLike, reference: ArrayLike) -> ArrayLike:
    r"""Signed relative error :math:`(\hat x - x)/x` (e.g. of reverberation times).

    Parameters
    ----------
    estimate : tensor, ndarray or float
        Estimated values :math:`\hat x`.
    reference : tensor, ndarray or float
        Reference values :math:`x`, broadcastable against ``estimate``.

    Returns
    -------
    tensor or ndarray
        Elementwise relative error: a tensor if both inputs are tensors, else numpy. NaN
        propagates (a NaN reverberation time gives a NaN error); a zero reference gives inf or
        NaN. Compare ``abs(...)`` with 0.05, the just-noticeable difference of reverberation
        time.
    """
    if isinstance(estimate, torch.Tensor) and isinstance(reference, torch.Tensor):
        return (estimate - reference) / reference
    def as_array(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)

    est, ref = as_array(estimate), as_array(reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (est - ref) / ref


# --------------------------------------------------------------------------- echo density


def normalized_echo_density(h: ArrayLike, sample_rate: float, window_seconds: float = 0.02) -> ArrayLike:
    """Normalised echo density profile (Abel & Huang 2006) with the hard indicator.

    About 1 for Gaussian noise (a fully diffuse tail), well below 1 for sparse early
    reflections. The windows are centred on every sample and renormalised at the edges of the
    record (``windows="centred"`` of :func:`sdn.echo_density.echo_density_profile`), unlike the
    paper's loss, whose windows start at every sample and skip the last L samples.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s), T at least one window long.
    sample_rate : float
        Sampling rate in Hz.
    window_seconds : float
        Window length in seconds.

    Returns
    -------
    same kind as ``h``, shape (..., T)
        The profile, dimensionless.
    """
    fs = check_sample_rate(sample_rate)
    x, was_numpy = as_tensor(h)
    return to_kind(echo_density_profile(x.detach(), fs, window_seconds=window_seconds), was_numpy)


def mixing_time(h: ArrayLike, sample_rate: float, threshold: float = 1.0) -> ArrayLike:
    """Time after the onset at which the echo density profile first reaches ``threshold``.

    Abel & Huang's mixing-time estimate (the profile reaching 1, Gaussian-like density), on the
    centred profile of :func:`normalized_echo_density`; the onset is that of
    :func:`impulse_response_onset`.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s), at least one echo-density window long.
    sample_rate : float
        Sampling rate in Hz.
    threshold : float
        Echo density taken as mixed.

    Returns
    -------
    same kind as ``h``, shape (...)
        Mixing time in seconds; NaN if the profile never reaches ``threshold``.
    """
    fs = check_sample_rate(sample_rate)
    x, was_numpy = as_tensor(h)
    profile = echo_density_profile(x.detach().to(torch.float64), fs, soft=False)
    start = find_onset(x)
    idx = torch.arange(x.shape[-1], device=x.device)
    hit = (profile >= threshold) & (idx >= start.unsqueeze(-1))
    first = hit.to(torch.uint8).argmax(-1)
    t = (first - start).to(torch.float64) / fs
    return to_kind(nan_where(t, hit.any(-1)), was_numpy, like=x)


# --------------------------------------------------------------------------- all at once


def room_acoustic_parameters(h: ArrayLike, sample_rate: float, min_margin_db: float | None = 10.0) -> dict:
    """All evaluation metrics of one or more RIRs in one call.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s) from before the onset to the end of the decay.
    sample_rate : float
        Sampling rate in Hz.
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
    fs = check_sample_rate(sample_rate)
    x, was_numpy = as_tensor(h, min_length=2)
    x64 = x.detach().to(torch.float64)
    start = find_onset(x)
    xb = octave_bands(x64, fs)
    start_b = start.unsqueeze(-1).expand(xb.shape[:-1])
    out = {}
    decays = ("T20", "T30", "EDT")
    for decay, broadband, bands in zip(decays, _decay_fits(x64, fs, decays, start, min_margin_db),
                                       _decay_fits(xb, fs, decays, start_b, min_margin_db)):
        out[decay], out[f"{decay}_bands"] = broadband, bands
    for name, ms in (("C50", 50.0), ("C80", 80.0)):
        out[name] = clarity(x64, fs, ms, onset=start)
        out[f"{name}_bands"] = clarity(xb, fs, ms, onset=start_b)
    out["D50"] = definition(x64, fs, 50.0, onset=start)
    out["D50_bands"] = definition(xb, fs, 50.0, onset=start_b)
    out["DRR"] = drr(x64, fs, 2.5)
    result = {key: to_kind(value, was_numpy, like=x) for key, value in out.items()}
    result["mixing_time"] = mixing_time(h, fs)
    result["band_centres"] = octave_band_centres(fs)
    return result
