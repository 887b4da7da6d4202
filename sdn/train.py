"""Fit an SDN to a measured room impulse response (the paper's experiment).

Full-batch Adam on one target: each epoch renders the SDN's impulse response in closed form at
the target's length, normalises both to unit norm and takes one step on the weighted loss of
:mod:`sdn.losses` (:func:`sdn.optimisation.train_step`). A run folder holds everything needed to
inspect, reproduce and resume one run::

    config.json    resolved experiment + room config, package versions, hashes
    history.csv    per-epoch loss terms and total
    checkpoint.pt  model + optimiser + history (for --resume), every checkpoint_every epochs
    model.pt       final weights, best.pt lowest-loss weights (sdn.load): the evaluated ones
    ir.wav         the evaluation render of best.pt (float32 WAV, unit norm): every
                   acoustic parameter in metrics.json is computed from it
    metrics.json   acoustic parameters and errors of the target, initial and trained model

A run folder belongs to exactly one run, and to one process at a time: :func:`fit` holds its lock
(:func:`sdn.run_folder.locked`) from start to end. ``hash`` in ``config.json`` (:func:`run_hash`)
ties the results to the experiment and room configs; ``resume_hash`` (:func:`resume_hash`) is the
same without the number of epochs and with the SHA-256 of the target file, so that a run can be
resumed for more epochs, but not on a replaced target. Every ``.pt`` file stores the run's hash
and a checksum of its content (:mod:`sdn.checkpoint`). A new run refuses a folder that is not
empty unless ``overwrite`` is given, which first deletes the files above (and only those);
``resume`` refuses a checkpoint of another run (naming both hashes), of another target file, or
of more epochs than asked for. Every file is written atomically, so an interrupted run leaves the
files of its last completed write; two identical runs write identical files but for the time of
each epoch (``seconds`` in ``history.csv`` and in ``checkpoint.pt``).

Command line::

    python -m sdn.train --config config/experiments/prior_fir0.yaml \\
        --room config/rooms/homula_s1_r2hom1.yaml [--epochs N] [--device cpu|cuda] [--out DIR] \\
        [--resume | --overwrite] [--threads N]

Every failure is one line on stderr. Exit status: 0 done; 1 training stopped (unstable model,
non-finite loss or a failed step; the folder keeps the last good weights) or a system error (disk
full, out of memory, anything unexpected); 2 a user error (bad option, config or run folder, a
folder in use, corrupt checkpoint, a fit larger than the memory available); 130 interrupted
(Ctrl-C, also while the command starts).
"""
from __future__ import annotations

import argparse
import copy
import errno
import functools
import inspect
import json
import logging
import math
import os
import platform
import signal
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

NOTHING_WRITTEN = "nothing was written: run the same command again"


def _interrupted_while_starting(signum, frame):
    """SIGINT handler of ``python -m sdn.train`` until :func:`main` runs: one line, status 130."""
    print(f"interrupted; {NOTHING_WRITTEN}", file=sys.stderr)
    raise SystemExit(130)


if __name__ == "__main__":  # Ctrl-C while the imports below load torch (1-2 s) is no traceback
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import numpy as np
import torch

from . import __version__, native, run_folder
from .allocator import keep_freed_memory
from .baselines import absorption_from_reverberation_time
from .config import MAX_EPOCHS, ExperimentConfig, RoomConfig, config_hash, load_experiment, load_room_config
from .evaluation import evaluate
from .fileio import write_text
from .initialisation import perturb_parameters
from .losses import SDNLoss
from .model import SDN
from .optimisation import (Diverged, PlateauStop, is_out_of_memory, progress_bar, train_step, unit_norm_render,
                           unit_norm_targets)
from .stability import UnstableSDNError

