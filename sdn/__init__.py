"""Differentiable scattering delay networks (SDN) for artificial reverberation."""
from .geometry import Room, WALL_NAMES

__all__ = ["Room", "WALL_NAMES"]
__version__ = "0.1.0"
