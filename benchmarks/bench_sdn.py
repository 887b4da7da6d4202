"""Time the closed-form SDN: forward and forward+backward for a 1 s IR (16000 samples at 16 kHz),
and the peak resident memory of one forward+backward, for scalar (FIR 0) and FIR-6 walls.

Each configuration runs in a fresh subprocess so that peak memory is its own. "perturbed" walls
and independent admittances break the passivity certificate, which adds the no-grad growth check
(the paper's parametrisation during training). Times are medians over the repeats: wall-clock, and
the process's CPU time, which a machine shared with other work inflates less.

    python benchmarks/bench_sdn.py [--samples 16000] [--repeats 20] [--threads N]
                                   [--against DIR ...] [--rounds R] [--profile]

``--against`` times other checkouts of the package (for example ``git worktree add ../base <commit>``)
in the same run: each round runs every checkout once, one after another, so that a changing load
affects them alike; the table gives each figure's median over the rounds. ``--profile`` prints
instead where the time of one FIR-6 forward+backward goes (``torch.profiler``, top operators of
the forward and of the backward pass by self CPU time).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [(fir_order, perturbed) for fir_order in (0, 6) for perturbed in (False, True)]


def _model(fir_order: int, perturbed: bool):
    import torch

    import sdn

    room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    model = sdn.SDN(room, fir_order=fir_order, distance_correction=True)
    if perturbed:
        with torch.no_grad():
            model.log_admittance.add_(0.1 * torch.randn(6, 5, generator=torch.Generator().manual_seed(0)))
    return model


def measure(fir_order: int, perturbed: bool, samples: int, repeats: int) -> dict:
    import torch

    model = _model(fir_order, perturbed)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forward, backward, cpu = [], [], []
    for _ in range(repeats + 3):  # 3 warm-up runs
        model.zero_grad()
        c0, t0 = time.process_time(), time.perf_counter()
        h = model.impulse_response(samples)
        t1 = time.perf_counter()
        (h**2).sum().backward()
        t2, c2 = time.perf_counter(), time.process_time()
        forward.append(t1 - t0)
        backward.append(t2 - t0)
        cpu.append(c2 - c0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "certified": model.stability().certified,
        "forward_ms": 1e3 * statistics.median(forward[3:]),
        "forward_backward_ms": 1e3 * statistics.median(backward[3:]),
        "cpu_ms": 1e3 * statistics.median(cpu[3:]),
        "peak_memory_mb": (peak_rss - base_rss) / 1024,
        "threads": torch.get_num_threads(),
    }


def profile(samples: int, repeats: int, top: int = 12) -> None:
    """Print the top operators (self CPU time) of FIR-6 forward and backward passes, per pass."""
    from torch.profiler import profile as torch_profile

    model = _model(6, False)
    for _ in range(3):  # warm-up
        model.zero_grad()
        model.impulse_response(samples).square().sum().backward()
    with torch_profile() as forward_profile:
        losses = [model.impulse_response(samples).square().sum() for _ in range(repeats)]
    with torch_profile() as backward_profile:
        for loss in losses:
            loss.backward()
    for name, prof in (("forward", forward_profile), ("backward", backward_profile)):
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) / repeats
        print(f"\n{name}: {total / 1e3:.1f} ms of operator self CPU time per pass (profiler overhead included)")
        print(f"{'operator':>44} {'self ms':>8} {'share':>6} {'calls':>6}")
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
            self_ms = e.self_cpu_time_total / repeats / 1e3
            print(f"{e.key[:44]:>44} {self_ms:8.2f} {self_ms * 1e3 / total:6.1%} {e.count // repeats:6d}")


def _child(source: Path, config: tuple, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(config[0]), str(int(config[1])),
           "--samples", str(args.samples), "--repeats", str(args.repeats)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    path = [str(source)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=source).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--against", nargs="+", type=Path, default=[], metavar="DIR",
                        help="other checkouts (repository roots) to time in the same run")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every checkout, interleaved")
    parser.add_argument("--profile", action="store_true", help="print the operator profile of FIR 6 instead")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(*args.child, args.samples, args.repeats)))
        return
    if args.profile:
        profile(args.samples, min(args.repeats, 10))
        return
    for source in args.against:
        if not (source / "sdn" / "__init__.py").is_file():
            parser.error(f"--against {source}: not a checkout of this repository (no sdn/__init__.py)")
    sources = [REPO] + [s.resolve() for s in args.against]
    results = {(s, c): [] for s in sources for c in CONFIGS}
    for _ in range(args.rounds):
        for config in CONFIGS:
            for source in sources:
                results[source, config].append(_child(source, config, args))
    print(f"closed-form SDN, {args.samples} samples, median of {args.repeats} runs"
          + (f", then median over {args.rounds} interleaved rounds" if args.rounds > 1 else "")
          + f"; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'checkout':>12} {'walls':>6} {'admittances':>22} {'forward ms':>11} {'fwd+bwd ms':>11} {'CPU ms':>8} "
          f"{'peak MB':>8} {'threads':>7}")
    for config in CONFIGS:
        for source in sources:
            runs = results[source, config]
            fig = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "certified"}
            label = "perturbed (check)" if not runs[0]["certified"] else "isotropic (certified)"
            name = "this" if source == REPO else source.name
            print(f"{name[:12]:>12} {'FIR ' + str(config[0]):>6} {label:>22} {fig['forward_ms']:11.1f} "
                  f"{fig['forward_backward_ms']:11.1f} {fig['cpu_ms']:8.1f} {fig['peak_memory_mb']:8.0f} "
                  f"{int(fig['threads']):7d}")


if __name__ == "__main__":
    main()
