"""sdn.losses and the echo density profile: the released code's definitions written as plain
loops, soft -> hard, gradcheck, batches, dtypes."""
import math

import numpy as np
import pytest
import torch

import sdn.echo_density as ed
from sdn.rir import load_rir
from sdn.echo_density import ERFC_SCALE, echo_density_profile, echo_density_window, soft_echo_density_mse
from sdn.features import mel_energy_decay_relief, mel_filterbank
from sdn.losses import EDCLoss, EDPLoss, MelEDRLoss, SDNLoss

FS = 16000


def rir_like(shape, seed=0, fs=FS, rt=0.3, delay=20, dtype=torch.float64):
    """Exponentially decaying Gaussian noise after a few zeros, unit norm per signal."""
    gen = torch.Generator().manual_seed(seed)
    n = shape[-1]
    t = torch.arange(n, dtype=torch.float64) / fs
    h = torch.randn(*shape, generator=gen, dtype=torch.float64) * torch.exp(-6.9 * t / rt)
    h[..., :delay] = 0.0
    return (h / h.norm(dim=-1, keepdim=True)).to(dtype)


def echo_density_loop(h, fs, soft, kappa=(1e2, 1e5)):
    """Straightforward per-sample Abel-Huang profile: centred window, truncated and renormalised
    at the record's edges (the documented edge handling)."""
    w = echo_density_window(fs, dtype=h.dtype)
    half = w.numel() // 2
    n = h.numel()
    k = torch.linspace(kappa[0], kappa[1], n, dtype=h.dtype)
    out = torch.zeros(n, dtype=h.dtype)
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        ww = w[lo - i + half:hi - i + half]
        ww = ww / ww.sum()
        seg = h[lo:hi].abs()
        sigma = torch.sqrt((ww * seg ** 2).sum())
        ind = torch.sigmoid(k[i] * (seg - sigma)) if soft else (seg > sigma).to(h.dtype)
        out[i] = ERFC_SCALE * (ww * ind).sum()
    return out


# ----------------------------------------------------------------------------- the paper's definitions
# Plain loops written from the definitions of the paper's released code (curves.py, losses.py):
# numpy only, one window or frame at a time, an own HTK mel filterbank and an own STFT.


def paper_edc_loss(pred, target):
    def edc(h):
        out, acc = np.zeros(h.size), 0.0
        for n in range(h.size - 1, -1, -1):
            acc += h[n] ** 2
            out[n] = acc
        return out

    e_p, e_t = edc(pred), edc(target)
    return np.mean((e_t - e_p) ** 2) / np.mean(e_t ** 2)


def htk_mel_filterbank(fs, n_fft=512, n_mels=64):
    def mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    edges = [700.0 * (10.0 ** (m / 2595.0) - 1.0) for m in np.linspace(mel(0.0), mel(fs / 2), n_mels + 2)]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for b in range(n_mels):
        for k in range(n_fft // 2 + 1):
            f = k * fs / n_fft
            rise = (f - edges[b]) / (edges[b + 1] - edges[b])
            fall = (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1])
            fb[b, k] = max(0.0, min(rise, fall))
    return fb


