import math

import numpy as np
import pytest
import torch

import sdn
from sdn import SDN, Room, UnstableSDNError

PAPER_ROOM = Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
SMALL_ROOM = Room((1.1, 1.4, 0.9), (0.35, 0.5, 0.4), (0.7, 0.95, 0.55))  # delays of 10-90 samples


def randomise(model: SDN, seed: int = 0) -> SDN:
    """Random admittances, extraction weights and distance corrections.

    Admittances are matched per line (y_kl = y_lk, strongly non-isotropic) plus a small mismatch:
    independent random admittances of log-std 0.1 already make the network unstable.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "log_admittance":
                sym = 0.3 * torch.randn(6, 6, generator=gen, dtype=p.dtype)
                sym = (sym + sym.T)[~torch.eye(6, dtype=torch.bool)].reshape(6, 5)
                p.copy_(sym + 0.02 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif name == "log_extraction_weights":
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif name.endswith("_correction"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif name == "wall_taps":
                p.copy_(torch.tensor([0.55, 0.2, -0.1, 0.05, 0.02, -0.01, 0.01][: p.shape[1]], dtype=p.dtype).expand_as(p))
                p.add_(0.02 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def line_responses(model: SDN, z: complex) -> dict:
    """E(z) = sum_m taps_m z^-(offset + m) of every delay line, evaluated term by term in numpy."""
    out = {}
    for name, line in model.delay_lines().items():
        offset, taps = line.offset.detach().double().numpy(), line.taps.detach().double().numpy()
        powers = z ** -(offset[..., None] + np.arange(taps.shape[-1]))
        out[name] = (taps * powers).sum(-1)
    pair = np.zeros((6, 6), dtype=complex)
    pair[np.triu_indices(6, 1)] = out.pop("node_pair")
    out["node_node"] = pair + pair.T
    return out


def dense_transfer_function(model: SDN, z: complex) -> complex:
    """Y/X from the full 30x30 system p+ = b X + P D H S p+ (no pair elimination)."""
    d = {k: v.detach().double().numpy() for k, v in model.distances().items()}
    E = line_responses(model, z)
    G = model.metres_per_sample
    taps = model.wall_filters().detach().double().numpy()
    H = np.array([sum(t * z ** (-m) for m, t in enumerate(row)) for row in taps])
    S = model.scattering_matrices().detach().double().numpy()
    w = model.extraction_weights().detach().double().numpy()
    nbr = [[k for k in range(6) if k != n] for n in range(6)]
    index = {(n, k): 5 * n + j for n in range(6) for j, k in enumerate(nbr[n])}  # wave at n from k
    A = np.zeros((30, 30), dtype=complex)
    b = np.zeros(30, dtype=complex)
    for (n, k), row in index.items():
        b[row] = G / d["source_node"][n] / 2 * E["source_node"][n]
        # wave at n from k = E_kn H_k (S_k p_k^+)[towards n]
        out = nbr[k].index(n)
        for j, m in enumerate(nbr[k]):
            A[row, index[(k, m)]] += E["node_node"][k, n] * H[k] * S[k][out, j]
    p = np.linalg.solve(np.eye(30) - A, b)
    y = G / d["direct"][0] * E["direct"][0]
    for n in range(6):
        g_mic = 1 / (1 + d["node_mic"][n] / d["source_node"][n])
        scattered = S[n] @ p[5 * n : 5 * n + 5]
        y += g_mic * E["node_mic"][n] * H[n] * (w[n] @ scattered)
    return y


@pytest.mark.parametrize("fir_order", [0, 3])
def test_pair_elimination_equals_dense_30x30_system(fir_order, kernels):
    model = randomise(SDN(SMALL_ROOM, fir_order=fir_order, distance_correction=True, dtype=torch.float64))
    z_log = torch.tensor([0.001 + 0.3j, 0.0005 + 2.1j, 0.002 + 0.0j], dtype=torch.complex128)
    ours = model.transfer_function(z_log).detach().numpy()
    dense = [dense_transfer_function(model, complex(np.exp(v))) for v in z_log.numpy()]
    np.testing.assert_allclose(ours, dense, rtol=1e-10)


def test_direct_sound_and_first_order_reflections_integer_delays():
    room = Room((4.0, 5.0, 3.0), (1.8, 2.2, 1.3), (2.3, 2.9, 1.6))
    model = SDN(room, integer_delays=True, alpha=0.1, dtype=torch.float64, aliasing_db=200)
    h = model.impulse_response(1500).detach().numpy()
    G = model.metres_per_sample
    beta = math.sqrt(1 - 0.1)
    D = {k: v.detach().numpy() for k, v in model.delays().items()}
    second_order = min(
        D["source_node"][k] + D["node_node"][k, l] + D["node_mic"][l] for k in range(6) for l in range(6) if k != l
    )
    expected = np.zeros_like(h)
    expected[round(room.direct_distance / G)] += G / room.direct_distance
    for k in range(6):
        arrival = round(room.image_distances[k] / G)  # the rounded image-source delay, exactly
        assert arrival < second_order
        expected[arrival] += beta * G / room.image_distances[k]
    early = slice(0, int(second_order))
    np.testing.assert_allclose(h[early], expected[early], atol=1e-10 * np.abs(h).max())
    assert np.abs(h[int(second_order) :]).max() > 0  # the network goes on after first order


def random_room(rng) -> Room:
    """A random shoebox with source and mic at least 1 m apart (a direct path of 46 samples)."""
    size = rng.uniform([3.0, 4.0, 2.5], [8.0, 12.0, 4.0])
    while True:
        source, mic = (rng.uniform(0.15, 0.85, 3) * size for _ in range(2))
        if np.linalg.norm(source - mic) > 1.0:
            return Room(tuple(size), tuple(source), tuple(mic))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_render_does_not_depend_on_its_length(seed):
    """impulse_response(n)[:m] == impulse_response(N)[:m] for m <= n <= N: no wrapped pre-ringing."""
    room = random_room(np.random.default_rng(seed))
    model = randomise(SDN(room, fir_order=4, distance_correction=True, dtype=torch.float64), seed=seed)
    long = model.impulse_response(32000).detach()
    peak = long.abs().max()
    for n in (1500, 4000, 9000, 20000):
        short = model.impulse_response(n).detach()
        assert torch.max(torch.abs(short - long[:n])) < 1e-6 * peak
        m = n // 3
        assert torch.max(torch.abs(short[:m] - long[:m])) < 1e-6 * peak


def test_render_without_gradient_on_interleaved_subgrids_equals_the_whole_grid(monkeypatch):
    """Without gradient, a grid of more than BINS_PER_CHUNK bins is solved as interleaved subgrids
    (32 subgrids of 256 bins here): the same response as the whole grid solved at once."""
    from sdn import closed_form

    model = randomise(SDN(random_room(np.random.default_rng(3)), fir_order=4, distance_correction=True,
                          dtype=torch.float64), seed=3)
    whole = model.impulse_response(3000).detach()  # with gradient: 4097 bins in one solve
    monkeypatch.setattr(closed_form, "BINS_PER_CHUNK", 300)
    with torch.no_grad():
        parts = model.impulse_response(3000)
    assert torch.max(torch.abs(parts - whole)) < 1e-12 * whole.abs().max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nothing_arrives_before_the_direct_sound(seed):
    room = random_room(np.random.default_rng(10 + seed))
    model = randomise(SDN(room, fir_order=6, distance_correction=True, dtype=torch.float64), seed=seed)
    h = model.impulse_response(8000).detach()
    direct = model.delays()["direct"][0].item()
    assert torch.max(torch.abs(h[: int(direct) - 20])) < 1e-6 * h.abs().max()


def test_arrival_times_of_the_direct_sound_and_first_order_reflections_are_exact():
    """Low-frequency phase delay of each arrival equals the image-source delay (fractional).

    With one reflecting wall (FIR taps of the others zero) every path through another node dies
    there, so the IR is exactly the direct sound plus that wall's first-order reflection."""
    room = Room((9.0, 13.0, 7.0), (7.1, 3.6, 2.3), (1.2, 8.8, 1.8))
    G = 343.0 / 16000
    direct, images = room.direct_distance / G, room.image_distances / G
    assert np.min(images - direct) > 40  # the two arrivals do not overlap
    omega = 2 * np.pi * 40 / 16000

    def phase_delay(h, delay):  # of the 40 samples around ``delay``: its 32 taps and nothing else
        start = int(delay) - 19
        return start - np.angle(np.sum(h[start:start + 40] * np.exp(-1j * omega * np.arange(40)))) / omega

    for wall in range(6):
        model = SDN(room, fir_order=1, dtype=torch.float64)
        with torch.no_grad():
            model.wall_taps.zero_()
            model.wall_taps[wall, 0] = 0.9
        h = model.impulse_response(2048).detach().numpy()
        assert abs(phase_delay(h, direct) - direct) < 0.01
        assert abs(phase_delay(h, images[wall]) - images[wall]) < 0.01


