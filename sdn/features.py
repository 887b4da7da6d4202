r"""Differentiable decay features of impulse responses, shared by the losses and the metrics.

- :func:`schroeder_integral`: the backward integral of a power signal, the one implementation
  behind the energy decay curve (:func:`sdn.acoustics.energy_decay_curve`, the EDC loss, the
  reverberation times) and the energy decay relief;
- :func:`mel_energy_decay_relief`: the mel-frequency energy decay relief (EDR) of the paper's
  loss, with :func:`mel_filterbank` and :func:`power_to_db`.

Time is the last axis and any leading batch dimensions are allowed: signals ``(..., T)``,
spectrograms ``(..., bands, frames)``. Inputs are torch tensors; the outputs keep their dtype and
device and are differentiable.

References
----------
M. R. Schroeder, "New method of measuring reverberation time," J. Acoust. Soc. Am. 37(3),
409-412, 1965.

A. I. Mezza, R. Giampiccolo, E. De Sena and A. Bernardini, "Differentiable scattering delay
networks for artificial reverberation," Proc. DAFx25, 2025.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

#: STFT of the mel EDR: FFT length, window length and hop, in samples.
MEL_N_FFT, MEL_WIN_LENGTH, MEL_HOP = 512, 320, 160
#: Number of mel bands of the mel EDR (from 0 Hz to half the sampling rate).
MEL_BANDS = 64
#: Dynamic range of the dB mel EDR below its maximum, in dB.
MEL_TOP_DB = 80.0
#: Smallest power converted to dB (:math:`10^{-10}`, -100 dB), as ``AmplitudeToDB`` in torchaudio.
POWER_FLOOR = 1e-10


def schroeder_integral(power: torch.Tensor) -> torch.Tensor:
    r"""Backward (Schroeder) integral of a power signal along the last axis.

    .. math:: E(n) = \sum_{k=n}^{N-1} p(k)

    Summed from the end of the record, so that late values, many orders of magnitude below
    :math:`E(0)`, keep their relative precision. Applied to :math:`h^2` it is the energy decay
    curve; applied to the frames of a power spectrogram, the energy decay relief.

    Parameters
    ----------
    power : torch.Tensor, shape (..., N)
        Non-negative power values, e.g. :math:`h^2(n)` or the power of one band per frame.

    Returns
    -------
    torch.Tensor, shape (..., N)
        :math:`E(n)`, same dtype and device; differentiable.

    Examples
    --------
    >>> import torch
    >>> from sdn.features import schroeder_integral
    >>> schroeder_integral(torch.tensor([1.0, 2.0, 3.0]))
    tensor([6., 5., 3.])
    """
    return torch.flip(torch.cumsum(torch.flip(power, dims=(-1,)), dim=-1), dims=(-1,))


def power_to_db(power: torch.Tensor, top_db: float = MEL_TOP_DB, dims: tuple[int, ...] = (-2, -1)) -> torch.Tensor:
    r"""Power in dB, floored at ``top_db`` below the maximum over ``dims``.

    .. math:: L = \max\big(10\log_{10}\max(p, 10^{-10}),\; \max_{\mathrm{dims}} L - L_{\mathrm{top}}\big)

    The conversion of ``torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80)`` applied to
    one spectrogram: the absolute floor of :math:`10^{-10}` (-100 dB), then the relative floor.

    Parameters
    ----------
    power : torch.Tensor, shape (..., bands, frames)
        Non-negative power values.
    top_db : float
        Dynamic range kept below the maximum, in dB.
    dims : tuple of int
        Axes over which the maximum is taken (by default the whole spectrogram of each signal).

    Returns
    -------
    torch.Tensor
        Levels in dB, same shape, dtype and device; differentiable (also through the maximum).
    """
    level = 10.0 * torch.log10(power.clamp(min=POWER_FLOOR))
    return torch.maximum(level, level.amax(dim=dims, keepdim=True) - top_db)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: float, n_fft: int = MEL_N_FFT, n_mels: int = MEL_BANDS) -> torch.Tensor:
    r"""Triangular HTK mel filterbank from 0 Hz to half the sampling rate, without normalisation.

    Filter :math:`b` rises linearly from 0 at the mel-spaced frequency :math:`f_b` to 1 at
    :math:`f_{b+1}` and falls to 0 at :math:`f_{b+2}`, with :math:`n_{\mathrm{mels}} + 2`
    frequencies equally spaced on the HTK mel scale :math:`m = 2595\log_{10}(1 + f/700)`; the
    filters act on the :math:`n_{\mathrm{fft}}/2 + 1` bins :math:`k f_s / n_{\mathrm{fft}}`:

    .. math:: F(b, k) = \max\Big(0, \min\Big(\frac{k f_s/n_{\mathrm{fft}} - f_b}{f_{b+1} - f_b},
              \frac{f_{b+2} - k f_s/n_{\mathrm{fft}}}{f_{b+2} - f_{b+1}}\Big)\Big).

    The filterbank of ``torchaudio.transforms.MelSpectrogram``'s defaults used by the paper's
    code, and of ``librosa.filters.mel(htk=True, norm=None)`` (the tests compare).

    Parameters
    ----------
    sample_rate : float
        Sampling rate in Hz.
    n_fft : int
        FFT length in samples.
    n_mels : int
        Number of mel bands.

    Returns
    -------
    torch.Tensor, shape (n_mels, n_fft // 2 + 1)
        Filter weights, float64 on the CPU; built once per argument set (cached, do not modify).
    """
    top = 2595.0 * np.log10(1.0 + sample_rate / 2.0 / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(0.0, top, n_mels + 2) / 2595.0) - 1.0)  # f_b, Hz
    bins = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    width = np.diff(edges)[:, None]
    rise = (bins - edges[:-2, None]) / width[:-1]
    fall = (edges[2:, None] - bins) / width[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(rise, fall)))


def mel_energy_decay_relief(
    h: torch.Tensor,
    sample_rate: float,
    db: bool = True,
    filterbank: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Mel energy decay relief (EDR) of impulse responses, differentiable.

    The mel power spectrogram :math:`M(b, m)` (STFT with a 512-point FFT, a periodic Hann window
    of 320 samples centred in it, hop 160, frames centred on the samples :math:`160m` with
    reflect padding; power :math:`|X|^2`; 64 mel bands of :func:`mel_filterbank`), integrated
    backwards over the frames (:func:`schroeder_integral`),

    .. math:: \mathrm{EDR}(b, m) = \sum_{m' \ge m} M(b, m'),

    and, if ``db``, converted by :func:`power_to_db`: :math:`10\log_{10}\max(\mathrm{EDR},
    10^{-10})` floored at 80 dB below its maximum over all bands and frames of each signal. These
    are the defaults of torchaudio's ``MelSpectrogram`` and ``AmplitudeToDB(top_db=80)`` that the
    paper's code uses.

    Parameters
    ----------
    h : torch.Tensor, shape (..., T)
        Impulse responses, T > 256 samples (the reflect padding needs it).
    sample_rate : float
        Sampling rate in Hz.
    db : bool
        Return dB (default) or linear power.
    filterbank : torch.Tensor, shape (64, 257), optional
        Precomputed :func:`mel_filterbank` (e.g. a module buffer); built from ``sample_rate``
        when omitted.
    window : torch.Tensor, shape (320,), optional
        Precomputed periodic Hann window; built when omitted.

    Returns
    -------
    torch.Tensor, shape (..., 64, T // 160 + 1)
        The EDR per band and frame (dB or power), dtype and device of ``h``.

    Examples
    --------
    >>> import torch
    >>> from sdn.features import mel_energy_decay_relief
    >>> h = torch.randn(16000) * torch.exp(-torch.arange(16000) / 1600.0)
    >>> mel_energy_decay_relief(h, 16000).shape
    torch.Size([64, 101])
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
    power = torch.view_as_real(spec).pow(2).sum(-1)  # |X|^2 without the square root of abs()
    edr = schroeder_integral(torch.matmul(filterbank, power))  # (N, 64, frames)
    if db:
        edr = power_to_db(edr)
    return edr.reshape(*batch_shape, *edr.shape[-2:])
