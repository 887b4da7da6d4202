"""Fit an SDN to a measured room impulse response (the paper's experiment).

Full-batch Adam on one target: each epoch renders the SDN's impulse response in closed form at
the target's length, normalises both to unit norm and takes one step on the weighted loss of
:mod:`sdn.losses`. A run folder holds everything needed to inspect, reproduce and resume it::

    config.json    resolved experiment + room config, package versions, config hash
    history.csv    per-epoch loss terms and total
    checkpoint.pt  model + optimiser + history (for --resume)
    model.pt       final weights, best.pt lowest-loss weights (sdn.load)
    ir.wav         final impulse response (float32 WAV, unit norm)
    metrics.json   acoustic parameters and errors of the target, initial and trained model

Command line::

    python -m sdn.train --config config/experiments/prior_fir0.yaml \\
        --room config/rooms/homula_s1_r2hom1.yaml [--epochs N] [--device cpu|cuda] [--out DIR] [--resume]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .baselines import absorption_from_reverberation_time
from .config import ExperimentConfig, RoomConfig, config_hash, load_experiment, load_room_config
from .evaluation import evaluate
from .fileio import atomic_path, write_text
from .losses import SDNLoss
from .model import SDN
from .stability import UnstableSDNError

log = logging.getLogger(__name__)
HISTORY_FIELDS = ("epoch", "edc", "edr", "edp", "total", "seconds")
EVAL_SECONDS = 20.0  # length of the renders whose acoustic parameters are reported


class TrainingStopped(RuntimeError):
    """The loss became non-finite or the model unstable; the run folder keeps the last good weights."""


@dataclass
class FitResult:
    model: SDN
    history: list
    metrics: dict
    run_dir: Path | None
    config: dict


def resolve_alpha(experiment: ExperimentConfig, room_config: RoomConfig, target_rt60: float) -> float:
    """The model's initial absorption: the configured number, or Sabine/Eyring from the target's T30."""
    alpha = experiment.model.alpha
    if isinstance(alpha, str):
        return absorption_from_reverberation_time(alpha, target_rt60, room_config.room, c=experiment.model.c)
    return float(alpha)


def build_model(experiment: ExperimentConfig, room_config: RoomConfig, alpha: float, device=None) -> SDN:
    """The experiment's SDN of the room, with the resolved initial absorption ``alpha``."""
    return SDN(room_config.room, **experiment.model.sdn_kwargs(alpha=alpha), device=device)


def versions() -> dict:
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
    """Hash tying a run folder to the experiment and room configs it was run with."""
    return config_hash({"experiment": experiment.to_dict(), "room": room_config.to_dict()})


def _render(model: SDN, n: int) -> torch.Tensor:
    """Impulse response(s) of ``n`` samples, each position normalised to unit norm: (..., n)."""
    h = model.impulse_response(n)
    return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)


class Diverged(RuntimeError):
    """A training step met an unstable model or a non-finite loss; the message names the epoch."""


def train_step(model: SDN, y: torch.Tensor, loss_fn, optimizer, epoch: int) -> tuple[dict, dict]:
    """One full-batch step on unit-norm renders against targets ``y`` (..., T).

    Returns the history row (loss terms before the step, seconds) and the weights that produced
    that loss (a copy of the state before the step). Raises :class:`Diverged` instead of stepping
    when the model is unstable or the loss is not finite.
    """
    started = time.perf_counter()
    optimizer.zero_grad()
    try:
        terms = loss_fn(_render(model, y.shape[-1]), y)
    except UnstableSDNError as err:
        raise Diverged(f"epoch {epoch}: {err}") from err
    if not torch.isfinite(terms["total"]):
        raise Diverged(f"epoch {epoch}: non-finite loss {({k: v.item() for k, v in terms.items()})}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    terms["total"].backward()
    optimizer.step()
    row = {"epoch": epoch, **{k: terms[k].item() for k in ("edc", "edr", "edp", "total")},
           "seconds": time.perf_counter() - started}
    return row, state


def _write_history(path: Path, history: list) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def _save_checkpoint(path: Path, model, optimizer, history, best) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history, "best": best}, tmp)


