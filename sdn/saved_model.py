"""Saving and loading trained SDNs: one verified file per model (:mod:`sdn.checkpoint`).

The file holds the model's ``config`` (geometry included), its dtype, its ``state_dict`` and,
when it comes from a training run, that run's hash, with a SHA-256 checksum of all of it.

Examples
--------
>>> model.save("model.pt")        # doctest: +SKIP
>>> model = sdn.load("model.pt")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .model import SDN

__all__ = ["CHECKPOINT_FORMAT", "save", "load"]

CHECKPOINT_FORMAT = "sdn-checkpoint-v2"  # v2: with a checksum and the run hash


def save(model: SDN, path: str | os.PathLike, run_hash: str | None = None) -> None:
    """Write ``model``'s weights, config and dtype with their checksum, atomically.

    Parameters
    ----------
    model : SDN
        The model to save.
    path : str or os.PathLike
        File to write; its folder is created.
    run_hash : str, optional
        Hash of the training run that produced the weights (``hash`` in the run folder's
        ``config.json``, see :mod:`sdn.train`), stored so that the file names its run.
    """
    checkpoint.write(path, CHECKPOINT_FORMAT, {
        "config": model.config,
        "dtype": str(model.dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "run_hash": run_hash,
    })


def load(path: str | os.PathLike, device: torch.device | str | None = None) -> SDN:
    """Rebuild an SDN saved by :func:`save` (or :meth:`SDN.save`), after verifying the file.

    The checksum is checked, the model is built from the saved config (geometry included) and the
    stored distances must equal that geometry (:func:`sdn.checkpoint.load_state`). Loading uses
    ``torch.load(weights_only=True)``: no code from the file runs.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :meth:`SDN.save`.
    device : torch.device or str, optional
        Where to put the model (default: the CPU).

    Returns
    -------
    SDN
        With the saved dtype, config and weights.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    sdn.checkpoint.CheckpointError
        (a ``ValueError``) When the file is truncated, corrupt, incomplete (no ``config``,
        ``dtype`` or ``state_dict``), foreign, or inconsistent with its own config; the message
        names the file.

    Examples
    --------
    >>> model.save("model.pt")  # doctest: +SKIP
    >>> model = sdn.load("model.pt")  # doctest: +SKIP
    """
    path = Path(path)
    remedy = "save the model again, or rerun the training that wrote it"
    payload = checkpoint.read(path, CHECKPOINT_FORMAT, ("config", "dtype", "state_dict"), "an SDN checkpoint", remedy)
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(payload["dtype"])
    if dtype is None:
        raise CheckpointError(f"{path}: dtype {payload['dtype']!r} is not float32 or float64; {remedy}")
    try:
        model = SDN.from_config(payload["config"], dtype=dtype, device=device)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{path}: its config does not describe an SDN ({err}); {remedy}") from err
    checkpoint.load_state(model, payload["state_dict"], path, remedy)
    return model
