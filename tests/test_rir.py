"""sdn.rir: loading and preprocessing measured RIRs (the shipped HOMULA-RIR files), bad inputs."""
import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from sdn.data import HashMismatchError
from sdn.fileio import NotRegularFileError
from sdn.rir import MIN_SAMPLES, load_rir, read_audio

S1 = "rir-S1-R2-HOM1.wav"
S2 = "rir-S2-R2-HOM1.wav"


@pytest.mark.parametrize("name", [S1, S2])
def test_load_shipped_file(homula_dir, name):
    rir = load_rir(name, channel=0)
    x = rir.signal
    assert x.ndim == 1 and str(x.dtype) == "torch.float32"
    assert rir.sample_rate == 16000 and rir.original_sample_rate == 48000
    assert rir.n_channels == 8 and rir.original_length == 48000
    assert abs(float(x.norm()) - 1.0) < 1e-5
    assert 0.6 < rir.rt60 < 1.1  # broadband T30 about 0.85 s
    assert len(rir) == round(rir.rt60 * 16000)
    assert rir.path == homula_dir / name
    # direct sound at ~15.9 ms in the 48 kHz file: kept at the same time after resampling
    assert abs(rir.peak_index / 16000 - 0.0159) < 1e-3


def test_trimmed_length_consistent_with_rt60_estimate(homula_dir):
    from sdn.acoustics import reverberation_time

    full = load_rir(S1, channel="mean", trim=False, normalize=False)
    trimmed = load_rir(S1, channel="mean")
    rt = float(reverberation_time(full.signal.double().numpy(), 16000, decay="T30"))
    assert trimmed.rt60 == pytest.approx(rt, rel=1e-6)
    assert len(trimmed) == round(rt * 16000)
    # trimming keeps time 0: the trimmed signal is the start of the untrimmed one, rescaled
    x = full.signal.numpy()[: len(trimmed)]
    np.testing.assert_allclose(trimmed.signal.numpy(), x / np.linalg.norm(x), atol=1e-6)


def test_channel_selection_and_mean(homula_dir):
    raw, fs = sf.read(homula_dir / S1, dtype="float64", always_2d=True)
    for channel, expected in ((3, raw[:, 3]), (-1, raw[:, 7]), ("mean", raw.mean(axis=1))):
        rir = load_rir(S1, channel=channel, trim=False, normalize=False)
        ref = soxr.resample(expected, fs, 16000, quality="VHQ")
        assert len(rir) == 16000
        np.testing.assert_allclose(rir.signal.numpy(), ref, rtol=1e-5, atol=1e-9)
        assert rir.channel == channel
    a = load_rir(S1, channel=-1)
    b = load_rir(S1, channel=7)
    assert np.array_equal(a.signal.numpy(), b.signal.numpy())


def test_other_sample_rate_and_path(homula_dir):
    rir = load_rir(homula_dir / S1, channel=2, sample_rate=24000, trim=False)
    assert rir.sample_rate == 24000 and len(rir) == 24000


def test_numpy_sample_rates_are_accepted(homula_dir):
    reference = load_rir(S1, trim=False).signal
    for rate in (np.int64(16000), np.float32(16000.0), 16000.0):
        rir = load_rir(S1, sample_rate=rate, trim=False)
        assert rir.sample_rate == 16000 and type(rir.sample_rate) is int
        assert np.array_equal(rir.signal.numpy(), reference.numpy())


# ------------------------------------------------------------------ bad inputs


def test_load_by_name_rejects_modified_copy(homula_dir, nothing_shipped, tmp_path, monkeypatch):
    folder = tmp_path / "data" / "homula-rir"
    folder.mkdir(parents=True)
    content = bytearray((homula_dir / S1).read_bytes())
    content[-1] ^= 0x01
    (folder / S1).write_bytes(bytes(content))
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(HashMismatchError):
        load_rir(S1)


def test_missing_file_says_how_to_fetch(nothing_shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python -m sdn\.data fetch rir-S1-R2-HOM1\.wav"):
        load_rir(S1)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_rir(tmp_path / "missing.wav")


@pytest.mark.parametrize("channel", [8, -9, 100])
def test_channel_out_of_range(homula_dir, channel):
    with pytest.raises(IndexError, match="out of range .* 8 channel"):
        load_rir(S1, channel=channel)


def test_bad_channel_value(homula_dir):
    with pytest.raises(ValueError, match="'mean'"):
        load_rir(S1, channel="avg")


def _wav(path, x, fs=48000):
    sf.write(path, x, fs, subtype="FLOAT")
    return path


def test_non_finite_signal(tmp_path):
    decay = np.exp(-np.arange(4800) / 500)[:, None]
    x = np.random.default_rng(0).standard_normal((4800, 2)) * decay
    x[100, 1] = np.nan
    path = _wav(tmp_path / "nan.wav", x)
    with pytest.raises(ValueError, match="non-finite"):
        load_rir(path, channel=1)
    with pytest.raises(ValueError, match="non-finite"):
        load_rir(path, channel="mean")
    load_rir(path, channel=0, trim=False)  # the clean channel loads


def test_silent_signal(tmp_path):
    path = _wav(tmp_path / "silent.wav", np.zeros((4800, 1)))
    with pytest.raises(ValueError, match="silent"):
        load_rir(path)


@pytest.mark.parametrize("length", [1, MIN_SAMPLES - 1])
def test_too_short_file_names_the_file_and_length(tmp_path, length):
    path = _wav(tmp_path / "short.wav", np.ones((length, 1)))
    with pytest.raises(ValueError, match=rf"short\.wav holds {length} sample\(s\) .* at least {MIN_SAMPLES}"):
        load_rir(path, trim=False)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(ValueError, match="unsupported or unreadable audio format"):
        load_rir(path)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, float("nan"), True, "16000"])
def test_bad_sample_rate(homula_dir, rate):
    with pytest.raises(ValueError, match="sample_rate"):
        load_rir(S1, sample_rate=rate)


def test_train_cli_one_sample_wav_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    wav = _wav(tmp_path / "one.wav", np.ones((1, 1)))
    room = tmp_path / "room.yaml"
    room.write_text(f"name: one\nsize: [4, 5, 3]\nsource: [1, 1, 1]\nmic: [2, 3, 1.5]\n"
                    f"target: {{file: {wav}, channel: 0}}\n")
    done = subprocess.run([sys.executable, "-m", "sdn.train", "--config", "config/experiments/prior_fir0.yaml",
                           "--room", str(room), "--epochs", "0", "--out", str(tmp_path / "run"), "--quiet"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "one.wav holds 1 sample(s)" in done.stderr


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_a_wav_path_that_is_not_a_file_has_its_own_message(tmp_path, kind):
    path = tmp_path / "x.wav"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    for load in (load_rir, read_audio):
        with pytest.raises(NotRegularFileError, match=f"{path} is a {kind}, not an audio file"):
            load(path)


def test_the_target_records_the_sha256_of_its_file(homula_dir, tmp_path):
    copy = tmp_path / "copy.wav"
    copy.write_bytes((homula_dir / S1).read_bytes())
    target = load_rir(copy, channel="mean")
    assert target.sha256 == hashlib.sha256(copy.read_bytes()).hexdigest() == target.metadata()["sha256"]
    assert load_rir(S1, channel="mean").sha256 == target.sha256  # the registered name: the same file
