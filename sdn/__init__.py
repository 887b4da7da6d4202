"""Differentiable scattering delay networks (SDN) for artificial reverberation.

The model is importable from here; the rest lives in submodules, imported on demand:
``sdn.acoustics`` (EDC, T30/EDT, echo density), ``sdn.energy_ratios`` (C50, D50, DRR),
``sdn.features`` (Schroeder integral, mel EDR), ``sdn.losses`` (the paper's losses),
``sdn.data`` (the registry of measured files, download), ``sdn.rir`` (loading and preprocessing
a measured RIR), ``sdn.homula`` (the HOMULA-RIR archive and published positions),
``sdn.calibration`` (microphone position from an RIR), ``sdn.config`` (experiment and room
configurations) and ``sdn.train`` (fitting), ``sdn.evaluation``, ``sdn.plots``.

Examples
--------
>>> import sdn
>>> room = sdn.Room(size=(5.46, 14.52, 3.38), source=(2.28, 0.96, 1.20), mic=(3.67, 1.96, 1.20))
>>> model = sdn.SDN(room, sample_rate=16000)
>>> model.impulse_response(16000).shape
torch.Size([16000])
"""
from .geometry import WALL_NAMES, Room
from .model import SDN
from .saved_model import load
from .recursion import TimeDomainSDN
from .stability import StabilityReport, UnstableSDNError

__all__ = ["Room", "WALL_NAMES", "SDN", "load", "TimeDomainSDN", "StabilityReport", "UnstableSDNError"]
__version__ = "0.1.0"
