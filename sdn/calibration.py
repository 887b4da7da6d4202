"""Microphone (or source) position from a measured RIR: direct sound + first-order reflections.

Method (all times in samples at the measurement rate, typically 48 kHz)
-------------------------------------------------------------------------
1. **Arrival detection function** ``D(n)``: each channel is matched-filtered with a short tapered
   window of its own direct sound (``template`` around the direct-sound peak of the capsule mean),
   the Hilbert envelope is taken and normalised to 1 at the direct sound, the channels are
   averaged (capsules of a small array are within ~1-2 cm, i.e. ~1-3 samples at 48 kHz) and
   clipped to [0, 1]. Matched filtering compresses the loudspeaker's ringing, so each specular
   reflection becomes a peak of ``D`` at its arrival time, shifted like the direct sound.
2. **Model** (image-source method, Allen & Berkley 1979): for a candidate microphone ``m`` the
   direct path arrives at ``t0 = tau + fs |s - m| / c`` and the reflection on wall ``k`` at
   ``tk = tau + fs |s_k - m| / c`` (``s_k``: source mirrored across wall k). The apparent latency
   ``tau`` (measurement chain + loudspeaker onset-to-peak, unknown) cancels in ``tk - t0``;
   ``t0`` is measured, so ``tau = t0 - fs |s - m| / c`` and only ``m`` is searched.
3. **Global search**: score ``sum_k D(tk)`` over the first-order reflections arriving within
   ``max_delay`` (25 ms) of the direct sound (later ones, e.g. off a far wall, fall where the echo
   density is already high and carry no information); one peak must not confirm two reflections
   (an arrival within 8 samples of the previous one counts in proportion). The score is evaluated
   on a grid over the prior box (inside the room, microphone height range, latency range) using
   ``D`` max-filtered over half a grid cell; the best grid points are zoomed to a quarter of the
   step, and the best distinct ones are refined.
4. **Refinement**: Nelder-Mead on the score, from coarse (max-filtered) to fine (Gaussian,
   sigma = 1 sample) versions of ``D``; then peaks of ``D`` (parabolic sub-sample interpolation)
   within ``match_window`` samples of each predicted arrival are matched one-to-one and
   ``(m, tau)`` is fitted by least squares on the matched arrivals (direct included; Cauchy loss,
   weights sqrt(peak height)). The refined point with the highest score is the estimate.
5. **Report**: position, latency, per-arrival residuals (samples), the local covariance
   ``sigma^2 (J^T J)^-1`` (sigma: residual RMS, floored at 0.5 sample; local only: it says
   nothing about distant near-tied solutions), the change of every arrival for +-5 cm moves
   along each axis, and the runner-up solutions with their scores (ambiguity).
   ``leave_one_channel_out`` reruns everything without each capsule (jackknife).

The same machinery locates a source with a known microphone (``locate_source``): the roles of
source and microphone are symmetric in the image-source model (reciprocity).

Not done: no directivity model of the capsules or loudspeaker (the inter-capsule time
differences, which carry the direction of each arrival, are not used: the capsule layout of the
array is unknown here), no higher-order reflections, no furniture (specular reflections from desks and chairs can produce peaks the model does not
predict; they are simply not matched), speed of sound fixed (343 m/s unless given).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.ndimage import gaussian_filter1d, maximum_filter1d
from scipy.signal import fftconvolve, hilbert

from .geometry import WALL_NAMES, image_sources

__all__ = [
    "SPEED_OF_SOUND",
    "ARRIVAL_NAMES",
    "image_sources",
    "predicted_arrivals",
    "arrival_detection",
    "CalibrationResult",
    "locate_microphone",
    "locate_source",
    "room_config_yaml",
    "leave_one_channel_out",
]

SPEED_OF_SOUND = 343.0
ARRIVAL_NAMES = ("direct",) + tuple(WALL_NAMES)


def predicted_arrivals(size, source, mic, sample_rate, latency=0.0, c=SPEED_OF_SOUND) -> np.ndarray:
    """Arrival times of the direct sound and the six first-order reflections.

    Parameters
    ----------
    size : (3,) metres. source : (3,) or (..., 3) metres. mic : (..., 3) metres.
    sample_rate : Hz. latency : samples added to every arrival (broadcasts with ``mic[..., 0]``).
    c : speed of sound, m/s.

    Returns
    -------
    (..., 7) samples: ``[direct, x=0, x=Lx, y=0, y=Ly, floor, ceiling]``,
    ``t = latency + sample_rate * distance / c``.
    """
    mic = np.asarray(mic, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    points = np.concatenate([source[..., None, :], image_sources(size, source)], axis=-2)
    dist = np.linalg.norm(points - mic[..., None, :], axis=-1)
    return np.asarray(latency)[..., None] + dist * (sample_rate / c)


def _as_channels(rir) -> np.ndarray:
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
    rir : (T,) or (C, T), time last.
    pre, post : samples of the direct sound kept before/after its peak for the template.
    max_length : only the first ``max_length`` samples are used (None: all).

    Returns
    -------
    detection : (T',) float64 in [0, 1]; 1 at the direct sound; mean over channels of each
        channel's normalised matched-filter envelope, aligned so that an arrival shaped like the
        direct sound peaks at the time of its own peak.
    direct : int, sample of the direct-sound peak (of the capsule-mean envelope; the first
        arrival above half the maximum, refined to its local maximum).
    """
    h = _as_channels(rir)
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