log = logging.getLogger(__name__)
MAX_EVAL_SECONDS = 30.0  # longest evaluation render (renders stop 100 dB below their peak)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : sdn.SDN
        The trained model (the last weights).
    history : list of dict
        One row per epoch: ``epoch``, ``edc``, ``edr``, ``edp``, ``total``, ``seconds``.
    metrics : dict
        ``target``, ``initial`` and ``trained`` entries of :func:`sdn.evaluation.evaluate` plus the
        loss terms (``trained``: the lowest-loss weights, :func:`evaluated_model`), ``stopped``
        (None), ``best_epoch`` (the epoch whose weights ``trained`` describes), and
        ``plateau_epoch``: with a plateau stop (``training.patience > 0``), the number of epochs
        after which it ended training, None when it did not (or is not configured).
    run_dir : pathlib.Path or None
        The run folder, None when run in memory.
    config : dict
        The resolved configuration written to ``config.json``.
    """

    model: SDN
    history: list
    metrics: dict
    run_dir: Path | None
    config: dict


def resolve_alpha(experiment: ExperimentConfig, room_config: RoomConfig, target_rt60: float) -> float:
    """The model's initial uniform absorption.

    Parameters
    ----------
    experiment : sdn.config.ExperimentConfig
        Its ``model.alpha`` is a number, or ``"sabine"`` / ``"eyring"``.
    room_config : RoomConfig
        The room whose volume and surface enter the formula.
    target_rt60 : float
        The target's reverberation time (T30), in seconds.

    Returns
    -------
    float
        The configured number, or the absorption that makes that formula give ``target_rt60``.
    """
    alpha = experiment.model.alpha
    if isinstance(alpha, str):
        return absorption_from_reverberation_time(alpha, target_rt60, room_config.room, c=experiment.model.c)
    return float(alpha)


def build_model(experiment: ExperimentConfig, room_config: RoomConfig, alpha: float, device=None) -> SDN:
    """The experiment's SDN of the room, with the resolved initial absorption ``alpha``."""
    return SDN(room_config.room, **experiment.model.sdn_kwargs(alpha=alpha), device=device)


