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


def label(name: str) -> str:
    """Human label of a model of the study, e.g. ``"prior_fir6"`` -> ``"FIR-6 walls"``.

    Raises
    ------
    KeyError
        For a name that is not part of the study, listing the known ones.
    """
    for group in (PAPER_CONFIGURATIONS, BASELINES, FAITHFUL):
        if name in group:
            return group[name]
    known = [*BASELINES, *PAPER_CONFIGURATIONS, *FAITHFUL]
    raise KeyError(f"{name!r} is not a model of the study; known: {known}")
