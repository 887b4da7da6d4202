"""Energy ratios of impulse responses: clarity C50/C80 and definition D50 (ISO 3382-1 A.2.4), DRR.

Same conventions as :mod:`sdn.acoustics`: time on the last axis, any leading batch dimensions,
tensor or numpy input and output of the same kind, NaN where a ratio cannot be estimated. The
energies are summed on detached float64 copies from the ISO 3382-1 onset; no noise
compensation.

References
----------
ISO 3382-1:2009, Acoustics -- Measurement of room acoustic parameters -- Part 1: Performance
spaces.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .arrays import ArrayLike, as_tensor, check_sample_rate, nan_where, prepare, to_kind
from .features import schroeder_integral


def _energy_split(x: torch.Tensor, onset: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy in [onset, onset + samples) and in [onset + samples, T), plus validity, float64.

    Both from the Schroeder integral E (summed from the end, so the late energy keeps its
    relative precision): late = E(onset + samples), early = E(onset) - late."""
    x = x.detach().to(torch.float64)
    n = x.shape[-1]
    edc = F.pad(schroeder_integral(x * x), (0, 1))  # E(T) = 0
    onset = onset.unsqueeze(-1)
    late = torch.gather(edc, -1, (onset + samples).clamp(max=n)).squeeze(-1)
    early = torch.gather(edc, -1, onset).squeeze(-1) - late
    fits = (onset.squeeze(-1) + samples) < n  # the record extends past the early limit
    return early, late, fits


def _clarity(x64, onset, sample_rate, ms):
    early, late, fits = _energy_split(x64, onset, int(round(ms * 1e-3 * sample_rate)))
    return nan_where(10.0 * torch.log10(early / late), fits & (early > 0) & (late > 0))


def _definition(x64, onset, sample_rate, ms):
    early, late, fits = _energy_split(x64, onset, int(round(ms * 1e-3 * sample_rate)))
    total = early + late
    return nan_where(early / total, fits & (total > 0))


def clarity(h: ArrayLike, sample_rate: float, ms: float = 50.0, bands: str | None = None,
            onset: ArrayLike | None = None) -> ArrayLike:
    r"""Clarity :math:`C_{t_e}` (C50 for speech, C80 for music), ISO 3382-1 A.2.4, in dB.

    .. math:: C_{t_e} = 10\log_{10}\frac{\sum_{n_0 \le n < n_0 + N_e} h^2(n)}
                                       {\sum_{n \ge n_0 + N_e} h^2(n)},
       \qquad N_e = \operatorname{round}(t_e f_s),

    with :math:`n_0` the ISO 3382-1 onset (:func:`sdn.arrays.find_onset`, broadband).

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s) from before the onset.
    sample_rate : float
        Sampling rate in Hz.
    ms : float
        Early time limit :math:`t_e` in milliseconds (50 or 80).
    bands : None or "octave"
        Broadband (output (...)) or octave bands (output (..., B), centres
        :func:`sdn.filterbank.octave_band_centres`); the onset is detected once on the
        broadband signal.
    onset : int tensor or ndarray, shape (...), optional
        Start sample :math:`n_0` of each signal, e.g. to reuse onsets already detected; by
        default the ISO 3382-1 onset of ``h``.

    Returns
    -------
    same kind as ``h``, shape (...) or (..., B)
        Clarity in dB; NaN for a silent signal, or when the record ends before
        :math:`n_0 + N_e`.

    Notes
    -----
    No noise compensation (the late energy includes the noise of the record).
    """
    _, x64, starts, was_numpy, fs = prepare(h, sample_rate, bands, onset)
    return to_kind(_clarity(x64, starts, fs, float(ms)), was_numpy, like=h)


def definition(h: ArrayLike, sample_rate: float, ms: float = 50.0, bands: str | None = None,
               onset: ArrayLike | None = None) -> ArrayLike:
    r"""Definition :math:`D_{50}` (ISO 3382-1 A.2.4): early-to-total energy fraction, 0 to 1.

    .. math:: D_{t_e} = \frac{\sum_{n_0 \le n < n_0+N_e} h^2(n)}{\sum_{n \ge n_0} h^2(n)}
       = \frac{1}{1 + 10^{-C_{t_e}/10}}

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s) from before the onset (as for :func:`clarity`).
    sample_rate : float
        Sampling rate in Hz.
    ms : float
        Early time limit :math:`t_e` in milliseconds.
    bands : None or "octave"
        Broadband or octave bands, as in :func:`clarity`.
    onset : int tensor or ndarray, shape (...), optional
        Start sample of each signal, as in :func:`clarity`.

    Returns
    -------
    same kind as ``h``, shape (...) or (..., B)
        Fraction between 0 and 1; NaN in the cases of :func:`clarity`.
    """
    _, x64, starts, was_numpy, fs = prepare(h, sample_rate, bands, onset)
    return to_kind(_definition(x64, starts, fs, float(ms)), was_numpy, like=h)


def _drr(x64, sample_rate, direct_ms):
    energy = x64 * x64
    n = x64.shape[-1]
    idx = torch.arange(n, device=x64.device)
    peak = energy.argmax(-1, keepdim=True)
    half = int(round(direct_ms * 1e-3 * sample_rate))
    direct = (energy * ((idx >= peak - half) & (idx <= peak + half))).sum(-1)
    reverberant = (energy * (idx > peak + half)).sum(-1)
    return nan_where(10.0 * torch.log10(direct / reverberant), (direct > 0) & (reverberant > 0))


def drr(h: ArrayLike, sample_rate: float, direct_ms: float = 2.5) -> ArrayLike:
    r"""Direct-to-reverberant energy ratio in dB.

    .. math:: \mathrm{DRR} = 10\log_{10}\frac{\sum_{|n - n_d| \le N_d} h^2(n)}{\sum_{n > n_d + N_d} h^2(n)}

    :math:`n_d` is the peak of :math:`h^2` (the direct sound), :math:`N_d` = ``direct_ms``
    (2.5 ms, a common choice; ISO 3382-1 does not define the DRR) in samples. Energy before the
    direct window is ignored.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse response(s); the direct sound is their largest sample.
    sample_rate : float
        Sampling rate in Hz.
    direct_ms : float
        Half-width :math:`N_d` of the direct-sound window, in milliseconds.

    Returns
    -------
    same kind as ``h``, shape (...)
        DRR in dB; NaN for a silent signal or without energy after the window.
    """
    fs = check_sample_rate(sample_rate)
    x, was_numpy = as_tensor(h, min_length=2)
    return to_kind(_drr(x.detach().to(torch.float64), fs, float(direct_ms)), was_numpy, like=x)
