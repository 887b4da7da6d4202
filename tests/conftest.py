"""Shared fixtures. Measured RIRs come from $SDN_DATA_DIR (CI points it at ../shared/data)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Developers' checkouts sit beside shared/; use it when nothing else is configured.
if "SDN_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "data" / "homula-rir").is_dir():
    os.environ["SDN_DATA_DIR"] = str(REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def homula_dir() -> Path:
    """Folder holding the HOMULA-RIR files; fails in CI and skips elsewhere when absent."""
    folder = Path(os.environ.get("SDN_DATA_DIR", REPO / "data")) / "homula-rir"
    if not (folder / "rir-S1-R2-HOM1.wav").is_file():
        message = f"HOMULA-RIR files not found in {folder}; set SDN_DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder
