"""What the converged fits cost: epochs until the plateau stop, seconds, and the headline errors.

    SDN_DATA_DIR=../shared/data python benchmarks/bench_converged.py [--threads N] [--only NAME ...]

For each of the paper's four configurations, fits ``config/experiments/converged_<name>.yaml`` to
the room's target (default the HOMULA S1 -> R2-HOM1 RIR) in memory, with the same code as the
pipeline (``sdn.train.fit``, evaluation included), and prints the epochs the plateau stop let it
run, the seconds of training and of the whole fit, the loss after the paper's 300 epochs (when
the learning rate is the paper's, that is the paper-budget fit) and at the end, and the headline
errors of the trained model. A fit that diverges (:class:`sdn.optimisation.Diverged`) is reported
with its epoch and the others still run.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from sdn.config import load_experiment, load_room_config
from sdn.optimisation import Diverged
from sdn.study import PAPER_CONFIGURATIONS
from sdn.train import fit

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--room", default=str(REPO / "config/rooms/homula_s1_r2hom1.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default torch's)")
    parser.add_argument("--only", nargs="*", default=list(PAPER_CONFIGURATIONS), help="paper configurations to fit")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    room = load_room_config(args.room)
    target = room.load_target(sample_rate=16000)
    print(f"{room.name}: {len(target)} samples at {target.sample_rate} Hz; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'config':>26} {'epochs':>6} {'stop':>5} {'train s':>8} {'fit s':>7} {'loss@300':>9} {'loss end':>9} "
          f"{'EDC dB':>7} {'T30 %':>7} {'EDT %':>7}")
    for name in args.only:
        experiment = load_experiment(REPO / f"config/experiments/converged_{name}.yaml")
        started = time.perf_counter()
        try:
            result = fit(experiment, room, progress=False, target=target)
        except Diverged as err:  # the run stops; the others still run
            print(f"{experiment.name:>26} stopped: {err}")
            continue
        seconds = time.perf_counter() - started
        history, trained = result.history, result.metrics["trained"]
        at_300 = history[299]["total"] if len(history) >= 300 else float("nan")
        print(f"{experiment.name:>26} {len(history):>6} {'yes' if result.metrics['plateau_epoch'] else 'cap':>5} "
              f"{sum(row['seconds'] for row in history):>8.1f} {seconds:>7.1f} {at_300:>9.4f} "
              f"{history[-1]['total']:>9.4f} {trained['edc_error_db']:>7.2f} {100 * trained['T30_err_mean']:>7.1f} "
              f"{100 * trained['EDT_err_mean']:>7.1f}")


if __name__ == "__main__":
    main()
