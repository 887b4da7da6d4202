"""Differentiable scattering delay networks (SDN) for artificial reverberation.

The model is importable from here; the rest lives in submodules, imported on demand:
``sdn.acoustics`` (EDC, T30/EDT, echo density), ``sdn.energy_ratios`` (C50, D50, DRR),
``sdn.losses`` (the paper's losses), ``sdn.data`` (measured RIRs, room configs),
``sdn.calibration`` (microphone position from an RIR),
``sdn.config`` and ``sdn.train`` (experiments), ``sdn.evaluation``, ``sdn.plots``.
"""
from .geometry import WALL_NAMES, Room
from .model import SDN, load
from .recursion import TimeDomainSDN
from .stability import StabilityReport, UnstableSDNError

__all__ = ["Room", "WALL_NAMES", "SDN", "load", "TimeDomainSDN", "StabilityReport", "UnstableSDNError"]
__version__ = "0.1.0"
