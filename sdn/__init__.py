"""Differentiable scattering delay networks (SDN) for artificial reverberation.

The model is importable from here; the rest lives in submodules, imported on demand:
``sdn.acoustics`` (EDC, T30/EDT, echo density), ``sdn.energy_ratios`` (C50, D50, DRR),
``sdn.features`` (Schroeder integral, mel EDR), ``sdn.losses`` (the paper's losses),
``sdn.data`` (the registry of measured files, download), ``sdn.rir`` (loading and preprocessing
a measured RIR), ``sdn.homula`` (the HOMULA-RIR archive and published positions),
``sdn.calibration`` (microphone position from an RIR), ``sdn.config`` (experiment and room
configurations) and ``sdn.train`` (fitting), ``sdn.evaluation``, ``sdn.plots``.

Importing the package loads nothing else: the names below, and any submodule named as an
attribute (``sdn.stability``), are imported on first use. So ``python -m sdn.train`` starts
before torch is loaded, and can end quietly on a Ctrl-C while it loads.

Examples
--------
>>> import sdn
>>> room = sdn.Room(size=(5.46, 14.52, 3.38), source=(2.28, 0.96, 1.20), mic=(3.67, 1.96, 1.20))
>>> model = sdn.SDN(room, sample_rate=16000)
>>> model.impulse_response(16000).shape
torch.Size([16000])
"""
import importlib
import os

# Intel MKL, which computes torch's FFTs on CPU, picks its code by the CPU: a fit's numbers differed
# between its AVX2 and AVX-512 code. Its conditional numerical reproducibility mode runs the AVX2
# code on every CPU that has AVX2 (no slower here: 2.7-3.4 ms for 28 FFTs of 32768 points either
# way). MKL reads it at its first call; a value set by the user is kept. sdn.native.compute_path
# records the mode in force.
os.environ.setdefault("MKL_CBWR", "AVX2")

# Each exported name and the submodule that defines it.
_EXPORTS = {"Room": "geometry", "WALL_NAMES": "geometry", "SDN": "model", "load": "saved_model",
            "TimeDomainSDN": "recursion", "StabilityReport": "stability", "UnstableSDNError": "stability"}

__all__ = ["Room", "WALL_NAMES", "SDN", "load", "TimeDomainSDN", "StabilityReport", "UnstableSDNError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """An exported name or a submodule, imported on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
