"""Time the closed-form SDN: forward and forward+backward for a 1 s IR (16000 samples at 16 kHz),
and the peak resident memory of one forward+backward, for scalar (FIR 0) and FIR-6 walls.

Each configuration runs in a fresh subprocess so that peak memory is its own. "perturbed" walls
and independent admittances break the passivity certificate, which adds the no-grad growth check
(the paper's parametrisation during training).

    python benchmarks/bench_sdn.py [--samples 16000] [--repeats 20] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(fir_order: int, perturbed: bool, samples: int, repeats: int, threads: int | None) -> dict:
    import torch

    import sdn

    if threads:
        torch.set_num_threads(threads)
    room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    model = sdn.SDN(room, fir_order=fir_order, distance_correction=True)
    if perturbed:
        with torch.no_grad():
            model.log_admittance.add_(0.1 * torch.randn(6, 5, generator=torch.Generator().manual_seed(0)))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forward, backward = [], []
    for _ in range(repeats + 3):  # 3 warm-up runs
        model.zero_grad()
        t0 = time.perf_counter()
        h = model.impulse_response(samples)
        t1 = time.perf_counter()
        (h**2).sum().backward()
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        backward.append(t2 - t0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "fir_order": fir_order,
        "certified": model.stability().certified,
        "forward_ms": 1e3 * statistics.median(forward[3:]),
        "forward_backward_ms": 1e3 * statistics.median(backward[3:]),
        "peak_memory_mb": (peak_rss - base_rss) / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.samples, args.repeats, args.threads)))
        return
    print(f"closed-form SDN, {args.samples} samples, median of {args.repeats} runs")
    print(f"{'walls':>8} {'admittances':>22} {'forward ms':>11} {'fwd+bwd ms':>11} {'peak MB':>8} {'threads':>7}")
    for fir_order in (0, 6):
        for perturbed in (False, True):
            cmd = [sys.executable, __file__, "--child", str(fir_order), str(int(perturbed)),
                   "--samples", str(args.samples), "--repeats", str(args.repeats)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            label = "perturbed (check)" if not r["certified"] else "isotropic (certified)"
            print(f"{'FIR ' + str(fir_order):>8} {label:>22} {r['forward_ms']:11.1f} {r['forward_backward_ms']:11.1f} "
                  f"{r['peak_memory_mb']:8.0f} {r['threads']:7d}")


if __name__ == "__main__":
    main()
