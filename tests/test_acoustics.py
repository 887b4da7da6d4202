"""sdn.acoustics: analytic oracles, agreement with pyrato on measured RIRs, degenerate input."""
import math
import warnings

import numpy as np
import pytest
import scipy.signal
import torch

from sdn import acoustics as A
from sdn import energy_ratios as R
from sdn.echo_density import echo_density_profile
from sdn.features import mel_energy_decay_relief
from sdn.filterbank import octave_band_centres, octave_band_power_responses, octave_band_sos, octave_bands

FS = 16000


def exponential_decay(rt: float, fs: int = FS, seconds: float = 1.5, dtype=np.float64) -> np.ndarray:
    """h(n) = 10^(-3 n / (rt fs)): its energy falls by exactly 60 dB in rt seconds."""
    n = np.arange(int(seconds * fs))
    return (10.0 ** (-3.0 * n / (rt * fs))).astype(dtype)


# ----------------------------------------------------------------------------- EDC


def test_edc_is_backward_integral_and_db_starts_at_zero():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 3, 500))
    edc = A.energy_decay_curve(h)
    assert isinstance(edc, np.ndarray) and edc.shape == h.shape
    np.testing.assert_allclose(edc, np.cumsum((h ** 2)[..., ::-1], -1)[..., ::-1], rtol=1e-12)
    edc_db = A.energy_decay_curve(torch.tensor(h, dtype=torch.float32), db=True)
    assert edc_db.dtype == torch.float32
    np.testing.assert_allclose(edc_db[..., 0].numpy(), 0.0, atol=1e-5)
    assert bool((edc_db.diff(dim=-1) <= 1e-4).all())


def test_edc_linear_is_differentiable():
    h = torch.randn(50, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: A.energy_decay_curve(x), (h,))


# ----------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("rt", [0.3, 0.8])
@pytest.mark.parametrize("decay", ["T20", "T30", "EDT"])
def test_exponential_decay_gives_its_reverberation_time(rt, decay):
    h = exponential_decay(rt, seconds=2.5 * rt + 0.2)
    assert A.reverberation_time(h, FS, decay) == pytest.approx(rt, rel=1e-3)
    h32 = torch.tensor(h, dtype=torch.float32)
    got = A.reverberation_time(h32, FS, decay)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(rt, rel=1e-3)


def test_exponential_decay_after_a_delay_and_in_a_batch():
    rts = [0.25, 0.5, 1.0]
    h = np.zeros((3, int(2.8 * FS)))
    for i, rt in enumerate(rts):
        d = exponential_decay(rt, seconds=2.5)
        h[i, 300 + 100 * i:300 + 100 * i + d.size] = d
    np.testing.assert_allclose(A.reverberation_time(h, FS, "T30"), rts, rtol=1e-3)
    np.testing.assert_allclose(A.reverberation_time(h[1:2], FS, "T20"), rts[1:2], rtol=1e-3)


