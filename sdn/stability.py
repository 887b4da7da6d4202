"""Stability of a scattering delay network: a passivity certificate and an a-posteriori growth test.

Certificate. Each junction ``S_k = (2 / sum(y_k)) 1 y_k^T - I`` is lossless in the norm weighted by
its admittances: ``S_k^T diag(y_k) S_k = diag(y_k)``. A wave leaving node k towards node l is
weighted by ``y_kl`` at k and arrives weighted by ``y_lk`` at l, scaled on the way by the wall
filter of k and the delay line k -> l, by at most ``g_kl = max_w |H_k(e^jw)| |E_kl(e^jw)|`` (by
the maximum-modulus principle the same bound holds for all ``|z| >= 1``; the fractional delay
lines of :mod:`sdn.delays` have ``|E| <= 1 + 6e-6``). If there are node scales ``c_k > 0`` with

    c_l * y_lk * g_kl^2 <= c_k * y_kl        for every directed line k -> l,

the network's energy in the scaled norm never grows, so ``I - A(z)`` is invertible for ``|z| > 1``
(no pole outside the unit circle). Taking logs, ``phi_l - phi_k <= log(y_kl / y_lk) - 2 log g_kl``
is a system of difference constraints: feasible iff no cycle of the complete graph on the 6
nodes has negative total weight (all 409 directed simple cycles are checked). Matched admittances
(``y_kl = y_lk``) with passive walls and lines (``g_kl <= 1``) always pass; the paper's
independently trained admittances may not, and neither do exactly lossless walls, whose margin is
then the lines' tiny excess gain.

The certificate is sufficient, not necessary. When it fails, :func:`growth_ratio` inspects the
anti-aliased impulse response over a buffer at least eight longest source-to-mic paths long: a
growing or time-wrapped (anti-causal) response puts more energy in the last eighth of the buffer
than in everything before it; a decaying or lossless one does not. Growth too slow to pass that
threshold within the buffer leaves the returned IR faithful to the (unstable) model: aliasing
stays below about 1e-3 of the response.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, permutations

import numpy as np
import torch

from .delays import line_gain
from .geometry import N_WALLS
from .node_system import PAIRS


def _cycle_incidence(n: int) -> np.ndarray:
    """(n_cycles, n * n) 0/1 matrix: row c marks the directed edges k -> l of simple cycle c."""
    rows = []
    for length in range(2, n + 1):
        for members in combinations(range(n), length):
            first, rest = members[0], members[1:]
            for order in permutations(rest):  # fix the first node: each cycle once
                path = (first,) + order + (first,)
                row = np.zeros(n * n)
                row[[a * n + b for a, b in zip(path[:-1], path[1:])]] = 1
                rows.append(row)
    return np.array(rows)


_CYCLES = _cycle_incidence(6)


class UnstableSDNError(RuntimeError):
    """The SDN has poles on or outside the evaluation circle: its impulse response grows."""


@dataclass(frozen=True)
class StabilityReport:
    """Passivity certificate of an SDN.

    Attributes
    ----------
    certified : True when the scaled-energy argument proves there is no pole outside |z| = 1.
    margin : minimum over directed node cycles of the cycle weight (nepers); >= 0 certifies.
    wall_gain_max : (6,) max over frequency of |H_k(e^jw)| per wall.
    line_gain_max : max over frequency and lines of |E_kl(e^jw)|.
    admittance_mismatch : max over lines of |log(y_kl / y_lk)|; 0 for matched admittances.
    """

    certified: bool
    margin: float
    wall_gain_max: np.ndarray
    line_gain_max: float
    admittance_mismatch: float


def passivity_certificate(admittance: np.ndarray, wall_gain_max: np.ndarray,
                          line_gain_max: np.ndarray | None = None) -> StabilityReport:
    """Check the scaled-energy certificate described in the module docstring.

    Parameters
    ----------
    admittance : array, shape (6, 6)
        Positive admittances, ``admittance[k, l]`` at node k for the line to l; the diagonal is
        ignored.
    wall_gain_max : array, shape (6,)
        Upper bound of the wall filter magnitude per node.
    line_gain_max : array, shape (6, 6), optional
        Upper bound of the magnitude of the delay line k -> l (default 1: lossless lines).

    Returns
    -------
    StabilityReport
    """
    y = np.asarray(admittance, dtype=np.float64)
    g = np.asarray(wall_gain_max, dtype=np.float64)
    n = y.shape[0]
    lines = np.ones((n, n)) if line_gain_max is None else np.asarray(line_gain_max, dtype=np.float64)
    off = ~np.eye(n, dtype=bool)
    log_ratio = np.zeros((n, n))
    log_ratio[off] = np.log(y[off]) - np.log(y.T[off])
    with np.errstate(divide="ignore"):
        weight = np.minimum(log_ratio - 2.0 * np.log(g[:, None] * lines), 1e300)  # edge k -> l; a silent one: no constraint
    weight[~off] = 0.0
    cycles = _CYCLES if n == 6 else _cycle_incidence(n)
    margin = float(np.min(cycles @ weight.ravel()))
    return StabilityReport(
        certified=margin >= -1e-9,
        margin=margin,
        wall_gain_max=g,
        line_gain_max=float(lines[off].max()),
        admittance_mismatch=float(np.max(np.abs(log_ratio))),
    )


def network_certificate(admittance: torch.Tensor, wall_taps: torch.Tensor, pair_lines) -> StabilityReport:
    """:func:`passivity_certificate` of an SDN from its parameters, for every position at once.

    Parameters
    ----------
    admittance : tensor, shape (6, 6)
        Positive admittances, ``[k, l]`` at node k for the line to l.
    wall_taps : tensor, shape (6, M + 1)
        Wall filter taps; their gain is the maximum of :math:`|H_k|` over 1025 frequencies from 0
        to the Nyquist frequency (exact for scalar walls).
    pair_lines : sdn.delays.DelayLine
        The lines between the 15 node pairs, ``offset`` (..., 15), ``taps`` (..., 15, J); the
        largest gain over the positions counts.

    Returns
    -------
    StabilityReport
    """
    walls = torch.fft.rfft(wall_taps.detach().double(), n=2048).abs().amax(-1)
    pair_gain = line_gain(pair_lines).reshape(-1, PAIRS.shape[1]).amax(0).cpu()
    lines = torch.ones(N_WALLS, N_WALLS, dtype=torch.float64)
    lines[PAIRS[0], PAIRS[1]] = lines[PAIRS[1], PAIRS[0]] = pair_gain
    return passivity_certificate(admittance.detach().double().cpu().numpy(), walls.cpu().numpy(), lines.numpy())


def growth_ratio(buffer: torch.Tensor) -> float:
    """Energy of the last eighth of an anti-aliased FFT buffer (..., N) over the energy before it;
    the largest over any leading batch dimensions.

    Below 1 for any decaying (or lossless, non-growing) response; above 1 when the response grows
    or when poles outside the evaluation circle wrap an anti-causal part onto the buffer's end.
    """
    energy = buffer.detach().abs().double() ** 2
    tail = energy.shape[-1] // 8
    before = energy[..., :-tail].sum(-1)
    after = energy[..., -tail:].sum(-1)
    if not (torch.isfinite(after).all() and torch.isfinite(before).all()):
        return float("inf")
    ratio = torch.where(before > 0, after / before.clamp_min(1e-300), torch.where(after > 0, float("inf"), 0.0))
    return float(ratio.max())
