"""Reverberate a long signal with ``model(x)``: time and peak resident memory, without gradient.

The model renders its impulse response once, until it has decayed 100 dB below its peak, and
convolves by FFT overlap-add, so memory grows with the length of the input only. With
``--render``, the model renders an impulse response of that length instead
(``model.impulse_response(n)``, the closed form on an FFT grid of twice as many points, solved in
subgrids without gradient).

    python benchmarks/bench_long_input.py [--minutes 10] [--fir-order 6] [--alpha 0.3] [--render]
"""
from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fir-order", type=int, default=6)
    parser.add_argument("--alpha", type=float, default=0.3, help="absorption (sets the decay time)")
    parser.add_argument("--render", action="store_true", help="time model.impulse_response(n) instead")
    args = parser.parse_args()

    import torch

    import sdn

    room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    model = sdn.SDN(room, fir_order=args.fir_order, alpha=args.alpha, distance_correction=True)
    n = int(args.minutes * 60 * model.sample_rate)
    x = torch.randn(n, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.impulse_response(int(model.sample_rate))  # the first call's one-off costs (kernel build, imports)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with torch.no_grad():
        y = model.impulse_response(n) if args.render else model(x)
    seconds = time.perf_counter() - started
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    what = f"model.impulse_response({n})" if args.render else f"model(x) on {args.minutes:g} min of noise ({n} samples)"
    print(f"{what} at {model.sample_rate:g} Hz, FIR {args.fir_order}, alpha {args.alpha}, no gradient, "
          f"{torch.get_num_threads()} threads")
    print(f"time {seconds:.2f} s, peak memory above the input {peak_mb:.0f} MB, output {tuple(y.shape)}")

if __name__ == "__main__":
    main()
