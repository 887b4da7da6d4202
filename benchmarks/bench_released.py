"""The paper's released code against `sdn`'s faithful mode, side by side on this machine.

Needs a checkout of the released code (https://github.com/ilic-mezza/differentiable-sdn); nothing
of it is copied here: its `sdn.py` is imported from the given folder at run time. Both models are
built for the paper's room and positions with scalar walls (alpha 0.02, no distance correction);
`sdn` with ``quirks="paper"``, which reproduces the released code's behaviours. Printed and
written to a CSV (default ``results/benchmarks/released.csv``), one row per model and pass:

- samples per second of the forward pass (a unit pulse of ``--samples`` samples) and of forward
  plus backward (of the summed squared output), each timed in its own subprocess, with the peak
  resident memory of that subprocess above its baseline and the machine's 1-minute load average
  when it ended (other jobs on the machine slow both models down);
- the correlation coefficient of the two impulse responses over their first ``--samples``
  samples (faithful vs released; 1 means the same shape).

    python benchmarks/bench_released.py --released ../differentiable-sdn [--samples 1200]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOM = {"size": (5.46, 14.52, 3.38), "source": (2.28, 0.96, 1.20), "mic": (3.67, 1.96, 1.20)}
FIELDS = ("model", "pass", "samples", "seconds", "samples_per_second", "peak_memory_mb", "load_average",
          "correlation", "date", "machine", "torch", "command")


def released_module(folder: str | os.PathLike):
    """Import ``<folder>/sdn.py`` under another name (our package is also called sdn)."""
    folder = Path(folder).resolve()
    if not (folder / "sdn.py").is_file():
        raise SystemExit(f"error: {folder} has no sdn.py: pass --released a checkout of the paper's code")
    sys.path.insert(0, str(folder))  # its own imports (junction, delay_filter, ...) resolve there
    spec = importlib.util.spec_from_file_location("released_sdn", folder / "sdn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(which: str, released: str):
    import torch

    if which == "released":
        return released_module(released).SDN(ROOM["size"], ROOM["source"], ROOM["mic"], sr=16000, c=343.0,
                                             fir_order=0, alpha=0.02, dtype=torch.float32)
    import sdn

    return sdn.SDN(sdn.Room(**ROOM), sample_rate=16000, fir_order=0, alpha=0.02, quirks="paper")


def impulse_response(model, samples: int):
    import torch

    pulse = torch.zeros(samples)
    pulse[0] = 1.0
    return model(pulse).reshape(-1)


def measure(which: str, kind: str, samples: int, released: str) -> dict:
    """One timed pass in this process (run as a child: the peak memory is its own)."""
    import torch

    model = build(which, released)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with torch.set_grad_enabled(kind == "forward+backward"):
        h = impulse_response(model, samples)
        if kind == "forward+backward":
            h.square().sum().backward()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_memory_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
            "ir": h.detach().double().tolist()}


def correlation(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.corrcoef(a, b)[0, 1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--released", required=True, help="folder of a checkout of the paper's released code")
    parser.add_argument("--samples", type=int, default=1200, help="impulse response length (default %(default)s)")
    parser.add_argument("--out", default="results/benchmarks/released.csv", help="CSV to write (default %(default)s)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child, args.samples, args.released)))
        return 0
    released_module(args.released)  # fail early with a clear message

    import torch

    rows, irs = [], {}
    for which in ("released", "faithful"):
        for kind in ("forward", "forward+backward"):
            cmd = [sys.executable, __file__, "--released", args.released, "--samples", str(args.samples),
                   "--child", which, kind]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"error: timing {which} {kind} failed:\n{done.stderr.strip()[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            irs.setdefault(which, result["ir"])
            rows.append({"model": which, "pass": kind, "samples": args.samples, "seconds": float(f"{result['seconds']:.6g}"),
                         "samples_per_second": round(args.samples / result["seconds"], 1),
                         "peak_memory_mb": round(result["peak_memory_mb"], 1),
                         "load_average": round(os.getloadavg()[0], 1)})  # other jobs slow both down
    r = correlation(irs["released"], irs["faithful"])
    stamp = {"correlation": round(r, 6), "date": dt.date.today().isoformat(),
             "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
                        f"{torch.get_num_threads()} torch threads".replace("  ", " "),
             "torch": torch.__version__, "command": "python benchmarks/bench_released.py --released PATH "
                                                    f"--samples {args.samples}"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, **stamp} for row in rows)
    for row in rows:
        print(f"{row['model']:>9} {row['pass']:>17}: {row['samples_per_second']:>12.1f} samples/s, "
              f"peak {row['peak_memory_mb']:.0f} MB")
    print(f"correlation of the first {args.samples} samples, faithful vs released: {r:.4f} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
