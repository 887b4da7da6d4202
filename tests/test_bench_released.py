"""benchmarks/bench_released.py against a stand-in with the released code's constructor and forward."""
import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import sdn

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_released.py"

# The released SDN's signature: SDN(room_dim, src_pos, mic_pos, N=6, sr=16000, c=343., ...,
# fir_order=7, alpha=0.02, device=None, dtype=None); forward(x) takes (T,) and returns (T, 1).
STAND_IN = textwrap.dedent('''
    import torch
    from torch import nn
    from helper_module import decay  # the released code imports its own modules from its folder


    class SDN(nn.Module):
        def __init__(self, room_dim, src_pos, mic_pos, N=6, sr=16000, c=343., junction_type="householder",
                     delay_buffer_len=512, train_distances=False, max_distance_correction=0.5,
                     distance_scaling=10.0, fir_order=7, alpha=0.02, device=None, dtype=None, **kwargs):
            super().__init__()
            self.kernel = nn.Parameter(decay(256))

        def forward(self, x):
            if x.ndim == 1:
                x = x.unsqueeze(1)
            y = torch.zeros_like(x)
            n = min(len(x), len(self.kernel))
            y[:n, 0] = self.kernel[:n] * x[0, 0]
            return y
''')
HELPER = textwrap.dedent('''
    import torch


    def decay(n):
        return torch.randn(n, generator=torch.Generator().manual_seed(3)) * torch.exp(-torch.arange(n) / 40.0)
''')


def test_bench_released_times_both_and_correlates_their_impulse_responses(tmp_path):
    folder = tmp_path / "released"
    folder.mkdir()
    (folder / "sdn.py").write_text(STAND_IN)
    (folder / "helper_module.py").write_text(HELPER)
    out = tmp_path / "released.csv"
    done = subprocess.run([sys.executable, str(SCRIPT), "--released", str(folder), "--samples", "300",
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["model"], r["pass"]) for r in rows] == [("released", "forward"), ("released", "forward+backward"),
                                                       ("faithful", "forward"), ("faithful", "forward+backward")]
    for r in rows:
        assert float(r["samples_per_second"]) == pytest.approx(300 / float(r["seconds"]), rel=0.01)
        assert r["date"] and r["machine"] and r["torch"] == torch.__version__
    # the correlation is that of the stand-in's response and the faithful model's, computed here
    stand_in = np.zeros(300)
    kernel = (torch.randn(256, generator=torch.Generator().manual_seed(3)) * torch.exp(-torch.arange(256) / 40.0))
    stand_in[:256] = kernel.numpy()
    room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    pulse = torch.zeros(300)
    pulse[0] = 1
    with torch.no_grad():
        faithful = sdn.SDN(room, fir_order=0, alpha=0.02, quirks="paper")(pulse).double().numpy()
    expected = np.corrcoef(stand_in, faithful)[0, 1]
    assert {r["correlation"] for r in rows} == {str(round(expected, 6))}


def test_bench_released_names_a_folder_without_the_code(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--released", str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode != 0
    assert "has no sdn.py" in done.stderr and "Traceback" not in done.stderr
