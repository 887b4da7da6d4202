r"""Causal fractional delay lines: a whole-sample delay times a windowed-sinc interpolator.

A line of :math:`D` samples (any real :math:`D > 0`) is the causal FIR filter

.. math::

    E_D(z) = \sum_m f_a(m - D)\, z^{-m}, \qquad
    f_a(x) = \operatorname{sinc}(x)\, w\!\left(\frac{x}{a}\right), \qquad
    w(u) = \frac{I_0\!\left(\beta\sqrt{1-u^2}\right) - 1}{I_0(\beta) - 1} \ (|u| < 1),\ 0 \text{ otherwise},

with :math:`\operatorname{sinc}(x) = \sin(\pi x) / (\pi x)`, the half-width :math:`a = 16`
samples (32 taps) and :math:`\beta = 12`. Its properties, each checked by the tests:

- **Flat.** Within 5e-5 dB of 1 up to 0.375 :math:`f_s` (6 kHz at 16 kHz) for every fractional
  part, and never above +5e-5 dB at any frequency. A per-pass loss would compound: a reflection
  passes about 100 lines a second.
- **Exact arrival times.** :math:`f_a` is even, so :math:`E_D` has linear phase about :math:`D`:
  its low-frequency phase delay is :math:`D` (to 1e-5 samples).
- **Continuous and smooth in D.** :math:`w` is the Kaiser window minus its edge value: it
  vanishes at :math:`|u| = 1`, so a tap enters and leaves the support with value 0 and no jump
  when :math:`D` crosses a whole sample. :math:`I_0(\beta\sqrt v) - 1` is evaluated as its power
  series in :math:`v = 1 - u^2`, a polynomial with no square root, so the taps are smooth
  functions of :math:`D` and distance corrections keep their gradient.
- **Causal.** The taps are non-zero for :math:`|m - D| < a` only. A line needs its first tap at
  sample ``min_lag`` or later (1 for the lines between nodes, whose loops cannot be
  instantaneous; 0 for the others), so a line shorter than :math:`a + \text{min\_lag} - 1`
  samples (0.73 m at 16 kHz) uses the shorter half-width :math:`a = D - \text{min\_lag} + 1`.
  Such a short interpolator stays passive (never above 0 dB) but droops at high frequencies:
  by about 0.4 dB at 6 kHz for an 8-sample line and 3 dB for a 4-sample line (see
  :func:`line_gain`). Lines shorter than ``min_lag`` samples are lengthened to ``min_lag``.

An integer :math:`D` gives exactly :math:`z^{-D}` only up to the rounding of
:math:`\sin(\pi k)`; models with ``integer_delays`` use plain whole-sample lines instead
(:func:`whole_sample_line`).

An ideal :math:`e^{-j\omega D}` is not causal: its sinc extends to negative time. On an
evaluation circle :math:`|z| = r > 1` (the closed form's anti-aliasing) that tail is amplified
by :math:`r^N` and wraps into the end of every render, which is why the lines here are FIR.

References
----------
J. F. Kaiser, "Nonrecursive digital filter design using the I0-sinh window function," Proc.
IEEE ISCAS, 1974.
T. I. Laakso, V. Välimäki, M. Karjalainen, U. K. Laine, "Splitting the unit delay," IEEE Signal
Processing Magazine 13(1), 1996.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: Half-width of the interpolator in samples: 2 * HALF_WIDTH taps.
HALF_WIDTH = 16
#: Kaiser window shape parameter (chosen for the flattest response up to 0.375 fs at 32 taps).
KAISER_BETA = 12.0
_SERIES_TERMS = 30  # I0 series terms: the last one is below 1e-18 of I0(12)


def _window_coefficients(beta: float) -> list[float]:
    """Coefficients c_k, k = 1.._SERIES_TERMS, of w(v) = sum_k c_k v^k, v = 1 - u^2."""
    q = beta * beta / 4.0
    terms = [q**k / math.factorial(k) ** 2 for k in range(1, _SERIES_TERMS + 1)]
    scale = 1.0 / sum(terms)  # sum of the terms is I0(beta) - 1
    return [t * scale for t in terms]


_COEFFICIENTS = _window_coefficients(KAISER_BETA)


def interpolation_window(u: torch.Tensor) -> torch.Tensor:
    r"""The window :math:`w(u)` of the interpolator: 1 at 0, 0 for :math:`|u| \ge 1`.

    Parameters
    ----------
    u : tensor
        Tap position over the half-width, dimensionless.

    Returns
    -------
    tensor
        :math:`w(u)`, same shape, dtype and device; differentiable everywhere.
    """
    v = torch.clamp(1.0 - u * u, min=0.0)
    series = torch.full_like(v, _COEFFICIENTS[-1])
    for c in reversed(_COEFFICIENTS[:-1]):  # Horner: sum_k c_k v^k
        series = series * v + c
    return series * v


class DelayLine(NamedTuple):
    r"""Delay lines as FIR filters :math:`E(z) = z^{-\text{offset}} \sum_j \text{taps}_j z^{-j}`.

    ``offset`` (...): whole samples before the first tap (float holding integers, no gradient).
    ``taps`` (..., J): the filter taps, differentiable with respect to the delay.
    """

    offset: torch.Tensor
    taps: torch.Tensor


def fractional_line(delay: torch.Tensor, min_lag: int = 0, half_width: int = HALF_WIDTH) -> DelayLine:
    """Causal windowed-sinc lines for fractional delays (see the module docstring).

    Parameters
    ----------
    delay : tensor, shape (...)
        Delays in samples, positive.
    min_lag : int
        The first non-zero tap is at this sample or later (1 for lines inside a loop).
    half_width : int
        Half-width :math:`a` in samples of a long enough line (2 a taps).

    Returns
    -------
    DelayLine
        ``offset`` (...) and ``taps`` (..., 2 half_width).
    """
    delay = torch.clamp(delay, min=float(min_lag))
    radius = torch.clamp(delay - (min_lag - 1), max=float(half_width))  # a, shortened near min_lag
    offset = torch.clamp(torch.floor(delay.detach()) - (half_width - 1), min=float(min_lag))
    position = offset.unsqueeze(-1) + torch.arange(2 * half_width, dtype=delay.dtype, device=delay.device)
    x = position - delay.unsqueeze(-1)
    return DelayLine(offset, torch.sinc(x) * interpolation_window(x / radius.unsqueeze(-1)))


def whole_sample_line(delay: torch.Tensor) -> DelayLine:
    """Pure delays :math:`z^{-D}` of whole samples ``delay`` (...): one unit tap each."""
    return DelayLine(delay.detach(), torch.ones_like(delay).unsqueeze(-1))


def line_response(line: DelayLine, z_log: torch.Tensor) -> torch.Tensor:
    """Frequency response :math:`E(z)` at :math:`z = e^{s}` for complex ``s`` = ``z_log`` (F,).

    Parameters
    ----------
    line : DelayLine
        ``offset`` (...), ``taps`` (..., J).
    z_log : complex tensor, shape (F,)

    Returns
    -------
    complex tensor, shape (..., F)
    """
    n_taps = line.taps.shape[-1]
    # z^-j for j = 0 .. J-1 as a running product: one complex exp per bin instead of J
    step = torch.exp(-z_log).unsqueeze(-1).expand(-1, n_taps - 1)
    powers = torch.cumprod(torch.cat([torch.ones_like(z_log).unsqueeze(-1), step], -1), -1)  # (F, J)
    fir = line.taps.to(z_log.dtype) @ powers.T  # (..., F)
    return fir * torch.exp(-line.offset.to(z_log.dtype).unsqueeze(-1) * z_log)


def line_gain(line: DelayLine, n_freqs: int = 2049) -> torch.Tensor:
    r"""Maximum over frequency of :math:`|E(e^{j\omega})|` per line, shape (...), no gradient.

    Evaluated on ``n_freqs`` points from 0 to the Nyquist frequency; the responses are smooth
    (32 taps), so the grid maximum is the maximum to about 1e-9.
    """
    with torch.no_grad():
        response = torch.fft.rfft(line.taps.double(), n=2 * (n_freqs - 1), dim=-1)
        return response.abs().amax(-1)