def versions() -> dict:
    """Versions of sdn, Python, torch, numpy and scipy and the platform, for ``config.json``."""
    import scipy

    return {
        "sdn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def run_hash(experiment: ExperimentConfig, room_config: RoomConfig) -> str:
    """Hash tying a run's results to the experiment and room configs it was run with.

    Parameters
    ----------
    experiment : sdn.config.ExperimentConfig
        The experiment, with the number of epochs actually run.
    room_config : RoomConfig
        The room and its target.

    Returns
    -------
    str
        16 hexadecimal digits (``hash`` in ``config.json``; stored in ``model.pt`` and ``best.pt``).
    """
    return config_hash({"experiment": experiment.to_dict(), "room": room_config.to_dict()})


def resume_hash(experiment: ExperimentConfig, room_config: RoomConfig, target_sha256: str | None = None) -> str:
    """The identity of a run across resumes: :func:`run_hash` without the number of epochs, and
    with the content of the target file.

    Stored in ``config.json`` and ``checkpoint.pt``; ``--resume`` requires it to match, so a
    target file replaced at the same path is refused. (:func:`run_hash`, the hash of the book's
    tables, names the target file by its config only.)

    Parameters
    ----------
    experiment : sdn.config.ExperimentConfig
        The experiment (its number of epochs is ignored).
    room_config : RoomConfig
        The room and its target.
    target_sha256 : str, optional
        SHA-256 of the target file (:attr:`sdn.rir.MeasuredRIR.sha256`); None for a target made
        in memory.

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    configs = run_hash(experiment.replace(training={"epochs": 0}), room_config)
    return configs if target_sha256 is None else config_hash({"configs": configs, "target_sha256": target_sha256})


def _device(device) -> torch.device:
    """``device`` as a torch device, if it is the CPU or an available CUDA device; else ValueError."""
    try:
        device = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device: use cpu or cuda") from err
    if device.type not in ("cpu", "cuda"):  # e.g. meta, which holds no data to train
        raise ValueError(f"device {str(device)!r} is not supported: use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False: use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} does not exist: this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return device


# Peak memory of a fit, bytes per sample, measured on the CPU (FIR orders 0 and 6, float32 models,
# 1e5 and 4e5 samples) with a margin: a training epoch at the target's length, forward and
# backward (1.8-1.9 kB measured; a float64 model needs twice as much), and an evaluation render
# (float64 whatever the model, 0.20-0.23 kB) with its acoustic parameters (0.43-0.52 kB). The
# initial model's evaluation runs alongside training.
TRAINING_BYTES_PER_SAMPLE = 2500
EVALUATION_BYTES_PER_SAMPLE = 800


def _evaluation_cap(n_samples: int, max_seconds: float, sample_rate: int) -> int:
    """Longest evaluation render, samples: ``max_seconds``, and at least the target's length."""
    return max(n_samples, int(max_seconds * sample_rate))


def available_memory(device: torch.device) -> int | None:
    """Bytes of memory a fit on ``device`` can still take; None when the system does not say.

    Parameters
    ----------
    device : torch.device
        The CPU or a CUDA device.

    Returns
    -------
    int or None
        On the CPU, ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the free physical pages;
        on CUDA, the device's free memory.
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_samples: int, max_eval_seconds: float, sample_rate: int, device: torch.device) -> int:
    """Estimate the peak memory of a fit and refuse one that cannot fit in the memory available.

    Parameters
    ----------
    n_samples : int
        The target's length.
    max_eval_seconds : float
        Longest evaluation render, seconds.
    sample_rate : int
        Hz.
    device : torch.device
        Where the fit runs.

    Returns
    -------
    int
        The estimate, bytes: :data:`TRAINING_BYTES_PER_SAMPLE` per target sample (for a float32
        model; in proportion to the size of torch's default dtype) and
        :data:`EVALUATION_BYTES_PER_SAMPLE` per sample of the longest evaluation render.

    Raises
    ------
    ValueError
        When the estimate exceeds :func:`available_memory`; the message gives both and what to
        lower.
    """
    cap = _evaluation_cap(n_samples, max_eval_seconds, sample_rate)
    training = TRAINING_BYTES_PER_SAMPLE * torch.get_default_dtype().itemsize // 4
    estimate = training * n_samples + EVALUATION_BYTES_PER_SAMPLE * cap
    available = available_memory(device)
    if available is not None and estimate > available:
        raise ValueError(f"this fit needs about {estimate / 2**30:.1f} GiB of memory on {device} (a target of "
                         f"{n_samples} samples, evaluation renders of up to {cap} samples at {sample_rate} Hz), "
                         f"more than the {available / 2**30:.1f} GiB available: lower --max-eval-seconds or the "
                         f"sample_rate, or use a shorter target")
    return estimate


def _holding_run_folder(function):
    """:func:`fit` with its run folder ``out`` locked for the whole call (:func:`sdn.run_folder.locked`)."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def locked(*args, **kwargs):
        out = signature.bind(*args, **kwargs).arguments.get("out")
        if out is None:
            return function(*args, **kwargs)
        with run_folder.locked(Path(out)):
            return function(*args, **kwargs)

    return locked


@_holding_run_folder
def fit(
    experiment: ExperimentConfig,
    room_config: RoomConfig,
    out: str | Path | None = None,
    epochs: int | None = None,
    device: str | torch.device | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    target=None,
    max_eval_seconds: float = MAX_EVAL_SECONDS,
) -> FitResult:
    """Fit (or, with 0 epochs, just evaluate) the experiment's SDN on the room's measured target.

    The model's dtype is torch's default dtype (float32 unless
    ``torch.set_default_dtype`` says otherwise); the target is converted to it.

    Parameters
    ----------
    experiment : sdn.config.ExperimentConfig
        Model, training and loss settings (:func:`sdn.config.load_experiment`).
    room_config : RoomConfig
        Geometry and measured target (``load_room_config``).
    out : str or pathlib.Path, optional
        Run folder (created). It must be empty or absent unless ``resume`` or ``overwrite``, and
        is locked for the whole call (:func:`sdn.run_folder.locked`): a second fit into it, from
        any process, is refused. None keeps everything in memory.
    epochs : int, optional
        Total number of epochs; overrides ``experiment.training.epochs`` (with a plateau stop,
        :class:`sdn.optimisation.PlateauStop`, the most that are run).
    device : str or torch.device, optional
        ``"cpu"`` (default) or ``"cuda"``.
    resume : bool
        Continue from ``out/checkpoint.pt``, which must belong to the same run (same configs and
        target file, :func:`resume_hash`; at least as many epochs as it holds); gives the same
        result, bit for bit, as an uninterrupted run.
    overwrite : bool
        Start a new run in a folder that holds files: delete those of
        :data:`sdn.run_folder.RUN_FILES` first (and no other file).
    progress : bool
        Show a progress bar with the loss terms.
    target : sdn.rir.MeasuredRIR, optional
        A preloaded target (default: ``room_config.load_target``).
    max_eval_seconds : float
        Longest evaluation render, in seconds. The acoustic parameters of a model are measured on
        its impulse response rendered until it has decayed 100 dB below its peak (at least the
        target's length), so that decays much slower than the target's (the untrained SDN's T30
        is about 15 s) are measured, and no more is rendered than that needs.

    Returns
    -------
    FitResult
        The model, history, metrics, run folder and resolved config.

    Raises
    ------
    sdn.run_folder.RunFolderError
        When ``out`` is a file, is in use by another fit, is not empty for a new run, or holds the
        checkpoint of another run, of another target file or of more epochs than ``epochs``.
    sdn.checkpoint.CheckpointError
        When resuming from a truncated, corrupt or foreign ``checkpoint.pt``.
    sdn.optimisation.Diverged
        When the loss becomes non-finite or the model unstable, after saving the last good
        weights, the history and the metrics so far.
    ValueError
        For a device that is not available, ``resume`` together with ``overwrite``, or a fit whose
        memory estimate exceeds the memory available (:func:`check_memory`), raised before the run
        folder is touched.

    Notes
    -----
    The initial model is evaluated on a second thread, on a copy, while the epochs run
    (:func:`_in_background`): its render is the longest of the fit, and on two cores the fit no
    longer waits for it. An error there is raised when the fit has finished its epochs.

    Examples
    --------
    >>> from sdn.config import load_experiment
    >>> from sdn.config import load_room_config
    >>> experiment = load_experiment("config/experiments/prior_fir0.yaml")  # doctest: +SKIP
    >>> room_config = load_room_config("config/rooms/homula_s1_r2hom1.yaml")  # doctest: +SKIP
    >>> result = fit(experiment, room_config, out="runs/prior_fir0", epochs=10)  # doctest: +SKIP
    >>> result.history[-1]["total"] < result.history[0]["total"]  # doctest: +SKIP
    True
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in the folder, "
                         "overwrite replaces it")
    if epochs is not None:
        experiment = experiment.replace(training={"epochs": int(epochs)})
    device = _device(device)
    run_dir = Path(out) if out is not None else None
    if resume and run_dir is None:
        raise ValueError("resume needs a run folder (out)")

    fs = experiment.model.sample_rate
    target = target if target is not None else room_config.load_target(sample_rate=fs)
    if target.sample_rate != fs:
        raise ValueError(f"target sample rate {target.sample_rate} Hz differs from the model's {fs} Hz")
    check_memory(len(target), max_eval_seconds, fs, device)  # before the run folder is touched
    hashes = {"run_hash": run_hash(experiment, room_config), "target_sha256": target.sha256,
              "resume_hash": resume_hash(experiment, room_config, target.sha256)}
    saved = None if run_dir is None else run_folder.prepare(run_dir, hashes, experiment.training.epochs, resume,
                                                            overwrite, str(target.path))
    alpha = resolve_alpha(experiment, room_config, target.rt60 if target.rt60 else _rt60(target.signal, fs))
    model = perturb_parameters(build_model(experiment, room_config, alpha, device), experiment.training.seed)
    y = unit_norm_targets(target.signal, model)
    n = y.shape[-1]
    loss_fn = SDNLoss(fs, weights=(experiment.loss.edc, experiment.loss.edr, experiment.loss.edp))
    optimizer = torch.optim.Adam(model.parameters(), lr=experiment.training.lr)

    resolved = {
        "experiment": experiment.to_dict(),
        "room": room_config.to_dict(),
        "resolved": {"alpha": alpha, "target": target.metadata(), "n_samples": n},
        "hash": hashes["run_hash"],
        "resume_hash": hashes["resume_hash"],
        "versions": versions(),
        "compute_path": native.compute_path(device),  # the results are the same bits along one path only
    }
    # its own copy of the model, which training changes, and its own loss, which caches the target's features
    initial = _in_background(_model_metrics, copy.deepcopy(model), y, SDNLoss(fs, weights=loss_fn.weights),
                             max_eval_seconds)
    history, best = [], None
    if saved is not None:
        run_folder.restore(model, optimizer, saved, run_dir / "checkpoint.pt")
        history, best = saved["history"], saved["best"]
    if run_dir is not None:
        write_text(run_dir / "config.json", json.dumps(resolved, indent=2))

    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stopped = plateau_epoch = None
    training = experiment.training
    plateau = PlateauStop(training.patience, training.min_delta, training.min_epochs) if training.patience else None
    if plateau is not None and any([plateau.update(row["total"]) for row in history]):
        plateau_epoch = len(history)  # a resumed run that had already converged
    epochs_total = experiment.training.epochs if plateau_epoch is None else len(history)
    bar = progress_bar(range(len(history), epochs_total), progress, experiment.name)
    for epoch in bar:
        try:
            row, last_good = train_step(model, y, loss_fn, optimizer, epoch)
        except Diverged as err:
            stopped = err
            break
        history.append(row)
        if best is None or row["total"] < best["total"]:
            best = {"epoch": epoch, "total": row["total"], "state": last_good}
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{row[k]:.4f}" for k in ("total", "edc", "edr", "edp")})
        converged = plateau is not None and plateau.update(row["total"])
        if run_dir is not None and ((epoch + 1) % experiment.training.checkpoint_every == 0
                                    or epoch + 1 == epochs_total or converged):
            run_folder.save_checkpoint(run_dir / "checkpoint.pt", hashes, model, optimizer, history, best)
        if converged:
            plateau_epoch = epoch + 1
            break

    if stopped is not None:
        model.load_state_dict(last_good)  # weights that produced the last finite loss
    trained, ir = _model_metrics(evaluated_model(model, best), y, loss_fn, max_eval_seconds)
    metrics = {"target": evaluate(y, None, fs), "initial": initial.result()[0], "trained": trained}
    metrics["stopped"] = None if stopped is None else str(stopped)
    metrics["best_epoch"] = None if best is None else best["epoch"]
    metrics["plateau_epoch"] = plateau_epoch
    if run_dir is not None:
        run_folder.write_outputs(run_dir, model, best, history, metrics, ir, hashes["run_hash"])
    if stopped is not None:
        raise stopped
    return FitResult(model=model, history=history, metrics=metrics, run_dir=run_dir, config=resolved)


def evaluated_model(model: SDN, best: dict | None) -> SDN:
    """The weights a fit is evaluated at: those of its lowest training loss (``best.pt``).

    One rule for every run of the study, whether it ends at its budget, at a plateau stop or on
    divergence. Full-batch Adam oscillates: the history's lowest loss falls a few to tens of
    epochs before the end, and the loss of the last step's weights is never computed during
    training, so "final" would mean a point at an arbitrary phase of an oscillation, and a plateau
    stop ends by construction ``patience`` epochs after the last improvement. The lowest-loss
    weights are what the fit's objective chose, and they always have a finite loss.

    Parameters
    ----------
    model : sdn.SDN
        The model at the end of training.
    best : dict or None
        ``state`` (a state_dict) of the lowest loss; None (no epoch run) evaluates ``model``.

    Returns
    -------
    sdn.SDN
        ``model`` itself, or a copy holding the best weights.
    """
    if best is None:
        return model
    chosen = copy.deepcopy(model)
    chosen.load_state_dict(best["state"])
    return chosen


def _rt60(signal: torch.Tensor, fs: int) -> float:
    from .acoustics import reverberation_time

    return float(reverberation_time(signal.detach().cpu(), fs, decay="T30"))


def evaluation_render(model: SDN, n_samples: int, max_seconds: float) -> tuple[torch.Tensor, bool]:
    """The impulse response a model is evaluated on, unit norm, without gradient.

    Parameters
    ----------
    model : sdn.SDN
    n_samples : int
        The target's length: the render is at least this long.
    max_seconds : float
        Cap of the render, in seconds.

    Returns
    -------
    h : tensor, shape (..., L)
        Rendered until it has decayed 100 dB below its peak (``model.impulse_response(None)``),
        at least ``n_samples`` and at most ``max_seconds`` long.
    stable : bool
        False when the model grows within the cap; ``h`` is then only ``n_samples`` long.
    """
    cap = _evaluation_cap(n_samples, max_seconds, model.sample_rate)
    with torch.no_grad():
        try:
            h, stable = model.impulse_response(None, max_samples=cap), True
            if h.shape[-1] < n_samples:
                h = model.impulse_response(n_samples)
        except UnstableSDNError:
            h, stable = model.impulse_response(n_samples, check_growth=False), False
    return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True), stable


def _model_metrics(model: SDN, y: torch.Tensor, loss_fn, max_seconds: float) -> tuple[dict, torch.Tensor]:
    """Loss terms at the target's length, and acoustic parameters of :func:`evaluation_render`
    (returned too). A model that grows within the cap is flagged ``"stable": False``."""
    h, stable = evaluation_render(model, y.shape[-1], max_seconds)
    entry = {**evaluate(h, y, model.sample_rate), "stable": stable}
    with torch.no_grad():
        entry.update({f"loss_{k}": v.item() for k, v in loss_fn(unit_norm_render(model, y.shape[-1]), y).items()})
    return entry, h


def _in_background(function, *args) -> Future:
    """``function(*args)`` on a thread of its own, started now; ``result()`` waits for it.

    :func:`fit` evaluates the initial model there, on a copy, alongside the epochs: the untrained
    SDN decays slowly (T30 about 15 s), so its evaluation, a render of about 23 s and its acoustic
    parameters, is the longest of a fit (about 0.8 s on the 2-core machine of
    ``benchmarks/README.md``, next to 6-7 s for 300 epochs of ``correction_fir6``), and it does
    not depend on training. The thread computes what the calling thread would have: every
    operation gives the same result on any thread.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdn-fit")
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)  # the thread ends when the function returns
    return future


def _one_line(err: BaseException, limit: int = 600) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _next_step(out: Path | None) -> str:
    """What a run that stopped left in its folder ``out`` and how to go on, in words."""
    try:
        done = None if out is None else run_folder.saved_epochs(out)
    except (OSError, ValueError):
        return f"{out / 'checkpoint.pt'} cannot be read: {run_folder.START_AGAIN}"
    if done is not None:
        return f"{out / 'checkpoint.pt'} holds {done} epochs: run the same command with --resume to continue"
    try:
        written = out is not None and any(p.name != run_folder.LOCK_FILE for p in out.iterdir())
    except OSError:
        written = False
    if written:
        return "no checkpoint yet: run the same command again, with --overwrite"
    return NOTHING_WRITTEN


def _read_config(option: str, loader, path: str):
    """``loader(path)``, with any error of the file turned into a ValueError naming ``option``."""
    import yaml

    try:
        return loader(path)
    except OSError as err:
        raise ValueError(f"{option}: {err}; check the path") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{option}: {path} is not valid YAML ({err}); fix the file") from err
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from err


#: Most torch threads --threads may ask for: beyond a few per core, threads only wait on each other.
MAX_THREADS = 4 * (os.cpu_count() or 1)
#: Longest evaluation render --max-eval-seconds may ask for: a render stops 100 dB below its peak,
#: about 23 s for the untrained SDN (the slowest decay of the study); 10 minutes leave a wide margin.
MAX_EVAL_SECONDS_OPTION = 600.0


def _whole_number(low: int, high: int):
    """argparse type: a whole number in [low, high] (plain ASCII digits)."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 20 and low <= int(text) <= high):
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low} and <= {high}, got {text!r}")
        return int(text)

    return parse


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0 and <= :data:`MAX_EVAL_SECONDS_OPTION`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_EVAL_SECONDS_OPTION):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 and <= {MAX_EVAL_SECONDS_OPTION:g}, "
                                         f"got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with an error in one line (``error: ...``, status 2) like every other error."""

    def error(self, message):
        self.exit(2, f"error: {' '.join(message.split())}; see --help\n")


def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = _Parser(prog="python -m sdn.train", description="Fit an SDN to a measured RIR.")
    parser.add_argument("--config", required=True, help="experiment YAML (config/experiments/*.yaml)")
    parser.add_argument("--room", required=True, help="room YAML (config/rooms/*.yaml)")
    parser.add_argument("--epochs", type=_whole_number(0, MAX_EPOCHS), default=None,
                        help="override the configured number of epochs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default=None, help="run folder (default runs/<experiment>_<room>)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    mode.add_argument("--overwrite", action="store_true",
                      help="start a new run in a folder that holds files, deleting the previous run's files")
    parser.add_argument("--max-eval-seconds", type=_seconds, default=MAX_EVAL_SECONDS,
                        help="longest evaluation render; renders stop 100 dB below their peak (default %(default)s)")
    parser.add_argument("--threads", type=_whole_number(1, MAX_THREADS), default=1,
                        help="torch threads (default 1: on a shared 2-core machine two threads were 6-8x slower, "
                             "benchmarks/README.md; run independent fits as separate processes instead)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:  # from here on, KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = None
    try:
        torch.set_num_threads(args.threads)
        keep_freed_memory()  # every epoch reuses the last one's buffers (sdn.allocator)
        experiment = _read_config("--config", load_experiment, args.config)
        room_config = _read_config("--room", load_room_config, args.room)
        out = Path(args.out or f"runs/{experiment.name}_{room_config.name}")
        result = fit(experiment, room_config, out=out, epochs=args.epochs, device=args.device, resume=args.resume,
                     overwrite=args.overwrite, progress=not args.quiet, max_eval_seconds=args.max_eval_seconds)
    except KeyboardInterrupt:
        print(f"interrupted; {_next_step(out)}", file=sys.stderr)
        return 130
    except Diverged as err:
        print(f"error: training stopped at {_one_line(err)}; the last good weights are in {out}", file=sys.stderr)
        return 1
    except (ValueError, IndexError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"error: the disk is full ({_one_line(err, 200)}); free some space; {_next_step(out)}",
                  file=sys.stderr)
        else:
            print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # a system error, or a bug: one line all the same, status 1
        if is_out_of_memory(err):
            print(f"error: out of memory ({_one_line(err, 200)}); lower --max-eval-seconds or the sample_rate, "
                  f"use a shorter target, or another --device", file=sys.stderr)
        else:
            print(f"error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return 1
    trained = result.metrics["trained"]
    print(f"{experiment.name} on {room_config.name}: loss {trained['loss_total']:.4f}, "
          f"EDC error {trained['edc_error_db']:.2f} dB -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
