"""sdn.notebook: the set-up every notebook of the study runs first."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdn import notebook

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cwd():
    """Restore the working directory that notebook.setup changes."""
    before = os.getcwd()
    yield
    os.chdir(before)


def test_root_is_found_from_the_notebooks_folder_and_becomes_the_working_directory(cwd):
    os.chdir(REPO / "notebooks")
    assert notebook.find_root() == REPO
    assert notebook.setup() == REPO
    assert Path.cwd() == REPO


def test_a_folder_outside_any_checkout_is_refused_in_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")  # a project, but not this one: no sdn/ beside it
    with pytest.raises(FileNotFoundError, match="not inside a checkout of the sdn repository"):
        notebook.find_root(tmp_path)


def test_a_missing_measured_file_says_how_to_fetch_it(cwd, monkeypatch, tmp_path):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python -m sdn\.data fetch rir-S1-ULA\.wav"):
        notebook.setup("rir-S1-ULA.wav")
    with pytest.raises(FileNotFoundError, match="measured RIR not found"):
        notebook.setup("data/no-such-file.wav")


def test_output_folder_is_created_under_the_results_folder(tmp_path):
    folder = notebook.output_folder(tmp_path / "results", "tables", "x")
    assert folder == tmp_path / "results" / "tables" / "x" and folder.is_dir()


def test_target_caveat_states_target_position_and_latency_from_the_calibration(tmp_path):
    """The three facts of the box come from the calibration file when it covers the target, and
    say plainly that they are not estimated when it does not."""
    import json

    from sdn.config import load_room_config

    room_config = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    calibration = {"s1_r2hom1": {"file": "rir-S1-R2-HOM1.wav", "position_m": [1.0, 4.0, 1.2], "latency_ms": 5.5,
                                 "alternatives": [{"position": [1.0, 7.0, 1.2]}, {"position": [4.0, 8.0, 1.2]}]}}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    box = notebook.target_caveat(room_config, path)
    assert notebook.CAVEAT_CLASS in box and "homula-rir/rir-S1-R2-HOM1.wav" in box
    assert "5.50 ms later" in box
    assert "2 other positions" in box and "up to 5.0 m away" in box  # |(3, 4, 0)| = 5 m
    assert "not verified here against the dataset's Zenodo record" in box
    without = notebook.target_caveat(room_config, tmp_path / "missing.json")
    assert "as given by the room config" in without and "not estimated for this target" in without