@pytest.mark.parametrize("decay", ["T20", "T30", "EDT", (-0.1, -10.1)])
@pytest.mark.parametrize("bands", [None, "octave"])
def test_decay_fit_uses_exactly_the_samples_of_the_range(decay, bands):
    """Against the ISO definition written out: a straight line (numpy.polyfit) through every sample
    from the onset on whose EDC level lies in the range. Noisy decays after a leading silence
    (whose level is 0 dB, which an EDT range must not take), one with exact zeros at its end, one
    whose last sample holds a thousandth of its energy: its EDC stops at -30 dB, short of the
    bottom of the T30 range (NaN)."""
    rng = np.random.default_rng(3)
    n = 2 * FS
    h = rng.standard_normal((4, n)) * np.exp(-6.9 * np.arange(n) / FS / np.array([[0.3], [0.8], [1.5], [0.8]]))
    h[:, :400] = 0.0
    h[:, 400] = 30.0  # the direct sound: the onset
    h[1, -3000:] = 0.0
    h[2] += 1e-5 * rng.standard_normal(n)
    h[3, -1] = math.sqrt(1e-3 * np.sum(h[3] ** 2))
    got = A.reverberation_time(h, FS, decay, bands=bands, min_margin_db=None).reshape(4, -1)
    signals = (h[:, None] if bands is None else octave_bands(torch.from_numpy(h), FS).numpy())
    onset = A.impulse_response_onset(h)
    upper, lower = A.DECAY_RANGES[decay] if isinstance(decay, str) else decay
    for i in range(4):
        for b in range(signals.shape[1]):
            edc = np.cumsum(signals[i, b, ::-1] ** 2)[::-1]
            with np.errstate(divide="ignore"):
                level = 10 * np.log10(edc / edc[onset[i]])
            in_range = (np.arange(n) >= onset[i]) & (level <= upper) & (level >= lower)
            slope = np.polyfit(np.flatnonzero(in_range) / FS, level[in_range], 1)[0] if in_range.sum() >= 3 else 0
            reached = np.any(level[onset[i]:] < lower)
            expected = -60 / slope if reached and in_range.sum() >= 3 and slope < 0 else np.nan
            np.testing.assert_allclose(got[i, b], expected, rtol=1e-9)


@pytest.mark.parametrize("rt", [0.4, 1.1])
def test_clarity_and_definition_closed_forms(rt):
    h = exponential_decay(rt, seconds=3 * rt)
    # energy ratio early/late of exp(-13.8 t / rt): exp(13.8 te / rt) - 1
    k = 6.0 * math.log(10.0) / rt
    for ms in (50, 80):
        expected = 10 * math.log10(math.exp(k * ms / 1000) - 1)
        assert R.clarity(h, FS, ms) == pytest.approx(expected, abs=1e-6)
    assert R.definition(h, FS) == pytest.approx(1 - math.exp(-k * 0.05), abs=1e-9)
    c50 = R.clarity(h, FS, 50)
    assert R.definition(h, FS) == pytest.approx(1 / (1 + 10 ** (-c50 / 10)), abs=1e-12)


def test_energy_ratios_start_at_a_given_onset():
    h = exponential_decay(0.5, seconds=1.0)
    for k in (0, 400, 2000):
        for ratio in (R.clarity, R.definition):
            assert ratio(h, FS, onset=k) == pytest.approx(ratio(h[k:], FS), abs=1e-12)
    bands = R.clarity(np.stack([h, h]), FS, bands="octave", onset=np.array([0, 400]))
    assert bands.shape == (2, 6)
    np.testing.assert_allclose(bands[0], R.clarity(h, FS, bands="octave"), rtol=1e-9)  # detected onset: 0
    with pytest.raises(ValueError, match="start samples must have shape"):
        R.clarity(np.stack([h, h]), FS, onset=np.array([0]))


def test_drr_closed_form():
    h = np.zeros(8000)
    h[1000] = 1.0
    tail = exponential_decay(0.5, seconds=0.3) * 0.1
    start = 1000 + int(0.0025 * FS) + 1  # first sample after the direct window
    h[start:start + tail.size] = tail
    expected = 10 * np.log10(1.0 / np.sum(tail ** 2))
    assert R.drr(h, FS) == pytest.approx(expected, abs=1e-9)


def test_white_noise_has_unit_normalised_echo_density():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((2, FS))
    profile = A.normalized_echo_density(noise, FS)
    assert profile.shape == noise.shape
    assert np.mean(profile) == pytest.approx(1.0, abs=0.03)
    soft = echo_density_profile(torch.tensor(noise), FS, soft=True, kappa=1e6)
    assert soft.mean().item() == pytest.approx(1.0, abs=0.03)


def test_sparse_impulses_have_low_echo_density_and_a_mixing_time():
    h = np.zeros(FS)
    h[::800] = 1.0  # one echo every 50 ms: very sparse
    assert np.median(A.normalized_echo_density(h, FS)) < 0.3
    rng = np.random.default_rng(2)
    mixed = np.concatenate([h[:4000], rng.standard_normal(FS - 4000)])
    t_mix = A.mixing_time(mixed, FS)
    assert 0.25 <= t_mix < 0.3  # noise starts at 0.25 s (the hard profile is noisy)
    assert np.isnan(A.mixing_time(h, FS))