@pytest.mark.parametrize("line", ["direct", "node_pair"])
def test_impulse_response_is_continuous_across_a_whole_sample(line):
    """Move one distance across a whole-sample boundary by 1e-9 m: the IR hardly moves."""
    model = SDN(SMALL_ROOM, fir_order=2, distance_correction=True, dtype=torch.float64, aliasing_db=200)
    G, dmax, scale = model.metres_per_sample, 0.5, 10.0
    d = getattr(model, f"{line}_distance")[0].item()
    boundary = (math.floor(d / G) + 1) * G
    correction = getattr(model, f"{line}_correction")

    def render(distance):
        with torch.no_grad():
            correction.zero_()
            correction[0] = math.atanh((distance - d) / min(dmax, d / 2)) / scale
            return model.impulse_response(3000)

    below, above = render(boundary - 1e-9), render(boundary + 1e-9)
    assert torch.max(torch.abs(above - below)) < 1e-6 * below.abs().max()


@pytest.mark.parametrize("fir_order, integer, quirks", [(0, True, ()), (4, True, ()), (0, False, ()), (3, False, ()),
                                                      (3, False, "paper")])
def test_closed_form_matches_time_domain_recursion(fir_order, integer, quirks):
    model = randomise(
        SDN(PAPER_ROOM, fir_order=fir_order, integer_delays=integer, distance_correction=True, alpha=0.1,
            quirks=quirks, dtype=torch.float64, aliasing_db=200),
        seed=fir_order,
    )
    closed = model.impulse_response(4000)
    recursion = model.impulse_response(4000, method="time")
    assert torch.max(torch.abs(closed - recursion)) < 1e-8 * recursion.abs().max()


