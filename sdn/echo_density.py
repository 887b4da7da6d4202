r"""Echo density profile (Abel & Huang 2006) and its soft, differentiable version (SoftEDP).

For an impulse response :math:`h` and a Hann window :math:`w` of odd length :math:`L` (20 ms,
321 samples at 16 kHz) normalised to :math:`\sum_j w(j) = 1`, the window starting at sample
:math:`i` gives

.. math::

    \sigma(i) = \Big(\sum_{j=0}^{L-1} w(j)\, h^2(i+j)\Big)^{1/2},\qquad
    \eta(i) = \frac{1}{\operatorname{erfc}(1/\sqrt 2)} \sum_{j=0}^{L-1} w(j)\,
              \mathbb 1\{|h(i+j)| > \sigma(i)\}.

:math:`\sigma` is the window-weighted standard deviation about zero. For Gaussian noise
:math:`\eta \approx 1`; for sparse early reflections :math:`\eta \ll 1`. The soft profile
(SoftEDP, Mezza et al. 2024) replaces the indicator by
:math:`\operatorname{sigmoid}(\kappa(i)(|h(i+j)| - \sigma(i)))`, with slopes :math:`\kappa(i)`
rising linearly from :math:`10^2` to :math:`10^5` over the profile; :math:`\sigma` is part of the
graph (its gradient flows), as in the paper's code.

Two placements of the windows:

``windows="paper"`` (the training loss, :func:`soft_echo_density_mse`)
    The definition of the paper's released code: windows start at :math:`i = 0, \dots, T-L-1`,
    so the profile has :math:`T - L` values, :math:`\kappa` is spread over those values, and
    there are no edge windows. Its value :math:`i` belongs to the window centred on sample
    :math:`i + (L-1)/2`.
``windows="centred"`` (the analysis figures and :func:`sdn.acoustics.mixing_time`)
    One value per input sample (length :math:`T`): the window is centred on sample :math:`n`,
    truncated to the record near both ends and renormalised to sum 1 there (samples outside the
    record are not counted). :math:`\kappa` is spread over the :math:`T` values. In the interior
    the hard profile equals the paper's: ``centred[n] == paper[n - (L-1)/2]``.

In silent stretches (:math:`\sigma = 0`) the hard indicator is 0 and the soft one
:math:`\operatorname{sigmoid}(0) = 1/2`, as in the paper's code; the square root that gives
:math:`\sigma` has a zero gradient there (no NaN gradients on leading zeros).

Computation: on CPU, the soft profile of the paper's windows and the loss
:func:`soft_echo_density_mse` run in C (:mod:`sdn.native`, ``echo_density_kernel.h``), window by
window: :math:`\sigma^2` as a direct weighted sum, the indicators in SIMD registers, the exact
gradient with respect to :math:`h` in the same pass. Elsewhere (CUDA, the centred windows, the
hard profile, no C compiler), in PyTorch: :math:`\sigma^2` by running sums in float64 (O(T));
the indicators of a block of windows on a strided view of the signal, in a reused scratch grid,
summed over each window by a matrix-vector product. Both evaluate the soft indicator as
:math:`\tfrac12(1 + \tanh(x/2))`, the sigmoid itself, which saturates to exactly 0 or 1 without
subnormal numbers, and compute the loss's exact gradient in the same pass as the profile, so
nothing of size :math:`T L` is stored. The paper's code loops over the windows in Python.

References
----------
J. S. Abel and P. Huang, "A simple, robust measure of reverberation echo density," 121st AES
Convention, 2006.

A. I. Mezza, R. Giampiccolo, E. De Sena and A. Bernardini, "Data-driven room acoustic modeling
via differentiable feedback delay networks with learnable delay lines," EURASIP Journal on
Audio, Speech, and Music Processing, 2024:51, 2024.
"""
from __future__ import annotations

import functools
import math
import threading

import torch
import torch.nn.functional as F

from . import native

