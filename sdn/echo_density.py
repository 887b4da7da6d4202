r"""Echo density profile (Abel & Huang 2006) and its soft, differentiable version.

For every sample :math:`n` of an impulse response :math:`h`, with a Hann window :math:`w` of odd
length :math:`L` (20 ms by default) normalised to :math:`\sum_\tau w(\tau) = 1` and centred on
:math:`n`,

.. math::

    \sigma(n) = \Big(\sum_\tau w(\tau)\, h^2(n+\tau)\Big)^{1/2},\qquad
    \eta(n) = \frac{1}{\operatorname{erfc}(1/\sqrt 2)} \sum_\tau w(\tau)\,
              \mathbb 1\{|h(n+\tau)| > \sigma(n)\},

:math:`\tau = -(L-1)/2, \dots, (L-1)/2`. :math:`\sigma` is the window-weighted standard deviation
about zero, as in Abel & Huang (and the paper's code). For Gaussian noise :math:`\eta \approx 1`;
for sparse early reflections :math:`\eta \ll 1`. The soft profile (Mezza et al., EURASIP JASMP
2024) replaces the indicator by :math:`\operatorname{sigmoid}(\kappa(n)(|h(n+\tau)|-\sigma(n)))`
with :math:`\kappa(n)` rising linearly from :math:`10^2` to :math:`10^5` over the profile (one
value per output sample).

Edge handling: the profile has one value per input sample (length T). Near both ends the window
is truncated to the record and renormalised to sum 1 (no zero padding is counted as samples).
In silent stretches (:math:`\sigma=0`) the hard indicator is 0 and the soft one is
:math:`\operatorname{sigmoid}(0)=1/2`, as in the paper's implementation; :math:`\sigma` uses a
square root whose gradient is defined as 0 there (no NaN gradients on leading zeros).

The computation is vectorized: :math:`\sigma` by running sums (O(T)); the indicators on an
``(L, T)`` strided view of the signal (no copy), summed over the window by one matrix-vector
product; a hand-written backward scatters the gradient grid back to the samples with one skewed
view and a column sum. The paper's code loops over the T windows in Python.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

#: 1 / erfc(1/sqrt(2)): the expected fraction of Gaussian samples beyond one standard deviation.
ERFC_SCALE = 1.0 / math.erfc(1.0 / math.sqrt(2.0))
#: Default analysis window length in seconds.
WINDOW_SECONDS = 0.02
#: Default sigmoid slopes (start, end) of the soft profile.
KAPPA = (1e2, 1e5)


def echo_density_window(sample_rate: float, window_seconds: float = WINDOW_SECONDS,
                        dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """Odd-length symmetric Hann window normalised to sum 1, shape (L,).

    ``L = int(window_seconds * sample_rate)``, plus one if even (321 samples at 16 kHz).
    """
    length = int(window_seconds * sample_rate)
    length += 1 - length % 2
    if length < 3:
        raise ValueError(f"echo-density window of {window_seconds} s at {sample_rate} Hz is shorter than 3 samples")
    win = torch.hann_window(length, periodic=False, dtype=dtype, device=device)
    return win / win.sum()


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def _sliding_sums(y: torch.Tensor, width: int, count: int, offset: int) -> torch.Tensor:
    """Sums of ``y[:, j:j + width]`` for ``j = offset .. offset + count - 1`` (zeros beyond the end).

    Block-local running sums: ``y`` is cut into blocks of ``width`` samples, each with its own
    cumulative sum, and every window is (end of one block) + (start of the next). The rounding
    error is relative to the energy of two blocks around the window, not to the energy of the
    whole record (which is what a single cumulative sum over T samples would give and which ruins
    deep decay tails).
    """
    n_items, length = y.shape
    n_blocks = (offset + count + width - 1) // width + 1
    padded = torch.zeros((n_items, n_blocks * width), dtype=y.dtype, device=y.device)
    padded = padded.index_copy(1, torch.arange(length, device=y.device), y) if length else padded
    q = F.pad(torch.cumsum(padded.view(n_items, n_blocks, width), -1), (1, 0))  # q[b, i]: first i
    following = F.pad(q[:, 1:, :width], (0, 0, 0, 1))  # partial sums of the next block
    sums = (q[..., width:] - q[..., :width]) + following
    return sums.reshape(n_items, n_blocks * width)[:, offset:offset + count]


def _hann_weighted_sum(x: torch.Tensor, length: int) -> torch.Tensor:
    r"""sum_tau w(tau) x(n + tau) for the centred, sum-1 Hann window of odd ``length``, (N, T).

    Zero outside the record. With :math:`w(\tau) = (1 - \cos(\theta(\tau + h)))/(L-1)`,
    :math:`\theta = 2\pi/(L-1)`, :math:`h=(L-1)/2`, the sum is a box sum of :math:`x` minus box
    sums of :math:`x\cos\theta m` and :math:`x\sin\theta m` rotated by :math:`\theta n`
    (:func:`_sliding_sums`, float64, cast back): O(T) instead of O(T L). Only the L - 2 inner taps
    enter (the end taps have weight 0), so windows whose weighted samples are all zero give
    exactly 0.
    """
    half = length // 2
    n = x.shape[-1]
    xp = F.pad(x.to(torch.float64), (half, half))  # xp[q + half] = x[q]
    m = torch.arange(xp.shape[-1], dtype=torch.float64, device=x.device)
    theta = 2.0 * math.pi / (length - 1)
    # output n: taps tau = -half+1 .. half-1 are xp[n + 1 .. n + L - 2], with tau + half = m - n
    width, offset = length - 2, 1
    box = _sliding_sums(xp, width, n, offset)
    s_cos = _sliding_sums(xp * torch.cos(theta * m), width, n, offset)
    s_sin = _sliding_sums(xp * torch.sin(theta * m), width, n, offset)
    k = torch.arange(n, dtype=torch.float64, device=x.device)
    cos_part = s_cos * torch.cos(theta * k) + s_sin * torch.sin(theta * k)
    # sum over the L taps of 1 - cos(theta i) is L - 1: the normalisation to sum 1
    return ((box - cos_part) / (length - 1)).to(x.dtype)


_WORKSPACE = threading.local()


def _workspace(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A reusable scratch grid (one per thread, shape, dtype and device; the 2 most recent are kept,
    at most ``GRID_BYTES`` each, or one signal's grid where that is larger).

    The indicator grid is about 5 M values at 16 kHz; allocating it afresh on every call costs
    more (page faults) than computing it. It is only used transiently inside one forward or one
    backward call, never saved for later, so reuse is safe.
    """
    cache = getattr(_WORKSPACE, "buffers", None)
    if cache is None:
        cache = _WORKSPACE.buffers = {}
    key = (shape, dtype, str(device))
    if math.prod(shape) * (torch.finfo(dtype).bits // 8) > GRID_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)  # too large to keep around
    buf = cache.pop(key, None)
    if buf is None:
        buf = torch.empty(shape, dtype=dtype, device=device)
    cache[key] = buf  # most recently used last
    while len(cache) > 2:
        cache.pop(next(iter(cache)))
    return buf


def _take_grid(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A grid that the caller owns until it hands it back with :func:`_return_grid`.

    Used for the grid kept from a forward to its backward (a different buffer from the scratch
    grid); recycled so that every training step does not allocate (and page-fault) it anew.
    """
    pool = getattr(_WORKSPACE, "pool", None)
    if pool is None:
        pool = _WORKSPACE.pool = {}
    free = pool.get((shape, dtype, str(device)))
    return free.pop() if free else torch.empty(shape, dtype=dtype, device=device)


def _return_grid(grid: torch.Tensor) -> None:
    pool = getattr(_WORKSPACE, "pool", None)
    if pool is None:
        pool = _WORKSPACE.pool = {}
    free = pool.setdefault((tuple(grid.shape), grid.dtype, str(grid.device)), [])
    if not free:  # keep at most one per shape
        free.append(grid)


def _fill_grid(grid, frames, sig, k):
    """grid <- sigmoid(k (frames - sig)) (soft) or 1{frames > sig} (hard, k is None).

    Shapes: grid and frames (M, L, W), sig (M, W), k (W,). The sigmoid argument is clamped from
    below (-40 in float32, -300 in float64): the indicator is then at least 4e-18 (resp.
    5e-131) instead of underflowing into subnormal numbers, whose arithmetic is an order of
    magnitude slower on x86 CPUs. The change of the profile is below 1e-17 and the gradient
    there is negligible either way.
    """
    sig = sig.unsqueeze(-2)
    if k is None:
        torch.gt(frames, sig, out=grid)
    else:
        floor = -40.0 if grid.dtype in (torch.float32, torch.float16, torch.bfloat16) else -300.0
        torch.mul(frames, k, out=grid).sub_(k * sig).clamp_(min=floor).sigmoid_()
    return grid


#: Upper bound on the scratch grid (bytes): batches are processed in chunks of signals below it.
GRID_BYTES = 64 * 2**20


def _chunks(n_items: int, length: int, width: int, dtype: torch.dtype):
    per_item = length * width * torch.finfo(dtype).bits // 8
    step = max(1, min(n_items, GRID_BYTES // per_item))
    return step, [(i, min(i + step, n_items)) for i in range(0, n_items, step)]


def _frames(padded: torch.Tensor, length: int, width: int) -> torch.Tensor:
    """(M, L, W) view with frames[i, tau, n] = padded[i, tau + n] (no copy)."""
    return padded.as_strided((padded.shape[0], length, width), (padded.stride(0), 1, 1))


class _WindowedIndicatorSum(torch.autograd.Function):
    """sum_tau W(tau, n) I(|h|(n + tau - half), sigma(n)) for each n, with a hand-written backward.

    Layout: the grid ``G[i, tau, n] = |h_i|_padded[tau + n]`` (N, L, T + L) is a strided view of
    the zero-padded magnitudes (no copy); the last L columns are padding (zero slope, zero
    gradient) so that the backward can scatter the gradient grid onto the samples ("fold") with
    one skewed strided view, ``V[i, tau, j] = grid[i, tau, j - tau]``, read by a batched
    matrix-vector product. The forward's grid is kept for the backward (in a recycled buffer) when
    the batch fits in one chunk of ``GRID_BYTES``; otherwise batches are processed in chunks of
    signals and the backward recomputes each chunk's grid in a reused scratch buffer.
    """

    @staticmethod
    def forward(ctx, mag, sigma, kappa, win, edge_weights):
        # mag (N, T), sigma (N, T), kappa (T,) or None (hard), win (L,), edge_weights (L, 2*half)
        n_items, n = mag.shape
        length = win.shape[0]
        half = length // 2
        width = n + length
        padded = F.pad(mag.detach(), (half, half + length)).contiguous()  # (N, T + 2L - 1)
        sig = F.pad(sigma.detach(), (0, length))  # (N, width)
        k = None if kappa is None else F.pad(kappa, (0, length))
        frames = _frames(padded, length, width)
        out = torch.empty_like(mag)
        step, chunks = _chunks(n_items, length, width, mag.dtype)
        needs_grad = kappa is not None and any(ctx.needs_input_grad[:2])
        grid_bytes = n_items * length * width * (torch.finfo(mag.dtype).bits // 8)
        if not needs_grad and grid_bytes > GRID_BYTES:
            # evaluation of long or many signals: bounded memory, column by column
            _forward_in_column_chunks(out, padded, sig, k, win, edge_weights)
            ctx.grid = None
            return out
        # keep the grid for the backward when it is needed and fits in one chunk
        keep = needs_grad and len(chunks) == 1
        if keep:
            workspace = _take_grid((n_items, length, width), mag.dtype, mag.device)
        else:
            workspace = _workspace((step, length, width), mag.dtype, mag.device)
        ctx.grid = workspace if keep else None
        for start, stop in chunks:
            grid = _fill_grid(workspace[:stop - start], frames[start:stop], sig[start:stop], k)
            values = torch.matmul(win, grid[..., :n])  # (M, T)
            _fix_edges(values, grid, edge_weights, half, n)
            out[start:stop] = values
        if kappa is not None:
            ctx.save_for_backward(padded, sig, k, win, edge_weights)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        padded, sig, k, win, edge_weights = ctx.saved_tensors
        n_items = padded.shape[0]
        length = win.shape[0]
        width = sig.shape[-1]
        n = width - length
        half = length // 2
        frames = _frames(padded, length, width)
        grad_mag = torch.empty((n_items, n), dtype=padded.dtype, device=padded.device)
        grad_sigma = torch.empty_like(grad_mag)
        kept, ctx.grid = ctx.grid, None  # a second backward (retain_graph) recomputes
        step, chunks = _chunks(n_items, length, width, padded.dtype)
        if kept is None:
            workspace = _workspace((step, length, width), padded.dtype, padded.device)
        for start, stop in chunks:
            m = stop - start
            if kept is None:
                slope = _fill_grid(workspace[:m], frames[start:stop], sig[start:stop], k)
            else:
                slope = kept
            slope.addcmul_(slope, slope, value=-1.0)  # s (1 - s)
            a = F.pad(grad_out[start:stop], (0, length)) * k  # (M, W), zero on the padding columns
            per_n = torch.matmul(win, slope[..., :n])
            _fix_edges(per_n, slope, edge_weights, half, n)
            grad_sigma[start:stop] = -a[:, :n] * per_n
            slope.mul_(a.unsqueeze(1))
            skew = slope.as_strided((m, length, width - 1), (length * width, width - 1, 1))
            grad_mag[start:stop] = torch.matmul(win, skew)[:, half:half + n]
        if kept is not None:
            _return_grid(kept)
        return grad_mag, grad_sigma, None, None, None


def _forward_in_column_chunks(out, padded, sig, k, win, edge_weights):
    """Forward without gradient, one signal and at most ``GRID_BYTES`` of grid at a time."""
    n_items, n = out.shape
    length = win.shape[0]
    half = length // 2
    itemsize = torch.finfo(out.dtype).bits // 8
    cols = max(half, min(n, GRID_BYTES // (length * itemsize)))
    for i in range(n_items):
        row = padded[i]
        for c0 in range(0, n, cols):
            wc = min(cols, n - c0)
            frames = row[c0:c0 + wc + length - 1].as_strided((1, length, wc), (0, 1, 1))
            kc = None if k is None else k[c0:c0 + wc]
            grid = _fill_grid(_workspace((1, length, wc), out.dtype, out.device), frames,
                              sig[i:i + 1, c0:c0 + wc], kc)
            out[i, c0:c0 + wc] = torch.matmul(win, grid)[0]
        for c0, weights in ((0, edge_weights[:, :half]), (n - half, edge_weights[:, half:])):
            frames = row[c0:c0 + half + length - 1].as_strided((1, length, half), (0, 1, 1))
            kc = None if k is None else k[c0:c0 + half]
            grid = _fill_grid(torch.empty((1, length, half), dtype=out.dtype, device=out.device), frames,
                              sig[i:i + 1, c0:c0 + half], kc)
            out[i, c0:c0 + half] = (grid[0] * weights).sum(0)


def _fix_edges(values, grid, edge_weights, half, n):
    """Recompute the first/last ``half`` outputs with the window restricted to the record.

    values (M, T), grid (M, L, W), edge_weights (L, 2 half).
    """
    values[:, :half] = (grid[..., :half] * edge_weights[:, :half]).sum(-2)
    values[:, n - half:] = (grid[..., n - half:n] * edge_weights[:, half:]).sum(-2)


def _weight_inside(win: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of the centred window over the taps that fall inside a record of n samples, (1, T)."""
    half = win.shape[0] // 2
    inside = torch.ones(1, n, dtype=win.dtype, device=win.device)
    partial = torch.cumsum(win, 0)[half:-1]  # window mass from tap -half up to tap +k, k < half
    inside[0, :half] = partial  # output n < half sees taps -n..half: by symmetry cw[half + n]
    inside[0, n - half:] = partial.flip(0)
    return inside


def echo_density_profile(
    h: torch.Tensor,
    sample_rate: float,
    soft: bool = False,
    kappa: tuple[float, float] | float = KAPPA,
    window_seconds: float = WINDOW_SECONDS,
) -> torch.Tensor:
    r"""Abel-Huang echo density profile, hard or soft (differentiable).

    :math:`\eta(n) = \operatorname{erfc}(1/\sqrt2)^{-1}\sum_\tau w(\tau)\,
    I(|h(n+\tau)| - \sigma(n))` with :math:`\sigma(n)^2 = \sum_\tau w(\tau) h^2(n+\tau)`;
    see the module docstring for the window, the edge handling and silent stretches.

    Parameters
    ----------
    h : tensor, shape (..., T)
        Impulse responses, floating point. Not renormalised.
    sample_rate : float
        Hz; sets the window length (``window_seconds``).
    soft : bool
        False: hard indicator :math:`|h|>\sigma` (returned without gradient). True: sigmoid
        indicator, differentiable w.r.t. ``h``.
    kappa : (start, end) or float
        Sigmoid slope(s) of the soft profile, linear from start to end over the T outputs.
    window_seconds : float
        Window length in seconds (20 ms).

    Returns
    -------
    tensor, shape (..., T)
        :math:`\eta(n)`, dimensionless (about 1 for Gaussian noise), dtype/device of ``h``.
    """
    if not isinstance(h, torch.Tensor) or not h.is_floating_point():
        raise TypeError("h must be a floating-point torch.Tensor of shape (..., T)")
    if h.ndim == 0:
        raise ValueError("h must have a time axis (..., T)")
    batch_shape, n = h.shape[:-1], h.shape[-1]
    win = echo_density_window(sample_rate, window_seconds, dtype=h.dtype, device=h.device)
    length = win.shape[0]
    if n < length:
        raise ValueError(f"echo density needs at least one window ({length} samples), got T={n}")
    half = length // 2
    x = h.reshape(-1, n)
    # weights inside the record at each n (1 away from the edges): renormalises truncated windows
    inside = _weight_inside(win, n)
    sigma = _safe_sqrt(_hann_weighted_sum(x * x, length) / inside)  # (N, T)
    # window restricted to the record for the first and last `half` outputs: (L, 2*half)
    valid = F.pad(torch.ones(n, dtype=h.dtype, device=h.device), (half, half))
    starts = torch.cat([torch.arange(half), torch.arange(n - half, n)]).to(h.device)
    taps = torch.arange(length, device=h.device).unsqueeze(1) + starts.unsqueeze(0)
    edge_weights = valid[taps] * win.unsqueeze(1)
    if soft:
        values = tuple(kappa) if isinstance(kappa, (tuple, list)) else (kappa,)
        if len(values) not in (1, 2) or not all(float(v) > 0 for v in values):
            raise ValueError(f"kappa must be a positive number or a (start, end) pair, got {kappa!r}")
        if isinstance(kappa, (tuple, list)):
            k = torch.linspace(float(kappa[0]), float(kappa[1]), n, dtype=h.dtype, device=h.device)
        else:
            k = torch.full((n,), float(kappa), dtype=h.dtype, device=h.device)
    else:
        k = None
    mag = x.abs()
    if k is None:  # the hard indicator has no useful gradient: return a constant
        mag, sigma = mag.detach(), sigma.detach()
    raw = _WindowedIndicatorSum.apply(mag, sigma, k, win, edge_weights)
    profile = raw * (ERFC_SCALE / inside)
    return profile.reshape(*batch_shape, n)