def _local_peaks(detection: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima above threshold, with parabolic sub-sample positions; (times, heights)."""
    d = detection
    idx = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:]) & (d[1:-1] >= threshold)) + 1
    y0, y1, y2 = d[idx - 1], d[idx], d[idx + 1]
    denom = y0 - 2 * y1 + y2
    offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return idx + np.clip(offset, -0.5, 0.5), y1


def _total_score(detection: np.ndarray, times: np.ndarray, resolution: float = 8.0) -> np.ndarray:
    """Sum over the last axis of the detection function at the predicted times.

    One peak of the measurement must not confirm two reflections: an arrival ``g`` samples after
    the previous one (sorted) is weighted by ``min(g / resolution, 1)`` (``resolution`` about the
    width of a detection peak).
    """
    t = np.sort(np.asarray(times, dtype=np.float64), axis=-1)
    values = _score(detection, t)
    weight = np.ones(t.shape)
    weight[..., 1:] = np.clip(np.diff(t, axis=-1) / resolution, 0.0, 1.0)
    return np.sum(values * weight, axis=-1)


def _score(detection: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of the detection function at (fractional) times; 0 outside."""
    t = np.asarray(times)
    i = np.floor(t).astype(np.int64)
    frac = t - i
    valid = (i >= 0) & (i < detection.size - 1)
    i = np.clip(i, 0, detection.size - 2)
    value = (1 - frac) * detection[i] + frac * detection[i + 1]
    return np.where(valid, value, 0.0)


@dataclass(frozen=True)
class CalibrationResult:
    """Estimated position and how well the measured arrivals support it.

    Attributes
    ----------
    position : (3,) metres, the estimated point (microphone, or source for ``locate_source``).
    latency : samples, apparent latency (``t_direct - fs * distance / c``; chain latency plus the
        loudspeaker's onset-to-peak delay), at ``sample_rate``.
    sample_rate : Hz of the times below.
    predicted : (7,) samples, model arrivals ``[direct, x=0, x=Lx, y=0, y=Ly, floor, ceiling]``.
    measured : (7,) samples of the matched peaks of the detection function, NaN when unmatched.
    residuals : (7,) ``measured - predicted`` in samples, NaN when unmatched.
    peak_heights : (7,) detection value of each matched peak (1 = as strong as the direct sound).
    matched : (7,) bool.
    std : (4,) one-sigma uncertainty of (x, y, z) in metres and of the latency in samples, from
        ``sigma^2 (J^T J)^-1`` at the solution.
    perturbation : (3, 2, 7) change of every predicted arrival (samples) when the position moves by
        -step / +step along x, y, z.
    perturbation_step : metres.
    score : global-search score, sum of the detection function at the six reflection times.
    alternatives : list of dicts (position, latency, score) of the next-best local maxima of the
        global search at least 0.3 m away from the solution.
    fixed_point : (3,) the known point (the source for ``locate_microphone``, the mic for
        ``locate_source``).
    """

    position: np.ndarray
    latency: float
    sample_rate: float
    predicted: np.ndarray
    measured: np.ndarray
    residuals: np.ndarray
    peak_heights: np.ndarray
    matched: np.ndarray
    std: np.ndarray
    perturbation: np.ndarray
    perturbation_step: float
    score: float
    alternatives: list = field(default_factory=list)
    fixed_point: np.ndarray | None = None
    detection: np.ndarray | None = field(default=None, repr=False)

    @property
    def latency_seconds(self) -> float:
        return self.latency / self.sample_rate

    @property
    def distance(self) -> float:
        """Metres between the estimated and the fixed point."""
        return float(np.linalg.norm(self.position - self.fixed_point))

    @property
    def rms_residual(self) -> float:
        """RMS of the matched residuals, samples."""
        r = self.residuals[self.matched]
        return float(np.sqrt(np.mean(r**2))) if r.size else float("nan")

    def to_dict(self, decimals: int = 4) -> dict:
        """JSON-serialisable summary (positions in metres, times in samples)."""

        def rnd(x):
            arr = np.asarray(x, dtype=np.float64)
            out = np.round(arr, decimals).tolist()
            return _nan_to_none(out)

        return {
            "position_m": rnd(self.position),
            "latency_samples": round(float(self.latency), decimals),
            "latency_ms": round(1e3 * float(self.latency) / self.sample_rate, decimals),
            "sample_rate": self.sample_rate,
            "arrivals": {
                name: {
                    "predicted": rnd(self.predicted[k]),
                    "measured": rnd(self.measured[k]),
                    "residual_samples": rnd(self.residuals[k]),
                    "peak_height": rnd(self.peak_heights[k]),
                    "matched": bool(self.matched[k]),
                }
                for k, name in enumerate(ARRIVAL_NAMES)
            },
            "rms_residual_samples": round(self.rms_residual, decimals),
            "std_xyz_m": rnd(self.std[:3]),
            "std_latency_samples": rnd(self.std[3]),
            "perturbation_step_m": self.perturbation_step,
            "perturbation_samples": {
                axis: {
                    "minus": rnd(self.perturbation[i, 0]),
                    "plus": rnd(self.perturbation[i, 1]),
                }
                for i, axis in enumerate("xyz")
            },
            "score": round(float(self.score), decimals),
            "alternatives": [
                {k: (rnd(v) if k != "score" else round(float(v), decimals)) for k, v in alt.items()}
                for alt in self.alternatives
            ],
        }


def _nan_to_none(x):
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _grid(lo, hi, step):
    n = max(int(np.ceil((hi - lo) / step)) + 1, 2)
    return np.linspace(lo, hi, n)


def _locate(
    detection, direct, size, fixed, sample_rate, c, box, latency_range, grid_step,
    match_window, threshold, n_alternatives, perturbation_step, n_starts,
):
    size = np.asarray(size, dtype=np.float64)
    fixed = np.asarray(fixed, dtype=np.float64)
    fs = float(sample_rate)
    # --- global grid search over the prior box, with the latency prior as a distance window
    axes = [_grid(box[i][0], box[i][1], grid_step) for i in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij")
    cand = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=-1)
    latency = direct - np.linalg.norm(cand - fixed, axis=-1) * fs / c
    keep = (latency >= latency_range[0]) & (latency <= latency_range[1])
    if not np.any(keep):
        raise ValueError(
            f"no candidate position in the prior box is compatible with a latency in "
            f"{latency_range} samples (direct sound at sample {direct}); widen the prior"
        )
    cand = cand[keep]
    lower = np.array([b[0] for b in box])
    upper = np.array([b[1] for b in box])

    def grid_scores(points, step):
        # A grid cell spans several samples of arrival time: score it on a detection function
        # max-filtered over half a cell diagonal, so that a sharp peak between points is not
        # missed. The point to locate is the mic (images of the fixed source); reciprocity makes
        # the same formula hold when locating a source with a fixed mic.
        half = int(np.ceil(0.5 * np.sqrt(3.0) * step * fs / c))
        tau = direct - np.linalg.norm(points - fixed, axis=-1) * fs / c
        ok = (tau >= latency_range[0]) & (tau <= latency_range[1])
        times = predicted_arrivals(size, fixed, points, fs, tau, c)[:, 1:]
        return np.where(ok, _total_score(maximum_filter1d(detection, 2 * half + 1), times), -1.0)

    scores = grid_scores(cand, grid_step)
    # The best coarse points are each zoomed coarse to fine (look around the best points at half
    # the step, twice); the best distinct zoomed points (>= 5 cm apart) are refined locally.
    unit = np.array([-1.0, 0.0, 1.0])
    offsets = np.stack(np.meshgrid(unit, unit, unit, indexing="ij"), -1).reshape(-1, 3)
    zoomed, zoomed_scores = [], []
    for i in np.argsort(-scores)[: 8 * n_starts]:
        if scores[i] < 0:
            break
        points, step = cand[i][None], grid_step
        for _ in range(2):
            step = step / 2
            around = (points[:, None, :] + step * offsets).reshape(-1, 3)
            points = np.unique(np.round(np.clip(around, lower, upper), 6), axis=0)
            local = grid_scores(points, step)
            order = np.argsort(-local)[:8]
            points = points[order]
        zoomed.append(points[0])
        zoomed_scores.append(local[order[0]])
    starts = []
    for i in np.argsort(zoomed_scores)[::-1]:
        if all(np.linalg.norm(zoomed[i] - s0) > 0.05 for s0 in starts):
            starts.append(zoomed[i])
        if len(starts) >= n_starts:
            break
    half_cell = int(np.ceil(0.5 * np.sqrt(3.0) * step * fs / c))
    smooth = gaussian_filter1d(detection, 1.0)
    # coarse-to-fine score functions for the local refinement
    ladder = [maximum_filter1d(detection, 2 * w + 1) for w in sorted({half_cell, 1}, reverse=True)]
    ladder.append(smooth)
    peak_t, peak_h = _local_peaks(detection, threshold)
    refined = [
        _refine(s0, ladder, direct, size, fixed, fs, c, box, latency_range, peak_t, peak_h,
                match_window)
        for s0 in starts
    ]
    refined_scores = [
        float(_total_score(smooth, predicted_arrivals(size, fixed, p, fs, lat, c)[1:]))
        for p, lat in refined
    ]
    ranking = np.argsort(refined_scores)[::-1]
    best = int(ranking[0])
    position, tau = refined[best]
    alternatives = []
    for i in ranking[1:]:
        taken = [position] + [a["position"] for a in alternatives]
        if all(np.linalg.norm(refined[i][0] - q) > 0.3 for q in taken):
            alternatives.append(
                {"position": refined[i][0], "latency": refined[i][1], "score": refined_scores[i]}
            )
    alternatives = alternatives[:n_alternatives]
    # --- report
    predicted = predicted_arrivals(size, fixed, position, fs, tau, c)
    measured, heights = _match(predicted, peak_t, peak_h, match_window)
    matched = np.isfinite(measured)
    residuals = measured - predicted
    jac = _jacobian(size, fixed, position, fs, c)[matched]
    dof = max(int(matched.sum()) - 4, 1)
    sigma = max(float(np.sqrt(np.nansum(residuals**2) / dof)), 0.5)
    try:
        cov = sigma**2 * np.linalg.inv(jac.T @ jac)
        std = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        std = np.full(4, np.inf)
    perturbation = np.empty((3, 2, 7))
    for axis in range(3):
        for j, sign in enumerate((-1.0, 1.0)):
            moved = position.copy()
            moved[axis] += sign * perturbation_step
            perturbation[axis, j] = predicted_arrivals(size, fixed, moved, fs, tau, c) - predicted
    return CalibrationResult(
        position=position, latency=float(tau), sample_rate=fs, predicted=predicted,
        measured=measured, residuals=residuals, peak_heights=heights, matched=matched, std=std,
        perturbation=perturbation, perturbation_step=perturbation_step,
        score=refined_scores[best], alternatives=alternatives, fixed_point=fixed,
        detection=detection,
    )


def _match(predicted, peak_t, peak_h, window):
    """One-to-one matching of predicted arrivals to detection peaks within ``window`` samples.

    Pairs are taken greedily by increasing time distance (ties: stronger peak first); a peak
    explains at most one arrival. Returns (measured times, peak heights), NaN when unmatched.
    """
    measured = np.full(predicted.shape, np.nan)
    heights = np.full(predicted.shape, np.nan)
    pairs = [
        (abs(peak_t[j] - t) - 0.01 * peak_h[j], k, j)
        for k, t in enumerate(predicted)
        for j in np.flatnonzero(np.abs(peak_t - t) <= window)
    ]
    used_k, used_j = set(), set()
    for _, k, j in sorted(pairs):
        if k in used_k or j in used_j:
            continue
        used_k.add(k)
        used_j.add(j)
        measured[k], heights[k] = peak_t[j], peak_h[j]
    return measured, heights


def _jacobian(size, fixed, position, fs, c):
    """d(arrival)/d(x, y, z, latency): (7, 4), samples per metre and per sample."""
    points = np.concatenate([fixed[None], image_sources(size, fixed)], axis=0)
    diff = position[None] - points
    unit = diff / np.linalg.norm(diff, axis=-1, keepdims=True)
    return np.concatenate([unit * fs / c, np.ones((7, 1))], axis=1)


def _refine(start, ladder, direct, size, fixed, fs, c, box, latency_range, peak_t, peak_h,
            window):
    """Local refinement of a grid point.

    1. Nelder-Mead maximisation of the score over the position (latency eliminated through the
       measured direct sound), inside the box and the latency prior, on a ladder of detection
       functions from coarse (max-filtered over a grid cell) to fine.
    2. Polish: peaks within ``window`` samples of the arrivals predicted there are matched once
       (one-to-one) and (position, latency) is fitted to them by least squares (Cauchy loss,
       weights sqrt(peak height)), re-matching after each fit; needs at least five matched
       arrivals, the direct sound included, and stops before moving 5 cm from step 1.
    """
    lower = np.array([b[0] for b in box])
    upper = np.array([b[1] for b in box])

    def negative_score(p, detection):
        if np.any(p < lower) or np.any(p > upper):
            return 10.0
        tau = direct - np.linalg.norm(p - fixed) * fs / c
        if not latency_range[0] <= tau <= latency_range[1]:
            return 10.0
        return -float(_total_score(detection, predicted_arrivals(size, fixed, p, fs, tau, c)[1:]))

    position = np.asarray(start, dtype=np.float64)
    step = 0.02
    for detection in ladder:
        simplex = position + np.vstack([np.zeros(3), step * np.eye(3)])
        sol = minimize(negative_score, position, args=(detection,), method="Nelder-Mead",
                       options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-7,
                                "maxiter": 2000})
        if sol.fun <= negative_score(position, detection):
            position = sol.x
        step = max(step / 2, 0.005)
    tau = direct - np.linalg.norm(position - fixed) * fs / c

    lo = np.r_[lower, -np.inf]
    hi = np.r_[upper, np.inf]
    start_position = position.copy()
    polished = (position, float(tau))
    for _ in range(5):
        predicted = predicted_arrivals(size, fixed, position, fs, tau, c)
        measured, heights = _match(predicted, peak_t, peak_h, window)
        use = np.isfinite(measured)
        if use.sum() < 5 or not use[0]:
            break
        weights = np.sqrt(heights[use])

        def resid(p, use=use, weights=weights, measured=measured):
            pred = predicted_arrivals(size, fixed, p[:3], fs, p[3], c)
            return weights * (pred[use] - measured[use])

        x0 = np.clip(np.r_[position, tau], lo + 1e-9, hi - 1e-9)
        fit = least_squares(resid, x0, bounds=(lo, hi), loss="cauchy", f_scale=1.0)
        if np.linalg.norm(fit.x[:3] - start_position) >= 0.05:
            break
        moved = np.linalg.norm(fit.x[:3] - position)
        position, tau = fit.x[:3], float(fit.x[3])
        polished = (position, tau)
        if moved < 1e-5:
            break
    return polished


