"""Impulse responses as inputs of the metrics: validation, onset, octave bands, kind of result.

The metrics of :mod:`sdn.acoustics` and :mod:`sdn.energy_ratios` accept torch tensors or numpy
arrays and answer in the same kind: a tensor in the input's dtype and device, or a float64 numpy
array. Their time windows start at the ISO 3382-1 onset (:func:`find_onset`).
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

from .filterbank import octave_bands

#: A signal given as a tensor or an array, time on the last axis.
ArrayLike = Union[torch.Tensor, np.ndarray]

#: ISO 3382-1 start threshold: the RIR starts where it first rises to 20 dB below its peak.
ONSET_THRESHOLD_DB = 20.0


def as_tensor(h: ArrayLike, name: str = "h", min_length: int = 1) -> tuple[torch.Tensor, bool]:
    """Validate a signal and return it as a floating-point tensor.

    Parameters
    ----------
    h : torch.Tensor or numpy.ndarray, shape (..., T)
        Floating-point samples, finite, time on the last axis.
    name : str
        Name used in error messages.
    min_length : int
        Smallest accepted number of samples T.

    Returns
    -------
    x : torch.Tensor, shape (..., T)
        ``h`` itself (tensor input) or a float64 copy (array input).
    was_numpy : bool
        Whether ``h`` was a numpy array (for :func:`to_kind`).
    """
    was_numpy = isinstance(h, np.ndarray)
    if was_numpy:
        if not np.issubdtype(h.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {h.dtype}")
        h = torch.from_numpy(np.array(h, dtype=np.float64, copy=True))
    elif isinstance(h, torch.Tensor):
        if not h.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {h.dtype}")
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(h).__name__}")
    if h.ndim == 0:
        raise ValueError(f"{name} must have a time axis (shape (..., T)), got a scalar")
    if h.shape[-1] < min_length:
        raise ValueError(f"{name} needs at least {min_length} samples on its last axis, got shape {tuple(h.shape)}")
    if not bool(torch.isfinite(h).all()):
        raise ValueError(f"{name} contains NaN or inf samples")
    return h, was_numpy


def check_sample_rate(sample_rate: float) -> float:
    """The sampling rate as a float; a clear error unless it is a positive finite number.

    Parameters
    ----------
    sample_rate : int or float
        Sampling rate in Hz.

    Returns
    -------
    float
        The same rate in Hz.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"sample_rate must be a number, got {type(sample_rate).__name__}")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be positive and finite, got {sample_rate}")
    return float(sample_rate)


def to_kind(x: torch.Tensor, was_numpy: bool, like: ArrayLike | None = None) -> ArrayLike:
    """A result in the kind of the input it came from.

    Parameters
    ----------
    x : torch.Tensor
        The result.
    was_numpy : bool
        Whether the input was a numpy array (:func:`as_tensor`).
    like : tensor or ndarray, optional
        The input; a tensor result takes its dtype.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``x`` as a float64 array, or as a tensor in the dtype of ``like``.
    """
    if was_numpy:
        return x.detach().cpu().to(torch.float64).numpy()
    if isinstance(like, torch.Tensor):
        x = x.to(dtype=like.dtype)
    return x


def nan_where(value: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``value`` where ``valid``, NaN elsewhere (a parameter that cannot be estimated).

    Parameters
    ----------
    value : torch.Tensor
        Estimates.
    valid : torch.Tensor of bool
        Where the estimates hold, broadcastable against ``value``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``value``.
    """
    return torch.where(valid, value, torch.full_like(value, float("nan")))


def find_onset(x: torch.Tensor, threshold_db: float = ONSET_THRESHOLD_DB) -> torch.Tensor:
    """First sample where :math:`x^2` reaches ``threshold_db`` below its maximum (ISO 3382-1 A.3.4).

    Parameters
    ----------
    x : torch.Tensor, shape (..., T)
        Impulse responses.
    threshold_db : float
        Threshold in dB below the peak of :math:`x^2`.

    Returns
    -------
    torch.Tensor, shape (...), int64
        Sample index; 0 for an all-zero signal.
    """
    energy = x.detach() * x.detach()
    peak = energy.amax(dim=-1, keepdim=True)
    above = (energy >= peak * 10.0 ** (-threshold_db / 10.0)) & (peak > 0)
    # argmax of a boolean returns the first True; all-False (silent) gives 0
    return above.to(torch.uint8).argmax(dim=-1)


def prepare(h: ArrayLike, sample_rate: float, bands: str | None, start=None):
    """Validated float64 signals or octave bands, with the sample where each one starts.

    Parameters
    ----------
    h : tensor or ndarray, shape (..., T)
        Impulse responses (at least 2 samples).
    sample_rate : float
        Sampling rate in Hz.
    bands : None or "octave"
        Broadband, or split into the octave bands of :func:`sdn.filterbank.octave_bands`.
    start : int tensor or ndarray, shape (...), optional
        Start sample of each signal; by default its :func:`find_onset` (the broadband onset also
        serves every band).

    Returns
    -------
    x : torch.Tensor, shape (..., T)
        ``h`` as a tensor (see :func:`as_tensor`).
    signals : torch.Tensor, shape (..., T) or (..., B, T)
        Float64 signals or bands, detached.
    starts : torch.Tensor, shape (...) or (..., B), int64
        Start sample of each signal or band.
    was_numpy : bool
        Whether ``h`` was a numpy array.
    sample_rate : float
        The validated sampling rate.
    """
    sample_rate = check_sample_rate(sample_rate)
    x, was_numpy = as_tensor(h, min_length=2)
    starts = find_onset(x) if start is None else torch.as_tensor(start, dtype=torch.int64, device=x.device)
    if starts.shape != x.shape[:-1]:
        raise ValueError(f"the start samples must have shape {tuple(x.shape[:-1])}, got {tuple(starts.shape)}")
    x64 = x.detach().to(torch.float64)
    if bands is None:
        return x, x64, starts, was_numpy, sample_rate
    if bands != "octave":
        raise ValueError(f"bands must be None or 'octave', got {bands!r}")
    xb = octave_bands(x64, sample_rate)
    return x, xb, starts.unsqueeze(-1).expand(xb.shape[:-1]), was_numpy, sample_rate
