"""Classic baselines: uniform wall absorption from a measured reverberation time.

Sabine: ``T = 0.161 V / (S alpha)``; Eyring: ``T = 0.161 V / (-S ln(1 - alpha))`` (V in m^3,
S in m^2, T in s; 0.161 = 24 ln(10) / c at c = 343 m/s). Inverting either with the target's
broadband T30 gives the absorption of a classic (untrained) SDN whose walls all have
``beta = sqrt(1 - alpha)``. Air absorption and frequency dependence are not modelled.
"""
from __future__ import annotations

import math

from .geometry import Room

RULES = ("sabine", "eyring")


def absorption_from_reverberation_time(rule: str, rt60: float, room: Room, c: float = 343.0) -> float:
    """Uniform absorption coefficient in (0, 1) that gives ``rt60`` seconds in ``room`` by ``rule``."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not (math.isfinite(rt60) and rt60 > 0):
        raise ValueError(f"reverberation time must be positive and finite, got {rt60!r}")
    sabine_alpha = 24 * math.log(10) / c * room.volume / (room.surface_area * rt60)
    alpha = sabine_alpha if rule == "sabine" else 1.0 - math.exp(-sabine_alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"{rule}: T60 = {rt60:.3g} s is too short for this room (alpha = {alpha:.3g})")
    return alpha