def _default_box(size, height, margin):
    size = np.asarray(size, dtype=np.float64)
    lo_z = max(height[0], margin)
    hi_z = min(height[1], size[2] - margin)
    return [(margin, size[0] - margin), (margin, size[1] - margin), (lo_z, hi_z)]


def locate_microphone(
    rir,
    sample_rate: float,
    size,
    source,
    *,
    height=(1.0, 1.6),
    box=None,
    margin: float = 0.3,
    latency_range=(-0.0005, 0.010),
    c: float = SPEED_OF_SOUND,
    grid_step: float = 0.04,
    match_window: float = 3.0,
    threshold: float = 0.08,
    max_length: int | None = None,
    max_delay: float = 0.025,
    n_starts: int = 8,
    n_alternatives: int = 3,
    perturbation_step: float = 0.05,
) -> CalibrationResult:
    """Estimate the microphone position from a measured RIR and the known source position.

    Parameters
    ----------
    rir : (T,) or (C, T) impulse response(s) of one microphone (several capsules allowed),
        time last, at ``sample_rate``; only the first ``max_length`` samples are used.
    sample_rate : Hz (use the measurement rate: 48 kHz gives 7 mm per sample).
    size : (Lx, Ly, Lz) metres. source : (3,) metres.
    box : ((x0, x1), (y0, y1), (z0, z1)) search box in metres; default: the room shrunk by
        ``margin`` with z limited to ``height``.
    height : (min, max) microphone height prior, metres (default: a seated listener's ears,
        1.0-1.6 m; ignored when ``box`` is given).
    latency_range : (min, max) apparent latency prior, seconds (default -0.5 ms to 10 ms).
    c : speed of sound, m/s.
    grid_step : metres, global search grid.
    match_window : samples; a detection peak farther than this from a predicted arrival is not
        matched to it.
    threshold : minimum detection value (relative to the direct sound) of a peak.
    max_length : samples of the RIR analysed (default 80 ms).
    max_delay : seconds after the direct sound beyond which predicted reflections are neither
        scored nor matched (default 25 ms; reported as unmatched).
    n_starts : best distinct grid points (at least 5 cm apart, after zooming the best
        ``8 n_starts`` coarse points to a quarter of ``grid_step``) refined locally.
    n_alternatives : runner-up solutions to report.
    perturbation_step : metres, for the sensitivity table.

    Returns
    -------
    CalibrationResult. Raises ValueError for a bad signal or an empty prior.
    """
    size = np.asarray(size, dtype=np.float64)
    if box is None:
        box = _default_box(size, height, margin)
    if max_length is None:
        max_length = int(np.ceil(0.08 * sample_rate))  # 80 ms: first-order reflections only
    detection, direct = arrival_detection(rir, max_length=max_length)
    # Reflections later than max_delay after the direct sound are not used: by then the echo
    # density is high and the detection function no longer singles out specular reflections.
    detection = detection[: direct + int(round(max_delay * sample_rate)) + 1]
    latency_samples = (latency_range[0] * sample_rate, latency_range[1] * sample_rate)
    return _locate(
        detection, direct, size, source, sample_rate, c, box, latency_samples, grid_step,
        match_window, threshold, n_alternatives, perturbation_step, n_starts,
    )


