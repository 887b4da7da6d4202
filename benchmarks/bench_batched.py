"""Time fitting 16 positions of one room together (one batched SDN, shared room parameters) against
fitting them one after another (16 single-position SDNs), with the same number of epochs each.

    python benchmarks/bench_batched.py [--positions 16] [--epochs 20] [--seconds 1.0] [--fir-order 0]
                                       [--threads 1] [--device cpu|cuda]

Targets are SDN-generated RIRs (1 s at 16 kHz by default) of random positions in the HOMULA shoebox;
both ways run ``sdn.multi.fit_positions`` (the paper's loss, Adam), so they differ only in the
batching. Note that the two do not fit the same thing: the batched model shares one set of room
parameters, the sequential fits give one set per position. Printed: seconds per epoch (median), the
total, and the speed-up (sequential total / batched total); then the same comparison for the render
alone (closed-form forward+backward of every position's IR, no loss, no optimiser), which tells how
much of an epoch the losses take.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import sdn
from sdn.allocator import keep_freed_memory
from sdn.multi import fit_positions
from sdn.simulate import position_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0, help="target length (s)")
    parser.add_argument("--fir-order", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as python -m sdn.train and the notebooks do
    fs = 16000
    n = int(args.seconds * fs)
    rooms = position_grid((5.46, 14.52, 3.38), 4, -(-args.positions // 4), seed=0)[: args.positions]
    with torch.no_grad():
        targets = sdn.SDN(rooms, sample_rate=fs, alpha=0.2).impulse_response(n)
    kwargs = {"sample_rate": fs, "fir_order": args.fir_order, "alpha": 0.02, "device": args.device}
    print(f"{args.positions} positions, {n} samples at {fs} Hz, {args.epochs} epochs, FIR order {args.fir_order}, "
          f"device {args.device}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s), "
          f"load {os.getloadavg()[0]:.2f}, {platform.processor() or platform.machine()}")

    def timed(rooms_, targets_):
        started = time.perf_counter()
        _, history = fit_positions(rooms_, targets_, kwargs, epochs=args.epochs, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started, [row["seconds"] for row in history]

    fit_positions(rooms[:1], targets[:1], kwargs, epochs=1, progress=False)  # warm-up
    batched_total, batched_epochs = timed(rooms, targets)
    sequential_total, sequential_epochs = 0.0, []
    for room, target in zip(rooms, targets):
        seconds, epochs = timed(room, target)
        sequential_total += seconds
        sequential_epochs.append(epochs)
    per_epoch_sequential = sum(statistics.median(e) for e in sequential_epochs)
    print(f"{'':>36} {'s/epoch (median)':>17} {'total s':>8}")
    print(f"{'batched (1 model, ' + str(args.positions) + ' positions)':>36} "
          f"{statistics.median(batched_epochs):17.3f} {batched_total:8.1f}")
    print(f"{'sequential (' + str(args.positions) + ' single fits)':>36} {per_epoch_sequential:17.3f} "
          f"{sequential_total:8.1f}")
    print(f"speed-up of the batched fit: {sequential_total / batched_total:.2f}x")

    def render_seconds(model, repeats=5):  # median forward+backward of the model's IR(s)
        times = []
        for _ in range(repeats + 1):
            model.zero_grad()
            started = time.perf_counter()
            model.impulse_response(n).square().sum().backward()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:])

    batched_render = render_seconds(sdn.SDN(rooms, **kwargs))
    sequential_render = sum(render_seconds(sdn.SDN(room, **kwargs)) for room in rooms)
    print(f"render alone (forward+backward): batched {batched_render:.3f} s, sequential {sequential_render:.3f} s, "
          f"speed-up {sequential_render / batched_render:.2f}x")


if __name__ == "__main__":
    main()
