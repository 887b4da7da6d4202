r"""Early arrivals of a measured RIR: the image-source model and a matched-filter detector.

Model. For a source :math:`s` and microphone :math:`m` in a shoebox, the direct sound arrives at
:math:`t_0 = \tau + f_s |s - m| / c` samples and the first-order reflection on wall :math:`k` at
:math:`t_k = \tau + f_s |s_k - m| / c`, with :math:`s_k` the source mirrored across wall k
(:func:`sdn.geometry.image_sources`) and :math:`\tau` the apparent latency of the measurement
(:func:`predicted_arrivals`).

Detection. :func:`arrival_detection` matched-filters each channel with a short tapered window of
its own direct sound, takes the Hilbert envelope, normalises it to 1 at the direct sound and
averages the channels. Matched filtering compresses the loudspeaker's ringing, so each specular
reflection becomes a peak at its arrival time, shifted like the direct sound. :func:`detection_peaks`,
:func:`reflection_score` and :func:`match_arrivals` compare predicted arrivals with it
(:mod:`sdn.calibration` searches positions with them).

References
----------
- J. B. Allen, D. A. Berkley, "Image method for efficiently simulating small-room
  acoustics", J. Acoust. Soc. Am. 65(4), 943-950, 1979.
- G. L. Turin, "An introduction to matched filters", IRE Trans. Inf. Theory 6(3),
  311-329, 1960.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, hilbert

from .geometry import SPEED_OF_SOUND, WALL_NAMES, image_sources

__all__ = [
    "ARRIVAL_NAMES", "predicted_arrivals", "arrival_jacobian", "as_channels", "arrival_detection",
    "detection_peaks", "interpolate", "reflection_score", "match_arrivals",
]

#: The seven early arrivals, in the order of every (..., 7) array of this module.
ARRIVAL_NAMES = ("direct",) + tuple(WALL_NAMES)


def predicted_arrivals(size, source, mic, sample_rate, latency=0.0, c=SPEED_OF_SOUND) -> np.ndarray:
    """Arrival times of the direct sound and the six first-order reflections.

    Parameters
    ----------
    size : array_like, shape (3,)
        Room dimensions, metres.
    source : array_like, shape (3,) or (..., 3)
        Source position(s), metres.
    mic : array_like, shape (..., 3)
        Microphone position(s), metres.
    sample_rate : float
        Hz.
    latency : float or array_like
        Samples added to every arrival (broadcasts with ``mic[..., 0]``).
    c : float
        Speed of sound, m/s.

    Returns
    -------
    ndarray, shape (..., 7)
        Samples, :data:`ARRIVAL_NAMES` order: :math:`t = \\tau + f_s d / c`.
    """
    mic = np.asarray(mic, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    points = np.concatenate([source[..., None, :], image_sources(size, source)], axis=-2)
    dist = np.linalg.norm(points - mic[..., None, :], axis=-1)
    return np.asarray(latency)[..., None] + dist * (sample_rate / c)


def arrival_jacobian(size, fixed, position, sample_rate, c=SPEED_OF_SOUND) -> np.ndarray:
    """Derivatives of the seven arrival times with respect to (x, y, z, latency).

    Parameters
    ----------
    size : array_like, shape (3,)
        Room dimensions, metres.
    fixed : ndarray, shape (3,)
        The known point (source), metres.
    position : ndarray, shape (3,)
        The point moved (microphone), metres.
    sample_rate : float
        Hz.
    c : float
        Speed of sound, m/s.

    Returns
    -------
    ndarray, shape (7, 4)
        Samples per metre for x, y, z and 1 for the latency.
    """
    points = np.concatenate([fixed[None], image_sources(size, fixed)], axis=0)
    diff = position[None] - points
    unit = diff / np.linalg.norm(diff, axis=-1, keepdims=True)
    return np.concatenate([unit * sample_rate / c, np.ones((7, 1))], axis=1)


def as_channels(rir) -> np.ndarray:
    """A measured RIR as float64 ``(C, T)``, checked.

    Parameters
    ----------
    rir : array_like, shape (T,) or (C, T)
        Time last.

    Returns
    -------
    ndarray, shape (C, T)

    Raises
    ------
    ValueError
        For fewer than 64 samples, non-finite samples or silence.
    """
    h = np.asarray(rir, dtype=np.float64)
    if h.ndim == 1:
        h = h[None]
    if h.ndim != 2 or h.shape[-1] < 64:
        raise ValueError(f"rir must be (T,) or (C, T) with T >= 64 samples, got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError("rir contains non-finite samples")
    if not np.any(h):
        raise ValueError("rir is silent")
    return h


def arrival_detection(rir, pre: int = 12, post: int = 36, max_length: int | None = None):
    """Matched-filter arrival detection function of a (multichannel) RIR.

    Parameters
    ----------
    rir : array_like, shape (T,) or (C, T)
        Time last.
    pre : int
        Samples of the direct sound kept before its peak for the template.
    post : int
        Samples of the direct sound kept after its peak for the template.
    max_length : int, optional
        Only the first ``max_length`` samples are used (default all).

    Returns
    -------
    detection : ndarray, shape (T',)
        float64 in [0, 1], 1 at the direct sound: the mean over channels of each channel's
        normalised matched-filter envelope, aligned so that an arrival shaped like the direct
        sound peaks at the time of its own peak.
    direct : int
        Sample of the direct-sound peak (of the capsule-mean envelope: the first arrival above
        half the maximum, refined to its local maximum).
    """
    h = as_channels(rir)
    if max_length is not None:
        h = h[:, :max_length]
    env = np.abs(hilbert(h, axis=-1)).mean(axis=0)
    first = int(np.argmax(env >= 0.5 * env.max()))
    direct = first + int(np.argmax(env[first : first + pre + 1]))
    a, b = max(direct - pre, 0), direct + post + 1
    window = np.hanning(b - a + 2)[1:-1]
    out = np.zeros(h.shape[-1])
    used = 0
    for channel in h:
        template = channel[a:b] * window
        energy = float(template @ template)
        if energy <= 0:
            continue
        # corr[n] = sum_j h[n + j] template[j]
        corr = fftconvolve(channel, template[::-1], mode="full")[b - a - 1 :]
        envelope = np.abs(hilbert(corr)) / energy
        shifted = np.zeros_like(envelope)
        shift = direct - a  # template start -> direct-peak time
        shifted[shift:] = envelope[: envelope.size - shift]
        out += shifted
        used += 1
    out /= max(used, 1)
    out /= out[direct] if out[direct] > 0 else 1.0
    return np.clip(out, 0.0, 1.0), direct


def detection_peaks(detection: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a detection function above ``threshold``, at sub-sample positions.

    Parameters
    ----------
    detection : ndarray, shape (T,)
        From :func:`arrival_detection`.
    threshold : float
        Smallest peak height kept (1 = the direct sound).

    Returns
    -------
    times : ndarray, shape (P,)
        Samples, refined by a parabola through each peak and its neighbours (within half a sample).
    heights : ndarray, shape (P,)
        Detection value at each peak's sample.
    """
    d = detection
    idx = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:]) & (d[1:-1] >= threshold)) + 1
    y0, y1, y2 = d[idx - 1], d[idx], d[idx + 1]
    denom = y0 - 2 * y1 + y2
    offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return idx + np.clip(offset, -0.5, 0.5), y1