# ----------------------------------------------------------------------------- comparisons


def test_edc_error_db():
    h = exponential_decay(0.5, seconds=2.0)
    assert A.edc_error_db(h, h) == pytest.approx(0.0, abs=1e-12)
    assert A.edc_error_db(3.0 * h, h) == pytest.approx(0.0, abs=1e-9)  # gain-invariant
    # two exponential decays: levels -60 t / rt; mean |difference| over the target's top 60 dB
    rt_t, rt_p = 0.5, 0.8
    expected = 30.0 * rt_t * abs(1 / rt_p - 1 / rt_t)
    got = A.edc_error_db(exponential_decay(rt_p, seconds=2.0), h)
    assert got == pytest.approx(expected, rel=2e-3)
    batch = torch.stack([torch.tensor(h), torch.tensor(exponential_decay(rt_p, seconds=2.0))])
    assert A.edc_error_db(batch, batch.flip(0)).shape == (2,)


def test_relative_error():
    assert A.relative_error(1.05, 1.0) == pytest.approx(0.05)
    np.testing.assert_allclose(A.relative_error(np.array([0.9, np.nan]), np.array([1.0, 1.0])), [-0.1, np.nan])
    t = A.relative_error(torch.tensor([2.0]), torch.tensor([4.0]))
    assert isinstance(t, torch.Tensor) and t.item() == -0.5


# ----------------------------------------------------------------------------- octave bands


@pytest.mark.parametrize("fs, top", [(16000, 4000.0), (48000, 8000.0)])
def test_octave_band_centres_and_flat_sum(fs, top):
    centres = octave_band_centres(fs)
    np.testing.assert_array_equal(centres, 125.0 * 2.0 ** np.arange(centres.size))
    assert centres[-1] == top
    freqs, resp = octave_band_power_responses(fs, 2 ** 15)
    inside = (freqs >= centres[0]) & (freqs <= centres[-1])
    total_db = 20 * np.log10(resp.sum(0)[inside])  # |H|^2 is the zero-phase amplitude gain
    assert np.abs(total_db).max() < 1.0
    # each band passes its centre at 0 dB (zero-phase: |H|^2 = 1 there)
    for fc, r in zip(centres, resp):
        assert r[np.argmin(np.abs(freqs - fc))] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("fs", [16000, 48000])
def test_octave_band_responses_are_the_squared_sosfreqz_responses(fs):
    """|H_b|^2 in real arithmetic against scipy's complex evaluation of the same sections."""
    freqs, resp = octave_band_power_responses(fs, 2 ** 15 + 6)
    for sos, r in zip(octave_band_sos(fs), resp):
        expected = np.abs(scipy.signal.sosfreqz(sos, worN=freqs, fs=fs)[1]) ** 2
        np.testing.assert_allclose(r, expected, rtol=1e-9, atol=1e-15)


def test_octave_bands_time_domain_sum_and_zero_phase():
    x = np.zeros(8000)
    x[4000] = 1.0
    bands = octave_bands(torch.from_numpy(x), FS).numpy()
    assert bands.shape == (6, 8000)
    spectrum = np.abs(np.fft.rfft(bands.sum(0)))
    freqs = np.fft.rfftfreq(8000, 1 / FS)
    inside = (freqs >= 125) & (freqs <= 4000)
    assert np.abs(20 * np.log10(spectrum[inside])).max() < 1.0
    # zero phase: every band is symmetric about the impulse
    np.testing.assert_allclose(bands[:, 4000 - 500:4000], bands[:, 4001:4501][:, ::-1], atol=1e-9)


