"""sdn.listening: the dry test signal of notebook 04 and its renders."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from sdn import listening

FS = 16000


def test_pluck_starts_with_its_burst_then_follows_the_string_recursion():
    period = int(round(FS / 196.0))
    y = listening.pluck(196.0, 4000, FS, np.random.default_rng(3))
    assert np.array_equal(y[:period], np.random.default_rng(3).uniform(-1, 1, period))
    n = np.arange(period, y.size)
    assert np.allclose(y[n], 0.498 * (y[n - period] + y[n - period + 1]), atol=1e-12)


@pytest.mark.parametrize("frequency", listening.NOTES)
def test_pluck_sounds_at_the_karplus_strong_fundamental(frequency):
    """y[n] = g/2 (y[n-P] + y[n-P+1]): a loop delay of P - 1/2 samples, fundamental f_s / (P - 1/2)."""
    period = int(round(FS / frequency))
    y = listening.pluck(frequency, 4 * FS, FS, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(y[FS:] * np.hanning(3 * FS)))
    freqs = np.fft.rfftfreq(3 * FS, 1 / FS)
    band = (freqs > 0.5 * frequency) & (freqs < 1.5 * frequency)
    assert freqs[band][np.argmax(spectrum[band])] == pytest.approx(FS / (period - 0.5), abs=0.5)


def test_dry_signal_has_its_clicks_then_ends_in_silence():
    x = listening.dry_signal(FS, seconds=3.0, silence=1.0, seed=7)
    assert x.shape == (3 * FS,) and np.max(np.abs(x)) == pytest.approx(1.0)
    assert not np.any(x[2 * FS:]), "the last second must be silent"
    for k in range(4):  # 1 ms clicks of alternating sign, 0.18 s apart from 0.05 s
        t = 0.05 + 0.18 * k
        click = x[int(t * FS):int(t * FS) + 16]
        assert np.all(np.sign(click) == (-1) ** k) and not np.any(x[int(t * FS) + 16:int(t * FS) + 100])
    assert np.array_equal(x, listening.dry_signal(FS, seconds=3.0, silence=1.0, seed=7))
    assert not np.array_equal(x, listening.dry_signal(FS, seconds=3.0, silence=1.0, seed=8))


def test_dry_signal_too_short_for_its_parts_is_refused():
    with pytest.raises(ValueError, match="no room for the strings"):
        listening.dry_signal(FS, seconds=1.5, silence=1.0, seed=7)


class Gain:
    """A stand-in model: y = g x, in float32."""

    dtype = torch.float32

    def __init__(self, gain):
        self.gain = gain

    def __call__(self, x):
        return self.gain * x


def test_auralise_convolves_with_the_target_and_lets_each_model_render():
    rng = np.random.default_rng(1)
    dry, target = rng.standard_normal(3000), rng.standard_normal(500)
    wet = listening.auralise(dry, target, {"half": Gain(0.5)})
    assert list(wet) == ["dry", "target", "half"]
    assert np.allclose(wet["target"], np.convolve(dry, target)[:3000], atol=1e-9)
    assert np.allclose(wet["half"], 0.5 * dry, atol=1e-6)


def test_match_levels_gives_equal_rms_and_one_common_peak():
    rng = np.random.default_rng(2)
    signals = {"target": rng.standard_normal(1000), "loud": 10 * rng.standard_normal(1000), "quiet": rng.uniform(-1e-3, 1e-3, 1000)}
    out = listening.match_levels(signals)
    rms = [np.sqrt(np.mean(v ** 2)) for v in out.values()]
    assert np.allclose(rms, rms[0])
    assert max(np.max(np.abs(v)) for v in out.values()) == pytest.approx(0.89)
    with pytest.raises(ValueError, match="silent"):
        listening.match_levels({"target": np.ones(4), "zero": np.zeros(4)})


def test_write_audio_writes_16_bit_files(tmp_path):
    signal = 0.5 * np.sin(np.arange(800) / 10)
    paths = listening.write_audio({"tone": signal}, tmp_path / "audio", FS)
    read, rate = sf.read(paths["tone"])
    assert rate == FS and sf.info(paths["tone"]).subtype == "PCM_16"
    assert np.allclose(read, signal, atol=1 / 2 ** 15)
