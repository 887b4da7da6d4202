r"""The paper's training losses (Mezza et al., DAFx25), differentiable and batched.

All losses are called as ``loss(pred, target)`` with tensors of the same shape ``(..., T)``
(time last, any leading batch dimensions). Each error is computed per signal (reduced over its
own time or frequency axes) and then averaged over the batch (``reduction="mean"``); with
``reduction="none"`` the per-signal values, shape ``(...)``, are returned, so a batch gives
exactly the per-item losses.

The inputs are *not* renormalised: the training code normalises prediction and target to unit
norm before calling the loss; the EDC and EDP terms depend on the scale.

- :class:`EDCLoss`: normalised squared error of the linear Schroeder energy decay curves;
- :class:`MelEDRLoss`: normalised absolute error of the dB mel energy decay reliefs;
- :class:`EDPLoss`: squared error of the soft echo density profiles;
- :class:`SDNLoss`: :math:`0.5\,\mathcal L_\mathrm{EDC} + \mathcal L_\mathrm{EDR} +
  \mathcal L_\mathrm{EDP}`, returning the terms.

Each follows the definition of the paper's released code (its ``losses.py`` and ``curves.py``):
the same decay curves, STFT, mel filterbank, dB floors, echo density windows and slopes. Two
numerical details differ, not the definitions: the mel filterbank is built in float64 (torchaudio
builds it in float32), and the decay curves are summed from the end of the record (the released
code subtracts forward cumulative sums, which loses the late decay to rounding in float32).

Training compares many predictions with one target: :class:`MelEDRLoss` and :class:`EDPLoss`
keep the target's feature (mel EDR, soft echo density profile) and reuse it while the same
target tensor comes again unmodified (same object, same autograd version counter). A target
that requires grad is never cached. An in-place change that bypasses the version counter (made
through ``.data`` or a NumPy view of the tensor) is not seen: pass a new tensor instead.

Degenerate input: shapes, dtypes and lengths are checked (clear ``TypeError``/``ValueError``);
sample values are not (that would synchronise a GPU on every step): NaN/inf samples give a NaN
loss, and an all-zero target makes the EDC term inf (NaN if the prediction is silent too).

References
----------
A. I. Mezza, R. Giampiccolo, E. De Sena and A. Bernardini, "Differentiable scattering delay
networks for artificial reverberation," Proc. DAFx25, 2025.

A. I. Mezza, R. Giampiccolo, E. De Sena and A. Bernardini, "Data-driven room acoustic modeling
via differentiable feedback delay networks with learnable delay lines," EURASIP Journal on
Audio, Speech, and Music Processing, 2024:51, 2024 (the soft echo density profile).

M. R. Schroeder, "New method of measuring reverberation time," J. Acoust. Soc. Am. 37(3),
409-412, 1965.

J. S. Abel and P. Huang, "A simple, robust measure of reverberation echo density," 121st AES
Convention, 2006.
"""
from __future__ import annotations

import torch
from torch import nn

from .echo_density import KAPPA, WINDOW_SECONDS, WINDOWS, echo_density_profile, soft_echo_density_mse
from .features import MEL_WIN_LENGTH, mel_energy_decay_relief, mel_filterbank, schroeder_integral