def test_streaming_blocks_equal_one_pass():
    model = randomise(SDN(PAPER_ROOM, fir_order=2, dtype=torch.float64))
    x = np.random.default_rng(0).standard_normal(3000)
    whole = sdn.TimeDomainSDN(model).process(x)
    stream = sdn.TimeDomainSDN(model)
    pieces = [stream.process(x[a:b]) for a, b in [(0, 1), (1, 700), (700, 701), (701, 3000)]]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-14)
    # and filtering equals convolution with the impulse response
    h = model.impulse_response(3000, method="time").detach().numpy()
    np.testing.assert_allclose(whole, np.convolve(x, h)[:3000], atol=1e-10)


def _decay_rate_db_per_s(h: np.ndarray, fs: float) -> float:
    edc = np.cumsum((h**2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    t = np.arange(len(h)) / fs
    fit = (db < -5) & (db > -25)
    return -np.polyfit(t[fit], db[fit], 1)[0]


def test_lossless_walls_do_not_decay_and_decay_grows_with_absorption():
    fs = 16000
    lossless = SDN(PAPER_ROOM, alpha=0.0, fir_order=1, dtype=torch.float64).impulse_response(48000).detach().numpy()
    energy = [np.sum(lossless[a : a + 8000] ** 2) for a in (8000, 16000, 24000, 32000, 40000)]
    assert max(energy) / min(energy) < 1.3  # no decay (and no growth) without absorption
    rates = [_decay_rate_db_per_s(SDN(PAPER_ROOM, alpha=a, dtype=torch.float64).impulse_response(32000).detach().numpy(), fs)
             for a in (0.05, 0.15, 0.4)]
    assert all(np.isfinite(rates)) and rates[0] > 0
    assert rates[0] < rates[1] < rates[2]


def _band_decay_db_per_s(h: np.ndarray, fs: float, top_hz: float) -> float:
    """Decay rate of the power below ``top_hz``, from a line fitted to 256-sample STFT frames."""
    frames = h[: len(h) // 256 * 256].reshape(-1, 256) * np.hanning(256)
    spectrum = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    band = spectrum[:, : int(top_hz / fs * 256)].mean(-1)
    t = (np.arange(len(band)) + 0.5) * 256 / fs
    return -np.polyfit(t, 10 * np.log10(band), 1)[0]


def test_lossless_walls_with_fractional_delays_lose_no_more_than_the_lines_predict():
    """Below 6 kHz a fractional line is flat within 5e-5 dB, so a lossless network may decay there
    at most (passes per second) x (that loss); the whole-sample network, whose lines are lossless,
    is the control, and 1 % absorption the contrast."""
    fs, top = 16000.0, 6000.0
    model = SDN(PAPER_ROOM, alpha=0.0, fir_order=1, dtype=torch.float64)
    h = model.impulse_response(int(2.3 * fs)).detach().numpy()[int(0.3 * fs):]
    lines = model.delay_lines()
    freqs = torch.linspace(0, top, 601, dtype=torch.float64)
    z_log = 1j * 2 * math.pi * freqs / fs
    from sdn.delays import line_response
    loss_db = -20 * torch.log10(line_response(lines["node_pair"], z_log).abs()).min().item()
    passes_per_second = fs / float(lines["node_pair"].offset.min() + 16)
    bound = passes_per_second * max(loss_db, 0.0)
    measured = _band_decay_db_per_s(h, fs, top)
    control = _band_decay_db_per_s(SDN(PAPER_ROOM, alpha=0.0, fir_order=1, integer_delays=True, dtype=torch.float64)
                                   .impulse_response(int(2.3 * fs)).detach().numpy()[int(0.3 * fs):], fs, top)
    absorbing = _band_decay_db_per_s(SDN(PAPER_ROOM, alpha=0.01, fir_order=1, dtype=torch.float64)
                                     .impulse_response(int(2.3 * fs)).detach().numpy()[int(0.3 * fs):], fs, top)
    noise = 0.15  # dB/s: spread of the slope fitted to 2 s of a non-decaying response (the control)
    assert abs(control) < noise
    assert measured < bound + noise
    assert absorbing > 10 * noise  # the estimator does see a decay of 1 % absorption


def test_lossless_network_conserves_energy_in_the_recursion():
    """Isotropic junctions and |H| = 1: the total weighted wave energy stored in the lines is constant
    once the source has stopped injecting (a physical invariant independent of the closed form)."""
    model = SDN(SMALL_ROOM, alpha=0.0, fir_order=1, integer_delays=True, dtype=torch.float64)
    renderer = sdn.TimeDomainSDN(model)
    renderer.process(np.r_[1.0, np.zeros(renderer.memory)])  # inject, then let the source lines drain
    delay = renderer.line[0]

    def stored():  # energy of all waves in flight: the last D_kl samples entering each line
        total = 0.0
        for k in range(6):
            for l in range(6):
                if k != l:
                    total += np.sum(renderer._out[k, l, -delay[k, l]:] ** 2)
        return total

    before = stored()
    renderer.process(np.zeros(5000))
    assert before > 0
    assert abs(stored() - before) < 1e-9 * before


def test_fir_walls_start_as_scalar_walls():
    scalar = SDN(PAPER_ROOM, alpha=0.3, dtype=torch.float64).impulse_response(2000)
    fir = SDN(PAPER_ROOM, alpha=0.3, fir_order=6, dtype=torch.float64).impulse_response(2000)
    torch.testing.assert_close(scalar, fir)


def test_float32_agrees_with_float64():
    model64 = randomise(SDN(PAPER_ROOM, fir_order=6, distance_correction=True, dtype=torch.float64))
    model32 = SDN(PAPER_ROOM, fir_order=6, distance_correction=True)
    model32.load_state_dict(model64.state_dict())
    h32, h64 = model32.impulse_response(16000), model64.impulse_response(16000)
    assert h32.dtype == torch.float32
    assert torch.max(torch.abs(h32.double() - h64)) < 1e-4 * h64.abs().max()


@pytest.mark.parametrize("group", ["wall_logit", "wall_taps", "log_admittance", "log_extraction_weights", "corrections"])
def test_gradcheck_every_parameter_group(group, kernels):
    fir_order = 2 if group == "wall_taps" else 0
    model = randomise(SDN(SMALL_ROOM, fir_order=fir_order, distance_correction=True, dtype=torch.float64))
    names = [n for n, _ in model.named_parameters() if (n.endswith("_correction") if group == "corrections" else n == group)]
    assert names
    params = dict(model.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)
    pulse = torch.zeros(96, dtype=torch.float64)
    pulse[0] = 1

    def call(*values):
        return torch.func.functional_call(model, dict(zip(names, values)), (pulse,))

    assert torch.autograd.gradcheck(call, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_distance_corrections_are_bounded_and_reach_the_delays():
    model = SDN(PAPER_ROOM, distance_correction=True, dtype=torch.float64)
    geometric = {k: v.clone() for k, v in model.distances().items()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_correction"):
                p.fill_(100.0)
    corrected = model.distances()
    for name in geometric:
        extra = corrected[name] - geometric[name]
        cap = torch.clamp(geometric[name] / 2, max=0.5)
        assert torch.all(extra <= cap + 1e-12) and torch.all(extra >= 0)
    assert torch.allclose(corrected["node_mic"] - geometric["node_mic"], torch.full((6,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(model.delays()["direct"], corrected["direct"] / model.metres_per_sample)


def test_batched_forward_and_seed_inference_snippet():
    model = randomise(SDN(PAPER_ROOM, fir_order=6))
    n = 4000
    unit_pulse = torch.zeros(n, device=model.device, dtype=model.dtype)
    unit_pulse[0] = 1
    ir = model(unit_pulse)
    torch.testing.assert_close(ir, model.impulse_response(n))
    x = torch.randn(2, 3, n)
    y = model(x)
    assert y.shape == (2, 3, n)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[i, j], model(x[i, j]), atol=1e-6, rtol=1e-5)


def test_save_load_round_trip(tmp_path):
    model = randomise(SDN(PAPER_ROOM, fir_order=6, distance_correction=True))
    path = tmp_path / "nested" / "model.pt"
    model.save(path)
    assert list(path.parent.iterdir()) == [path]  # atomic: no temporary left behind
    payload = torch.load(path, weights_only=True)  # safe loading works
    assert payload["config"]["fir_order"] == 6
    loaded = sdn.load(path)
    torch.testing.assert_close(loaded.impulse_response(3000), model.impulse_response(3000), rtol=0, atol=0)
    assert loaded.room == model.room and loaded.dtype == model.dtype


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SDN checkpoint"):
        sdn.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable SDN checkpoint"):
        sdn.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not an SDN checkpoint"):
        sdn.load(foreign)


def test_physical_parameters_report():
    model = SDN(PAPER_ROOM, fir_order=6, alpha=0.02)
    report = model.physical_parameters()
    S = report["scattering_matrices"]
    assert S.shape == (6, 5, 5)
    torch.testing.assert_close(S[0], 0.4 * torch.ones(5, 5) - torch.eye(5))  # isotropic at init
    np.testing.assert_allclose(report["wall_response_db"].numpy(), 20 * np.log10(np.sqrt(0.98)), atol=1e-5)
    assert report["distances"]["node_node"].shape == (6, 6)
    torch.testing.assert_close(report["extraction_weights"], torch.full((6, 5), 0.4))


def test_stability_certificate_and_detection():
    passive = SDN(PAPER_ROOM, fir_order=2)
    assert passive.stability().certified
    matched = SDN(PAPER_ROOM)
    with torch.no_grad():  # admittances matched per line (y_kl = y_lk) but far from isotropic
        y = torch.rand(6, 6, generator=torch.Generator().manual_seed(3)) * 3 + 0.1
        y = (y + y.T)[~torch.eye(6, dtype=torch.bool)].reshape(6, 5)
        matched.log_admittance.copy_(torch.log(y))
    assert matched.stability().certified
    matched.impulse_response(8000)  # certified: no error

    loud = SDN(PAPER_ROOM, fir_order=1, dtype=torch.float64)
    with torch.no_grad():
        loud.wall_taps.copy_(torch.tensor([1.05, 0.0]))
    assert not loud.stability().certified
    with pytest.raises(UnstableSDNError, match="grows"):
        loud.impulse_response(8000)
    # independent confirmation: the time-domain recursion of the same network really grows
    loud_int = SDN(PAPER_ROOM, fir_order=1, integer_delays=True, dtype=torch.float64)
    loud_int.load_state_dict(loud.state_dict())
    h = loud_int.impulse_response(32000, method="time").detach().numpy()
    assert np.sum(h[-4000:] ** 2) > 10 * np.sum(h[4000:8000] ** 2)


@pytest.mark.parametrize("std, grows", [(0.3, True), (0.03, False)])
def test_independent_admittances_detection_agrees_with_recursion(std, grows):
    """Independently drawn admittances (the paper's parametrisation): detection must agree with
    what the time-domain recursion of the same network does over 4 s."""
    model = SDN(SMALL_ROOM, integer_delays=True, dtype=torch.float64)
    with torch.no_grad():
        model.log_admittance.copy_(std * torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert not model.stability().certified
    h = model.impulse_response(64000, method="time").detach().numpy()
    assert (np.sum(h[-8000:] ** 2) > np.sum(h[:8000] ** 2)) == grows
    if grows:
        with pytest.raises(UnstableSDNError, match="grows"):
            model.impulse_response(4000)
    else:
        model.impulse_response(4000)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(fir_order=-1), ValueError, "fir_order"),
        (dict(fir_order=1.5), ValueError, "fir_order"),
        (dict(alpha=1.2), ValueError, "alpha"),
        (dict(sample_rate=0), ValueError, "sample_rate"),
        (dict(c=float("nan")), ValueError, "c must"),
        (dict(dtype=torch.int32), ValueError, "dtype"),
        (dict(alpha=0.0), ValueError, "could never train"),
        (dict(alpha=1e-9), ValueError, "could never train"),
        (dict(max_correction=-0.5), ValueError, "max_correction"),
    ],
)
def test_bad_model_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SDN(PAPER_ROOM, **kwargs)


def test_bad_calls():
    with pytest.raises(TypeError, match="sdn.Room"):
        SDN((5, 5, 3))
    model = SDN(PAPER_ROOM)
    with pytest.raises(ValueError, match="n_samples"):
        model.impulse_response(0)
    with pytest.raises(ValueError, match="method"):
        model.impulse_response(100, method="sample_loop")
    with pytest.raises(ValueError, match="NaN"):
        model(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([1.0, 0.0])
    with pytest.raises(TypeError, match="real floating-point"):
        model(torch.ones(10, dtype=torch.complex64))
    with pytest.raises(TypeError, match="float64 but the model is torch.float32"):
        model(torch.ones(10, dtype=torch.float64))
    empty = model(torch.zeros(0, 50))  # an empty batch is fine
    assert empty.shape == (0, 50)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    model = randomise(SDN(PAPER_ROOM, fir_order=6, distance_correction=True))
    gpu = randomise(SDN(PAPER_ROOM, fir_order=6, distance_correction=True, device="cuda"))
    torch.testing.assert_close(gpu.impulse_response(16000).cpu(), model.impulse_response(16000), atol=1e-5, rtol=1e-4)


def test_batched_positions_equal_separate_models():
    rng = np.random.default_rng(5)
    size = np.array(PAPER_ROOM.size)
    rooms = [Room(PAPER_ROOM.size, rng.uniform(0.1, 0.9, 3) * size, rng.uniform(0.1, 0.9, 3) * size) for _ in range(3)]
    batched = randomise(SDN(rooms, fir_order=3, distance_correction=True, dtype=torch.float64))
    assert batched.batch_shape == (3,) and batched.distances()["node_node"].shape == (3, 6, 6)
    h = batched.impulse_response(3000)
    assert h.shape == (3, 3000)
    for i, room in enumerate(rooms):
        single = SDN(room, fir_order=3, distance_correction=True, dtype=torch.float64)
        state = {k: (v[i] if k.endswith("_correction") else v) for k, v in batched.state_dict().items()
                 if k in dict(single.named_parameters())}
        single.load_state_dict(state, strict=False)
        torch.testing.assert_close(h[i], single.impulse_response(3000), rtol=1e-10, atol=1e-12)
    (h**2).sum().backward()  # shared parameters collect gradients from every position
    assert batched.log_admittance.grad.abs().sum() > 0
    assert batched(torch.ones(3000, dtype=torch.float64)).shape == (3, 3000)


def test_batched_save_load_and_errors(tmp_path):
    rooms = [PAPER_ROOM, Room(PAPER_ROOM.size, (1.0, 5.0, 1.5), (4.0, 9.0, 1.2))]
    model = randomise(SDN(rooms, fir_order=1))
    model.save(tmp_path / "batched.pt")
    torch.testing.assert_close(sdn.load(tmp_path / "batched.pt").impulse_response(2000), model.impulse_response(2000))
    with pytest.raises(ValueError, match="share one room"):
        SDN([PAPER_ROOM, SMALL_ROOM])
    with pytest.raises(TypeError, match="non-empty sequence"):
        SDN([])
    with pytest.raises(ValueError, match="one position"):
        SDN(rooms, integer_delays=True).impulse_response(100, method="time")


def _first_order_arrivals(model: SDN) -> np.ndarray:
    D = model.delays()
    return (D["source_node"] + D["node_mic"]).detach().numpy().astype(int)


def test_quirk_late_taps_delays_hops_and_mic_lines():
    exact = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200)
    late = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200, quirks=["late_taps"])
    h, h_late = exact.impulse_response(1600).detach().numpy(), late.impulse_response(1600).detach().numpy()
    first = _first_order_arrivals(exact)
    np.testing.assert_array_equal(_first_order_arrivals(late), first + 1)
    D = exact.delays()
    second = min(int(D["source_node"][k] + D["node_node"][k, l] + D["node_mic"][l]) for k in range(6) for l in range(6) if k != l)
    early = first[first < second]
    assert len(early) >= 2
    for t in early:  # each first-order reflection moves one sample later, unchanged in amplitude
        assert h_late[t + 1] == pytest.approx(h[t], rel=1e-9)
    hops = D["node_node"] + 2 * torch.from_numpy(~np.eye(6, dtype=bool))
    torch.testing.assert_close(late.delays()["node_node"], hops.double())
    direct = round(PAPER_ROOM.direct_distance / exact.metres_per_sample)
    assert h_late[direct] == pytest.approx(h[direct])  # the direct path is not a tap


def test_quirk_buffer_truncation_silences_long_lines():
    """Lines beyond 512 samples all touch the far wall (y = Ly): the truncated model equals the exact
    one until the far wall's first-order reflection, which is exactly what goes missing."""
    exact = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200)
    cut = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200, quirks="buffer_truncation")
    D = {k: v.detach().numpy() for k, v in exact.delays().items()}
    far = 3
    assert D["source_node"][far] >= 512 and np.all(np.delete(D["source_node"], far) < 512)
    long_lines = np.argwhere(D["node_node"] >= 512)
    assert len(long_lines) and np.all((long_lines == far).any(axis=1))
    h, h_cut = exact.impulse_response(2000).detach().numpy(), cut.impulse_response(2000).detach().numpy()
    t_far = round(PAPER_ROOM.image_distances[far] / exact.metres_per_sample)
    scale = np.abs(h).max()
    np.testing.assert_allclose(h_cut[:t_far], h[:t_far], atol=1e-10 * scale)
    missing = math.sqrt(0.98) * exact.metres_per_sample / PAPER_ROOM.image_distances[far]
    assert h[t_far] - h_cut[t_far] == pytest.approx(missing, rel=1e-6)


def test_quirk_summed_weights_scale_the_network_by_thirty_and_share_gradients():
    exact = SDN(PAPER_ROOM, dtype=torch.float64)
    summed = SDN(PAPER_ROOM, dtype=torch.float64, quirks="summed_weights")
    direct_only = SDN(PAPER_ROOM, dtype=torch.float64)
    with torch.no_grad():
        direct_only.log_extraction_weights.fill_(-80.0)  # weights ~ 0: only the direct path remains
    d = direct_only.impulse_response(4000)
    network, network_summed = exact.impulse_response(4000) - d, summed.impulse_response(4000) - d
    torch.testing.assert_close(network_summed, 30.0 * network)  # (sum of 30 weights of 0.4) / 0.4
    (summed.impulse_response(2000) ** 2).sum().backward()
    grad = summed.log_extraction_weights.grad  # d/d(log w) = w * shared gradient: equal at init
    torch.testing.assert_close(grad, torch.full_like(grad, grad[0, 0].item()))


def test_quirk_direct_gain_is_inverse_distance():
    exact = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200)
    quirky = SDN(PAPER_ROOM, integer_delays=True, dtype=torch.float64, aliasing_db=200, quirks=("direct_gain",))
    t = round(PAPER_ROOM.direct_distance / exact.metres_per_sample)
    assert quirky.impulse_response(200)[t].item() == pytest.approx(1 / PAPER_ROOM.direct_distance)
    assert exact.impulse_response(200)[t].item() == pytest.approx(exact.metres_per_sample / PAPER_ROOM.direct_distance)
    with pytest.raises(ValueError, match="unknown quirk"):
        SDN(PAPER_ROOM, quirks="late_tap")
    assert SDN(PAPER_ROOM, quirks="paper").config["quirks"] == list(sdn.model.QUIRKS)


def test_gradcheck_distance_corrections_at_a_whole_sample_boundary():
    """One node-pair line and the direct path sit 1e-7 samples past a whole sample: the finite
    differences of gradcheck cross the boundary, the analytic gradient must still agree."""
    model = SDN(SMALL_ROOM, fir_order=1, distance_correction=True, dtype=torch.float64)
    G = model.metres_per_sample
    with torch.no_grad():
        for name in ("node_pair", "direct"):
            d = getattr(model, f"{name}_distance")[0].item()
            target = (math.floor(d / G) + 1 + 1e-7) * G
            getattr(model, f"{name}_correction")[0] = math.atanh((target - d) / min(0.5, d / 2)) / 10.0
    names = [n for n, _ in model.named_parameters() if n.endswith("_correction")]
    params = dict(model.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    pulse = torch.zeros(300, dtype=torch.float64)
    pulse[0] = 1

    def call(*values):
        return torch.func.functional_call(model, dict(zip(names, values)), (pulse,))

    # the taps are C1 at the boundary, not C2: a smaller step keeps the central differences exact
    assert torch.autograd.gradcheck(call, inputs, eps=1e-7, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_float32_minute_long_render_keeps_its_tail_clean():
    """60 s in float32: over the last second the error stays below -100 dB re peak, or 20 dB below
    the true tail there, whichever is higher (renders without gradient are computed in float64)."""
    model = randomise(SDN(PAPER_ROOM, fir_order=6, alpha=0.1))
    with torch.no_grad():
        h = model.impulse_response(60 * 16000)
    assert h.dtype == torch.float32
    # the true tail decays by about 120 dB/s here: after 59 s it is far below -100 dB re peak
    assert h[-16000:].abs().max() < 1e-5 * h.abs().max()


@pytest.mark.parametrize("db_per_second", [400.0, 60.0, 12.0, 0.0])
def test_render_until_decayed_jumps_to_the_decayed_length(db_per_second):
    """An exponential decay of known rate (with a ripple, as a render has): cut at its -100 dB
    sample, the same cut whatever lengths were tried, in at most three renders (doubling from 1 s
    up to a 30 s cap would take five); a response that does not decay runs to the cap."""
    from sdn.rendering import render_until_decayed

    fs, cap = 1000, 30000
    lengths = []

    def render_n(n):
        lengths.append(n)
        t = torch.arange(n, dtype=torch.float64) / fs
        return 10 ** (-db_per_second * t / 20) * (1.5 + torch.cos(2 * math.pi * 3.7 * t))

    h = render_until_decayed(render_n, fs, max_samples=cap)
    whole = render_n(cap)
    expected = int(torch.nonzero(whole.abs() >= whole.abs().max() * 1e-5).max()) + 1
    assert h.shape[-1] == expected
    torch.testing.assert_close(h, whole[:expected], rtol=0, atol=0)
    assert len(lengths) - 1 <= 3 and all(b >= 2 * a or b == cap for a, b in zip(lengths, lengths[1:-1]))
    if db_per_second == 0.0:
        assert expected == cap


def test_forward_equals_convolution_with_the_impulse_response_cut_100_db_down():
    model = randomise(SDN(SMALL_ROOM, fir_order=2, alpha=0.4, dtype=torch.float64))
    h = model.impulse_response(20000).detach().numpy()
    pulse = torch.zeros(20000, dtype=torch.float64)
    pulse[0] = 1
    ir = model(pulse).detach().numpy()
    last = model.impulse_response(None, max_samples=20000).shape[-1]
    peak = np.abs(h).max()
    assert last < 19000  # the response was cut where it had decayed, not at the signal's end
    np.testing.assert_allclose(ir[:last], h[:last], atol=1e-12 * peak)
    assert np.abs(ir[last:]).max() < 1e-12 * peak
    assert abs(h[last - 1]) >= 1e-5 * peak > np.abs(h[last:]).max()  # cut 100 dB below the peak
    x = torch.randn(2, 20000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = model(x).detach().numpy()
    for i in range(2):
        expected = np.convolve(x[i].numpy(), h)[:20000]
        # what the cut leaves out is bounded by Cauchy-Schwarz: |x * tail| <= |x| |tail|
        bound = np.linalg.norm(x[i].numpy()) * np.linalg.norm(h[last:]) + 1e-10 * peak
        assert np.abs(y[i] - expected).max() <= bound


def test_quirk_last_tap_init_delays_every_reflection_by_the_fir_order():
    exact = SDN(PAPER_ROOM, fir_order=6, integer_delays=True, dtype=torch.float64, aliasing_db=200)
    late = SDN(PAPER_ROOM, fir_order=6, integer_delays=True, dtype=torch.float64, aliasing_db=200, quirks="last_tap_init")
    torch.testing.assert_close(late.wall_taps[:, -1], exact.wall_taps[:, 0])
    assert torch.all(late.wall_taps[:, :-1] == 0)
    h, h_late = exact.impulse_response(1200).detach().numpy(), late.impulse_response(1200).detach().numpy()
    direct = round(PAPER_ROOM.direct_distance / exact.metres_per_sample)
    assert h_late[direct] == pytest.approx(h[direct])  # the direct path has no wall
    for t in _first_order_arrivals(exact):
        if t + 6 < 0.5 * len(h):
            assert h_late[t + 6] == pytest.approx(h[t], rel=1e-9)
    assert "last_tap_init" in SDN(PAPER_ROOM, quirks="paper").config["quirks"]


def test_source_near_a_wall_warns_and_numpy_numbers_are_accepted():
    with pytest.warns(UserWarning, match="0.050 m from wall floor"):
        SDN(Room((4, 5, 3), (1.0, 2.0, 0.05), (2.0, 3.0, 1.5)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SDN(Room((4, 5, 3), (1.0, 2.0, 0.5), (2.0, 3.0, 1.5)), sample_rate=np.float32(16000),
                    alpha=np.float64(0.1), c=np.int64(343))
    assert model.sample_rate == 16000.0 and isinstance(model.config["c"], float)


@pytest.mark.parametrize("case", ["mismatched admittances", "loud fir walls"])
def test_node_system_without_pivoting_equals_dense_system_far_from_passivity(case, kernels):
    """The 6x6 node system is eliminated without pivoting (stable for passive networks); far from
    passivity it must still equal the dense 30x30 wave system."""
    model = randomise(SDN(SMALL_ROOM, fir_order=3, distance_correction=True, dtype=torch.float64))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if case == "mismatched admittances":  # log-std 3: y_kl / y_lk up to e^10
            model.log_admittance.copy_(3 * torch.randn(6, 5, generator=gen, dtype=torch.float64))
        else:  # |H| well above 1 at some frequencies
            model.wall_taps.copy_(0.6 * torch.randn(6, 4, generator=gen, dtype=torch.float64))
    assert not model.stability().certified
    z_log = torch.tensor([0.001 + 0.3j, 0.0005 + 2.1j, 0.002 + 0.0j, 0.0002 + 3.1j, 0.01 + 1.0j], dtype=torch.complex128)
    ours = model.transfer_function(z_log).detach().numpy()
    dense = [dense_transfer_function(model, complex(np.exp(v))) for v in z_log.numpy()]
    np.testing.assert_allclose(ours, dense, rtol=1e-10)


def test_batched_gradients_equal_the_sum_over_separate_models(kernels):
    """Batched positions share the room parameters: their gradient is the sum of each position's."""
    rng = np.random.default_rng(11)
    size = np.array(PAPER_ROOM.size)
    rooms = [Room(PAPER_ROOM.size, rng.uniform(0.1, 0.9, 3) * size, rng.uniform(0.1, 0.9, 3) * size) for _ in range(3)]
    batched = randomise(SDN(rooms, fir_order=2, distance_correction=True, dtype=torch.float64))
    weights = torch.linspace(1.0, 2.0, 1500, dtype=torch.float64)
    (batched.impulse_response(1500) ** 2 * weights).sum().backward()
    shared = ("wall_taps", "log_admittance", "log_extraction_weights")
    total = {name: torch.zeros_like(getattr(batched, name)) for name in shared}
    for i, room in enumerate(rooms):
        single = SDN(room, fir_order=2, distance_correction=True, dtype=torch.float64)
        single.load_state_dict({k: (v[i] if k.endswith("_correction") else v) for k, v in batched.state_dict().items()
                                if k in dict(single.named_parameters())}, strict=False)
        (single.impulse_response(1500) ** 2 * weights).sum().backward()
        for name in shared:
            total[name] += getattr(single, name).grad
        torch.testing.assert_close(batched.source_node_correction.grad[i], single.source_node_correction.grad,
                                   rtol=1e-9, atol=1e-12)
    for name in shared:
        torch.testing.assert_close(getattr(batched, name).grad, total[name], rtol=1e-9, atol=1e-12)