def paper_mel_edr_db(h, fs):
    """torchaudio MelSpectrogram defaults (centre, reflect, periodic Hann 320 in 512, hop 160,
    power 2, HTK, no norm), backward sum over frames, AmplitudeToDB(power, top_db=80)."""
    n_fft, win_length, hop = 512, 320, 160
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    for i in range(win_length):
        window[offset + i] = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / win_length)  # periodic Hann
    padded = np.pad(h, n_fft // 2, mode="reflect")
    frames = 1 + h.size // hop
    power = np.zeros((n_fft // 2 + 1, frames))
    for m in range(frames):
        power[:, m] = np.abs(np.fft.rfft(padded[m * hop:m * hop + n_fft] * window)) ** 2
    mel = htk_mel_filterbank(fs) @ power
    edr, acc = np.zeros_like(mel), np.zeros(mel.shape[0])
    for m in range(frames - 1, -1, -1):
        acc = acc + mel[:, m]
        edr[:, m] = acc
    level = 10.0 * np.log10(np.maximum(edr, 1e-10))
    return np.maximum(level, level.max() - 80.0)


def paper_mel_edr_loss(pred, target, fs):
    p, t = paper_mel_edr_db(pred, fs), paper_mel_edr_db(target, fs)
    return np.mean(np.abs(t - p)) / np.mean(np.abs(t))


def paper_echo_density(h, fs, soft, kappa=(1e2, 1e5)):
    """Windows starting at every sample 0 .. T-L-1, sigma per window, kappa over T-L values."""
    length = int(0.02 * fs)
    length += 1 - length % 2
    win = np.hanning(length)  # symmetric Hann
    win = win / win.sum()
    count = h.size - length
    slopes = np.linspace(kappa[0], kappa[1], count)
    out = np.zeros(count)
    with np.errstate(over="ignore"):
        for i in range(count):
            frame = np.abs(h[i:i + length])
            sigma = math.sqrt(np.sum(win * frame ** 2))
            if soft:
                indicator = 1.0 / (1.0 + np.exp(-slopes[i] * (frame - sigma)))
            else:
                indicator = (frame > sigma).astype(float)
            out[i] = np.sum(win * indicator) / math.erfc(1.0 / math.sqrt(2.0))
    return out


def paper_edp_loss(pred, target, fs):
    return np.mean((paper_echo_density(target, fs, True) - paper_echo_density(pred, fs, True)) ** 2)


def decaying_noise(n, seed, rt, fs=FS, delay=200):
    gen = np.random.default_rng(seed)
    h = gen.standard_normal(n) * np.exp(-6.9 * np.arange(n) / (rt * fs))
    h[:delay] = 0.0
    return h / np.linalg.norm(h)


@pytest.fixture(scope="module", params=["noise-6000", "noise-16000", "measured"])
def signal_pair(request):
    """(pred, target) float64 arrays: decaying noise, or the S2 and S1 HOMULA RIRs at 16 kHz."""
    if request.param == "measured":
        homula_dir = request.getfixturevalue("homula_dir")
        target = load_rir(homula_dir / "rir-S1-R2-HOM1.wav").signal.double().numpy()
        pred = load_rir(homula_dir / "rir-S2-R2-HOM1.wav", trim=False).signal.double().numpy()[:target.size]
        return pred / np.linalg.norm(pred), target
    n = int(request.param.split("-")[1])
    return decaying_noise(n, 1, 0.4), decaying_noise(n, 2, 0.6)


@pytest.mark.parametrize("name", ["edc", "edr", "edp"])
def test_losses_equal_the_released_codes_definitions(signal_pair, name, kernels):
    pred, target = signal_pair
    expected = {"edc": lambda: paper_edc_loss(pred, target),
                "edr": lambda: paper_mel_edr_loss(pred, target, FS),
                "edp": lambda: paper_edp_loss(pred, target, FS)}[name]()
    got = LOSSES[name](FS)(torch.from_numpy(pred), torch.from_numpy(target)).item()
    assert got == pytest.approx(expected, rel=1e-10, abs=0)
    assert SDNLoss(FS)(torch.from_numpy(pred), torch.from_numpy(target))[name].item() == pytest.approx(got, rel=1e-12)


@pytest.mark.parametrize("soft", [False, True])
def test_paper_profile_equals_the_released_codes_loop(signal_pair, soft, kernels):
    pred, _ = signal_pair
    got = echo_density_profile(torch.from_numpy(pred), FS, soft=soft, windows="paper").numpy()
    np.testing.assert_allclose(got, paper_echo_density(pred, FS, soft), rtol=1e-10, atol=1e-13)


def test_mel_edr_equals_own_stft_and_htk_filterbank(signal_pair):
    _, target = signal_pair
    got = mel_energy_decay_relief(torch.from_numpy(target), FS).numpy()
    np.testing.assert_allclose(got, paper_mel_edr_db(target, FS), rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_mel_filterbank_equals_librosas_htk_filterbank(sample_rate):
    import librosa  # a dev dependency (make test installs it), the package does not need it

    expected = librosa.filters.mel(sr=float(sample_rate), n_fft=512, n_mels=64, fmin=0.0, fmax=sample_rate / 2.0,
                                   htk=True, norm=None, dtype=np.float64)
    np.testing.assert_allclose(mel_filterbank(sample_rate).numpy(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mel_filterbank(sample_rate).numpy(), htk_mel_filterbank(sample_rate), rtol=1e-12,
                               atol=1e-14)


def test_mel_edr_clamps_power_at_1e_minus_10():
    """A quiet signal whose EDR falls below -100 dB before the 80 dB floor: clamped at -100 dB."""
    quiet = torch.from_numpy(3e-4 * decaying_noise(4000, 3, 0.05))
    linear = mel_energy_decay_relief(quiet, FS, db=False)
    level = mel_energy_decay_relief(quiet, FS)
    exact = 10.0 * torch.log10(linear)
    assert level.max() - 80.0 < -100.0 < level.max()  # the clamp, not the 80 dB floor, acts
    below = exact < -100.0
    assert below.any() and torch.all(level[below] == -100.0)
    torch.testing.assert_close(level[~below], exact[~below], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- echo density


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("fs, n", [(1000, 150), (FS, 700)])
def test_vectorized_edp_equals_loop(soft, fs, n):
    h = rir_like((2, n), seed=1, fs=fs, rt=0.05 * n / fs * 10)
    got = echo_density_profile(h, fs, soft=soft)
    expected = torch.stack([echo_density_loop(x, fs, soft) for x in h])
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_edp_window_is_odd_hann_summing_to_one():
    w = echo_density_window(FS)
    assert w.numel() == 321 and w.numel() % 2 == 1
    assert w.sum().item() == pytest.approx(1.0)
    assert ERFC_SCALE == pytest.approx(1 / math.erfc(1 / math.sqrt(2)))


def test_soft_edp_approaches_hard_as_kappa_grows():
    h = rir_like((2, 3000), seed=2, rt=0.1)
    hard = echo_density_profile(h, FS, soft=False)
    gaps = [(echo_density_profile(h, FS, soft=True, kappa=k) - hard).abs().mean().item()
            for k in (1e2, 1e4, 1e6, 1e8)]
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 5e-3 and gaps[-1] < gaps[0] / 20


def test_soft_edp_gradient_is_finite_on_leading_zeros():
    h = rir_like((1, 2000), seed=3, delay=500, dtype=torch.float32).requires_grad_(True)
    EDPLoss(FS)(h, rir_like((1, 2000), seed=4, delay=400, dtype=torch.float32)).backward()
    assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


def test_hard_centred_profile_equals_paper_profile_in_the_interior():
    h = rir_like((2, 3000), seed=30, rt=0.2)
    half = 321 // 2
    centred = echo_density_profile(h, FS)
    paper = echo_density_profile(h, FS, windows="paper")
    assert centred.shape == (2, 3000) and paper.shape == (2, 3000 - 321)
    torch.testing.assert_close(centred[:, half:3000 - half - 1], paper, rtol=1e-12, atol=1e-12)


def _small_pair(shape, seed):
    """Decaying noise at 1 kHz (21-sample window) without exact zeros (|h| is not
    differentiable at 0) and far above the finite-difference step."""
    return (rir_like(shape, seed=seed, fs=1000, rt=0.3, delay=0).requires_grad_(True),
            rir_like(shape, seed=seed + 1, fs=1000, rt=0.4, delay=0))


def small_blocks(monkeypatch):
    """Blocks of 64 windows whatever the number of threads."""
    monkeypatch.setattr(ed, "GRID_BYTES", 1)
    monkeypatch.setattr(ed, "PARALLEL_GRID_BYTES", 1)


@pytest.mark.parametrize("blocks", ["whole", "small"])
def test_edp_mse_gradcheck_batched_and_in_blocks(monkeypatch, blocks, kernels):
    """Paper-placed SoftEDP loss, per item, in one block of windows or in blocks of 64."""
    if blocks == "small":
        small_blocks(monkeypatch)
    pred, target = _small_pair((2, 120), 40)  # 99 windows: two blocks of 64 with grid_bytes=1
    profile = echo_density_profile(target, 1000, soft=True, windows="paper")
    assert torch.autograd.gradcheck(lambda x: soft_echo_density_mse(x, profile, 1000), (pred,),
                                    eps=1e-8, atol=1e-5, rtol=1e-3)


def test_edp_gradcheck_with_a_target_that_requires_grad(kernels):
    pred, target = _small_pair((120,), 42)
    target.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: EDPLoss(1000)(x, y), (pred, target), eps=1e-8, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("windows", ["paper", "centred"])
def test_soft_profile_gradcheck(windows, kernels):
    pred, _ = _small_pair((120,), 44)
    assert torch.autograd.gradcheck(lambda x: echo_density_profile(x, 1000, soft=True, windows=windows), (pred,),
                                    eps=1e-8, atol=1e-5, rtol=1e-3)


def test_compiled_edp_in_float32_and_in_threads_agrees_with_pytorch_in_float64(monkeypatch, compiled_kernels):
    """The compiled loss (float32, the training dtype; float64 split among 2 threads) against
    the PyTorch path in float64 (gradchecked above): loss and gradient of 1 s of decaying noise."""
    pred, target = rir_like((2, FS), seed=30, rt=0.4), rir_like((2, FS), seed=31, rt=0.6)

    def loss_and_grad(x, native_kernels, threads=1):
        monkeypatch.setenv("SDN_NATIVE", "1" if native_kernels else "0")
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # how sdn.native shares out work
        x = x.clone().requires_grad_(True)
        profile = echo_density_profile(target.to(x.dtype), FS, soft=True, windows="paper")
        loss = soft_echo_density_mse(x, profile, FS)
        loss.sum().backward()
        return loss.detach().double(), x.grad.double()

    loss64, grad64 = loss_and_grad(pred, native_kernels=False)
    loss32, grad32 = loss_and_grad(pred.float(), native_kernels=True)
    torch.testing.assert_close(loss32, loss64, rtol=1e-4, atol=0)
    assert torch.max(torch.abs(grad32 - grad64)) < 1e-4 * torch.max(torch.abs(grad64))
    threaded_loss, threaded_grad = loss_and_grad(pred, native_kernels=True, threads=2)
    torch.testing.assert_close(threaded_loss, loss64, rtol=1e-12, atol=0)
    torch.testing.assert_close(threaded_grad, grad64, rtol=1e-10, atol=1e-12 * torch.max(torch.abs(grad64)).item())


@pytest.mark.parametrize("dtype, bound", [(torch.float32, 5e-7), (torch.float64, 2e-15)])  # 4.0e-7, 7.6e-16
def test_compiled_soft_indicators_are_tanh_to_a_few_units_in_the_last_place(dtype, bound, compiled_kernels):
    """The C kernel's tanh (from a polynomial for 2^r) against libm's tanh in float64/long double.

    With the two-tap window w = (1/4, 3/4) and every other sample zero, each window holds one
    nonzero sample a: sigma = |a|/2 when a is the first tap, sigma = |a| sqrt(3)/2 when it is the
    second, so S is a sum of two tanh of arguments of both signs, from 1e-15 to beyond where tanh
    rounds to +-1 and where the kernel clamps its exponent."""
    from sdn import native

    magnitudes = np.logspace(-15, 3, 4001)  # squares stay normal numbers in float32
    h = np.zeros(2 * magnitudes.size + 1)
    h[:-1:2] = magnitudes * np.where(np.arange(magnitudes.size) % 2, 1, -1)
    window = np.array([0.25, 0.75])
    kappa = np.ones(h.size - 2)
    h = torch.tensor(h, dtype=dtype)
    sums, _ = native.soft_echo_density(h[None], torch.tensor(kappa, dtype=dtype), torch.tensor(window, dtype=dtype))
    h = h.numpy().astype(np.longdouble)
    taps = np.abs(np.stack([h[:-2], h[1:-1]], axis=1))
    sigma = np.sqrt(taps ** 2 @ window.astype(np.longdouble))
    t = np.tanh((taps - sigma[:, None]) / 2)  # kappa = 1
    exact = t @ window.astype(np.longdouble)
    scale = np.abs(t) @ window.astype(np.longdouble)  # what the rounding of each term is relative to
    error = np.abs(sums[0].numpy().astype(np.longdouble) - exact) / scale
    assert float(np.max(error[scale > 0])) < bound


# ----------------------------------------------------------------------------- losses

LOSSES = {
    "edc": lambda fs: EDCLoss(),
    "edr": lambda fs: MelEDRLoss(fs),
    "edp": lambda fs: EDPLoss(fs),
    "sdn": lambda fs: SDNLoss(fs),
}


def _value(out):
    return out["total"] if isinstance(out, dict) else out


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_float64(name):
    fs = 1000  # short windows: 21-sample EDP window, so that T = 300 covers everything
    loss = LOSSES[name](fs)
    # decay of 60 dB over the record: every sample is far larger than the finite-difference step
    # (|h| is not differentiable at 0), and the step is small because the EDP sigmoid slopes
    # reach 1e5 at the end of the profile
    pred = rir_like((300,), seed=5, fs=fs, rt=0.3).requires_grad_(True)
    target = rir_like((300,), seed=6, fs=fs, rt=0.4)
    # the STFT-based terms use the random-projection check (fast_mode): the full finite-difference
    # Jacobian needs 600 STFTs, which takes tens of seconds on a busy 2-core machine
    assert torch.autograd.gradcheck(lambda x: _value(loss(x, target)), (pred,), eps=1e-8, atol=1e-5, rtol=1e-3,
                                    fast_mode=name in ("edr", "sdn"))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("batch", [1, 3])
def test_batch_equals_per_item(name, batch):
    loss = LOSSES[name](FS)
    pred = rir_like((batch, 4000), seed=7)
    target = rir_like((batch, 4000), seed=8, rt=0.4)
    per = type(loss)(**_ctor_args(name), reduction="none")(pred, target)
    mean = loss(pred, target)
    for key in ("edc", "edr", "edp", "total") if name == "sdn" else (None,):
        per_k = per[key] if key else per
        assert per_k.shape == (batch,)
        for i in range(batch):
            single = _value(loss(pred[i], target[i])) if key in (None, "total") else loss(pred[i], target[i])[key]
            torch.testing.assert_close(per_k[i], single, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(mean[key] if key else mean, per_k.mean())


def _ctor_args(name):
    return {} if name == "edc" else {"sample_rate": FS}  # SDNLoss and the STFT/EDP losses take it


def test_leading_batch_dims():
    pred = rir_like((2, 3, 2000), seed=9)
    target = rir_like((2, 3, 2000), seed=10)
    per = SDNLoss(FS, reduction="none")(pred, target)
    assert per["total"].shape == (2, 3)
    assert mel_energy_decay_relief(pred, FS).shape == (2, 3, 64, 2000 // 160 + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_work_and_agree(dtype):
    pred = rir_like((2, 8000), seed=11, dtype=dtype).requires_grad_(True)
    target = rir_like((2, 8000), seed=12, rt=0.5, dtype=dtype)
    terms = SDNLoss(FS)(pred, target)
    for key, value in terms.items():
        assert value.dtype == dtype and torch.isfinite(value), key
    terms["total"].backward()
    assert pred.grad.dtype == dtype and torch.isfinite(pred.grad).all()
    ref = SDNLoss(FS)(pred.detach().double(), target.double())
    for key in terms:
        assert terms[key].item() == pytest.approx(ref[key].item(), rel=1e-3), key


def test_total_is_weighted_sum_and_zero_on_identical_inputs(kernels):
    pred = rir_like((2, 4000), seed=13)
    target = rir_like((2, 4000), seed=14, rt=0.5)
    terms = SDNLoss(FS)(pred, target)
    assert set(terms) == {"edc", "edr", "edp", "total"}
    torch.testing.assert_close(terms["total"], 0.5 * terms["edc"] + terms["edr"] + terms["edp"])
    assert all(v > 0 for v in terms.values())
    same = SDNLoss(FS)(target, target)
    assert all(v.item() == 0.0 for v in same.values())
    weighted = SDNLoss(FS, weights=(1.0, 0.0, 2.0))(pred, target)
    torch.testing.assert_close(weighted["total"], terms["edc"] + 2 * terms["edp"])


def test_losses_match_their_definitions():
    pred = rir_like((4000,), seed=15)
    target = rir_like((4000,), seed=16, rt=0.5)
    e_p = torch.flip(torch.cumsum(torch.flip(pred ** 2, [0]), 0), [0])
    e_t = torch.flip(torch.cumsum(torch.flip(target ** 2, [0]), 0), [0])
    expected = torch.mean((e_t - e_p) ** 2) / torch.mean(e_t ** 2)
    torch.testing.assert_close(EDCLoss()(pred, target), expected)
    t, p = mel_energy_decay_relief(target, FS), mel_energy_decay_relief(pred, FS)
    torch.testing.assert_close(MelEDRLoss(FS)(pred, target), (t - p).abs().mean() / t.abs().mean())
    assert (t >= t.max() - 80.0 - 1e-9).all()  # 80 dB floor
    soft_t = echo_density_profile(target, FS, soft=True, windows="paper")
    soft_p = echo_density_profile(pred, FS, soft=True, windows="paper")
    assert soft_t.shape == (4000 - 321,)
    torch.testing.assert_close(EDPLoss(FS)(pred, target), ((soft_t - soft_p) ** 2).mean())
    centred_t = echo_density_profile(target, FS, soft=True)
    centred_p = echo_density_profile(pred, FS, soft=True)
    torch.testing.assert_close(EDPLoss(FS, windows="centred")(pred, target), ((centred_t - centred_p) ** 2).mean())


def test_target_features_are_reused_until_the_target_changes(monkeypatch):
    import sdn.losses as losses

    calls = {"edr": 0, "edp": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(losses, "mel_energy_decay_relief", counting("edr", losses.mel_energy_decay_relief))
    monkeypatch.setattr(losses, "echo_density_profile", counting("edp", losses.echo_density_profile))
    loss = SDNLoss(FS)
    target = rir_like((2, 4000), seed=31, rt=0.5)
    for seed in (32, 33):  # two predictions against one target: one edr per call, the target's once
        loss(rir_like((2, 4000), seed=seed), target)
    assert calls == {"edr": 3, "edp": 1}
    pred = rir_like((2, 4000), seed=34)
    target.mul_(0.5)  # in place: the version counter tells
    fresh = SDNLoss(FS)(pred, target.clone())
    changed = loss(pred, target)
    assert calls == {"edr": 7, "edp": 3}
    for key in fresh:
        torch.testing.assert_close(changed[key], fresh[key], rtol=0, atol=0)


def test_losses_do_not_renormalise():
    pred = rir_like((4000,), seed=17)
    assert EDCLoss()(2.0 * pred, pred) > 1.0  # a scaled copy is not "the same"
    assert EDPLoss(FS)(2.0 * pred, pred) > 0.0


def test_mel_edr_module_buffers_follow_dtype():
    loss = MelEDRLoss(FS).to(torch.float64)
    assert loss.filterbank.shape == (64, 257)
    assert loss.window.shape == (320,)
    x32 = rir_like((3000,), dtype=torch.float32)
    assert loss(x32, x32.flip(0)).dtype == torch.float32  # cast lazily to the input
    assert "filterbank" not in loss.state_dict()  # constants, not checkpointed


def test_bad_inputs_raise():
    x = rir_like((2, 4000))
    with pytest.raises(ValueError, match="same shape"):
        SDNLoss(FS)(x, x[:, :-1])
    with pytest.raises(TypeError, match="same dtype"):
        EDCLoss()(x, x.float())
    with pytest.raises(TypeError, match="float32 or float64"):
        EDCLoss()(x.long(), x.long())
    with pytest.raises(TypeError, match="half precision"):
        SDNLoss(FS)(x.half(), x.half())
    with pytest.raises(ValueError, match="non-empty"):
        EDPLoss(FS)(x[:, :0], x[:, :0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        EDCLoss()(x.numpy(), x)
    with pytest.raises(ValueError, match="time axis"):
        EDCLoss()(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="more than 256"):
        MelEDRLoss(FS)(x[:, :200], x[:, :200])
    with pytest.raises(ValueError, match="window"):
        EDPLoss(FS)(x[:, :300], x[:, :300])
    with pytest.raises(ValueError, match="reduction"):
        EDCLoss(reduction="sum")
    with pytest.raises(ValueError, match="weights"):
        SDNLoss(FS, weights=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="kappa"):
        EDPLoss(FS, kappa=(-1.0, 10.0))(x, x)


def test_documented_nan_for_non_finite_or_silent_input():
    x = rir_like((4000,))
    bad = x.clone()
    bad[100] = float("nan")
    assert torch.isnan(SDNLoss(FS)(bad, x)["total"])
    assert torch.isinf(EDCLoss()(x, torch.zeros_like(x)))
    assert torch.isnan(EDCLoss()(torch.zeros_like(x), torch.zeros_like(x)))


def test_edp_loss_and_gradient_do_not_depend_on_the_block_size(monkeypatch):
    h = rir_like((3, 1200), seed=18).requires_grad_(True)
    target = rir_like((3, 1200), seed=19, rt=0.5)
    whole = EDPLoss(FS, reduction="none")(h, target)
    (g_whole,) = torch.autograd.grad(whole.sum(), h)
    small_blocks(monkeypatch)
    chunked = EDPLoss(FS, reduction="none")(h, target)
    (g_chunked,) = torch.autograd.grad(chunked.sum(), h)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_chunked, g_whole, rtol=1e-12, atol=1e-14)


def test_edp_backward_twice_with_retained_graph():
    h = rir_like((2, 1500), seed=20).requires_grad_(True)
    target = rir_like((2, 1500), seed=21, rt=0.5)
    loss = EDPLoss(FS)(h, target)
    loss.backward(retain_graph=True)
    first = h.grad.clone()
    EDPLoss(FS)(h.detach().clone(), target)  # another forward in between reuses buffers
    loss.backward()
    torch.testing.assert_close(h.grad, 2 * first, rtol=1e-12, atol=1e-14)


def test_edp_profiles_do_not_depend_on_the_block_size(monkeypatch):
    h = rir_like((2, 2000), seed=22)
    whole = {(soft, windows): echo_density_profile(h, FS, soft=soft, windows=windows)
             for soft in (False, True) for windows in ("centred", "paper")}
    small_blocks(monkeypatch)
    for (soft, windows), expected in whole.items():
        got = echo_density_profile(h, FS, soft=soft, windows=windows)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)  # summation order only
