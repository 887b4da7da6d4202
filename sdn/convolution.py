"""Convolution of long signals with an impulse response by FFT overlap-add."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def overlap_add(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    r"""The first T samples of :math:`y = x * h`, by FFT overlap-add.

    The input is cut into blocks of :math:`B \ge L` samples (:math:`L` the length of ``h``, B a
    power of two); each block is convolved by one FFT of :math:`2B` points, whose result spans
    exactly two blocks, so the output is each block's first half plus the previous block's
    second half. Memory grows with T but not with :math:`T \cdot L`: 10 minutes at 16 kHz
    convolved with a 2 s response need a few hundred MB. Differentiable in ``x`` and ``h``.

    Parameters
    ----------
    x : tensor, shape (..., T)
        Signals.
    h : tensor, shape (..., L)
        Impulse responses; leading dimensions broadcast against those of ``x``.

    Returns
    -------
    tensor, shape (broadcast of the leading dimensions, T)

    Examples
    --------
    >>> x, h = torch.randn(1000), torch.tensor([1.0, 0.5])
    >>> torch.allclose(overlap_add(x, h)[1:], x[1:] + 0.5 * x[:-1], atol=1e-5)
    True
    """
    n, length = x.shape[-1], h.shape[-1]
    block = 1 << max(0, math.ceil(math.log2(length)))
    n_blocks = -(-n // block)
    shape = torch.broadcast_shapes(x.shape[:-1], h.shape[:-1]) + (n,)
    if x.numel() == 0 or n == 0:
        return x.new_zeros(shape)
    blocks = F.pad(x, (0, n_blocks * block - n)).unflatten(-1, (n_blocks, block))  # (..., nb, B)
    spectrum = torch.fft.rfft(blocks, n=2 * block) * torch.fft.rfft(h, n=2 * block).unsqueeze(-2)
    y = torch.fft.irfft(spectrum, n=2 * block)  # (..., nb, 2B)
    head, tail = y[..., :block], y[..., block:]
    out = head + F.pad(tail[..., :-1, :], (0, 0, 1, 0))  # each block's tail lands on the next block
    return out.flatten(-2)[..., :n].expand(shape)