def locate_source(
    rir,
    sample_rate: float,
    size,
    mic,
    *,
    height=(0.5, 2.0),
    box=None,
    margin: float = 0.3,
    latency=None,
    latency_tolerance: float = 1e-4,
    latency_range=(-0.0005, 0.010),
    c: float = SPEED_OF_SOUND,
    grid_step: float = 0.04,
    match_window: float = 3.0,
    threshold: float = 0.08,
    max_length: int | None = None,
    max_delay: float = 0.025,
    n_starts: int = 8,
    n_alternatives: int = 3,
    perturbation_step: float = 0.05,
) -> CalibrationResult:
    """Estimate a source position from a measured RIR and the known microphone position.

    Reciprocity: the arrivals are those of a source at the mic position heard at the source, so
    this is ``locate_microphone`` with the roles swapped. When the apparent ``latency`` is known
    (seconds; same measurement chain, e.g. from ``locate_microphone`` on another source), it is
    enforced within ``latency_tolerance`` seconds, which pins the source-mic distance.
    Parameters and result as ``locate_microphone`` (``position`` is the source).
    """
    if latency is not None:
        latency_range = (latency - latency_tolerance, latency + latency_tolerance)
    return locate_microphone(
        rir, sample_rate, size, mic, height=height, box=box, margin=margin,
        latency_range=latency_range, c=c, grid_step=grid_step, match_window=match_window,
        threshold=threshold, max_length=max_length, max_delay=max_delay, n_starts=n_starts,
        n_alternatives=n_alternatives,
        perturbation_step=perturbation_step,
    )


