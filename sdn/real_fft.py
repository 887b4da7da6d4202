"""Real FFTs along the last axis, with a single long transform done as a batch of two.

torch 2.13's CPU build computes one real FFT of many points several times slower than each of a
batch (MKL): on the project's 2-core AMD EPYC (AVX-512), one real FFT of 32768 points took 385 us
and a batch of two 203 us; of 16384 points, 240 against 97 us; of 8192 points, 39 against 47 us
(``benchmarks/bench_fft.py`` prints these for the machine at hand). A training step of one
position has two such single transforms: the rendered response's inverse FFT and its adjoint in
the backward pass. So from :data:`LONG` points on, on the CPU, a single transform is computed as
the first row of a batch of two identical rows: the same transform, rounded differently.
Autograd's backward then runs on the batch of two as well.
"""
from __future__ import annotations

import torch

#: Transform length (points, the real signal's) from which a single CPU transform is batched.
LONG = 16384


def _single_long(x: torch.Tensor, n: int) -> bool:
    return x.device.type == "cpu" and n >= LONG and x[..., 0].numel() == 1


def rfft(x: torch.Tensor, n: int) -> torch.Tensor:
    """``torch.fft.rfft(x, n=n)``: the spectrum (..., n // 2 + 1) of real signals x (..., n)."""
    if _single_long(x, n):
        return torch.fft.rfft(x.unsqueeze(0).expand(2, *x.shape), n=n)[0]
    return torch.fft.rfft(x, n=n)


def irfft(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """``torch.fft.irfft(spectrum, n=n)``: the real signals (..., n) of spectra (..., n // 2 + 1)."""
    if _single_long(spectrum, n):
        return torch.fft.irfft(spectrum.unsqueeze(0).expand(2, *spectrum.shape), n=n)[0]
    return torch.fft.irfft(spectrum, n=n)
