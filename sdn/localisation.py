"""Search for a point from its early arrivals: global grid, score maximisation, least squares.

The stages of :func:`sdn.calibration.locate_microphone` (and ``locate_source``), each on one
:class:`SearchProblem`: the detection function of a measurement, the geometry (room, the known
point) and the prior (box, latency range). See :mod:`sdn.calibration` for the method.

1. :func:`grid_starts`: score every point of a grid over the prior box on the detection function
   max-filtered over half a grid cell; zoom the best ones twice to half the step; keep the best
   distinct ones.
2. :func:`maximise_score`: Nelder-Mead on the score from a start, on detection functions from
   coarse to fine.
3. :func:`fit_matched_arrivals`: least squares of position and latency on the detection peaks
   matched to the predicted arrivals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.optimize import least_squares, minimize

from .arrivals import match_arrivals, predicted_arrivals, reflection_score

__all__ = ["SearchProblem", "grid_starts", "maximise_score", "fit_matched_arrivals"]


@dataclass(frozen=True)
class SearchProblem:
    """What every stage of the search needs: the measurement, the geometry and the prior.

    Attributes
    ----------
    detection : ndarray, shape (T,)
        Detection function of the measurement (:func:`sdn.arrivals.arrival_detection`).
    direct : int
        Sample of the measured direct sound.
    size : ndarray, shape (3,)
        Room dimensions, metres.
    fixed : ndarray, shape (3,)
        The known point (source when a microphone is searched), metres.
    fs : float
        Sample rate, Hz.
    c : float
        Speed of sound, m/s.
    lower : ndarray, shape (3,)
        Lower corner of the search box, metres.
    upper : ndarray, shape (3,)
        Upper corner of the search box, metres.
    latency_range : (float, float)
        Apparent latency prior, samples.
    """

    detection: np.ndarray
    direct: int
    size: np.ndarray
    fixed: np.ndarray
    fs: float
    c: float
    lower: np.ndarray
    upper: np.ndarray
    latency_range: tuple  # samples

    def latency(self, points):
        """Apparent latency (samples) of candidate points, eliminated with the direct sound."""
        return self.direct - np.linalg.norm(points - self.fixed, axis=-1) * self.fs / self.c

    def arrivals(self, points, latency):
        """Predicted arrivals (..., 7), samples, of points (..., 3) with their latencies."""
        return predicted_arrivals(self.size, self.fixed, points, self.fs, latency, self.c)

    def cell_samples(self, step):
        """Half a grid cell's diagonal, in samples of arrival time."""
        return int(np.ceil(0.5 * np.sqrt(3.0) * step * self.fs / self.c))


def _grid(lo, hi, step):
    """At least two points from ``lo`` to ``hi`` (included), at most ``step`` apart."""
    n = max(int(np.ceil((hi - lo) / step)) + 1, 2)
    return np.linspace(lo, hi, n)


def _grid_scores(problem: SearchProblem, points, step):
    """Score of grid points; a grid cell spans several samples of arrival time, so the detection
    function is max-filtered over half a cell diagonal (a sharp peak between points is not
    missed). -1 outside the latency prior."""
    half = problem.cell_samples(step)
    tau = problem.latency(points)
    ok = (tau >= problem.latency_range[0]) & (tau <= problem.latency_range[1])
    times = problem.arrivals(points, tau)[:, 1:]
    return np.where(ok, reflection_score(maximum_filter1d(problem.detection, 2 * half + 1), times), -1.0)