def test_octave_band_reverberation_time_shapes_and_types():
    h = exponential_decay(0.5, seconds=1.2)
    rng = np.random.default_rng(3)
    h = h * rng.standard_normal(h.size)
    rt = A.reverberation_time(np.stack([h, h]), FS, "T20", bands="octave")
    assert rt.shape == (2, 6)
    assert np.all(np.abs(rt / 0.5 - 1) < 0.15)
    rt_t = A.reverberation_time(torch.tensor(h, dtype=torch.float32), FS, "T20", bands="octave")
    assert rt_t.shape == (6,) and rt_t.dtype == torch.float32
    np.testing.assert_allclose(rt_t.numpy(), rt[0], rtol=1e-3)


def test_room_acoustic_parameters_keys_and_shapes():
    rng = np.random.default_rng(4)
    h = exponential_decay(0.6, seconds=1.5) * rng.standard_normal(int(1.5 * FS))
    out = A.room_acoustic_parameters(np.stack([h, 0.5 * h, h[::-1].copy()]), FS)
    for key in ("T20", "T30", "EDT", "C50", "C80", "D50", "DRR", "mixing_time"):
        assert out[key].shape == (3,), key
    for key in ("T20_bands", "T30_bands", "EDT_bands", "C50_bands", "C80_bands", "D50_bands"):
        assert out[key].shape == (3, 6), key
    np.testing.assert_array_equal(out["band_centres"], octave_band_centres(FS))
    np.testing.assert_allclose(out["T30"][0], out["T30"][1])  # gain-invariant
    assert out["T30"][0] == pytest.approx(0.6, rel=0.05)
    single = A.room_acoustic_parameters(torch.tensor(h), FS)
    assert single["C50"].item() == pytest.approx(out["C50"][0])


# ----------------------------------------------------------------------------- pyrato


def _pyrato_bands(path, channel=0):
    """Our octave bands of one capsule, cropped at pyfar's ISO 3382 start sample."""
    pf = pytest.importorskip("pyfar")
    sf = pytest.importorskip("soundfile")
    x, fs = sf.read(path, dtype="float64")
    h = np.ascontiguousarray(x[:, channel])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = int(np.ravel(pf.dsp.find_impulse_response_start(pf.Signal(h, fs)))[0])
    return h, fs, pf.Signal(octave_bands(torch.from_numpy(h), fs).numpy()[:, start:], fs)


@pytest.mark.parametrize("name", ["rir-S1-R2-HOM1.wav", "rir-S2-R2-HOM1.wav"])
def test_agreement_with_pyrato_on_homula(homula_dir, name):
    """Same zero-phase octave filters for both; pyrato gets the band signals from pyfar's start.

    Differences that remain by construction: the start sample (pyfar: last sample below the
    -20 dB threshold, ours: first at/above it, one sample later), the fit range edges (pyrato:
    nearest samples to the limits) and pyrato's EDT range (-0.1 to -10.1 dB instead of ISO's
    0 to -10 dB; we pass that range explicitly here). T30 is compared without our
    dynamic-range check (``min_margin_db=None``), which rejects bands whose noise floor lies
    less than 10 dB below the bottom of the range.
    """
    pyrato = pytest.importorskip("pyrato")
    pf = pytest.importorskip("pyfar")
    h, fs, bands = _pyrato_bands(homula_dir / name)
    edc = pyrato.edc.schroeder_integration(bands)
    edc_norm = pf.TimeData(edc.time / edc.time[..., :1], edc.times)
    ref_t30 = pyrato.parameters.reverberation_time_linear_regression(edc_norm, "T30")
    ref_edt = pyrato.parameters.reverberation_time_linear_regression(edc_norm, "EDT")
    ref_c50 = pyrato.parameters.clarity(edc, early_time_limit=50)
    t30 = A.reverberation_time(h, fs, "T30", bands="octave", min_margin_db=None)
    edt = A.reverberation_time(h, fs, (-0.1, -10.1), bands="octave", min_margin_db=None)
    c50 = R.clarity(h, fs, 50, bands="octave")
    assert np.all(np.abs(t30 / ref_t30 - 1) < 0.03), (t30, ref_t30)
    assert np.all(np.abs(edt / ref_edt - 1) < 0.03), (edt, ref_edt)
    assert np.all(np.abs(c50 - ref_c50) < 0.3), (c50, ref_c50)


