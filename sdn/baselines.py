r"""Classic reverberation formulas: uniform wall absorption from a reverberation time.

Sabine's and Eyring's diffuse-field formulas relate the reverberation time :math:`T` (s) of a room
of volume :math:`V` (m^3) and wall area :math:`S` (m^2) to a uniform energy absorption
coefficient :math:`\alpha`:

.. math::

    T_\mathrm{Sabine} = \frac{24 \ln 10}{c} \frac{V}{S \alpha}, \qquad
    T_\mathrm{Eyring} = \frac{24 \ln 10}{c} \frac{V}{-S \ln(1 - \alpha)}

(:math:`24 \ln 10 / c = 0.161` s/m at :math:`c` = 343 m/s). Inverting either with a target's
measured broadband T30 gives the absorption of a classic (untrained) SDN whose walls all have
:math:`\beta = \sqrt{1 - \alpha}`; :mod:`sdn.simulate` inverts Eyring's per octave band. Air
absorption is not modelled.

References
----------
- W. C. Sabine, *Collected Papers on Acoustics*, Harvard University Press, 1922.
- C. F. Eyring, "Reverberation time in 'dead' rooms", J. Acoust. Soc. Am. 1(2A), 217-241,
  1930.
"""
from __future__ import annotations

import math

from .geometry import SPEED_OF_SOUND, Room

__all__ = ["RULES", "sabine_absorption", "eyring_absorption", "absorption_from_reverberation_time"]

#: Names of the reverberation formulas, as used by ``model: {alpha: <rule>}`` in experiment configs.
RULES = ("sabine", "eyring")


def sabine_absorption(room: Room, rt60: float, c: float = SPEED_OF_SOUND) -> float:
    r"""Uniform absorption :math:`\alpha = 24 \ln(10) V / (c S T)` that gives ``rt60`` by Sabine.

    Parameters
    ----------
    room : Room
        The shoebox (its volume and wall area are used).
    rt60 : float
        Reverberation time, seconds, positive and finite.
    c : float
        Speed of sound, m/s.

    Returns
    -------
    float
        The absorption coefficient (not checked against 1: see
        :func:`absorption_from_reverberation_time`).
    """
    if not (math.isfinite(rt60) and rt60 > 0):
        raise ValueError(f"reverberation time must be positive and finite, got {rt60!r} s")
    return 24 * math.log(10) / c * room.volume / (room.surface_area * rt60)


def eyring_absorption(room: Room, rt60: float, c: float = SPEED_OF_SOUND) -> float:
    r"""Uniform absorption :math:`\alpha = 1 - e^{-\alpha_\mathrm{Sabine}}` that gives ``rt60`` by Eyring.

    Parameters
    ----------
    room, rt60, c
        As for :func:`sabine_absorption`.

    Returns
    -------
    float
        The absorption coefficient, in (0, 1).
    """
    return 1.0 - math.exp(-sabine_absorption(room, rt60, c))


def absorption_from_reverberation_time(rule: str, rt60: float, room: Room,
                                       c: float = SPEED_OF_SOUND) -> float:
    """Uniform absorption coefficient in (0, 1) that gives ``rt60`` seconds in ``room`` by ``rule``.

    Parameters
    ----------
    rule : {"sabine", "eyring"}
        The reverberation formula.
    rt60 : float
        Reverberation time, seconds, positive and finite.
    room : Room
        The shoebox.
    c : float
        Speed of sound, m/s.

    Returns
    -------
    float
        The absorption coefficient.

    Raises
    ------
    ValueError
        For an unknown rule, a non-positive reverberation time, or one too short for the room
        (Sabine's absorption would reach 1).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    alpha = sabine_absorption(room, rt60, c) if rule == "sabine" else eyring_absorption(room, rt60, c)
    if not 0 < alpha < 1:
        raise ValueError(f"{rule}: T60 = {rt60:.3g} s is too short for this room (alpha = {alpha:.3g})")
    return alpha
