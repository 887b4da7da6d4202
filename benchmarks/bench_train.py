"""Time the paper's fit: seconds per epoch and for a whole 300-epoch run of each configuration on a
1 s, 16 kHz target (the measured S1 -> R2-HOM1 RIR, untrimmed, so exactly 16000 samples).

    python benchmarks/bench_train.py [--epochs 300] [--configs NAME ...] [--threads N] [--device cpu|cuda]
                                     [--malloc-defaults]

Each configuration runs the same code as ``python -m sdn.train`` (``sdn.train.fit``), in memory:
the total includes the evaluation of the target and the trained model, that of the initial model
(on a second thread, alongside the epochs) as far as it outlasts them, and whatever the package
imports lazily. Like the command line, it keeps freed memory for reuse (``sdn.allocator``) unless
``--malloc-defaults``. One import is timed apart, before the fits: ``torch._dynamo``, which
``torch.optim`` loads when a process builds its first optimiser (about 2 s).
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import time
from pathlib import Path

import torch

from sdn.allocator import keep_freed_memory
from sdn.config import load_experiment, load_room_config
from sdn.train import fit

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("prior_fir0", "correction_fir0", "prior_fir6", "correction_fir6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--room", default=str(REPO / "config/rooms/homula_s1_r2hom1.yaml"))
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave glibc's malloc as it is (python -m sdn.train calls sdn.allocator.keep_freed_memory)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = False if args.malloc_defaults else keep_freed_memory()
    started = time.perf_counter()
    importlib.import_module("torch._dynamo")  # what the first torch.optim optimiser imports
    print(f"one-off imports of the process, not in the totals: torch._dynamo {time.perf_counter() - started:.1f} s")
    room = load_room_config(args.room)
    target = room.load_target(sample_rate=16000, trim=False)
    device = torch.device(args.device)
    print(f"{len(target)} samples at {target.sample_rate} Hz, {args.epochs} epochs, device {device}, "
          f"{torch.get_num_threads()} threads, freed memory kept for reuse: {kept}")
    print(f"{'config':>16} {'s/epoch (median)':>17} {'total s':>8} {'final loss':>11}")
    for name in args.configs:
        experiment = load_experiment(REPO / f"config/experiments/{name}.yaml")
        started = time.perf_counter()
        result = fit(experiment, room, epochs=args.epochs, device=device, progress=False, target=target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - started
        per_epoch = statistics.median(row["seconds"] for row in result.history)
        print(f"{name:>16} {per_epoch:17.3f} {total:8.1f} {result.history[-1]['total']:11.4f}")


if __name__ == "__main__":
    main()
