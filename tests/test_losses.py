"""sdn.losses and the echo density profile: loop oracle, soft -> hard, gradcheck, batches, dtypes."""
import math

import pytest
import torch

from sdn.acoustics import mel_energy_decay_relief
from sdn.echo_density import ERFC_SCALE, echo_density_profile, echo_density_window
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


def test_total_is_weighted_sum_and_zero_on_identical_inputs():
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
    soft_t = echo_density_profile(target, FS, soft=True)
    soft_p = echo_density_profile(pred, FS, soft=True)
    torch.testing.assert_close(EDPLoss(FS)(pred, target), ((soft_t - soft_p) ** 2).mean())


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
    with pytest.raises(TypeError, match="floating"):
        EDCLoss()(x.long(), x.long())
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


def test_edp_chunked_batches_equal_single_pass(monkeypatch):
    import sdn.echo_density as ed

    h = rir_like((3, 1200), seed=18).requires_grad_(True)
    target = rir_like((3, 1200), seed=19, rt=0.5)
    whole = EDPLoss(FS, reduction="none")(h, target)
    (g_whole,) = torch.autograd.grad(whole.sum(), h)
    monkeypatch.setattr(ed, "GRID_BYTES", 1)  # one signal per chunk
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


def test_edp_without_grad_in_column_chunks_equals_single_pass(monkeypatch):
    import sdn.echo_density as ed

    h = rir_like((2, 2000), seed=22)
    whole = [echo_density_profile(h, FS, soft=soft) for soft in (False, True)]
    monkeypatch.setattr(ed, "GRID_BYTES", 321 * 8 * 500)  # 500 columns at a time
    for soft, expected in zip((False, True), whole):
        torch.testing.assert_close(echo_density_profile(h, FS, soft=soft), expected, rtol=0, atol=0)
