"""sdn.calibration and sdn.arrivals: arrival model, recovery of known positions, the stored real result."""
import json
from pathlib import Path

import numpy as np
import pytest

from sdn import calibration as cal
from sdn.arrivals import ARRIVAL_NAMES, predicted_arrivals
from sdn.config import TargetSpec, load_room_config
from sdn.rir import read_audio

REPO = Path(__file__).resolve().parents[1]
FS = 48000
SIZE = (5.46, 14.52, 3.38)
S1 = (2.28, 0.96, 1.20)


def _pra_rir(source, mics, latency=0, absorption=0.25, max_order=3, noise=0.0, seed=0):
    """(C, T) RIR of a pyroomacoustics shoebox at 48 kHz, delayed by ``latency`` samples."""
    pra = pytest.importorskip("pyroomacoustics")
    room = pra.ShoeBox(SIZE, fs=FS, materials=pra.Material(absorption), max_order=max_order,
                       air_absorption=False)
    room.add_source(list(source))
    room.add_microphone_array(np.asarray(mics, dtype=float).T)
    room.compute_rir()
    length = max(len(r[0]) for r in room.rir)
    h = np.zeros((len(mics), latency + length))
    for i, rirs in enumerate(room.rir):
        h[i, latency : latency + len(rirs[0])] = rirs[0]
    if noise:
        h += noise * np.abs(h).max() * np.random.default_rng(seed).standard_normal(h.shape)
    return h


def test_predicted_arrivals_equal_hand_computed_image_paths():
    """A 4 x 5 x 3 m room, source (1, 2, 1.5), mic (3, 4, 1): images written out by hand."""
    source, mic = (1.0, 2.0, 1.5), (3.0, 4.0, 1.0)
    images = {"x=0": (-1, 2, 1.5), "x=Lx": (7, 2, 1.5), "y=0": (1, -2, 1.5), "y=Ly": (1, 8, 1.5),
              "floor": (1, 2, -1.5), "ceiling": (1, 2, 4.5)}
    assert tuple(images) == ARRIVAL_NAMES[1:]
    # squared distances to the mic: direct 2^2 + 2^2 + 0.5^2, then each image the same way
    squared = [8.25, 16 + 4 + 0.25, 16 + 4 + 0.25, 4 + 36 + 0.25, 4 + 16 + 0.25, 4 + 4 + 6.25, 4 + 4 + 12.25]
    expected = 10.0 + np.sqrt(squared) * 16000 / 343.0
    np.testing.assert_allclose(predicted_arrivals((4, 5, 3), source, mic, 16000, latency=10.0), expected, rtol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(np.subtract(list(images.values()), mic), axis=-1), np.sqrt(squared[1:]))
    # batched candidates, each with its latency
    mics = np.array([mic, mic])
    batched = predicted_arrivals((4, 5, 3), source, mics, 16000, np.array([10.0, 0.0]))
    np.testing.assert_allclose(batched, [expected, expected - 10.0], rtol=1e-13)


def test_misspelt_option_names_the_valid_ones():
    h = np.ones(4800)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['grid_stepp'\]; LocateOptions has .*'grid_step'"):
        cal.locate_microphone(h, FS, SIZE, S1, grid_stepp=0.05)
    with pytest.raises(TypeError, match=r"\['hieght'\]"):
        cal.locate_source(h, FS, SIZE, (3.1, 6.2, 1.35), cal.LocateOptions(grid_step=0.05), hieght=(0.5, 2))


@pytest.mark.parametrize(
    "mic, latency",
    [((3.1, 6.2, 1.35), 37), ((1.2, 3.4, 1.10), 0), ((4.4, 9.5, 1.55), 250),
     ((5.0, 2.2, 1.45), 10)],
)
def test_recovers_known_mic_position(mic, latency):
    h = _pra_rir(S1, [mic], latency=latency, noise=1e-4)
    result = cal.locate_microphone(h, FS, SIZE, S1)
    assert np.linalg.norm(result.position - np.array(mic)) < 0.05
    # pyroomacoustics centres its fractional-delay filter (81 taps: +40 samples)
    pra = pytest.importorskip("pyroomacoustics")
    centre = pra.constants.get("frac_delay_length") // 2
    assert abs(result.latency - (latency + centre)) < 2.0
    assert result.matched[[0, 5, 6]].all()  # direct, floor, ceiling
    assert result.rms_residual < 1.0
    assert np.all(result.std[:3] < 0.05)