def fit(
    experiment: ExperimentConfig,
    room_config: RoomConfig,
    out: str | Path | None = None,
    epochs: int | None = None,
    device: str | torch.device | None = None,
    resume: bool = False,
    progress: bool = True,
    target=None,
    eval_seconds: float = EVAL_SECONDS,
) -> FitResult:
    """Fit (or, with 0 epochs, just evaluate) the experiment's SDN on the room's measured target.

    Parameters
    ----------
    experiment, room_config : from :func:`sdn.config.load_experiment` and
        :func:`sdn.config.load_room_config`.
    out : run folder (created); None keeps everything in memory.
    epochs : overrides ``experiment.training.epochs``.
    device : "cpu", "cuda", a torch.device, or None (CPU).
    resume : continue from ``out/checkpoint.pt``; gives the same result as an uninterrupted run.
    progress : show a progress bar with the loss terms.
    target : a preloaded :class:`sdn.rir.MeasuredRIR` (default: ``room_config.load_target``).
    eval_seconds : length of the renders whose acoustic parameters are reported (at least the
        target's length); long enough for the untrained SDN's T30 of about 15 s to be measured.

    Raises
    ------
    TrainingStopped when the loss becomes non-finite or the model unstable, after saving the last
    good weights, the history and the metrics so far.
    """
    if epochs is not None:
        experiment = experiment.replace(training={"epochs": int(epochs)})
    device = torch.device(device or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    run_dir = Path(out) if out is not None else None
    if resume and (run_dir is None or not (run_dir / "checkpoint.pt").is_file()):
        raise FileNotFoundError(f"cannot resume: no checkpoint.pt in {run_dir}")

    torch.manual_seed(experiment.training.seed)
    fs = experiment.model.sample_rate
    target = target if target is not None else room_config.load_target(sample_rate=fs)
    if target.sample_rate != fs:
        raise ValueError(f"target sample rate {target.sample_rate} Hz differs from the model's {fs} Hz")
    y = target.signal.to(device=device, dtype=torch.float32)
    y = y / torch.linalg.vector_norm(y)
    n = y.shape[-1]
    alpha = resolve_alpha(experiment, room_config, target.rt60 if target.rt60 else _rt60(y, fs))
    model = build_model(experiment, room_config, alpha, device)
    loss_fn = SDNLoss(fs, weights=(experiment.loss.edc, experiment.loss.edr, experiment.loss.edp))
    optimizer = torch.optim.Adam(model.parameters(), lr=experiment.training.lr)

    resolved = {
        "experiment": experiment.to_dict(),
        "room": room_config.to_dict(),
        "resolved": {"alpha": alpha, "target": target.metadata(), "n_samples": n},
    }
    resolved["hash"] = run_hash(experiment, room_config)
    # Resuming may extend the number of epochs; everything else must be the same run.
    resolved["resume_hash"] = run_hash(experiment.replace(training={"epochs": 0}), room_config)
    resolved["versions"] = versions()
    initial = _model_metrics(model, y, loss_fn, eval_seconds)
    history, best = [], None
    if resume:
        previous = json.loads((run_dir / "config.json").read_text())
        if previous.get("resume_hash") != resolved["resume_hash"]:
            raise ValueError(f"cannot resume {run_dir}: it was run with another configuration "
                             f"(hash {previous.get('resume_hash')} != {resolved['resume_hash']})")
        state = torch.load(run_dir / "checkpoint.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best = state["history"], state["best"]
    if run_dir is not None:
        write_text(run_dir / "config.json", json.dumps(resolved, indent=2))

    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stop_reason = None
    epochs_total = experiment.training.epochs
    bar = _progress(range(len(history), epochs_total), progress, experiment.name)
    for epoch in bar:
        try:
            row, last_good = train_step(model, y, loss_fn, optimizer, epoch)
        except Diverged as err:
            stop_reason = str(err)
            break
        history.append(row)
        if best is None or row["total"] < best["total"]:
            best = {"epoch": epoch, "total": row["total"], "state": last_good}
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{row[k]:.4f}" for k in ("total", "edc", "edr", "edp")})
        if run_dir is not None and ((epoch + 1) % experiment.training.checkpoint_every == 0 or epoch + 1 == epochs_total):
            _save_checkpoint(run_dir / "checkpoint.pt", model, optimizer, history, best)

    if stop_reason is not None:
        model.load_state_dict(last_good)  # weights that produced the last finite loss
    metrics = {"target": evaluate(y, None, fs), "initial": initial, "trained": _model_metrics(model, y, loss_fn, eval_seconds)}
    metrics["stopped"] = stop_reason
    metrics["best_epoch"] = None if best is None else best["epoch"]
    if run_dir is not None:
        _write_outputs(run_dir, model, best, history, metrics, n)
    if stop_reason is not None:
        raise TrainingStopped(f"training stopped at {stop_reason}; last good weights kept"
                              + (f" in {run_dir}" if run_dir else ""))
    return FitResult(model=model, history=history, metrics=metrics, run_dir=run_dir, config=resolved)


def _rt60(y: torch.Tensor, fs: int) -> float:
    from .acoustics import reverberation_time

    return float(reverberation_time(y.detach().cpu(), fs, decay="T30"))


def _progress(iterable, enabled: bool, name: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=name, unit="epoch", leave=False)


def _model_metrics(model: SDN, y: torch.Tensor, loss_fn, eval_seconds: float) -> dict:
    """Loss terms at the target's length; acoustic parameters from a render of ``eval_seconds``, so
    that decays much slower than the target's (an untrained SDN) remain measurable.

    A model that is stable over the target's length but grows within ``eval_seconds`` is evaluated
    on the target's length instead and flagged ``"stable": False``.
    """
    n = y.shape[-1]
    with torch.no_grad():
        try:
            h, stable = _render(model, max(n, int(eval_seconds * model.sample_rate))), True
        except UnstableSDNError:
            h, stable = _render(model, n), False
        entry = {**evaluate(h, y, model.sample_rate), "stable": stable}
        entry.update({f"loss_{k}": v.item() for k, v in loss_fn(_render(model, n), y).items()})
    return entry


def _write_outputs(run_dir: Path, model: SDN, best, history, metrics, n: int) -> None:
    import soundfile as sf

    model.save(run_dir / "model.pt")
    if best is not None:
        best_model = SDN.from_config(model.config, dtype=model.dtype)
        best_model.load_state_dict(best["state"])
        best_model.save(run_dir / "best.pt")
    _write_history(run_dir / "history.csv", history)
    with torch.no_grad():
        ir = _render(model, n).cpu().numpy()
    with atomic_path(run_dir / "ir.wav") as tmp:
        sf.write(str(tmp), ir.astype(np.float32), int(model.sample_rate), subtype="FLOAT", format="WAV")
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdn.train", description="Fit an SDN to a measured RIR.")
    parser.add_argument("--config", required=True, help="experiment YAML (config/experiments/*.yaml)")
    parser.add_argument("--room", required=True, help="room YAML (config/rooms/*.yaml)")
    parser.add_argument("--epochs", type=int, default=None, help="override the configured number of epochs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default=None, help="run folder (default runs/<experiment>_<room>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument("--eval-seconds", type=float, default=EVAL_SECONDS,
                        help="length of the renders evaluated for T30/EDT/C50 (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        experiment = load_experiment(args.config)
        room_config = load_room_config(args.room)
        out = args.out or f"runs/{experiment.name}_{room_config.name}"
        result = fit(experiment, room_config, out=out, epochs=args.epochs, device=args.device,
                     resume=args.resume, progress=not args.quiet, eval_seconds=args.eval_seconds)
    except (FileNotFoundError, ValueError, TrainingStopped, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    trained = result.metrics["trained"]
    print(f"{experiment.name} on {room_config.name}: loss {trained['loss_total']:.4f}, "
          f"EDC error {trained['edc_error_db']:.2f} dB -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
