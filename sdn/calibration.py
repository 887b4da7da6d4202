r"""Microphone (or source) position from a measured RIR: direct sound + first-order reflections.

Method (all times in samples at the measurement rate, typically 48 kHz)
-------------------------------------------------------------------------
1. **Arrival detection function** :math:`D(n)` (:func:`sdn.arrivals.arrival_detection`): the
   channels' matched-filter envelopes, normalised to 1 at the direct sound and averaged (capsules
   of a small array are within about 1-2 cm, i.e. 1-3 samples at 48 kHz), clipped to [0, 1].
2. **Model** (image-source method): for a candidate microphone :math:`m` the direct path arrives at
   :math:`t_0 = \tau + f_s |s - m| / c` and the reflection on wall k at
   :math:`t_k = \tau + f_s |s_k - m| / c` (:func:`sdn.arrivals.predicted_arrivals`). The apparent
   latency :math:`\tau` (measurement chain plus the loudspeaker's onset-to-peak delay, unknown)
   cancels in :math:`t_k - t_0`; :math:`t_0` is measured, so :math:`\tau = t_0 - f_s |s - m| / c`
   and only :math:`m` is searched.
3. **Global search**: score :math:`\sum_k D(t_k)` over the first-order reflections arriving within
   ``max_delay`` (25 ms) of the direct sound (later ones fall where the echo density is already
   high and carry no information); one peak must not confirm two reflections
   (:func:`sdn.arrivals.reflection_score`). The score is evaluated on a grid over the prior box
   (inside the room, height range, latency range) using :math:`D` max-filtered over half a grid
   cell; the best grid points are zoomed to a quarter of the step, and the best distinct ones are
   refined.
4. **Refinement**: Nelder-Mead on the score, from coarse (max-filtered) to fine (Gaussian,
   sigma = 1 sample) versions of :math:`D`; then peaks of :math:`D` within ``match_window`` samples
   of each predicted arrival are matched one-to-one and :math:`(m, \tau)` is fitted by least
   squares on the matched arrivals (direct included; Cauchy loss, weights sqrt(peak height)). The
   refined point with the highest score is the estimate.
5. **Report** (:class:`CalibrationResult`): position, latency, per-arrival residuals, the local
   covariance :math:`\sigma^2 (J^T J)^{-1}` (:math:`\sigma`: residual RMS, floored at 0.5 sample;
   local only: it says nothing about distant near-tied solutions), the change of every arrival for
   +-5 cm moves along each axis, and the runner-up solutions with their scores (ambiguity).
   :func:`leave_one_channel_out` reruns everything without each capsule (jackknife);
   :func:`compare_with_published` compares an estimate with a position published with the dataset.

The same machinery locates a source with a known microphone (:func:`locate_source`): the roles of
source and microphone are symmetric in the image-source model (reciprocity). Both locators take
their settings from one :class:`LocateOptions`.

Not done: no directivity model of the capsules or loudspeaker (the inter-capsule time
differences, which carry the direction of each arrival, are not used), no higher-order reflections, no furniture (specular reflections from desks and
chairs can produce peaks the model does not predict; they are simply not matched), speed of sound
fixed (343 m/s unless given).

References
----------
- J. B. Allen, D. A. Berkley, "Image method for efficiently simulating small-room
  acoustics", J. Acoust. Soc. Am. 65(4), 943-950, 1979.
- J. A. Nelder, R. Mead, "A simplex method for function minimization", Comput. J. 7(4),
  308-313, 1965.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from .arrivals import (ARRIVAL_NAMES, arrival_detection, arrival_jacobian, as_channels, detection_peaks,
                       match_arrivals, predicted_arrivals, reflection_score)
from .geometry import SPEED_OF_SOUND
from .localisation import SearchProblem, fit_matched_arrivals, grid_starts, maximise_score

__all__ = [
    "LocateOptions", "CalibrationResult", "locate_microphone", "locate_source",
    "leave_one_channel_out", "compare_with_published",
]

_MIC_HEIGHT = (1.0, 1.6)  # m, a seated listener's ears
_SOURCE_HEIGHT = (0.5, 2.0)  # m


@dataclass(frozen=True)
class LocateOptions:
    """Priors and settings shared by :func:`locate_microphone` and :func:`locate_source`.

    Attributes
    ----------
    height : (float, float) or None
        Height prior of the point searched, metres; None: 1.0-1.6 m for a microphone (a seated
        listener), 0.5-2.0 m for a source. Ignored when ``box`` is given.
    box : ((float, float), (float, float), (float, float)) or None
        Search box ((x0, x1), (y0, y1), (z0, z1)), metres; None: the room shrunk by ``margin``
        with z limited to ``height``.
    margin : float
        Metres from the walls of the default box.
    latency_range : (float, float)
        Apparent latency prior, seconds.
    c : float
        Speed of sound, m/s.
    grid_step : float
        Metres between points of the global search grid.
    match_window : float
        Samples; a detection peak farther than this from a predicted arrival is not matched to it.
    threshold : float
        Smallest detection peak (1 = the direct sound) that can be matched.
    max_length : int or None
        Samples of the RIR analysed; None: 80 ms (first-order reflections only).
    max_delay : float
        Seconds after the direct sound beyond which reflections are neither scored nor matched.
    n_starts : int
        Best distinct grid points (at least 5 cm apart, after zooming the best ``8 n_starts``
        coarse points to a quarter of ``grid_step``) refined locally.
    n_alternatives : int
        Runner-up solutions to report.
    perturbation_step : float
        Metres, for the sensitivity table.
    """

    height: tuple | None = None
    box: tuple | None = None
    margin: float = 0.3
    latency_range: tuple = (-0.0005, 0.010)
    c: float = SPEED_OF_SOUND
    grid_step: float = 0.04
    match_window: float = 3.0
    threshold: float = 0.08
    max_length: int | None = None
    max_delay: float = 0.025
    n_starts: int = 8
    n_alternatives: int = 3
    perturbation_step: float = 0.05

    def replace(self, **changes) -> "LocateOptions":
        """Copy with some fields changed; TypeError naming the valid fields for an unknown one."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; LocateOptions has "
                            f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CalibrationResult:
    """Estimated position and how well the measured arrivals support it.

    Attributes
    ----------
    position : ndarray, shape (3,)
        Metres, the estimated point (microphone, or source for :func:`locate_source`).
    latency : float
        Samples at ``sample_rate``: apparent latency (:math:`t_0 - f_s d / c`; chain latency plus
        the loudspeaker's onset-to-peak delay).
    sample_rate : float
        Hz of the times below.
    predicted : ndarray, shape (7,)
        Samples, model arrivals in :data:`sdn.arrivals.ARRIVAL_NAMES` order.
    measured : ndarray, shape (7,)
        Samples of the matched peaks of the detection function, NaN when unmatched.
    residuals : ndarray, shape (7,)
        ``measured - predicted``, samples, NaN when unmatched.
    peak_heights : ndarray, shape (7,)
        Detection value of each matched peak (1 = as strong as the direct sound).
    matched : ndarray of bool, shape (7,)
    std : ndarray, shape (4,)
        One-sigma uncertainty of x, y, z (metres) and of the latency (samples), from
        :math:`\\sigma^2 (J^T J)^{-1}` at the solution.
    perturbation : ndarray, shape (3, 2, 7)
        Change of every predicted arrival (samples) when the position moves by -step / +step
        along x, y, z.
    perturbation_step : float
        Metres.
    score : float
        Score of the solution: the smoothed detection function summed at the reflection times.
    alternatives : list of dict
        ``position``, ``latency`` and ``score`` of the next-best solutions at least 0.3 m away.
    fixed_point : ndarray, shape (3,) or None
        The known point (the source for :func:`locate_microphone`, the mic for
        :func:`locate_source`).
    detection : ndarray or None
        The detection function searched (up to ``max_delay`` after the direct sound).
    room_size : ndarray, shape (3,) or None
        Metres.
    c : float
        Speed of sound used, m/s.
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
    room_size: np.ndarray | None = None
    c: float = SPEED_OF_SOUND

    @property
    def latency_seconds(self) -> float:
        """The apparent latency in seconds."""
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
        """JSON-serialisable summary (positions in metres, times in samples), rounded to ``decimals``."""

        def rnd(x):
            return _nan_to_none(np.round(np.asarray(x, dtype=np.float64), decimals).tolist())

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
                axis: {"minus": rnd(self.perturbation[i, 0]), "plus": rnd(self.perturbation[i, 1])}
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


# --------------------------------------------------------------------------------------------
# The search (stages in sdn.localisation)
# --------------------------------------------------------------------------------------------


def _report(problem: SearchProblem, position, tau, peaks, opts: LocateOptions, score, alternatives):
    """The CalibrationResult of a solution: matches, residuals, covariance, sensitivity."""
    predicted = problem.arrivals(position, tau)
    measured, heights = match_arrivals(predicted, *peaks, opts.match_window)
    matched = np.isfinite(measured)
    residuals = measured - predicted
    jac = arrival_jacobian(problem.size, problem.fixed, position, problem.fs, problem.c)[matched]
    dof = max(int(matched.sum()) - 4, 1)
    sigma = max(float(np.sqrt(np.nansum(residuals**2) / dof)), 0.5)
    try:
        std = np.sqrt(np.clip(np.diag(sigma**2 * np.linalg.inv(jac.T @ jac)), 0, None))
    except np.linalg.LinAlgError:
        std = np.full(4, np.inf)
    perturbation = np.empty((3, 2, 7))
    for axis in range(3):
        for j, sign in enumerate((-1.0, 1.0)):
            moved = position.copy()
            moved[axis] += sign * opts.perturbation_step
            perturbation[axis, j] = problem.arrivals(moved, tau) - predicted
    return CalibrationResult(
        position=position, latency=float(tau), sample_rate=problem.fs, predicted=predicted,
        measured=measured, residuals=residuals, peak_heights=heights, matched=matched, std=std,
        perturbation=perturbation, perturbation_step=opts.perturbation_step, score=score,
        alternatives=alternatives, fixed_point=problem.fixed, detection=problem.detection,
        room_size=problem.size, c=problem.c,
    )


def _locate(rir, sample_rate, size, fixed, opts: LocateOptions, default_height) -> CalibrationResult:
    size = np.asarray(size, dtype=np.float64)
    box = opts.box
    if box is None:
        height = opts.height if opts.height is not None else default_height
        box = [(opts.margin, size[0] - opts.margin), (opts.margin, size[1] - opts.margin),
               (max(height[0], opts.margin), min(height[1], size[2] - opts.margin))]
    max_length = opts.max_length if opts.max_length is not None else int(np.ceil(0.08 * sample_rate))
    detection, direct = arrival_detection(rir, max_length=max_length)
    # Reflections later than max_delay after the direct sound are not used: by then the echo
    # density is high and the detection function no longer singles out specular reflections.
    detection = detection[: direct + int(round(opts.max_delay * sample_rate)) + 1]
    problem = SearchProblem(
        detection=detection, direct=direct, size=size, fixed=np.asarray(fixed, dtype=np.float64),
        fs=float(sample_rate), c=opts.c, lower=np.array([b[0] for b in box]),
        upper=np.array([b[1] for b in box]),
        latency_range=(opts.latency_range[0] * sample_rate, opts.latency_range[1] * sample_rate),
    )
    starts = grid_starts(problem, opts.grid_step, opts.n_starts)
    smooth = gaussian_filter1d(detection, 1.0)
    half_cell = problem.cell_samples(opts.grid_step / 4)  # the step of the last zoom
    ladder = [maximum_filter1d(detection, 2 * w + 1) for w in sorted({half_cell, 1}, reverse=True)]
    ladder.append(smooth)
    peaks = detection_peaks(detection, opts.threshold)
    refined = [fit_matched_arrivals(problem, maximise_score(problem, s0, ladder), peaks, opts.match_window)
               for s0 in starts]
    scores = [float(reflection_score(smooth, problem.arrivals(p, lat)[1:])) for p, lat in refined]
    ranking = np.argsort(scores)[::-1]
    best = int(ranking[0])
    alternatives = []
    for i in ranking[1:]:
        taken = [refined[best][0]] + [a["position"] for a in alternatives]
        if all(np.linalg.norm(refined[i][0] - q) > 0.3 for q in taken):
            alternatives.append({"position": refined[i][0], "latency": refined[i][1], "score": scores[i]})
    return _report(problem, *refined[best], peaks, opts, scores[best], alternatives[: opts.n_alternatives])


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def locate_microphone(rir, sample_rate: float, size, source, options: LocateOptions | None = None,
                      **changes) -> CalibrationResult:
    """Estimate the microphone position from a measured RIR and the known source position.

    Parameters
    ----------
    rir : array_like, shape (T,) or (C, T)
        Impulse response(s) of one microphone (several capsules allowed), time last, at
        ``sample_rate``.
    sample_rate : float
        Hz (use the measurement rate: 48 kHz gives 7 mm per sample).
    size : array_like, shape (3,)
        Room dimensions, metres.
    source : array_like, shape (3,)
        Source position, metres.
    options : LocateOptions, optional
        Priors and settings (default ``LocateOptions()``).
    **changes
        Fields of :class:`LocateOptions` to change, e.g. ``box=...``, ``grid_step=0.02``.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    ValueError
        For a bad signal or an empty prior.

    Examples
    --------
    The shipped HOMULA-RIR measurement, S1 to the 8 capsules of R2-HOM1, searched in the audience
    area (at least 1 m in front of S1) at a seated listener's height:

    >>> import numpy as np
    >>> from sdn.calibration import locate_microphone
    >>> from sdn.data import data_path
    >>> from sdn.rir import read_audio
    >>> h, fs = read_audio(data_path("rir-S1-R2-HOM1.wav"))
    >>> box = [(0.3, 5.16), (1.96, 14.22), (1.0, 1.6)]
    >>> result = locate_microphone(h, fs, (5.46, 14.52, 3.38), (2.28, 0.96, 1.20), box=box)
    >>> np.round(result.position, 3).tolist(), round(1e3 * result.latency_seconds, 2)
    ([0.649, 4.021, 1.137], 5.72)
    """
    opts = (options or LocateOptions()).replace(**changes)
    return _locate(rir, sample_rate, size, source, opts, _MIC_HEIGHT)


def locate_source(rir, sample_rate: float, size, mic, options: LocateOptions | None = None, *,
                  latency: float | None = None, latency_tolerance: float = 1e-4,
                  **changes) -> CalibrationResult:
    """Estimate a source position from a measured RIR and the known microphone position.

    Reciprocity: the arrivals are those of a source at the mic position heard at the source, so
    this is :func:`locate_microphone` with the roles swapped.

    Parameters
    ----------
    rir : array_like, shape (T,) or (C, T)
        Impulse response(s), time last, at ``sample_rate``.
    sample_rate : float
        Hz.
    size : array_like, shape (3,)
        Room dimensions, metres.
    mic : array_like, shape (3,)
        Microphone position, metres.
    options : LocateOptions, optional
        Priors and settings (default ``LocateOptions()``; the default height prior is 0.5-2.0 m).
    latency : float, optional
        Known apparent latency, seconds (same measurement chain, e.g. from
        :func:`locate_microphone` on another source): enforced within ``latency_tolerance``,
        which pins the source-mic distance; replaces ``latency_range``.
    latency_tolerance : float
        Seconds.
    **changes
        Fields of :class:`LocateOptions` to change.

    Returns
    -------
    CalibrationResult
        ``position`` is the source.
    """
    opts = (options or LocateOptions()).replace(**changes)
    if latency is not None:
        opts = opts.replace(latency_range=(latency - latency_tolerance, latency + latency_tolerance))
    return _locate(rir, sample_rate, size, mic, opts, _SOURCE_HEIGHT)


def leave_one_channel_out(locate, rir, *args, **kwargs) -> list:
    """Rerun a locator once per channel left out (jackknife over the capsules of an array).

    Parameters
    ----------
    locate : callable
        :func:`locate_microphone` or :func:`locate_source`.
    rir : array_like, shape (C, T)
        C >= 2.
    *args, **kwargs
        Passed to ``locate`` after the reduced RIR.

    Returns
    -------
    list of CalibrationResult
        C results, the i-th without channel i. The spread of their positions shows how much the
        estimate depends on any single capsule (and so on which peaks are matched).
    """
    h = as_channels(rir)
    if h.shape[0] < 2:
        raise ValueError("leave-one-channel-out needs at least two channels")
    return [locate(np.delete(h, i, axis=0), *args, **kwargs) for i in range(h.shape[0])]


def compare_with_published(result: CalibrationResult, name: str = "R2-HOM1",
                           capsule: int | None = None) -> dict:
    """Compare an estimate with the position published with HOMULA-RIR.

    The published position is read by :func:`sdn.homula.published_position` (present after
    ``python -m sdn.data fetch --from-zenodo``). Besides the error, the published position is
    scored like the estimate: the detection function of the measurement, smoothed, summed at the
    reflections the model predicts there (the latency eliminated with the measured direct sound).
    A published position that scores much lower than the estimate is not supported by the
    measured reflections (e.g. the search found a near-tied solution, or the positions use
    another frame).

    Parameters
    ----------
    result : CalibrationResult
        From :func:`locate_microphone` (or :func:`locate_source`, with a source ``name``).
    name : str
        Published array (``"R2-HOM1"``) or source (``"S2"``).
    capsule : int, optional
        One capsule instead of the array's centre.

    Returns
    -------
    dict
        JSON-serialisable: ``published_m``, ``estimate_m`` and ``error_m`` (x, y, z), ``error_norm_m``,
        ``horizontal_error_m``, ``height_error_m``, and for ``estimate`` and ``published``: the
        distance to the fixed point (m), the apparent latency (samples) and the score.
    """
    from .homula import published_position

    if result.detection is None or result.room_size is None:
        raise ValueError("compare_with_published needs a result of locate_microphone or locate_source")
    published = published_position(name, capsule=capsule)
    error = result.position - published
    direct = result.measured[0] if result.matched[0] else result.predicted[0]
    smooth = gaussian_filter1d(result.detection, 1.0)

    def entry(point, latency=None, score=None):
        distance = float(np.linalg.norm(point - result.fixed_point))
        if latency is None:
            latency = direct - distance * result.sample_rate / result.c
            times = predicted_arrivals(result.room_size, result.fixed_point, point, result.sample_rate,
                                       latency, result.c)
            score = float(reflection_score(smooth, times[1:]))
        return {"distance_m": distance, "latency_samples": float(latency), "score": float(score)}

    return {
        "name": name if capsule is None else f"{name}:{capsule}",
        "published_m": published.tolist(),
        "estimate_m": np.asarray(result.position, dtype=float).tolist(),
        "error_m": error.tolist(),
        "error_norm_m": float(np.linalg.norm(error)),
        "horizontal_error_m": float(np.linalg.norm(error[:2])),
        "height_error_m": float(error[2]),
        "estimate": entry(result.position, result.latency, result.score),
        "published": entry(published),
    }
