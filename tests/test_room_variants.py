"""Room configs of the sensitivity studies, derived from the calibration."""
import json
from pathlib import Path

import numpy as np
import pytest

from sdn.config import load_room_config
from sdn.room_variants import latency_config, main, runner_up_configs, write_room_variants

REPO = Path(__file__).resolve().parents[1]
CALIBRATION = REPO / "results/calibration/calibration.json"
BASE = REPO / "config/rooms/homula_s1_r2hom1.yaml"


def calibration() -> dict:
    return json.loads(CALIBRATION.read_text())


def test_runner_ups_move_only_the_microphone_to_the_calibration_alternatives():
    base = load_room_config(BASE)
    solution = calibration()["s1_r2hom1"]
    configs = runner_up_configs(calibration(), base)
    assert len(configs) == len(solution["alternatives"]) >= 3
    for config, alternative in zip(configs, solution["alternatives"]):
        np.testing.assert_allclose(config.room.mic, alternative["position"])
        assert config.room.size == base.room.size and config.room.source == base.room.source
        assert config.target == base.target
        assert f"{alternative['score']:.4f}" in config.description
    # the estimate is the best-scoring solution, every runner-up at least 0.3 m from it
    for alternative in solution["alternatives"]:
        assert alternative["score"] <= solution["score"]
        assert np.linalg.norm(np.subtract(alternative["position"], solution["position_m"])) >= 0.3


def test_latency_variant_keeps_the_geometry_and_removes_the_estimated_latency():
    base = load_room_config(BASE)
    solution = calibration()["s1_r2hom1"]
    config = latency_config(calibration(), base)
    assert config.room == base.room and config.target.file == base.target.file
    assert config.target.latency == pytest.approx(solution["latency_ms"] / 1e3, abs=1e-7)
    with pytest.raises(KeyError, match="no entry 'elsewhere'"):
        latency_config(calibration(), base, key="elsewhere")


def test_committed_variants_are_what_the_function_writes(tmp_path):
    written = write_room_variants(CALIBRATION, BASE, tmp_path)
    assert written["positions"][0] == BASE and len(written["positions"]) >= 4
    for path in [*written["positions"][1:], written["latency"]]:
        committed = REPO / "config/rooms" / path.name
        assert committed.read_text() == path.read_text().replace(str(CALIBRATION), "results/calibration/calibration.json") \
            .replace(str(BASE), "config/rooms/homula_s1_r2hom1.yaml"), path.name
        assert path.read_text().startswith("# ") and "Written by sdn.room_variants" in path.read_text()
        assert load_room_config(path).to_dict() == load_room_config(committed).to_dict()


def test_command_line_reports_a_missing_calibration(tmp_path, capsys):
    assert main(["--calibration", str(tmp_path / "none.json"), "--out", str(tmp_path)]) == 2
    assert "none.json" in capsys.readouterr().err
