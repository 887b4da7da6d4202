"""Time torch's real FFT of one signal against a batch of two, to check sdn.real_fft's choice.

    python benchmarks/bench_fft.py [--repeats 200] [--threads 1]

For each length, the median time of ``torch.fft.rfft`` and ``torch.fft.irfft`` of one row and of
a batch of two rows (float32, the training dtype), and of ``sdn.real_fft.rfft`` / ``irfft`` on one
row. Where two rows take less time than one, :mod:`sdn.real_fft` batches transforms of
:data:`sdn.real_fft.LONG` points or more.
"""
from __future__ import annotations

import argparse

import torch

from sdn.real_fft import LONG, irfft, rfft
from timing import median_seconds


def median_us(function, repeats: int) -> float:
    return median_seconds(function, repeats, warmup=10) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, MKL {torch.backends.mkl.is_available()}, {args.threads} threads, float32, "
          f"median of {args.repeats}; sdn.real_fft batches from {LONG} points")
    print(f"{'points':>7} {'transform':>9} {'1 row us':>9} {'2 rows us':>10} {'sdn.real_fft us':>16}")
    for n in (4096, 8192, 16384, 32768, 65536):
        x = torch.randn(n)
        spectrum = torch.fft.rfft(x)
        for name, reference, ours, data in (("rfft", lambda s: torch.fft.rfft(s, n=n), rfft, x),
                                            ("irfft", lambda s: torch.fft.irfft(s, n=n), irfft, spectrum)):
            pair = torch.stack([data, data])
            print(f"{n:7d} {name:>9} {median_us(lambda: reference(data), args.repeats):9.0f} "
                  f"{median_us(lambda: reference(pair), args.repeats):10.0f} "
                  f"{median_us(lambda: ours(data, n), args.repeats):16.0f}")


if __name__ == "__main__":
    main()
