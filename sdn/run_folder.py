"""Run folders of :mod:`sdn.train`: the files of one training run, the rules that keep runs apart,
and the training checkpoint.

A run folder belongs to exactly one run, identified by its resume hash
(:func:`sdn.train.resume_hash`: the experiment and room configs without the number of epochs).

- A new run needs an empty or absent folder. ``overwrite`` first deletes the files named in
  :data:`RUN_FILES` (and temporary files left by a killed write) and nothing else.
- Resuming needs ``checkpoint.pt`` (and ``config.json``, when present) of the same run; another
  run's checkpoint is refused, naming both hashes.
- ``checkpoint.pt`` holds the model, the optimiser state, the history and the best weights so far,
  with the run's hashes and a checksum (:mod:`sdn.checkpoint`), verified before use.
- Every file is written atomically: an interrupted run leaves the files of its last completed
  write, never a half-written one.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .fileio import atomic_path, write_text
from .model import SDN
from .optimisation import HISTORY_FIELDS

RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "model.pt", "best.pt", "ir.wav", "metrics.json")
TRAINING_CHECKPOINT_FORMAT = "sdn-training-checkpoint-v1"
START_AGAIN = "start the run again with --overwrite"  # the remedy for a run folder that cannot be resumed


class RunFolderError(ValueError):
    """A run folder cannot take this run: it is a file, holds files for a new run, or holds another run."""


def prepare(run_dir: Path, expected_hash: str, resume: bool, overwrite: bool) -> dict | None:
    """Check that ``run_dir`` can take a run, and clear it for a new one.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder (need not exist).
    expected_hash : str
        The run's resume hash (:func:`sdn.train.resume_hash`).
    resume : bool
        Continue the run in the folder: see :func:`read_state`.
    overwrite : bool
        For a new run in a folder that holds files: delete those named in :data:`RUN_FILES` first,
        and leave any other file alone. Temporary files of those names, left by a killed write,
        are deleted in every case that goes on.

    Returns
    -------
    dict or None
        The verified training checkpoint when resuming, else None.

    Raises
    ------
    RunFolderError
        When ``run_dir`` is a file, or holds files for a new run without ``overwrite``, or (when
        resuming) has no checkpoint or that of another run.
    sdn.checkpoint.CheckpointError
        When resuming from a damaged checkpoint.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder: choose another --out")
    saved = None
    if resume:
        saved = read_state(run_dir, expected_hash)
    else:
        present = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
        if present and not overwrite:
            listed = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
            raise RunFolderError(f"{run_dir} is not empty ({listed}): add --overwrite to replace the run in it, "
                                 f"--resume to continue it, or choose another --out")
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FILES:
        for leftover in run_dir.glob(f".{name}.*.tmp"):  # of a killed write
            leftover.unlink()
    return saved


