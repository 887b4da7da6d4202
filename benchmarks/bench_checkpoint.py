"""Time the verified checkpoints: writing and reading a training checkpoint of the largest paper
configuration (correction_fir6, HOMULA room) with its SHA-256 checksum, against plain torch.save /
torch.load of the same content, and the checksum alone.

    python benchmarks/bench_checkpoint.py [--repeats 20]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import sdn
from sdn import checkpoint
from sdn.run_folder import TRAINING_CHECKPOINT_FORMAT
from timing import median_seconds

ROOM = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (0.649, 4.021, 1.137))


def median_ms(action, repeats: int) -> float:
    return median_seconds(action, repeats) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    model = sdn.SDN(ROOM, fir_order=6, distance_correction=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.impulse_response(2000).sum().backward()
    optimizer.step()
    history = [{"epoch": e, "edc": 0.1, "edr": 0.2, "edp": 0.3, "total": 0.6, "seconds": 1.0} for e in range(300)]
    content = {"run_hash": "0" * 16, "resume_hash": "1" * 16, "dtype": "float32", "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "history": history,
               "best": {"epoch": 299, "total": 0.6, "state": model.state_dict()}}
    with tempfile.TemporaryDirectory() as folder:
        verified, plain = Path(folder) / "verified.pt", Path(folder) / "plain.pt"
        rows = {
            "write, verified": median_ms(lambda: checkpoint.write(verified, TRAINING_CHECKPOINT_FORMAT, content), args.repeats),
            "write, plain torch.save": median_ms(lambda: torch.save(content, plain), args.repeats),
            "read, verified": median_ms(lambda: checkpoint.read(verified, TRAINING_CHECKPOINT_FORMAT, (), "a checkpoint", ""),
                                        args.repeats),
            "read, plain torch.load": median_ms(lambda: torch.load(plain, weights_only=True), args.repeats),
            "checksum alone": median_ms(lambda: checkpoint.checksum(content), args.repeats),
        }
        size = verified.stat().st_size
    print(f"training checkpoint of correction_fir6 with 300 history rows: {size / 1024:.1f} KiB, "
          f"median of {args.repeats}")
    for name, ms in rows.items():
        print(f"{name:>26} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
