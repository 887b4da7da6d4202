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

from .real_fft import irfft, rfft

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
    return _KaiserSeries.apply(torch.clamp(1.0 - u * u, min=0.0))


class _KaiserSeries(torch.autograd.Function):
    r""":math:`\sum_k c_k v^k` and, for the backward pass, its derivative :math:`\sum_k k c_k v^{k-1}`,
    from the powers of :math:`v` (one cumulative product): one autograd node instead of the two
    products that each of the 29 steps of Horner's rule records (the window's forward and
    backward for the 28 lines of a training step, 32 taps each, took 0.45-0.69 ms that way and
    0.20 ms this way)."""

    @staticmethod
    def forward(ctx, v):
        k = torch.arange(1, _SERIES_TERMS + 1, dtype=v.dtype, device=v.device)
        c = torch.tensor(_COEFFICIENTS, dtype=v.dtype, device=v.device)
        powers = torch.cumprod(v.unsqueeze(-1).expand(*v.shape, _SERIES_TERMS), -1)  # v^1 .. v^K
        if ctx.needs_input_grad[0]:
            lower = torch.cat([torch.ones_like(powers[..., :1]), powers[..., :-1]], -1)  # v^0 .. v^(K-1)
            ctx.save_for_backward(lower @ (k * c))
        return powers @ c

    @staticmethod
    def backward(ctx, grad):
        slope, = ctx.saved_tensors
        return grad * slope


class DelayLine(NamedTuple):
    r"""Delay lines as FIR filters :math:`E(z) = z^{-\text{offset}} \sum_j \text{taps}_j z^{-j}`.

    ``offset`` (...): whole samples before the first tap (float holding integers, no gradient).
    ``taps`` (..., J): the filter taps, differentiable with respect to the delay.
    """

    offset: torch.Tensor
    taps: torch.Tensor


def fractional_line(delay: torch.Tensor, min_lag: int | torch.Tensor = 0, half_width: int = HALF_WIDTH) -> DelayLine:
    """Causal windowed-sinc lines for fractional delays (see the module docstring).

    Parameters
    ----------
    delay : tensor, shape (...)
        Delays in samples, positive.
    min_lag : int or tensor broadcastable to ``delay``
        The first non-zero tap is at this sample or later (1 for lines inside a loop), per line.
    half_width : int
        Half-width :math:`a` in samples of a long enough line (2 a taps).

    Returns
    -------
    DelayLine
        ``offset`` (...) and ``taps`` (..., 2 half_width).
    """
    min_lag = torch.as_tensor(min_lag, dtype=delay.dtype, device=delay.device)
    delay = torch.maximum(delay, min_lag)
    radius = torch.clamp(delay - (min_lag - 1), max=float(half_width))  # a, shortened near min_lag
    offset = torch.maximum(torch.floor(delay.detach()) - (half_width - 1), min_lag)
    position = offset.unsqueeze(-1) + torch.arange(2 * half_width, dtype=delay.dtype, device=delay.device)
    x = position - delay.unsqueeze(-1)
    return DelayLine(offset, torch.sinc(x) * interpolation_window(x / radius.unsqueeze(-1)))


def whole_sample_line(delay: torch.Tensor) -> DelayLine:
    """Pure delays :math:`z^{-D}` of whole samples ``delay`` (...): one unit tap each."""
    return DelayLine(delay.detach(), torch.ones_like(delay).unsqueeze(-1))


#: Whole samples covered by one step of the coarse power table of :func:`line_response`.
POWER_BLOCK = 32


def line_response(line: DelayLine, z_log: torch.Tensor) -> torch.Tensor:
    r"""Frequency response :math:`E(z)` at :math:`z = e^{s}` for complex ``s`` = ``z_log`` (F,).

    With ``offset`` :math:`= B q + \rho` (:math:`B` = ``POWER_BLOCK``, :math:`0 \le \rho < B`),

    .. math::

        E(z) = z^{-Bq} \sum_{m=0}^{B+J-2} c_m z^{-m}, \qquad c_{\rho + j} = \text{taps}_j ,

    so one matrix product of the taps, placed at :math:`\rho`, with a short table of
    :math:`z^{-m}` and one product with a coarse table of :math:`z^{-Bq}` evaluate every line:
    no complex exponential per line and bin. Both tables are powers of :math:`e^{-s}` and
    :math:`e^{-Bs}` (a few tens each), built by repeated doubling.

    Parameters
    ----------
    line : DelayLine
        ``offset`` (...), ``taps`` (..., J), real.
    z_log : complex tensor, shape (F,)
        Its dtype sets the result's (complex64 or complex128).

    Returns
    -------
    complex tensor, shape (..., F)
    """
    n_taps = line.taps.shape[-1]
    offset = line.offset.detach().to(torch.int64)
    coarse, fine = offset // POWER_BLOCK, offset % POWER_BLOCK
    near = _powers(z_log, 1, POWER_BLOCK + n_taps - 1)  # z^-m, (B + J - 1, F)
    far = _powers(z_log, POWER_BLOCK, int(coarse.max()) + 1)  # z^-Bq
    slots = fine.unsqueeze(-1) + torch.arange(n_taps, device=offset.device)
    placed = line.taps.new_zeros(*line.taps.shape[:-1], near.shape[0]).scatter(-1, slots, line.taps)
    fir = torch.view_as_complex((placed.to(near.real.dtype) @ torch.view_as_real(near).flatten(-2))
                                .unflatten(-1, (-1, 2)))
    return fir * far.index_select(0, coarse.reshape(-1)).reshape(*coarse.shape, -1)