def grid_starts(problem: SearchProblem, grid_step: float, n_starts: int) -> list:
    """Starting points of the local search: the best distinct points of a grid search.

    The best ``8 n_starts`` grid points are each zoomed twice (the 27 neighbours at half the step,
    keeping the best 8), and the best zoomed points at least 5 cm apart are returned.

    Parameters
    ----------
    problem : SearchProblem
    grid_step : float
        Metres between grid points.
    n_starts : int
        Most points returned.

    Returns
    -------
    list of ndarray, shape (3,)
        Metres, best first.

    Raises
    ------
    ValueError
        When no grid point is compatible with the latency prior.
    """
    axes = [_grid(problem.lower[i], problem.upper[i], grid_step) for i in range(3)]
    cand = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=-1)
    tau = problem.latency(cand)
    keep = (tau >= problem.latency_range[0]) & (tau <= problem.latency_range[1])
    if not np.any(keep):
        raise ValueError(
            f"no candidate position in the prior box is compatible with a latency in "
            f"{problem.latency_range} samples (direct sound at sample {problem.direct}); widen the prior"
        )
    cand = cand[keep]
    scores = _grid_scores(problem, cand, grid_step)
    unit = np.array([-1.0, 0.0, 1.0])
    offsets = np.stack(np.meshgrid(unit, unit, unit, indexing="ij"), -1).reshape(-1, 3)
    zoomed, zoomed_scores = [], []
    for i in np.argsort(-scores)[: 8 * n_starts]:
        points, step = cand[i][None], grid_step
        for _ in range(2):
            step = step / 2
            around = (points[:, None, :] + step * offsets).reshape(-1, 3)
            points = np.unique(np.round(np.clip(around, problem.lower, problem.upper), 6), axis=0)
            local = _grid_scores(problem, points, step)
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
    return starts


def maximise_score(problem: SearchProblem, start, ladder) -> np.ndarray:
    """Nelder-Mead maximisation of the reflection score over the position.

    The latency is eliminated with the measured direct sound; points outside the box or the
    latency prior score worst. Each rung of ``ladder`` restarts from the previous optimum with a
    smaller simplex (2 cm, halved down to 5 mm).

    Parameters
    ----------
    problem : SearchProblem
    start : array_like, shape (3,)
        Metres.
    ladder : list of ndarray, shape (T,)
        Detection functions from coarse (max-filtered) to fine.

    Returns
    -------
    ndarray, shape (3,)
        Metres.
    """

    def negative_score(p, detection):
        if np.any(p < problem.lower) or np.any(p > problem.upper):
            return 10.0
        tau = problem.latency(p)
        if not problem.latency_range[0] <= tau <= problem.latency_range[1]:
            return 10.0
        return -float(reflection_score(detection, problem.arrivals(p, tau)[1:]))

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
    return position


def fit_matched_arrivals(problem: SearchProblem, position, peaks, window) -> tuple:
    """Least squares of (position, latency) on the arrivals matched to detection peaks.

    Peaks within ``window`` samples of the predicted arrivals are matched one to one and the
    residuals weighted by the square root of the peak heights (Cauchy loss); the matching is
    redone after each fit. It needs at least five matched arrivals, the direct sound included, and
    stops before moving 5 cm from ``position``.

    Parameters
    ----------
    problem : SearchProblem
    position : ndarray, shape (3,)
        Start, metres.
    peaks : (ndarray, ndarray)
        Times (samples) and heights of the detection peaks (:func:`sdn.arrivals.detection_peaks`).
    window : float
        Samples.

    Returns
    -------
    position : ndarray, shape (3,)
        Metres.
    latency : float
        Samples.
    """
    peak_t, peak_h = peaks
    tau = float(problem.latency(position))
    lo = np.r_[problem.lower, -np.inf]
    hi = np.r_[problem.upper, np.inf]
    start = position.copy()
    polished = (position, tau)
    for _ in range(5):
        measured, heights = match_arrivals(problem.arrivals(position, tau), peak_t, peak_h, window)
        use = np.isfinite(measured)
        if use.sum() < 5 or not use[0]:
            break
        weights = np.sqrt(heights[use])

        def resid(p, use=use, weights=weights, measured=measured):
            return weights * (problem.arrivals(p[:3], p[3])[use] - measured[use])

        x0 = np.clip(np.r_[position, tau], lo + 1e-9, hi - 1e-9)
        fit = least_squares(resid, x0, bounds=(lo, hi), loss="cauchy", f_scale=1.0)
        if np.linalg.norm(fit.x[:3] - start) >= 0.05:
            break
        moved = np.linalg.norm(fit.x[:3] - position)
        position, tau = fit.x[:3], float(fit.x[3])
        polished = (position, tau)
        if moved < 1e-5:
            break
    return polished
