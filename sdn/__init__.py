"""Differentiable scattering delay networks (SDN) for artificial reverberation."""
from .geometry import WALL_NAMES, Room
from .model import SDN, load
from .recursion import TimeDomainSDN
from .stability import StabilityReport, UnstableSDNError

__all__ = ["Room", "WALL_NAMES", "SDN", "load", "TimeDomainSDN", "StabilityReport", "UnstableSDNError"]
__version__ = "0.1.0"