_REDUCTIONS = ("mean", "none")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype} (half precision cannot hold the "
                            f"losses' slopes and energies: convert with .float())")
        if x.ndim == 0 or x.numel() == 0:
            raise ValueError(f"{name} must be a non-empty signal with a time axis (..., T), got shape {tuple(x.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.dtype != target.dtype:
        raise TypeError(f"pred and target must have the same dtype, got {pred.dtype} and {target.dtype}")


def _reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_item.mean() if reduction == "mean" else per_item


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class _TargetFeature:
    """A feature of the target, recomputed only when another or a modified tensor comes.

    Keeps a reference to the last target (so that its identity cannot be reused by another
    tensor) and its version counter, which every in-place operation increments.
    """

    def __init__(self, compute) -> None:
        self.compute = compute
        self.target = self.version = self.value = None

    def __call__(self, target: torch.Tensor) -> torch.Tensor:
        if target.requires_grad:
            return self.compute(target)
        if target is not self.target or target._version != self.version:
            with torch.no_grad():
                self.value = self.compute(target)
            self.target, self.version = target, target._version
        return self.value


class EDCLoss(nn.Module):
    r"""Normalised squared error between linear Schroeder energy decay curves.

    .. math:: \mathcal L_\mathrm{EDC} = \frac{\sum_n (E_t(n) - E_p(n))^2}{\sum_n E_t(n)^2},
       \qquad E(n) = \sum_{k \ge n} h^2(k)

    (the paper writes it with means over :math:`n`; the ratio is the same), with :math:`E` from
    :func:`sdn.features.schroeder_integral`. Scale-dependent: inputs are expected to be
    unit-norm; a silent target gives inf (NaN if both are silent).

    Parameters
    ----------
    reduction : {"mean", "none"}
        Average over the batch, or return one value per signal.

    Examples
    --------
    Two decaying noises with T60 0.5 s and 0.7 s, scaled to unit norm as the training code does:

    >>> import torch
    >>> from sdn.losses import EDCLoss
    >>> t = torch.arange(16000) / 16000
    >>> target = torch.randn(16000) * torch.exp(-6.9 * t / 0.5)
    >>> pred = torch.randn(16000) * torch.exp(-6.9 * t / 0.7)
    >>> loss = EDCLoss()(pred / pred.norm(), target / target.norm())
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` against ``target``, both (..., T); a scalar, or (...) without reduction."""
        _check_pair(pred, target)
        e_p, e_t = schroeder_integral(pred * pred), schroeder_integral(target * target)
        per_item = (e_t - e_p).pow(2).mean(-1) / e_t.pow(2).mean(-1)
        return _reduce(per_item, self.reduction)


class MelEDRLoss(nn.Module):
    r"""Normalised absolute error between dB mel energy decay reliefs.

    .. math:: \mathcal L_\mathrm{EDR} = \frac{\sum_{b,m} |R_t(b,m) - R_p(b,m)|}{\sum_{b,m} |R_t(b,m)|}

    with :math:`R` the dB mel EDRs of :func:`sdn.features.mel_energy_decay_relief` (512-point
    FFT, Hann window of 320, hop 160, 64 HTK mel bands, backward integral over the frames,
    :math:`10\log_{10}\max(\cdot, 10^{-10})` floored 80 dB below each signal's maximum).
    Needs T > 256 samples. The filterbank and window are buffers built once; they follow the
    module (``.to()``) and are cast to the input's dtype and device on use.

    Parameters
    ----------
    sample_rate : float
        Sampling rate in Hz.
    reduction : {"mean", "none"}
        Average over the batch, or return one value per signal.

    Examples
    --------
    A decaying noise against itself:

    >>> import torch
    >>> from sdn.losses import MelEDRLoss
    >>> t = torch.arange(16000) / 16000
    >>> target = torch.randn(16000) * torch.exp(-6.9 * t / 0.5)
    >>> MelEDRLoss(16000)(target, target).item()
    0.0
    """

    def __init__(self, sample_rate: float, reduction: str = "mean") -> None:
        super().__init__()
        self.sample_rate = float(sample_rate)
        self.reduction = _check_reduction(reduction)
        self.register_buffer("filterbank", mel_filterbank(self.sample_rate).clone(), persistent=False)
        self.register_buffer("window", torch.hann_window(MEL_WIN_LENGTH, periodic=True, dtype=torch.float64),
                             persistent=False)
        self._target_edr = _TargetFeature(self.edr)

    def edr(self, h: torch.Tensor) -> torch.Tensor:
        """dB mel EDR of ``h`` (..., T) with this module's buffers, shape (..., 64, frames)."""
        return mel_energy_decay_relief(h, self.sample_rate, db=True, filterbank=self.filterbank, window=self.window)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` against ``target``, both (..., T); a scalar, or (...) without reduction."""
        _check_pair(pred, target)
        p, t = self.edr(pred), self._target_edr(target)
        per_item = (t - p).abs().mean(dim=(-2, -1)) / t.abs().mean(dim=(-2, -1))
        return _reduce(per_item, self.reduction)


class EDPLoss(nn.Module):
    r"""Squared error between soft echo density profiles (SoftEDP).

    .. math:: \mathcal L_\mathrm{EDP} = \frac{1}{T-L}\sum_{i=0}^{T-L-1}
              \big(\eta^s_t(i) - \eta^s_p(i)\big)^2

    with :math:`\eta^s` the soft Abel-Huang profile of :mod:`sdn.echo_density` as the paper's
    code defines it (``windows="paper"``): a 20 ms Hann window (L = 321 samples at 16 kHz)
    starting at every sample :math:`i = 0, \dots, T-L-1`, sigmoid slopes :math:`\kappa`
    linear from :math:`10^2` to :math:`10^5` over those :math:`T-L` windows, the window's
    standard deviation in the graph. Computed by
    :func:`sdn.echo_density.soft_echo_density_mse` (exact gradient in the same pass) against
    the target's profile, which is kept while the same target comes again (see the module
    docstring). Needs T longer than one window.

    ``windows="centred"`` gives the earlier definition of this package instead: one centred
    window per sample (length T), truncated and renormalised at the edges, :math:`\kappa`
    spread over T values. On pairs of decaying noise of T = 6000 samples its loss differs from
    the paper's by -3 % to +5 %.

    Parameters
    ----------
    sample_rate : float
        Sampling rate in Hz.
    kappa : (float, float) or float
        Sigmoid slopes, linear from the first to the last window, or constant.
    window_seconds : float
        Window length in seconds.
    reduction : {"mean", "none"}
        Average over the batch, or return one value per signal.
    windows : {"paper", "centred"}
        Placement of the windows (see above).

    Examples
    --------
    The gradient reaches every sample of the prediction:

    >>> import torch
    >>> from sdn.losses import EDPLoss
    >>> t = torch.arange(16000) / 16000
    >>> target = torch.randn(16000) * torch.exp(-6.9 * t / 0.5)
    >>> pred = (torch.randn(16000) * torch.exp(-6.9 * t / 0.5)).requires_grad_(True)
    >>> loss = EDPLoss(16000)(pred, target)
    >>> loss.backward()
    >>> pred.grad.shape
    torch.Size([16000])
    """

    def __init__(self, sample_rate: float, kappa: tuple[float, float] | float = KAPPA,
                 window_seconds: float = WINDOW_SECONDS, reduction: str = "mean", windows: str = "paper") -> None:
        super().__init__()
        if windows not in WINDOWS:
            raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}")
        self.sample_rate = float(sample_rate)
        self.kappa = kappa
        self.window_seconds = float(window_seconds)
        self.reduction = _check_reduction(reduction)
        self.windows = windows
        self._target_profile = _TargetFeature(self.profile)

    def profile(self, h: torch.Tensor) -> torch.Tensor:
        """Soft echo density profile of ``h`` (..., T): shape (..., T - L) or (..., T) if centred."""
        return echo_density_profile(h, self.sample_rate, soft=True, kappa=self.kappa,
                                    window_seconds=self.window_seconds, windows=self.windows)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` against ``target``, both (..., T); a scalar, or (...) without reduction."""
        _check_pair(pred, target)
        target_profile = self._target_profile(target)
        if self.windows == "paper":
            per_item = soft_echo_density_mse(pred, target_profile, self.sample_rate, self.kappa, self.window_seconds)
        else:
            per_item = (target_profile - self.profile(pred)).pow(2).mean(-1)
        return _reduce(per_item, self.reduction)


class SDNLoss(nn.Module):
    r"""The paper's total loss
    :math:`w_c\mathcal L_\mathrm{EDC} + w_r\mathcal L_\mathrm{EDR} + w_p\mathcal L_\mathrm{EDP}`.

    A term whose weight is 0 is skipped (its entry is a zero tensor).

    Parameters
    ----------
    sample_rate : float
        Sampling rate in Hz.
    weights : (float, float, float)
        Non-negative weights :math:`(w_c, w_r, w_p)` of the EDC, mel EDR and EDP terms (the
        paper's 0.5, 1, 1).
    kappa : (float, float) or float
        Sigmoid slopes of the EDP term (:class:`EDPLoss`).
    reduction : {"mean", "none"}
        Average over the batch, or return one value per signal.

    Examples
    --------
    The terms of a perfect match:

    >>> import torch
    >>> from sdn.losses import SDNLoss
    >>> t = torch.arange(16000) / 16000
    >>> target = torch.randn(16000) * torch.exp(-6.9 * t / 0.5)
    >>> terms = SDNLoss(16000)(target / target.norm(), target / target.norm())
    >>> sorted(terms), terms["total"].item()
    (['edc', 'edp', 'edr', 'total'], 0.0)
    """

    def __init__(self, sample_rate: float, weights: tuple[float, float, float] = (0.5, 1.0, 1.0),
                 kappa: tuple[float, float] | float = KAPPA, reduction: str = "mean") -> None:
        super().__init__()
        if len(weights) != 3 or any(w < 0 for w in weights):
            raise ValueError(f"weights must be three non-negative numbers (edc, edr, edp), got {weights}")
        self.weights = tuple(float(w) for w in weights)
        self.edc = EDCLoss(reduction=reduction)
        self.edr = MelEDRLoss(sample_rate, reduction=reduction)
        self.edp = EDPLoss(sample_rate, kappa=kappa, reduction=reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms and total of ``pred`` against ``target``, both (..., T).

        Returns
        -------
        dict of torch.Tensor
            ``{"edc", "edr", "edp", "total"}``: the unweighted terms and the weighted total,
            for logging; back-propagate ``["total"]``.
        """
        _check_pair(pred, target)
        terms = {}
        total = None
        for name, weight, loss in zip(("edc", "edr", "edp"), self.weights, (self.edc, self.edr, self.edp)):
            if weight == 0.0:
                value = pred.new_zeros(()) if self.edc.reduction == "mean" else pred.new_zeros(pred.shape[:-1])
            else:
                value = loss(pred, target)
            terms[name] = value
            total = weight * value if total is None else total + weight * value
        terms["total"] = total
        return terms
