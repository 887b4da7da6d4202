"""Time the compiled kernels of ``sdn.native`` alone, in every build this CPU can run.

Usage: python benchmarks/bench_kernels.py [--repeats 200] [--builds native x86-64-v3 generic]

For each build (``SDN_NATIVE_BUILD``, run in its own process, one torch thread): the echo-density
kernel with its gradient on 1 s at 16 kHz in float32 (what ``EDPLoss`` runs per training step),
and the node system with its derivatives and backward pass on 16385 bins in complex64 (a 1 s
render's). Every build computes the same bits (``tests/test_native.py``); they differ in speed
only. Figures: the fastest and the median of ``repeats`` calls after 10 untimed ones, in ms.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, statistics, time, torch
torch.set_num_threads(1)
from sdn import native
from sdn.echo_density import echo_density_window

def timed(call, repeats):
    for _ in range(10):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3

generator = torch.Generator().manual_seed(0)
t = torch.arange(16000) / 16000
h = (torch.randn(1, 16000, generator=generator) * torch.exp(-6.9 * t / 0.6)).float()
window = echo_density_window(16000, dtype=torch.float32)
kappa = torch.linspace(1e2, 1e5, 16000 - window.shape[0])
target = torch.rand(1, kappa.shape[0], generator=generator)
bins = 16385
def c(*shape):
    return 0.3 * torch.randn(*shape, bins, dtype=torch.complex64, generator=generator)
pair, walls, source, mic = c(15), c(6), c(6), c(6)
junction, extraction = torch.rand(2, 6, 6, dtype=torch.float64, generator=generator)
out = torch.empty(bins, dtype=torch.complex64)
derivatives = (c(15), c(6), c(6), c(6), c(6, 6))
gradients = tuple(torch.empty_like(d) for d in derivatives[:4])
grad = c()
def node_system():
    native.node_system(pair, walls, source, mic, junction, extraction, out, derivatives)
    native.node_system_backward(grad, mic, derivatives, gradients)
repeats = REPEATS
print(json.dumps({"isa": native.compute_path()["vector_isa"],
                  "echo_density": timed(lambda: native.soft_echo_density(h, kappa, window, target=target), repeats),
                  "node_system": timed(node_system, max(1, repeats // 4))}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--builds", nargs="+", default=["native", "x86-64-v3", "generic"])
    args = parser.parse_args()
    print(f"{'build':<11}{'vector code':<14}{'echo density, ms':>22}{'node system, ms':>22}")
    print(f"{'':<25}{'fastest':>11}{'median':>11}{'fastest':>11}{'median':>11}")
    for build in args.builds:
        env = {**os.environ, "SDN_NATIVE_BUILD": build, "SDN_NATIVE": "1", "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "-c", CHILD.replace("REPEATS", str(args.repeats))], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:  # e.g. x86-64-v3 on a CPU without AVX2
            print(f"{build:<11}failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        figures = json.loads(result.stdout)
        echo, node = figures["echo_density"], figures["node_system"]
        print(f"{build:<11}{figures['isa']:<14}{echo[0]:>11.2f}{echo[1]:>11.2f}{node[0]:>11.2f}{node[1]:>11.2f}")


if __name__ == "__main__":
    main()
