"""Forward + backward time of the paper's losses on one 1 s RIR at 16 kHz (16000 samples).

Usage: python benchmarks/bench_losses.py [--dtype float32|float64] [--repeats 30] [--threads N] [--profile]

Signals: exponentially decaying Gaussian noise (T60 about 0.6 s) with a leading silence, unit
norm, prediction requiring grad. Each timing is the median of ``repeats`` runs after warm-up,
wall clock, of ``loss(pred, target)`` followed by ``.backward()``. As in training, the target is
the same tensor at every call, so the losses may reuse its features; the line "new target each
call" passes a fresh copy every time instead. The header shows the 1-minute load average: on a
CPU shared with other jobs, multi-threaded timings are unreliable (threads wait for each other at
every parallel operation); compare with ``--threads 1`` there. ``--profile`` also prints
``torch.profiler``'s table of the operators of ``EDPLoss`` (forward + backward), sorted by their
own time. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os

import torch

from sdn.losses import EDCLoss, EDPLoss, MelEDRLoss, SDNLoss
from timing import median_seconds

SAMPLE_RATE = 16000
N_SAMPLES = 16000


def decaying_noise(seed: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(N_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    h = torch.randn(N_SAMPLES, generator=gen, dtype=torch.float64) * torch.exp(-6.9 * t / 0.6)
    h[:200] = 0.0  # propagation delay before the direct sound
    return (h / h.norm()).to(dtype)


def time_loss(loss_fn, pred: torch.Tensor, target: torch.Tensor, repeats: int, warmup: int = 5,
              new_target: bool = False) -> float:
    def step() -> None:
        x = pred.detach().clone().requires_grad_(True)
        out = loss_fn(x, target.clone() if new_target else target)
        total = out["total"] if isinstance(out, dict) else out
        total.backward()

    return median_seconds(step, repeats, warmup)


def profile_edp(pred: torch.Tensor, target: torch.Tensor, steps: int = 20) -> None:
    """Print the operators of EDPLoss forward + backward, sorted by their own time."""
    from torch.profiler import ProfilerActivity, profile

    loss_fn = EDPLoss(SAMPLE_RATE)
    time_loss(loss_fn, pred, target, repeats=1)  # warm-up, target features cached
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_loss(loss_fn, pred, target, repeats=steps, warmup=0)
    print(f"\nEDPLoss, {steps} forward + backward steps (times are totals over the steps):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also print the operator profile of EDPLoss")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    pred, target = decaying_noise(0, dtype), decaying_noise(1, dtype)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, "
          f"T = {N_SAMPLES} samples at {SAMPLE_RATE} Hz, median of {args.repeats} (forward + backward); "
          f"{os.cpu_count()} CPUs, load average {load:.2f}")
    cases = [
        ("EDCLoss", EDCLoss(), False),
        ("MelEDRLoss", MelEDRLoss(SAMPLE_RATE), False),
        ("EDPLoss", EDPLoss(SAMPLE_RATE), False),
        ("EDPLoss, new target each call", EDPLoss(SAMPLE_RATE), True),
        ("SDNLoss (all three)", SDNLoss(SAMPLE_RATE), False),
    ]
    for name, loss_fn, new_target in cases:
        seconds = time_loss(loss_fn, pred, target, args.repeats, new_target=new_target)
        print(f"{name:<30s} {seconds * 1e3:8.2f} ms")
    if args.profile:
        profile_edp(pred, target)


if __name__ == "__main__":
    main()
