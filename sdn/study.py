"""The study's models, defined once: experiment names (files in ``config/experiments/``), their
labels for tables and figures, and their order in the book.

Every notebook, the pipeline and the tests read these instead of repeating them.
"""
from __future__ import annotations

#: The paper's four configurations (300 epochs, Adam lr 0.01), in the paper's order.
PAPER_CONFIGURATIONS = {
    "prior_fir0": "scalar walls",
    "correction_fir0": "scalar walls + distance correction",
    "prior_fir6": "FIR-6 walls",
    "correction_fir6": "FIR-6 walls + distance correction",
}
#: Evaluated without training: the untrained SDN and classic SDNs with uniform absorption.
BASELINES = {
    "untrained": "untrained SDN",
    "sabine": "SDN, Sabine absorption",
    "eyring": "SDN, Eyring absorption",
}
#: The paper's configurations with the released code's behaviours switched on (``quirks="paper"``).
FAITHFUL = {f"faithful_{name}": f"{label}, released code's behaviours" for name, label in PAPER_CONFIGURATIONS.items()}

#: Beyond the paper's budget: the paper's configurations trained until their loss stops falling
#: (a plateau stop, ``config/experiments/converged_*.yaml``).
CONVERGED = {f"converged_{name}": f"{label}, converged" for name, label in PAPER_CONFIGURATIONS.items()}
#: Variants of the study's room config for the sensitivity study (``<room>_<variant>.yaml``, written
#: by :mod:`sdn.room_variants`): the calibration's runner-up microphone positions, and the
#: calibrated position with the measurement latency removed from the target.
ROOM_VARIANTS = {
    "runner_up1": "runner-up position 1",
    "runner_up2": "runner-up position 2",
    "runner_up3": "runner-up position 3",
    "latency": "calibrated position, latency removed",
}

#: Every fit of the study (one run folder and one ``02_train`` page each), in the book's order.
FITS = [*BASELINES, *PAPER_CONFIGURATIONS, *CONVERGED, *FAITHFUL]
#: The rows of the evaluation tables (``summary.csv``, ``bands.csv``): baselines, the paper's
#: configurations, then their converged variants.
EVALUATED = [*BASELINES, *PAPER_CONFIGURATIONS, *CONVERGED]
#: The room configuration of the study: the shipped measurement S1 -> R2-HOM1.
ROOM = "config/rooms/homula_s1_r2hom1.yaml"


def label(name: str) -> str:
    """Human label of a model of the study, e.g. ``"prior_fir6"`` -> ``"FIR-6 walls"``.

    Parameters
    ----------
    name : str
        An experiment name of the study (a key of the dictionaries above).

    Returns
    -------
    str

    Raises
    ------
    KeyError
        For a name that is not part of the study, listing the known ones.
    """
    for group in (PAPER_CONFIGURATIONS, BASELINES, CONVERGED, FAITHFUL):
        if name in group:
            return group[name]
    raise KeyError(f"{name!r} is not a model of the study; known: {FITS}")