def grid_response(line: DelayLine, n_fft: int, log_radius: float, stride: int = 1, first: int = 0) -> torch.Tensor:
    r"""Frequency response :math:`E(z_k)` on the FFT grid :math:`z_k = r e^{j 2 \pi k / N}`.

    :math:`E(z_k) = \sum_n e_n r^{-n} e^{-j 2 \pi k n / N}`: one real FFT of the taps weighted by
    :math:`r^{-n}`, placed at their samples modulo N (exact on the grid, where
    :math:`z_k^{-N} = r^{-N}`, so lines longer than N are no approximation).

    With ``stride`` M > 1, only the bins :math:`k = M m + p` (``first`` p) are evaluated, by one
    complex FFT of N/M points: :math:`E(z_{Mm+p}) = \sum_n e_n r^{-n} e^{-j 2\pi p n/N}
    e^{-j 2\pi m n/(N/M)}`, with the modulated taps placed at their samples modulo N/M. The M
    subgrids together are the whole grid, in 1/M of the memory each.

    Parameters
    ----------
    line : DelayLine
        ``offset`` (...), ``taps`` (..., J), real.
    n_fft : int
        N, even.
    log_radius : float
        :math:`\ln r`.
    stride : int
        M, a divisor of N.
    first : int
        p, 0 <= p < M.

    Returns
    -------
    complex tensor, shape (..., N/2 + 1) for M = 1 (bins 0 .. N/2), else (..., N/M) (bins p, M + p, ...)
    """
    if n_fft % stride or not 0 <= first < stride:
        raise ValueError(f"stride must divide n_fft and 0 <= first < stride, got {stride}, {first} for {n_fft}")
    tap = torch.arange(line.taps.shape[-1], device=line.taps.device)
    sample = line.offset.detach().to(torch.int64).unsqueeze(-1) + tap
    weighted = line.taps * torch.exp(-log_radius * sample.to(line.taps.dtype))
    if stride == 1:
        return _SparseRealFFT.apply(weighted, sample % n_fft, n_fft)
    size = n_fft // stride
    # e^{-j 2 pi p n / N} from n p mod N, exact in integers whatever the line's length
    turn = (sample * first % n_fft).to(line.taps.dtype) * (-2 * math.pi / n_fft)
    modulated = torch.polar(weighted, turn)
    return torch.fft.fft(modulated.new_zeros(*modulated.shape[:-1], size).scatter_add_(-1, sample % size, modulated))


class _SparseRealFFT(torch.autograd.Function):
    """``rfft`` of a length-N signal holding ``values`` (..., J) at ``sample`` (..., J), zero elsewhere.

    The backward pass is one inverse real FFT, read at the J samples (torch's generic ``rfft``
    backward is a complex FFT of the zero-padded full spectrum).
    """

    @staticmethod
    def forward(ctx, values, sample, n_fft):
        ctx.save_for_backward(sample)
        ctx.n_fft = n_fft
        return rfft(values.new_zeros(*values.shape[:-1], n_fft).scatter_add_(-1, sample, values), n_fft)

    @staticmethod
    def backward(ctx, grad):
        # d/dx_n of Re sum_k conj(g_k) X_k is Re sum_k g_k e^{j 2 pi k n / N}: (N / 2) irfft(g), which
        # counts the first and last bins half, plus their other half.
        sample, = ctx.saved_tensors
        edges = grad[..., 0].real.unsqueeze(-1) + grad[..., -1].real.unsqueeze(-1) * (1 - 2 * (sample % 2))
        return irfft(grad, ctx.n_fft).gather(-1, sample) * (ctx.n_fft / 2) + edges / 2, None, None


def _powers(z_log: torch.Tensor, stride: int, n: int) -> torch.Tensor:
    r""":math:`z^{-\text{stride}\,m}` for m = 0 .. n-1, shape (n, F), by repeated doubling of the table."""
    step = torch.polar(torch.exp(-stride * z_log.real), -stride * z_log.imag)
    table = step.new_empty(n, step.shape[-1])
    table[0] = 1
    filled = 1
    while filled < n:
        more = min(filled, n - filled)
        torch.mul(table[:more], step, out=table[filled:filled + more])
        step, filled = step * step, filled + more
    return table


def line_gain(line: DelayLine, n_freqs: int = 2049) -> torch.Tensor:
    r"""Maximum over frequency of :math:`|E(e^{j\omega})|` per line, shape (...), no gradient.

    Evaluated on ``n_freqs`` points from 0 to the Nyquist frequency; the responses are smooth
    (32 taps), so the grid maximum is the maximum to about 1e-9.
    """
    with torch.no_grad():
        response = torch.fft.rfft(line.taps.double(), n=2 * (n_freqs - 1), dim=-1)
        return response.abs().amax(-1)