#: :math:`1/\operatorname{erfc}(1/\sqrt 2)`: the inverse of the expected fraction of Gaussian
#: samples beyond one standard deviation.
ERFC_SCALE = 1.0 / math.erfc(1.0 / math.sqrt(2.0))
#: Default analysis window length in seconds.
WINDOW_SECONDS = 0.02
#: Default sigmoid slopes (first, last) of the soft profile.
KAPPA = (1e2, 1e5)
#: The two window placements (see the module docstring).
WINDOWS = ("centred", "paper")
#: Bytes of the scratch grid of indicators with one thread: small enough to stay in a core's
#: level-2 cache (every pass over a block then runs from there, about 1.5x faster than from
#: memory), large enough that a block costs few operator calls.
GRID_BYTES = 2**20
#: Bytes of the grid with several threads: every operator call then synchronises the threads,
#: which costs more than the cache misses of one large block (measured on 2 cores).
PARALLEL_GRID_BYTES = 64 * 2**20


def echo_density_window(sample_rate: float, window_seconds: float = WINDOW_SECONDS,
                        dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Odd-length symmetric Hann window normalised to sum 1.

    Parameters
    ----------
    sample_rate : float
        Sampling rate in Hz.
    window_seconds : float
        Nominal window length in seconds; ``L = int(window_seconds * sample_rate)``, plus one
        if even (321 samples for 20 ms at 16 kHz).
    dtype : torch.dtype
        Floating-point type of the window.
    device : torch.device or str, optional
        Device of the window.

    Returns
    -------
    torch.Tensor, shape (L,)
        Window weights; the two end taps are 0.
    """
    length = int(window_seconds * sample_rate)
    length += 1 - length % 2
    if length < 3:
        raise ValueError(f"echo-density window of {window_seconds} s at {sample_rate} Hz is shorter than 3 samples")
    win = torch.hann_window(length, periodic=False, dtype=dtype, device=device)
    return win / win.sum()


# --------------------------------------------------------------------------- window energies


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root with a zero gradient at 0 (silent windows)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def _sliding_sums(y: torch.Tensor, width: int, count: int, offset: int) -> torch.Tensor:
    """Sums of ``y[:, j:j + width]`` for ``j = offset .. offset + count - 1`` (zeros beyond the end).

    Block-local running sums: ``y`` is cut into blocks of ``width`` samples, each with its own
    cumulative sum, and every window is (end of one block) + (start of the next). The rounding
    error is relative to the energy of two blocks around the window, not to the energy of the
    whole record (a single cumulative sum over T samples would ruin deep decay tails).
    """
    n_items, length = y.shape
    n_blocks = (offset + count + width - 1) // width + 1
    padded = F.pad(y, (0, n_blocks * width - length))
    q = F.pad(torch.cumsum(padded.view(n_items, n_blocks, width), -1), (1, 0))  # q[b, i]: first i
    following = F.pad(q[:, 1:, :width], (0, 0, 0, 1))  # partial sums of the next block
    sums = (q[..., width:] - q[..., :width]) + following
    return sums.reshape(n_items, n_blocks * width)[:, offset:offset + count]


@functools.lru_cache(maxsize=16)
def _rotations(count: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    r"""cos and sin of :math:`2\pi m/(L-1)` for m = 0 .. count - 1, float64 (count,) each (cached)."""
    phase = torch.arange(count, dtype=torch.float64, device=device) * (2.0 * math.pi / (length - 1))
    return torch.cos(phase), torch.sin(phase)


def _hann_weighted_sum(x: torch.Tensor, length: int) -> torch.Tensor:
    r"""Centred Hann-weighted sums :math:`\sum_\tau w(\tau) x(n+\tau)`, shape (N, T).

    ``x`` (N, T) is taken as zero outside the record; :math:`w` is the sum-1 Hann window of odd
    ``length``. With :math:`w(\tau) = (1 - \cos(\theta(\tau + h)))/(L-1)`,
    :math:`\theta = 2\pi/(L-1)` and :math:`h = (L-1)/2`, the sum is a box sum of :math:`x` minus
    box sums of :math:`x\cos\theta m` and :math:`x\sin\theta m` rotated by :math:`\theta n`
    (:func:`_sliding_sums`, in float64, cast back): O(T) instead of O(TL). Only the L - 2 inner
    taps enter (the end taps weigh 0), so a window without energy gives exactly 0.
    """
    half = length // 2
    n = x.shape[-1]
    xp = F.pad(x.to(torch.float64), (half, half))  # xp[q + half] = x[q]
    cos, sin = _rotations(xp.shape[-1], length, x.device)
    # output n: taps tau = -half+1 .. half-1 are xp[n + 1 .. n + L - 2], with tau + half = m - n
    sums = _sliding_sums(torch.cat([xp, xp * cos, xp * sin]), length - 2, n, 1)
    box, s_cos, s_sin = sums.chunk(3)
    cos_part = s_cos * cos[:n] + s_sin * sin[:n]  # the rotation by theta n (period L - 1)
    # the L taps of 1 - cos(theta i) sum to L - 1: the normalisation to sum 1
    return ((box - cos_part) / (length - 1)).to(x.dtype)


class _WindowEnergy(torch.autograd.Function):
    """:func:`_hann_weighted_sum`, differentiable: a linear, self-adjoint operation (correlation
    with a symmetric window, zero outside the record), so its backward is the same sum."""

    @staticmethod
    def forward(ctx, x, length):
        ctx.length = length
        return _hann_weighted_sum(x, length)

    @staticmethod
    def backward(ctx, grad):
        return _hann_weighted_sum(grad, ctx.length), None


def _weight_inside(win: torch.Tensor, n: int) -> torch.Tensor:
    """Mass of the centred window inside a record of ``n >= L`` samples, shape (n,)."""
    half = win.shape[0] // 2
    inside = torch.ones(n, dtype=win.dtype, device=win.device)
    partial = torch.cumsum(win, 0)[half:-1]  # window mass from tap -half up to tap +k, k < half
    inside[:half] = partial  # output n < half sees taps -n..half: by symmetry cw[half + n]
    inside[n - half:] = partial.flip(0)
    return inside


# --------------------------------------------------------------------------- indicator sums


_WORKSPACE = threading.local()


def _grid_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zero-initialised scratch buffer, reused by later scans of the same thread and shape
    (a fresh one costs page faults and zeroing); :func:`_scan` keeps its padding at zero."""
    key = (shape, dtype, device)
    cached = getattr(_WORKSPACE, "buffer", None)
    if cached is None or cached[0] != key:
        cached = (key, torch.zeros(shape, dtype=dtype, device=device))
        _WORKSPACE.buffer = cached
    return cached[1]


def _scan(mag, sigma, kappa, win, slope_weights=None, n_grad=0):
    r"""Window sums of the indicators and, optionally, their exact gradient.

    For every row ``r`` and window ``i`` computes
    :math:`S(r, i) = \sum_j w(j)\, t(r, j, i)` with :math:`t = \tanh(x/2)`,
    :math:`x = \kappa(i)(\mathrm{mag}(r, i + j) - \sigma(r, i))` (soft; the soft indicator is
    :math:`(1 + t)/2`) or, if ``kappa`` is None, :math:`t = \mathbb 1\{\mathrm{mag} > \sigma\}`
    (hard).

    Parameters
    ----------
    mag : torch.Tensor, shape (R, W + L - 1)
        Magnitudes :math:`|h|`; ``-inf`` marks samples outside the record (indicator 0).
    sigma : torch.Tensor, shape (R, W)
        Window standard deviations.
    kappa : torch.Tensor, shape (W,), or None
        Sigmoid slopes; None for the hard indicator.
    win : torch.Tensor, shape (L,)
        Window.
    slope_weights : torch.Tensor or callable, optional
        :math:`q = \kappa/2 \cdot \partial\mathcal L/\partial S` for the first ``n_grad`` rows,
        shape (n_grad, W); or a callable ``(row, start, sums)`` that returns it, shape (C,), for
        the windows ``start .. start + C - 1`` of a row given their sums ``S``, shape (C,).
    n_grad : int
        Number of leading rows whose gradients are wanted (soft indicator only).

    Returns
    -------
    sums : torch.Tensor, shape (R, W)
        :math:`S`.
    grad_mag : torch.Tensor, shape (n_grad, W + L - 1), or None
        :math:`\partial \mathcal L/\partial \mathrm{mag}` of the first ``n_grad`` rows.
    grad_sigma : torch.Tensor, shape (n_grad, W), or None
        :math:`\partial \mathcal L/\partial \sigma` of the first ``n_grad`` rows.

    Notes
    -----
    As :math:`\partial t/\partial x = (1 - t^2)/2`,
    :math:`\partial\mathcal L/\partial\mathrm{mag}(m) = \sum_j w(j) q(m - j)(1 - t(j, m - j)^2)`
    and :math:`\partial\mathcal L/\partial\sigma(i) = -q(i) \sum_j w(j)(1 - t(j, i)^2)`. A
    block's grid ``G[j, i]`` is stored in rows of ``cols + L`` values whose last ``L`` are zero:
    read with rows of ``cols + L - 1`` values, the same memory is the skewed grid
    ``V[j, m] = G[j, m - j]``, whose sum over ``j`` scatters every entry onto its sample.
    """
    mag = mag.contiguous()
    rows, width = sigma.shape
    length = win.shape[0]
    dtype, device = mag.dtype, mag.device
    grid_bytes = GRID_BYTES if torch.get_num_threads() == 1 else PARALLEL_GRID_BYTES
    cols = max(64, min(width, grid_bytes // (length * (torch.finfo(dtype).bits // 8)) - length))
    cols = -(-width // -(-width // cols))  # blocks of equal width: the last one leaves little to clear
    buf = _grid_buffer((length, cols + length), dtype, device)
    skew = buf.as_strided((length, cols + length - 1), (cols + length - 1, 1))
    sums = torch.empty((rows, width), dtype=dtype, device=device)
    soft = kappa is not None
    if soft:
        half_k = 0.5 * kappa
        bias = -half_k * sigma
    grad = soft and slope_weights is not None and n_grad > 0
    if grad:
        grad_mag = torch.zeros((n_grad, width + length - 1), dtype=dtype, device=device)
        grad_sigma = torch.empty((n_grad, width), dtype=dtype, device=device)
        scattered = torch.empty(cols + length - 1, dtype=dtype, device=device)
    # views of the buffer per block width (all blocks but the last have width cols)
    views = {}
    for span in {cols, width - (width - 1) // cols * cols}:
        grid = buf.narrow(1, 0, span)
        views[span] = (grid, grid.t(), skew.narrow(1, 0, span + length - 1).t(),
                       scattered.narrow(0, 0, span + length - 1) if grad else None)
    for row in range(rows):
        offset = mag.storage_offset() + row * mag.stride(0)
        sums_row = sums[row]
        for start in range(0, width, cols):
            span = min(cols, width - start)
            if span < cols:  # a last, shorter block: its padding must be zero (and stays so)
                buf[:, span:].zero_()
            grid, grid_t, skew_t, spread = views[span]
            frames = mag.as_strided((length, span), (1, 1), offset + start)  # frames[j, i] = mag[i + j]
            block = sums_row.narrow(0, start, span)
            if soft:
                torch.addcmul(bias[row].narrow(0, start, span), frames, half_k.narrow(0, start, span),
                              out=grid).tanh_()
            else:
                torch.gt(frames, sigma[row].narrow(0, start, span), out=grid)
            torch.mv(grid_t, win, out=block)
            if not grad or row >= n_grad:
                continue
            q = slope_weights(row, start, block) if callable(slope_weights) else slope_weights[row].narrow(0, start, span)
            # q (1 - t^2) in one pass: autograd's own derivative of tanh, written over the grid
            torch.ops.aten.tanh_backward.grad_input(q, grid, grad_input=grid)
            torch.mv(grid_t, win, out=grad_sigma[row].narrow(0, start, span))
            torch.mv(skew_t, win, out=spread)
            grad_mag[row].narrow(0, start, span + length - 1).add_(spread)
    if grad:
        return sums, grad_mag, grad_sigma.neg_()
    return sums, None, None


class _SoftSums(torch.autograd.Function):
    """Soft window sums (R, W) of magnitudes (R, W + L - 1) and sigmas (R, W), differentiable;
    the backward runs the scan again with the incoming gradient (nothing of size T L is kept)."""

    @staticmethod
    def forward(ctx, mag, sigma, kappa, win):
        ctx.save_for_backward(mag, sigma, kappa, win)
        return 0.5 * win.sum() + 0.5 * _scan(mag, sigma, kappa, win)[0]  # the indicator is (1 + t) / 2

    @staticmethod
    def backward(ctx, grad_sums):
        mag, sigma, kappa, win = ctx.saved_tensors
        q = grad_sums * (0.25 * kappa)  # the soft sums are (sum w + S) / 2; q = dL/dS kappa / 2
        _, grad_mag, grad_sigma = _scan(mag, sigma, kappa, win, slope_weights=q, n_grad=mag.shape[0])
        return grad_mag, grad_sigma, None, None


def _save_profile_error(ctx, target, sums, win, grads) -> torch.Tensor:
    r"""Per-row mean of :math:`(\eta_t - \eta_p)^2`, :math:`\eta_p = c(\sum w + S)/2` from the window
    sums S; saves the error and the prediction's precomputed gradients (None or tensors)."""
    diff = target - ERFC_SCALE * (0.5 * win.sum() + 0.5 * sums)
    ctx.save_for_backward(diff, *grads)
    return diff.pow(2).mean(-1)


def _saved_gradients(ctx, grad_loss, target_input: int):
    r"""The saved gradients scaled by the incoming one, and the target's, :math:`2(\eta_t - \eta_p)/W`
    times it (None unless input ``target_input`` wants it)."""
    diff, *grads = ctx.saved_tensors
    g = grad_loss.unsqueeze(-1)
    grad_target = diff * (2.0 / diff.shape[-1]) * g if ctx.needs_input_grad[target_input] else None
    return [None if t is None else t * g for t in grads], grad_target


class _SoftProfileMSE(torch.autograd.Function):
    r"""Per-row :math:`\frac1W\sum_i (\eta_t(i) - \eta_p(i))^2` against a given profile.

    Inputs: the prediction's magnitudes (N, W + L - 1) and sigmas (N, W), the target profile
    :math:`\eta_t` (N, W), slopes (W,), window (L,). The gradient with respect to the
    prediction's magnitudes and sigmas is computed in the same pass as its profile (the error
    is known block by block); the backward only scales it.
    """

    @staticmethod
    def forward(ctx, mag_p, sigma_p, target, kappa, win):
        n, width = sigma_p.shape
        # eta_p = c (sum w + S) / 2 with c = ERFC_SCALE, so d/dS of mean((eta_t - eta_p)^2) is
        # c (eta_p - eta_t) / W; q is that times kappa / 2
        half_sum = 0.5 * win.sum()
        factor = kappa * (ERFC_SCALE / (2.0 * width))

        def slope_weights(row, start, block):
            span = block.shape[0]
            eta = torch.add(half_sum, block, alpha=0.5).mul_(ERFC_SCALE)  # as echo_density_profile has it
            return eta.sub_(target[row].narrow(0, start, span)).mul_(factor.narrow(0, start, span))

        wants = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        sums, grad_mag, grad_sigma = _scan(mag_p, sigma_p, kappa, win, slope_weights=slope_weights,
                                           n_grad=n if wants else 0)
        return _save_profile_error(ctx, target, sums, win, (grad_mag, grad_sigma))

    @staticmethod
    def backward(ctx, grad_loss):
        (grad_mag, grad_sigma), grad_target = _saved_gradients(ctx, grad_loss, target_input=2)
        return grad_mag, grad_sigma, grad_target, None, None


class _CompiledSoftSums(torch.autograd.Function):
    """:class:`_SoftSums` of the paper's windows by the compiled kernel
    (:func:`sdn.native.soft_echo_density`), from the signals (N, T) themselves: the kernel computes
    the window sigmas too; the backward runs it again with the incoming gradient."""

    @staticmethod
    def forward(ctx, x, kappa, win):
        ctx.save_for_backward(x, kappa, win)
        return 0.5 * win.sum() + 0.5 * native.soft_echo_density(x, kappa, win)[0]

    @staticmethod
    def backward(ctx, grad_sums):
        x, kappa, win = ctx.saved_tensors
        return native.soft_echo_density(x, kappa, win, grad_sums=0.5 * grad_sums)[1], None, None


class _CompiledSoftProfileMSE(torch.autograd.Function):
    """:class:`_SoftProfileMSE` by the compiled kernel, from the signals (N, T) themselves, with
    the gradient with respect to them computed in the same pass as the profile."""

    @staticmethod
    def forward(ctx, x, target, kappa, win):
        wants = ctx.needs_input_grad[0]
        sums, grad = native.soft_echo_density(x, kappa, win, target=target if wants else None, scale=ERFC_SCALE)
        return _save_profile_error(ctx, target, sums, win, (grad,))

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,), grad_target = _saved_gradients(ctx, grad_loss, target_input=1)
        return grad, grad_target, None, None


# --------------------------------------------------------------------------- public functions


def _check_signal(h: torch.Tensor, name: str = "h") -> None:
    if not isinstance(h, torch.Tensor) or h.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be a float32 or float64 torch.Tensor of shape (..., T) (half precision "
                        f"cannot hold slopes up to 1e5: convert with .float())")
    if h.ndim == 0 or h.numel() == 0:
        raise ValueError(f"{name} must be a non-empty signal with a time axis (..., T), got shape {tuple(h.shape)}")


def _slopes(kappa, count: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Slopes (count,): linear from kappa[0] to kappa[1], or constant."""
    values = tuple(kappa) if isinstance(kappa, (tuple, list)) else (kappa, kappa)
    if len(values) != 2 or not all(float(v) > 0 for v in values):
        raise ValueError(f"kappa must be a positive number or a (first, last) pair, got {kappa!r}")
    return torch.linspace(float(values[0]), float(values[1]), count, dtype=dtype, device=device)


def _paper_width(n: int, win: torch.Tensor) -> int:
    """Number of the paper's windows in T = ``n`` samples, T - L."""
    if n <= win.shape[0]:
        raise ValueError(f"the echo density profile needs more than one window ({win.shape[0]} samples), got T={n}")
    return n - win.shape[0]


def _paper_terms(x: torch.Tensor, win: torch.Tensor):
    """Magnitudes (N, T - 1) and sigmas (N, T - L) of the paper's windows i = 0 .. T - L - 1."""
    length = win.shape[0]
    n = x.shape[-1]
    _paper_width(n, win)
    half = length // 2
    sigma = _safe_sqrt(_WindowEnergy.apply(x * x, length)[:, half:n - half - 1])
    return x.abs()[:, :n - 1], sigma


def echo_density_profile(
    h: torch.Tensor,
    sample_rate: float,
    soft: bool = False,
    kappa: tuple[float, float] | float = KAPPA,
    window_seconds: float = WINDOW_SECONDS,
    windows: str = "centred",
) -> torch.Tensor:
    r"""Abel-Huang echo density profile, hard or soft (differentiable).

    See the module docstring for the definition and the two window placements.

    Parameters
    ----------
    h : torch.Tensor, shape (..., T)
        Impulse responses, floating point, time on the last axis. Not renormalised.
    sample_rate : float
        Sampling rate in Hz; sets the window length.
    soft : bool
        False: hard indicator :math:`|h| > \sigma` (returned without gradient). True: sigmoid
        indicator, differentiable with respect to ``h``.
    kappa : (float, float) or float
        Sigmoid slopes of the soft profile: linear from the first to the last value over the
        profile, or constant. Ignored for the hard profile.
    window_seconds : float
        Window length in seconds (20 ms).
    windows : {"centred", "paper"}
        ``"centred"``: length T, edge windows truncated and renormalised (analysis).
        ``"paper"``: length T - L, windows starting at samples 0 .. T - L - 1 (the paper's
        loss).

    Returns
    -------
    torch.Tensor, shape (..., T) or (..., T - L)
        :math:`\eta`, dimensionless (about 1 for Gaussian noise), dtype and device of ``h``.

    Examples
    --------
    >>> import torch
    >>> from sdn.echo_density import echo_density_profile
    >>> noise = torch.randn(16000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> profile = echo_density_profile(noise, 16000)
    >>> profile.shape, round(profile.mean().item(), 1)
    (torch.Size([16000]), 1.0)
    >>> echo_density_profile(noise, 16000, soft=True, windows="paper").shape
    torch.Size([15679])
    """
    _check_signal(h)
    if windows not in WINDOWS:
        raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}")
    batch_shape, n = h.shape[:-1], h.shape[-1]
    win = echo_density_window(sample_rate, window_seconds, dtype=h.dtype, device=h.device)
    x = h.reshape(-1, n) if soft else h.detach().reshape(-1, n)
    length = win.shape[0]
    if windows == "paper" and soft and native.available(x, dtypes=native.REAL):
        k = _slopes(kappa, _paper_width(n, win), h.dtype, h.device)
        profile = ERFC_SCALE * _CompiledSoftSums.apply(x, k, win)
        return profile.reshape(*batch_shape, profile.shape[-1])
    if windows == "paper":
        mag, sigma = _paper_terms(x, win)
        inside = None
    else:
        if n < length:
            raise ValueError(f"the echo density profile needs at least one window ({length} samples), got T={n}")
        half = length // 2
        inside = _weight_inside(win, n)
        sigma = _safe_sqrt(_WindowEnergy.apply(x * x, length) / inside)
        mag = F.pad(x.abs(), (half, half), value=-math.inf)  # outside the record: indicator 0
    k = _slopes(kappa, sigma.shape[-1], h.dtype, h.device) if soft else None
    sums = _SoftSums.apply(mag, sigma, k, win) if soft else _scan(mag, sigma, None, win)[0]
    profile = ERFC_SCALE * sums if inside is None else sums * (ERFC_SCALE / inside)
    return profile.reshape(*batch_shape, profile.shape[-1])


def soft_echo_density_mse(
    pred: torch.Tensor,
    target_profile: torch.Tensor,
    sample_rate: float,
    kappa: tuple[float, float] | float = KAPPA,
    window_seconds: float = WINDOW_SECONDS,
) -> torch.Tensor:
    r"""Mean squared difference between the paper's soft echo density profile and a target profile.

    .. math:: \frac{1}{T-L}\sum_{i=0}^{T-L-1} \big(\eta_t(i) - \eta^s_p(i)\big)^2

    with :math:`\eta^s_p` the soft profile of ``pred`` with ``windows="paper"``
    (:func:`echo_density_profile`) and :math:`\eta_t` given, usually the target's soft profile
    computed once. Equal to computing the profile of ``pred`` and the squared difference, but
    faster: the exact gradient with respect to ``pred`` is computed in the same pass as the
    profile, without storing a :math:`T \times L` grid.

    Parameters
    ----------
    pred : torch.Tensor, shape (..., T)
        Predicted impulse responses (may require grad).
    target_profile : torch.Tensor, shape (..., T - L)
        Target profile, same dtype as ``pred`` (may require grad).
    sample_rate : float
        Sampling rate in Hz.
    kappa : (float, float) or float
        Sigmoid slopes, linear over the T - L windows (default 1e2 to 1e5), or constant.
    window_seconds : float
        Window length in seconds (20 ms).

    Returns
    -------
    torch.Tensor, shape (...)
        The mean squared difference for each signal.

    Examples
    --------
    >>> import torch
    >>> from sdn.echo_density import echo_density_profile, soft_echo_density_mse
    >>> t = torch.arange(16000) / 16000
    >>> target = torch.randn(16000) * torch.exp(-6.9 * t / 0.5)
    >>> profile = echo_density_profile(target, 16000, soft=True, windows="paper")
    >>> soft_echo_density_mse(target, profile, 16000).item() < 1e-12
    True
    """
    _check_signal(pred, "pred")
    _check_signal(target_profile, "target_profile")
    batch_shape, n = pred.shape[:-1], pred.shape[-1]
    win = echo_density_window(sample_rate, window_seconds, dtype=pred.dtype, device=pred.device)
    width = _paper_width(n, win)
    if target_profile.shape != (*batch_shape, width) or target_profile.dtype != pred.dtype:
        raise ValueError(f"target_profile must have shape {(*batch_shape, width)} and dtype {pred.dtype}, "
                         f"got {tuple(target_profile.shape)} and {target_profile.dtype}")
    k = _slopes(kappa, width, pred.dtype, pred.device)
    x, target = pred.reshape(-1, n), target_profile.reshape(-1, width)
    if native.available(x, target, dtypes=native.REAL):
        return _CompiledSoftProfileMSE.apply(x, target, k, win).reshape(batch_shape)
    mag, sigma = _paper_terms(x, win)
    return _SoftProfileMSE.apply(mag, sigma, target, k, win).reshape(batch_shape)