def test_recovers_mic_from_capsules_and_jackknife():
    centre = np.array([2.9, 5.1, 1.25])
    offsets = 0.012 * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1]]) / np.sqrt(3)
    h = _pra_rir(S1, centre + offsets, latency=100, noise=1e-4)
    result = cal.locate_microphone(h, FS, SIZE, S1)
    assert np.linalg.norm(result.position - centre) < 0.05
    jack = cal.leave_one_channel_out(cal.locate_microphone, h, FS, SIZE, S1)
    assert len(jack) == 3
    assert all(np.linalg.norm(j.position - centre) < 0.05 for j in jack)
    with pytest.raises(ValueError, match="two channels"):
        cal.leave_one_channel_out(cal.locate_microphone, h[:1], FS, SIZE, S1)


def test_locate_source_with_known_mic():
    mic = (2.5, 5.0, 1.2)
    source = (4.3, 1.5, 1.6)
    h = _pra_rir(source, [mic], latency=60)
    result = cal.locate_source(h, FS, SIZE, mic, latency=(60 + 40) / FS)
    assert np.linalg.norm(result.position - np.array(source)) < 0.05


def test_result_report_is_json_serialisable():
    h = _pra_rir(S1, [(3.1, 6.2, 1.35)], latency=20)
    result = cal.locate_microphone(h, FS, SIZE, S1)
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d["arrivals"]) == set(ARRIVAL_NAMES)
    assert d["arrivals"]["direct"]["matched"] is True
    assert result.perturbation.shape == (3, 2, 7)
    # a 5 cm move along z shifts the floor and ceiling arrivals in opposite directions
    dz = result.perturbation[2, 1]
    assert dz[5] * dz[6] < 0


@pytest.mark.parametrize(
    "bad, match",
    [(np.full(4800, np.nan), "non-finite"), (np.zeros(4800), "silent"), (np.ones(10), "T >= 64")],
)
def test_bad_signals(bad, match):
    with pytest.raises(ValueError, match=match):
        cal.locate_microphone(bad, FS, SIZE, S1)


def test_empty_prior():
    h = _pra_rir(S1, [(3.1, 6.2, 1.35)])
    with pytest.raises(ValueError, match="widen the prior"):
        cal.locate_microphone(h, FS, SIZE, S1, box=[(0.3, 0.4), (0.3, 0.4), (1.0, 1.1)],
                              latency_range=(0.0, 1e-4))


def test_stored_config_matches_calibration_of_real_file(homula_dir):
    """The room config and calibration.json hold what the calibration gives on the real file."""
    report = json.loads((REPO / "results/calibration/calibration.json").read_text())
    p = report["parameters"]
    h, fs = read_audio(homula_dir / "rir-S1-R2-HOM1.wav")
    result = cal.locate_microphone(
        h, fs, report["room"]["size_m"], report["room"]["source_s1_m"],
        box=[tuple(b) for b in p["box_m"]], latency_range=tuple(p["latency_range"]),
        grid_step=p["grid_step"], max_delay=p["max_delay"], c=p["c"],
    )
    stored = report["s1_r2hom1"]
    np.testing.assert_allclose(result.position, stored["position_m"], atol=1e-3)
    assert result.latency == pytest.approx(stored["latency_samples"], abs=0.05)
    cfg = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    np.testing.assert_allclose(cfg.room.mic, result.position, atol=6e-4)  # rounded to mm
    assert cfg.room.source == tuple(report["room"]["source_s1_m"])
    assert cfg.target == TargetSpec("homula-rir/rir-S1-R2-HOM1.wav", "mean")
    # the residuals stored per arrival are those of the fit
    for k, name in enumerate(ARRIVAL_NAMES):
        r = stored["arrivals"][name]["residual_samples"]
        if result.matched[k]:
            assert r == pytest.approx(result.residuals[k], abs=1e-3)
        else:
            assert r is None