def test_homula_broadband_t30_and_dynamic_range_check(homula_dir):
    sf = pytest.importorskip("soundfile")
    x, fs = sf.read(homula_dir / "rir-S1-R2-HOM1.wav", dtype="float32")
    t30 = A.reverberation_time(torch.from_numpy(x.T.copy()), fs, "T30")
    assert t30.shape == (8,) and torch.all((t30 > 0.8) & (t30 < 0.92))
    bands = A.reverberation_time(x[:, 0].astype(np.float64), fs, "T30", bands="octave")
    # 125 Hz of capsule 0: the noise floor is within 10 dB of -35 dB, so ISO-style NaN
    assert np.isnan(bands[0]) and np.all(np.isfinite(bands[1:]))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    good = exponential_decay(0.5, seconds=1.0)
    with pytest.raises(TypeError, match="floating"):
        A.reverberation_time(np.arange(100), FS)
    with pytest.raises(TypeError, match="floating"):
        A.energy_decay_curve(torch.arange(10))
    with pytest.raises(TypeError, match="Tensor or numpy"):
        A.energy_decay_curve([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        A.reverberation_time(np.array([1.0, np.nan, 0.5]), FS)
    with pytest.raises(ValueError, match="NaN or inf"):
        R.clarity(torch.tensor([1.0, float("inf"), 0.0]), FS)
    with pytest.raises(ValueError, match="time axis"):
        A.energy_decay_curve(np.ones(()))
    with pytest.raises(ValueError, match="at least"):
        A.reverberation_time(np.zeros((3, 0)), FS)
    with pytest.raises(ValueError, match="decay must be"):
        A.reverberation_time(good, FS, "T60x")
    with pytest.raises(ValueError, match="upper > lower"):
        A.reverberation_time(good, FS, (-20.0, -5.0))
    with pytest.raises(ValueError, match="bands"):
        A.reverberation_time(good, FS, bands="third-octave")
    with pytest.raises(ValueError, match="sample_rate"):
        R.clarity(good, -1.0)
    with pytest.raises(ValueError, match="same shape"):
        A.edc_error_db(good, good[:-1])
    with pytest.raises(ValueError, match="more than 256"):
        mel_energy_decay_relief(torch.zeros(100), FS)
    with pytest.raises(ValueError, match="window"):
        echo_density_profile(torch.zeros(100), FS)


def test_degenerate_signals_give_documented_nan():
    zeros = np.zeros((2, 4000))
    assert np.all(np.isnan(A.reverberation_time(zeros, FS)))
    assert np.all(np.isnan(A.reverberation_time(zeros, FS, bands="octave")))
    assert np.all(np.isnan(R.clarity(zeros, FS)))
    assert np.all(np.isnan(R.definition(zeros, FS)))
    assert np.all(np.isnan(R.drr(zeros, FS)))
    assert np.all(np.isnan(A.edc_error_db(zeros, zeros)))
    assert np.all(np.isnan(A.energy_decay_curve(zeros, db=True)))
    # too short for the range: a 0.1 s cut of a 1 s decay only falls by 6 dB
    short = exponential_decay(1.0, seconds=0.1)
    assert np.isnan(A.reverberation_time(short, FS, "T30"))
    assert np.isnan(A.reverberation_time(short, FS, "EDT"))
    # long enough to fall past -35 dB on the EDC, but truncated: the dynamic-range check rejects it
    truncated = exponential_decay(1.0, seconds=0.6)  # signal falls by 36 dB
    assert np.isnan(A.reverberation_time(truncated, FS, "T30"))
    assert A.reverberation_time(truncated, FS, "EDT") == pytest.approx(1.0, rel=0.02)
    # record ends before the early-time limit
    assert np.isnan(R.clarity(exponential_decay(0.5, seconds=0.03), FS, 50))
