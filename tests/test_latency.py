"""Latency compensation of a measured target: the band-limited advance, the room-config option."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sdn.config import ConfigError, RoomConfig, TargetSpec, load_room_config, write_room_config
from sdn.rir import advance, load_rir
from sdn.train import run_hash

REPO = Path(__file__).resolve().parents[1]
FS = 48000
SIGMA = 3.0  # samples: a Gaussian pulse this wide is band-limited to far below 1e-15 at fs/2


def sparse_rir(times, amplitudes, n=FS // 2) -> np.ndarray:
    """Gaussian pulses at fractional sample times with a decaying noise-free tail of echoes."""
    t = np.arange(n)
    return sum(a * np.exp(-0.5 * ((t - s) / SIGMA) ** 2) for s, a in zip(times, amplitudes))


def test_advance_shifts_a_band_limited_signal_exactly():
    times = np.array([700.3, 851.77, 1203.5, 2999.01])
    amplitudes = np.array([1.0, -0.4, 0.3, 0.1])
    for shift in (274.4548, 100.0, 0.25):
        shifted = advance(sparse_rir(times, amplitudes), shift)
        expected = sparse_rir(times - shift, amplitudes)[: shifted.size]
        assert shifted.size == FS // 2 - int(np.ceil(shift))
        np.testing.assert_allclose(shifted, expected, atol=1e-12)


def test_advance_rejects_shifts_outside_the_signal():
    with pytest.raises(ValueError, match="advance"):
        advance(np.ones(100), 100.0)
    with pytest.raises(ValueError, match="advance"):
        advance(np.ones(100), -1.0)


def test_load_rir_removes_a_known_latency(tmp_path):
    # the same echoes recorded with and without 5.72 ms of latency: once the latency is removed,
    # the loaded targets agree (through resampling to 16 kHz), and the direct sound lands where
    # the propagation delay puts it
    latency = 274.4548 / FS
    times, amplitudes = np.array([600.2, 777.7, 1500.4, 4000.9]), np.array([1.0, 0.5, -0.3, 0.2])
    sf.write(tmp_path / "late.wav", sparse_rir(times + latency * FS, amplitudes), FS, subtype="DOUBLE")
    sf.write(tmp_path / "on_time.wav", sparse_rir(times, amplitudes), FS, subtype="DOUBLE")
    late = load_rir(tmp_path / "late.wav", latency=latency, trim=False, normalize=False)
    on_time = load_rir(tmp_path / "on_time.wav", trim=False, normalize=False)
    raw = load_rir(tmp_path / "late.wav", trim=False, normalize=False)
    n = len(late)
    assert late.latency == latency and late.metadata()["latency"] == latency
    assert abs(n - (FS // 2 - np.ceil(latency * FS)) / 3) <= 1
    np.testing.assert_allclose(late.signal.numpy(), on_time.signal.numpy()[:n], atol=2e-6)
    assert late.peak_index == on_time.peak_index == round(600.2 / 3)
    assert raw.peak_index - late.peak_index == pytest.approx(latency * 16000, abs=1)


@pytest.mark.parametrize("latency", [-0.001, 1.0, float("nan")])
def test_load_rir_rejects_a_latency_outside_the_file(tmp_path, latency):
    sf.write(tmp_path / "x.wav", sparse_rir([600.0], [1.0]), FS)
    with pytest.raises(ValueError, match="latency"):
        load_rir(tmp_path / "x.wav", latency=latency, trim=False)


def test_room_config_latency_round_trips_and_keeps_old_hashes(tmp_path):
    base = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    assert "latency" not in base.to_dict()["target"]  # no latency: the hashes of existing runs hold
    variant = RoomConfig(name="with_latency", room=base.room,
                         target=TargetSpec(base.target.file, base.target.channel, latency=0.0057178))
    text = write_room_config(variant, tmp_path / "v.yaml")
    assert "latency: 0.0057178" in text
    again = load_room_config(tmp_path / "v.yaml")
    assert again.target == variant.target and again.to_dict() == variant.to_dict()
    from sdn.config import load_experiment

    experiment = load_experiment(REPO / "config/experiments/prior_fir0.yaml")
    renamed = RoomConfig(name=base.name, room=base.room, target=variant.target)
    assert run_hash(experiment, renamed) != run_hash(experiment, base)


@pytest.mark.parametrize("value", ["-0.001", "fast", "true", ".nan"])
def test_room_config_rejects_bad_latencies(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nsize: [5, 6, 3]\nsource: [1, 1, 1]\nmic: [2, 3, 1.5]\n"
                    f"target: {{file: x.wav, channel: 0, latency: {value}}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: target latency must be a number of seconds >= 0"):
        load_room_config(path)


def test_committed_latency_variant_puts_the_direct_sound_at_the_model_delay(homula_dir):
    # With the latency the calibration estimated, the target's direct sound peaks within 1.5
    # samples (0.1 ms at 16 kHz) of the SDN's direct-path delay, instead of 91 samples later.
    config = load_room_config(REPO / "config/rooms/homula_s1_r2hom1_latency.yaml")
    calibration = json.loads((REPO / "results/calibration/calibration.json").read_text())["s1_r2hom1"]
    assert config.target.latency == pytest.approx(calibration["latency_samples"] / calibration["sample_rate"])
    base = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    assert config.room == base.room
    target = config.load_target(sample_rate=16000)
    delay = config.room.direct_distance / 343.0 * 16000
    assert abs(target.peak_index - delay) < 1.5
    assert base.load_target(sample_rate=16000).peak_index - delay > 80