def interpolate(detection: np.ndarray, times) -> np.ndarray:
    """Linear interpolation of a detection function at (fractional) times; 0 outside it.

    Parameters
    ----------
    detection : ndarray, shape (T,)
        Values at whole samples.
    times : array_like
        Samples, any shape.

    Returns
    -------
    ndarray
        Same shape as ``times``.
    """
    t = np.asarray(times)
    i = np.floor(t).astype(np.int64)
    frac = t - i
    valid = (i >= 0) & (i < detection.size - 1)
    i = np.clip(i, 0, detection.size - 2)
    value = (1 - frac) * detection[i] + frac * detection[i + 1]
    return np.where(valid, value, 0.0)


def reflection_score(detection: np.ndarray, times, resolution: float = 8.0) -> np.ndarray:
    """Sum of the detection function at predicted arrival times (last axis).

    One peak of the measurement must not confirm two reflections: an arrival ``g`` samples after
    the previous one (sorted) is weighted by :math:`\\min(g / r, 1)`, ``r`` = ``resolution``.

    Parameters
    ----------
    detection : ndarray, shape (T,)
        From :func:`arrival_detection` (possibly smoothed or max-filtered).
    times : array_like, shape (..., K)
        Samples.
    resolution : float
        Samples, about the width of a detection peak.

    Returns
    -------
    ndarray, shape (...)
    """
    t = np.sort(np.asarray(times, dtype=np.float64), axis=-1)
    values = interpolate(detection, t)
    weight = np.ones(t.shape)
    weight[..., 1:] = np.clip(np.diff(t, axis=-1) / resolution, 0.0, 1.0)
    return np.sum(values * weight, axis=-1)


def match_arrivals(predicted, peak_times, peak_heights, window):
    """One-to-one matching of predicted arrivals to detection peaks within ``window`` samples.

    Pairs are taken greedily by increasing time distance (ties: stronger peak first); a peak
    explains at most one arrival.

    Parameters
    ----------
    predicted : ndarray, shape (7,)
        Samples.
    peak_times : ndarray, shape (P,)
        Samples, from :func:`detection_peaks`.
    peak_heights : ndarray, shape (P,)
        Their heights.
    window : float
        Samples.

    Returns
    -------
    measured : ndarray, shape (7,)
        Time of the peak matched to each arrival, NaN when unmatched.
    heights : ndarray, shape (7,)
        Its height, NaN when unmatched.
    """
    measured = np.full(predicted.shape, np.nan)
    heights = np.full(predicted.shape, np.nan)
    pairs = [
        (abs(peak_times[j] - t) - 0.01 * peak_heights[j], k, j)
        for k, t in enumerate(predicted)
        for j in np.flatnonzero(np.abs(peak_times - t) <= window)
    ]
    used_k, used_j = set(), set()
    for _, k, j in sorted(pairs):
        if k in used_k or j in used_j:
            continue
        used_k.add(k)
        used_j.add(j)
        measured[k], heights[k] = peak_times[j], peak_heights[j]
    return measured, heights
