"""Run folders of :mod:`sdn.train`: the files of one training run, the rules that keep runs apart,
and the training checkpoint.

A run folder belongs to exactly one run, identified by its resume hash
(:func:`sdn.train.resume_hash`: the experiment and room configs without the number of epochs, and
the content of the target file).

- One process at a time: :func:`locked` holds an exclusive lock (:data:`LOCK_FILE`, ``flock``) on
  the folder for the whole run, and a second run into it is refused. The lock file does not count
  as content, and it is deleted when the run ends.
- A new run needs an empty or absent folder. ``overwrite`` first deletes the files named in
  :data:`RUN_FILES` (and temporary files left by a killed write) and nothing else.
- Resuming needs ``checkpoint.pt`` (and ``config.json``, when present) of the same run; another
  run's checkpoint is refused, naming both hashes, a changed target file is refused naming the
  file, and so is a number of epochs below those the checkpoint holds.
- ``checkpoint.pt`` holds the model, the optimiser state, the history and the best weights so far,
  with the run's hashes and a checksum (:mod:`sdn.checkpoint`), verified before use.
- Every file is written atomically: an interrupted run leaves the files of its last completed
  write, never a half-written one.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import CheckpointError
from .fileio import write_float_wav, write_text
from .model import SDN
from .optimisation import HISTORY_FIELDS

RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "model.pt", "best.pt", "ir.wav", "metrics.json")
#: Held (``flock``) by the run using the folder; not content of the run, deleted when it ends.
LOCK_FILE = ".sdn-run.lock"
# v2: the checkpoint records the SHA-256 of the target file (v1 could not tell a replaced target)
TRAINING_CHECKPOINT_FORMAT = "sdn-training-checkpoint-v2"
START_AGAIN = "start the run again with --overwrite"  # the remedy for a run folder that cannot be resumed


class RunFolderError(ValueError):
    """A run folder cannot take this run: it is a file, is in use, holds files for a new run, or
    holds another run."""


@contextlib.contextmanager
def locked(run_dir: Path):
    """Hold the exclusive lock of ``run_dir`` (created if absent) while the block runs.

    The lock is an ``flock`` on ``run_dir/LOCK_FILE``, released by the system when the process
    ends, however it ends; a lock file left by a killed run is therefore taken over. On leaving
    the block the lock file is deleted, and so is ``run_dir`` when this call created it and it is
    empty.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder.

    Raises
    ------
    RunFolderError
        When ``run_dir`` is a file or cannot be created, or another process holds its lock.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder: choose another --out")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise RunFolderError(f"cannot create {run_dir}: a file stands where a folder of its path should "
                             f"be ({err.strerror}); choose another --out") from err
    path = run_dir / LOCK_FILE
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise RunFolderError(f"{run_dir} is in use by another run (it holds {path}): wait until that run "
                                 f"ends, or choose another --out") from None
        # The previous holder deletes the file before it lets go; a lock on that deleted file
        # would exclude nobody, so lock the file now at the path instead.
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        opened = os.fstat(handle)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            break
        os.close(handle)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still holding the lock: see above
        os.close(handle)
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if the run wrote nothing


def prepare(run_dir: Path, identity: dict, epochs: int, resume: bool, overwrite: bool,
            target_file: str | None = None) -> dict | None:
    """Check that ``run_dir`` can take a run, and clear it for a new one; call it holding
    :func:`locked`.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder (need not exist).
    identity : dict
        ``resume_hash`` (:func:`sdn.train.resume_hash`) and ``target_sha256`` (of the target
        file; None for a target in memory) of the run.
    epochs : int
        The number of epochs the run asks for in all.
    resume : bool
        Continue the run in the folder: see :func:`read_state`.
    overwrite : bool
        For a new run in a folder that holds files: delete those named in :data:`RUN_FILES` first,
        and leave any other file alone. Temporary files of those names, left by a killed write,
        are deleted in every case that goes on.
    target_file : str, optional
        The target file, named in a message when it has changed since the run started.

    Returns
    -------
    dict or None
        The verified training checkpoint when resuming, else None.

    Raises
    ------
    RunFolderError
        When ``run_dir`` holds files for a new run without ``overwrite``, or (when resuming) has
        no checkpoint or that of another run, of another target file or of more epochs.
    sdn.checkpoint.CheckpointError
        When resuming from a damaged checkpoint.
    """
    saved = None
    if resume:
        saved = read_state(run_dir, identity, epochs, target_file)
    else:
        present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE) if run_dir.is_dir() else []
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


def read_state(run_dir: Path, identity: dict, epochs: int, target_file: str | None = None) -> dict:
    """The verified content of ``run_dir/checkpoint.pt``, if it and ``config.json`` belong to the run.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run folder.
    identity : dict
        The run's ``resume_hash``, which ``checkpoint.pt`` and ``config.json`` (when present)
        must hold, and ``target_sha256``, which ``checkpoint.pt`` must hold.
    epochs : int
        The number of epochs the run asks for in all: at least those of the checkpoint.
    target_file : str, optional
        The target file, for the message when its content has changed.

    Returns
    -------
    dict
        ``run_hash``, ``resume_hash``, ``target_sha256``, ``dtype``, ``model`` (state_dict),
        ``optimizer`` (state), ``history`` (list of rows) and ``best`` (``epoch``, ``total``,
        ``state``; or None).
    """
    expected_hash = identity["resume_hash"]
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise RunFolderError(f"cannot resume: there is no {path} (the run stopped before its first "
                             f"checkpoint, or never ran there); {START_AGAIN}")
    state = checkpoint.read(path, TRAINING_CHECKPOINT_FORMAT,
                            ("resume_hash", "target_sha256", "dtype", "model", "optimizer", "history", "best"),
                            "a training checkpoint", START_AGAIN)
    if state["target_sha256"] != identity["target_sha256"]:
        raise RunFolderError(f"cannot resume {run_dir}: the target file {target_file or '(in memory)'} has changed "
                             f"since the run started (SHA-256 {str(state['target_sha256'])[:16]}... then, "
                             f"{str(identity['target_sha256'])[:16]}... now); put the original back, "
                             f"{START_AGAIN}, or choose another --out")
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
    if len(state["history"]) > epochs:
        raise RunFolderError(f"cannot resume {run_dir}: its checkpoint.pt holds {len(state['history'])} epochs, "
                             f"more than the {epochs} asked for; ask for at least {len(state['history'])} "
                             f"(--epochs), or choose another --out")
    return state


def save_checkpoint(path: Path, hashes: dict, model: SDN, optimizer, history: list, best: dict | None) -> None:
    """Write the training checkpoint (atomically, with a checksum).

    Parameters
    ----------
    path : pathlib.Path
        Usually ``run_dir / "checkpoint.pt"``.
    hashes : dict
        ``run_hash``, ``resume_hash`` and ``target_sha256`` of the run.
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
    model.save(run_dir / "model.pt", run_hash=run_hash)
    if best is not None:
        best_model = SDN.from_config(model.config, dtype=model.dtype)
        best_model.load_state_dict(best["state"])
        best_model.save(run_dir / "best.pt", run_hash=run_hash)
    write_history(run_dir / "history.csv", history)
    write_float_wav(run_dir / "ir.wav", ir.detach().cpu().numpy(), int(model.sample_rate))
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
