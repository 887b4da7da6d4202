"""Torch threads against load: the closed-form forward+backward and a short fit with 1 and 2 threads,
on the machine as it is and with busy loops competing for the cores.

    SDN_DATA_DIR=../shared/data python benchmarks/bench_threads.py [--epochs 20] [--repeats 10] [--busy 2]
                                                                    [--experiment correction_fir0]

Each (load, threads) cell runs in a fresh subprocess. The forward+backward is FIR-6 walls with
distance correction on 16000 samples (median wall-clock of ``--repeats``); the fit is
``sdn.train.fit`` of ``--experiment`` on the measured S1 -> R2-HOM1 RIR (trimmed, as
``python -m sdn.train`` does) for ``--epochs`` epochs (median epoch and the sum of the epochs, without
the final evaluation). The default is ``correction_fir0``: the FIR-6 configurations make the walls
louder than 1 within 10-20 epochs on this target and stop as unstable. The
busy loops are ``python -c "while True: pass"``, started before and stopped after each loaded cell.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(threads: int, experiment_name: str, epochs: int, repeats: int) -> dict:
    import torch

    import sdn
    from sdn.config import load_experiment, load_room_config
    from sdn.train import fit

    torch.set_num_threads(threads)
    room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    model = sdn.SDN(room, fir_order=6, distance_correction=True)
    times = []
    for _ in range(repeats + 2):  # 2 warm-up runs
        model.zero_grad()
        started = time.perf_counter()
        model.impulse_response(16000).square().sum().backward()
        times.append(time.perf_counter() - started)
    room_config = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    experiment = load_experiment(REPO / "config/experiments" / f"{experiment_name}.yaml")
    history = fit(experiment, room_config, epochs=epochs, progress=False, max_eval_seconds=1.0).history
    seconds = [row["seconds"] for row in history]
    return {"forward_backward_ms": 1e3 * statistics.median(times[2:]), "epoch_s": statistics.median(seconds),
            "fit_s": sum(seconds), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--busy", type=int, default=2, help="busy loops in the loaded cells")
    parser.add_argument("--experiment", default="correction_fir0", help="config/experiments/<name>.yaml")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.experiment, args.epochs, args.repeats)))
        return
    print(f"{os.cpu_count()} CPUs; {args.experiment}, {args.epochs} epochs; FIR-6 forward+backward on 16000 samples")
    print(f"{'load':>24} {'threads':>7} {'fwd+bwd ms':>11} {'s/epoch':>8} {'fit s':>7}")
    for busy in (0, args.busy):
        for threads in (1, 2):
            loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                cmd = [sys.executable, __file__, "--child", str(threads), "--epochs", str(args.epochs),
                       "--repeats", str(args.repeats), "--experiment", args.experiment]
                r = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
                load = os.getloadavg()[0]  # the 1-minute average at the end of the cell
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            label = f"{busy} busy loops, load {load:.1f}" if busy else f"as is, load {load:.1f}"
            print(f"{label:>24} {r['threads']:7d} {r['forward_backward_ms']:11.1f} {r['epoch_s']:8.3f} "
                  f"{r['fit_s']:7.1f}")


if __name__ == "__main__":
    main()
