r"""The paper's training losses (Mezza et al., DAFx25), differentiable, batched.

All losses are called as ``loss(pred, target)`` with tensors of the same shape ``(..., T)``
(time last, any leading batch dims). Each error is computed per signal (reduced over its own
time/frequency axes) and then averaged over the batch (``reduction="mean"``); with
``reduction="none"`` the per-signal values, shape ``(...)``, are returned, so a batch gives
exactly the per-item losses.

The inputs are *not* renormalised: the training code normalises prediction and target to unit
norm before calling the loss (DESIGN.md section 4); the EDC and EDP terms depend on the scale.

- :class:`EDCLoss`: normalised MSE of linear Schroeder EDCs,
  :math:`\sum_n (E_t - E_p)^2 / \sum_n E_t^2`;
- :class:`MelEDRLoss`: normalised MAE of the dB mel energy decay reliefs,
  :math:`\sum |T - P| / \sum |T|`;
- :class:`EDPLoss`: MSE of the soft echo density profiles;
- :class:`SDNLoss`: :math:`0.5\,\mathrm{EDC} + 1\,\mathrm{EDR} + 1\,\mathrm{EDP}`, returning the
  terms.

Degenerate input: shapes, dtypes and lengths are checked (clear ``TypeError``/``ValueError``);
sample values are not (that would synchronise a GPU on every step): NaN/inf samples give a NaN
loss, and an all-zero target makes the EDC term inf (NaN if the prediction is silent too).
Detect unstable models upstream.

Constant tensors (mel filterbank, STFT window) are buffers built once; they follow the module
(``.to()``) and are cast to the input's dtype/device on use.
"""
from __future__ import annotations

import torch
from torch import nn

from .acoustics import MEL_WIN_LENGTH, mel_energy_decay_relief, mel_filterbank
from .echo_density import KAPPA, WINDOW_SECONDS, echo_density_profile

_REDUCTIONS = ("mean", "none")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{name} must have a time axis (..., T)")
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


def _edc(h: torch.Tensor) -> torch.Tensor:
    return torch.flip(torch.cumsum(torch.flip(h * h, dims=(-1,)), dim=-1), dims=(-1,))


class EDCLoss(nn.Module):
    r"""Normalised MSE between linear Schroeder energy decay curves.

    .. math:: \mathcal L_\mathrm{EDC} = \frac{\sum_n (E_t(n) - E_p(n))^2}{\sum_n E_t(n)^2},
       \quad E(n) = \sum_{k \ge n} h^2(k)

    (means over n in the paper; the ratio is the same). Scale-dependent: inputs are expected
    to be unit-norm; a silent target gives inf (NaN if both are silent).
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        e_p, e_t = _edc(pred), _edc(target)
        per_item = (e_t - e_p).pow(2).mean(-1) / e_t.pow(2).mean(-1)
        return _reduce(per_item, self.reduction)


class MelEDRLoss(nn.Module):
    r"""Normalised MAE between dB mel energy decay reliefs.

    .. math:: \mathcal L_\mathrm{EDR} = \frac{\sum_{b,m} |T(b,m) - P(b,m)|}{\sum_{b,m} |T(b,m)|}

    with :math:`T, P` the 80-dB-floored dB mel EDRs of target and prediction
    (:func:`sdn.acoustics.mel_energy_decay_relief`: n_fft 512, Hann 320, hop 160, 64 mel bands).
    Needs T > 256 samples.
    """

    def __init__(self, sample_rate: float, reduction: str = "mean") -> None:
        super().__init__()
        self.sample_rate = float(sample_rate)
        self.reduction = _check_reduction(reduction)
        self.register_buffer("filterbank", mel_filterbank(self.sample_rate).clone(), persistent=False)
        self.register_buffer("window", torch.hann_window(MEL_WIN_LENGTH, periodic=True, dtype=torch.float64),
                             persistent=False)

    def edr(self, h: torch.Tensor) -> torch.Tensor:
        """dB mel EDR (..., 64, frames) with this module's buffers."""
        return mel_energy_decay_relief(h, self.sample_rate, db=True, filterbank=self.filterbank, window=self.window)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        p, t = self.edr(pred), self.edr(target)
        per_item = (t - p).abs().mean(dim=(-2, -1)) / t.abs().mean(dim=(-2, -1))
        return _reduce(per_item, self.reduction)


class EDPLoss(nn.Module):
    r"""MSE between soft echo density profiles (Abel-Huang with a sigmoid indicator).

    .. math:: \mathcal L_\mathrm{EDP} = \frac1T \sum_n (\eta^s_t(n) - \eta^s_p(n))^2

    with :math:`\eta^s` from :func:`sdn.echo_density.echo_density_profile` (``soft=True``,
    20 ms Hann window, :math:`\kappa` from 1e2 to 1e5). Needs T at least one window long.
    """

    def __init__(self, sample_rate: float, kappa: tuple[float, float] | float = KAPPA,
                 window_seconds: float = WINDOW_SECONDS, reduction: str = "mean") -> None:
        super().__init__()
        self.sample_rate = float(sample_rate)
        self.kappa = kappa
        self.window_seconds = float(window_seconds)
        self.reduction = _check_reduction(reduction)

    def profile(self, h: torch.Tensor) -> torch.Tensor:
        """Soft echo density profile (..., T)."""
        return echo_density_profile(h, self.sample_rate, soft=True, kappa=self.kappa,
                                    window_seconds=self.window_seconds)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        per_item = (self.profile(target) - self.profile(pred)).pow(2).mean(-1)
        return _reduce(per_item, self.reduction)


class SDNLoss(nn.Module):
    r"""The paper's total loss
    :math:`w_c\mathcal L_\mathrm{EDC} + w_r\mathcal L_\mathrm{EDR} + w_p\mathcal L_\mathrm{EDP}`.

    Default weights (0.5, 1, 1). Returns a dict of tensors ``{"edc", "edr", "edp", "total"}``
    (unweighted terms, weighted total) for logging; back-propagate ``["total"]``. A term whose
    weight is 0 is skipped (its entry is a zero tensor).
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
