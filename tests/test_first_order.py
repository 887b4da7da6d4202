"""Direct-sound and first-order reflection levels of an SDN (the effect of deviations 2 and 4)."""
import math

import numpy as np
import pytest
import torch

import sdn
from sdn.first_order import direct_to_reflection_change_db, direct_to_reflection_db, first_order_amplitudes

ROOM = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))


def test_untrained_exact_model_has_the_image_source_levels():
    alpha = 0.3
    model = sdn.SDN(ROOM, alpha=alpha, dtype=torch.float64)
    path = ROOM.source_node_distances + ROOM.node_mic_distances
    expected = 20 * np.log10(path / (math.sqrt(1 - alpha) * ROOM.direct_distance))
    np.testing.assert_allclose(direct_to_reflection_db(model).numpy(), expected, atol=1e-3)


def test_released_code_behaviours_raise_the_direct_sound_by_fs_over_30c():
    # deviation 4 alone: the direct sound 1/G louder; deviation 2 alone: the reflections 30 times
    # louder (the sum of 30 weights of 0.4 instead of one of them); together 20 log10(fs / (30 c))
    exact = sdn.SDN(ROOM, dtype=torch.float64)
    G = 343.0 / 16000
    for quirks, expected in (("direct_gain", -20 * math.log10(G)), ("summed_weights", -20 * math.log10(30)),
                             ("summed_weights,direct_gain", 20 * math.log10(16000 / (30 * 343.0)))):
        change = direct_to_reflection_change_db(sdn.SDN(ROOM, quirks=quirks, dtype=torch.float64), exact)
        np.testing.assert_allclose(change.numpy(), expected, atol=1e-9)
    assert 20 * math.log10(16000 / (30 * 343.0)) == pytest.approx(3.83, abs=0.005)


@pytest.mark.parametrize("quirks", ["", "summed_weights,direct_gain"])
def test_amplitudes_equal_the_rendered_arrivals_of_a_randomly_trained_model(quirks):
    # integer delays: each arrival is one sample of the impulse response; the reflections that
    # arrive before the earliest second-order path and alone on their sample are compared
    torch.manual_seed(3)
    room = sdn.Room((4.1, 6.3, 2.9), (1.3, 1.7, 1.1), (2.9, 4.4, 1.6))
    model = sdn.SDN(room, fir_order=3, quirks=quirks, integer_delays=True, dtype=torch.float64)
    with torch.no_grad():
        model.wall_taps.copy_(0.3 * torch.rand_like(model.wall_taps) + torch.tensor([0.5, 0.0, 0.0, 0.0]))
        model.log_admittance.normal_(0, 0.3)
        model.log_extraction_weights.normal_(-0.9, 0.4)
    amplitudes = first_order_amplitudes(model)
    with torch.no_grad():
        h = model.impulse_response(2000).numpy()
    delays = {k: v.numpy() for k, v in model.delays().items()}
    direct = int(delays["direct"][0])
    assert h[direct] == pytest.approx(float(amplitudes["direct"]), rel=1e-6)
    arrivals = (delays["source_node"] + delays["node_mic"]).astype(int)
    node_node = delays["node_node"]
    second = min(delays["source_node"][k] + node_node[k, l] + delays["node_mic"][l]
                 for k in range(6) for l in range(6) if k != l)
    compared = 0
    for k, n in enumerate(arrivals):
        alone = np.sum(arrivals == n) == 1 and n != direct
        if alone and n < second:
            # the wall filter's later taps fall on later samples: tap 0 arrives first, the sum
            # of taps is the low-frequency amplitude
            taps = model.wall_filters()[k].detach().numpy()
            assert h[n] == pytest.approx(float(amplitudes["reflections"][k]) * taps[0] / taps.sum(), rel=1e-6)
            compared += 1
    assert compared >= 3


def test_truncated_lines_render_no_reflection():
    model = sdn.SDN(ROOM, quirks="buffer_truncation", dtype=torch.float64)
    levels = direct_to_reflection_db(model)
    long_path = (ROOM.node_mic_distances / (343.0 / 16000)) >= 512
    assert long_path.any()
    assert torch.isinf(levels[torch.from_numpy(long_path)]).all() and torch.isfinite(levels[~torch.from_numpy(long_path)]).all()