def room_config_yaml(
    name: str,
    size,
    source,
    mic,
    target_file: str,
    channel,
    comment: str,
    decimals: int = 3,
) -> str:
    """Text of a strict room config (``sdn.data.load_room_config``) with a provenance comment.

    Positions are rounded to ``decimals`` (mm by default). ``comment`` may span several lines;
    each becomes a YAML comment line.
    """
    def vec(v):
        return "[" + ", ".join(f"{float(x):.{decimals}f}" for x in v) + "]"

    lines = [f"# {line}".rstrip() for line in comment.strip().splitlines()]
    channel_text = channel if isinstance(channel, str) else int(channel)
    lines += [
        f"name: {name}",
        f"size: {vec(size)}",
        f"source: {vec(source)}",
        f"mic: {vec(mic)}",
        f"target: {{file: {target_file}, channel: {channel_text}}}",
    ]
    return "\n".join(lines) + "\n"


def leave_one_channel_out(locate, rir, *args, **kwargs) -> list:
    """Rerun a locator once per channel left out (jackknife over the capsules of an array).

    Parameters
    ----------
    locate : ``locate_microphone`` or ``locate_source``.
    rir : (C, T) with C >= 2.
    *args, **kwargs : passed to ``locate`` after the reduced RIR.

    Returns
    -------
    list of C CalibrationResult, the i-th without channel i. The spread of their positions shows
    how much the estimate depends on any single capsule (and so on which peaks are matched).
    """
    h = _as_channels(rir)
    if h.shape[0] < 2:
        raise ValueError("leave-one-channel-out needs at least two channels")
    return [locate(np.delete(h, i, axis=0), *args, **kwargs) for i in range(h.shape[0])]