def read_state(run_dir: Path, expected_hash: str) -> dict:
    """The verified content of ``run_dir/checkpoint.pt``, if it and ``config.json`` belong to the run.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder.
    expected_hash : str
        The run's resume hash; ``checkpoint.pt`` and ``config.json`` (when present) must hold it.

    Returns
    -------
    dict
        ``run_hash``, ``resume_hash``, ``dtype``, ``model`` (state_dict), ``optimizer`` (state),
        ``history`` (list of rows) and ``best`` (``epoch``, ``total``, ``state``; or None).
    """
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise RunFolderError(f"cannot resume: there is no {path} (the run stopped before its first "
                             f"checkpoint, or never ran there); {START_AGAIN}")
    state = checkpoint.read(path, TRAINING_CHECKPOINT_FORMAT,
                            ("resume_hash", "dtype", "model", "optimizer", "history", "best"),
                            "a training checkpoint", START_AGAIN)
    if state["resume_hash"] != expected_hash:
        raise RunFolderError(f"cannot resume {run_dir}: its checkpoint.pt belongs to run {state['resume_hash']}, "
                             f"these configs make run {expected_hash}; resume with the configs it was started "
                             f"with, {START_AGAIN}, or choose another --out")
    config_path = run_dir / "config.json"
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text(encoding="utf-8"))["resume_hash"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunFolderError(f"cannot resume: {config_path} is unreadable or incomplete ({type(err).__name__}: "
                                 f"{err}); delete it to resume from checkpoint.pt, or {START_AGAIN}") from err
        if previous != expected_hash:
            raise RunFolderError(f"cannot resume {run_dir}: its config.json belongs to run {previous}, its "
                                 f"checkpoint.pt to run {expected_hash}; {START_AGAIN}")
    return state


def save_checkpoint(path: Path, hashes: dict, model: SDN, optimizer, history: list, best: dict | None) -> None:
    """Write the training checkpoint (atomically, with a checksum).

    Parameters
    ----------
    path : pathlib.Path
        Usually ``run_dir / "checkpoint.pt"``.
    hashes : dict
        ``run_hash`` and ``resume_hash`` of the run.
    model : sdn.SDN
        The model being trained.
    optimizer : torch.optim.Optimizer
        Its optimiser.
    history : list of dict
        The rows of the epochs done.
    best : dict or None
        ``epoch``, ``total`` and ``state`` of the lowest loss so far.
    """
    checkpoint.write(path, TRAINING_CHECKPOINT_FORMAT, {
        **hashes,
        "dtype": str(model.dtype).removeprefix("torch."),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "best": best,
    })


def restore(model: SDN, optimizer, saved: dict, path: Path) -> None:
    """Load the weights and optimiser state of a training checkpoint read by :func:`read_state`.

    Parameters
    ----------
    model : sdn.SDN
        Built from the run's configs, in the dtype the run was started with.
    optimizer : torch.optim.Optimizer
        Over ``model``'s parameters.
    saved : dict
        From :func:`read_state`.
    path : pathlib.Path
        The checkpoint file, named in error messages.

    Raises
    ------
    RunFolderError
        When the checkpoint holds another dtype.
    sdn.checkpoint.CheckpointError
        When its weights or optimiser state do not fit the model.
    """
    dtype = str(model.dtype).removeprefix("torch.")
    if saved["dtype"] != dtype:
        raise RunFolderError(f"cannot resume: {path} holds {saved['dtype']} weights, this session builds "
                             f"{dtype} models (torch's default dtype); set the dtype the run was started with")
    checkpoint.load_state(model, saved["model"], path, START_AGAIN)
    try:
        optimizer.load_state_dict(saved["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its optimiser state does not fit the model ({err}); {START_AGAIN}") from err


def write_history(path: Path, history: list) -> None:
    """Write the history rows (columns :data:`sdn.optimisation.HISTORY_FIELDS`) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def write_outputs(run_dir: Path, model: SDN, best: dict | None, history: list, metrics: dict, ir: torch.Tensor,
                  run_hash: str) -> None:
    """Write the results of a run: model.pt, best.pt, history.csv, ir.wav and metrics.json.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder.
    model : sdn.SDN
        The final model.
    best : dict or None
        ``epoch``, ``total`` and ``state`` of the lowest loss; None writes no best.pt.
    history : list of dict
        One row per epoch.
    metrics : dict
        Written as JSON.
    ir : tensor, shape (L,)
        The trained model's evaluation render (:func:`sdn.train.evaluation_render`), written as
        ir.wav.
    run_hash : str
        Stored in model.pt and best.pt.
    """
    import soundfile as sf

    model.save(run_dir / "model.pt", run_hash=run_hash)
    if best is not None:
        best_model = SDN.from_config(model.config, dtype=model.dtype)
        best_model.load_state_dict(best["state"])
        best_model.save(run_dir / "best.pt", run_hash=run_hash)
    write_history(run_dir / "history.csv", history)
    with atomic_path(run_dir / "ir.wav") as tmp:
        sf.write(str(tmp), ir.detach().cpu().numpy().astype(np.float32), int(model.sample_rate), subtype="FLOAT",
                 format="WAV")
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))


def saved_epochs(run_dir: Path) -> int | None:
    """Number of epochs in ``run_dir/checkpoint.pt``; None when there is no checkpoint.

    Raises
    ------
    sdn.checkpoint.CheckpointError
        When the checkpoint is damaged.
    """
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        return None
    return len(checkpoint.read(path, TRAINING_CHECKPOINT_FORMAT, ("history",), "a training checkpoint",
                               START_AGAIN)["history"])
