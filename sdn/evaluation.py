"""Evaluation of a rendered RIR against a measured target: the numbers of the book's tables.

One flat dict per RIR (CSV- and JSON-friendly): broadband and octave-band T30, T20, EDT (s),
C50, C80 (dB), D50, DRR (dB); and, against a target, the EDC error in dB and the signed relative
errors of T30/T20/EDT per octave band with their mean absolute value (the just-noticeable
difference of reverberation time is 5 %). Keys of band values end in the band's centre frequency
in Hz, e.g. ``T30_500`` and ``T30_err_500``.
"""
from __future__ import annotations

import numpy as np
import torch

from .acoustics import edc_error_db, room_acoustic_parameters

DECAYS = ("T30", "T20", "EDT")
BROADBAND = ("T30", "T20", "EDT", "C50", "C80", "D50", "DRR")


def _numpy(h) -> np.ndarray:
    return h.detach().cpu().double().numpy() if isinstance(h, torch.Tensor) else np.asarray(h, dtype=np.float64)


def parameters(h, sample_rate: float) -> dict:
    """Acoustic parameters of one RIR ``h`` (T,) as a flat dict of floats."""
    p = room_acoustic_parameters(_numpy(h), sample_rate)
    out = {"n_samples": int(np.shape(h)[-1])}
    out.update({key: float(p[key]) for key in BROADBAND})
    for key in DECAYS + ("C50",):
        for centre, value in zip(p["band_centres"], p[f"{key}_bands"]):
            out[f"{key}_{int(round(centre))}"] = float(value)
    return out


def evaluate(h, target, sample_rate: float) -> dict:
    """Parameters of ``h`` and, when ``target`` is given, its errors against the target.

    ``h`` may be longer than ``target`` (a model rendered past the target's length, so that a slow
    decay can be measured): its parameters use all of it, the EDC error its first ``len(target)``
    samples, like the training losses.

    Errors: ``edc_error_db`` (:func:`sdn.acoustics.edc_error_db`, -60 dB floor), ``<T>_err_<f>``
    = (model - target) / target per band, ``<T>_err_mean`` = mean absolute relative error over
    the bands where both are defined, ``<T>_err`` broadband, ``C50_err`` in dB.
    """
    out = parameters(h, sample_rate)
    if target is None:
        return out
    ref = parameters(target, sample_rate)
    t = _numpy(target)
    out["edc_error_db"] = float(edc_error_db(_numpy(h)[..., : t.shape[-1]], t))
    for key in DECAYS:
        out[f"{key}_err"] = (out[key] - ref[key]) / ref[key]
        band_keys = [k for k in ref if k.startswith(f"{key}_") and k[len(key) + 1 :].isdigit()]
        errors = []
        for band in band_keys:
            err = (out[band] - ref[band]) / ref[band]
            out[f"{key}_err_{band[len(key) + 1:]}"] = err
            errors.append(err)
        finite = [abs(e) for e in errors if np.isfinite(e)]
        out[f"{key}_err_mean"] = float(np.mean(finite)) if finite else float("nan")
    out["C50_err"] = out["C50"] - ref["C50"]
    return out
