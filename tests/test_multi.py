"""Batched fitting of one SDN over several positions (sdn.multi)."""
import math

import pytest
import torch

import sdn
from sdn.losses import SDNLoss
from sdn.multi import fit_positions, position_losses, transfer

SIZE = (3.0, 4.0, 2.5)
ROOMS = [sdn.Room(SIZE, (1.0, 1.2, 1.3), (2.1, 2.9, 1.4)),
         sdn.Room(SIZE, (2.2, 0.8, 1.1), (0.9, 3.1, 1.6)),
         sdn.Room(SIZE, (0.7, 2.5, 1.8), (2.4, 1.0, 1.2))]
TRUE_ALPHA = 0.4
N = 4000


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these small problems run several times faster than with two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def targets(rooms=ROOMS, n=N, **kwargs):
    """SDN-generated targets with a known uniform wall gain sqrt(1 - 0.4)."""
    with torch.no_grad():
        return sdn.SDN(rooms, alpha=TRUE_ALPHA, **kwargs).impulse_response(n)


def test_batched_fit_reduces_loss_and_recovers_the_wall_gain():
    model, history = fit_positions(ROOMS, targets(), {"alpha": 0.02}, epochs=120, lr=0.1, progress=False)
    assert len(history) == 120
    assert history[-1]["total"] < 0.1 * history[0]["total"]
    gains = model.wall_filters()[:, 0].detach()
    true_gain, start_error = math.sqrt(1 - TRUE_ALPHA), abs(math.sqrt(1 - 0.02) - math.sqrt(1 - TRUE_ALPHA))
    assert abs(gains.mean().item() - true_gain) < 0.15 * start_error
    assert torch.all((gains - true_gain).abs() < 0.4 * start_error)


def test_batched_loss_is_the_mean_of_the_per_position_losses():
    y = targets() + 0.01 * torch.randn(len(ROOMS), N, generator=torch.Generator().manual_seed(0))
    model, history = fit_positions(ROOMS, y, {"fir_order": 2}, epochs=1, progress=False)
    loss = SDNLoss(16000)
    single = []
    for room, target in zip(ROOMS, y):
        with torch.no_grad():
            h = sdn.SDN(room, fir_order=2).impulse_response(N)
        single.append(loss(h / h.norm(), target / target.norm())["total"].item())
    # training renders in float32 with gradient, position_losses in float64 without: 1e-4 apart at most
    assert history[0]["total"] == pytest.approx(sum(single) / len(single), rel=1e-4)
    # position_losses gives the same per-position terms for any model
    initial = sdn.SDN(ROOMS, fir_order=2)
    assert position_losses(initial, y)["total"].tolist() == pytest.approx(single, rel=1e-5)


def test_transfer_equals_a_model_built_with_the_same_parameters():
    torch.manual_seed(1)
    model = sdn.SDN(ROOMS[:2], fir_order=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = transfer(model, ROOMS[2])
    direct = sdn.SDN(ROOMS[2], fir_order=3)
    direct.load_state_dict({k: v for k, v in model.state_dict().items() if "distance" not in k}, strict=False)
    with torch.no_grad():
        assert torch.allclose(moved.impulse_response(2000), direct.impulse_response(2000))
        # and at the fitted positions it reproduces the batched model
        assert torch.allclose(transfer(model, ROOMS[:2]).impulse_response(2000), model.impulse_response(2000))
    assert moved.batch_shape == () and transfer(model, ROOMS).batch_shape == (3,)


def test_transfer_refuses_distance_corrections_and_other_rooms():
    with pytest.raises(ValueError, match="distance correction"):
        transfer(sdn.SDN(ROOMS, distance_correction=True), ROOMS[0])
    with pytest.raises(ValueError, match="size"):
        transfer(sdn.SDN(ROOMS), sdn.Room((5.0, 4.0, 2.5), (1.0, 1.0, 1.0), (2.0, 2.0, 1.0)))


def test_fit_positions_checks_the_targets():
    with pytest.raises(ValueError, match="shape"):
        fit_positions(ROOMS, torch.randn(2, 100), epochs=1, progress=False)
    with pytest.raises(ValueError, match="silent"):
        fit_positions(ROOMS, torch.zeros(3, 100), epochs=1, progress=False)


def test_a_single_room_gives_an_unbatched_model():
    y = targets(ROOMS[0], n=1000)
    model, history = fit_positions(ROOMS[0], y, epochs=1, progress=False)
    assert model.batch_shape == () and model.impulse_response(1000).shape == (1000,)
    assert history[0]["total"] == pytest.approx(position_losses(sdn.SDN(ROOMS[0]), y)["total"].item(), rel=1e-4)


def test_float64_targets_reach_a_float64_model_unrounded():
    """The model's dtype drives the targets' (they were rounded through float32 before)."""
    rooms = ROOMS[:2]
    y = targets(rooms, n=1000, dtype=torch.float64) + 1e-3 * torch.randn(2, 1000, dtype=torch.float64,
                                                                        generator=torch.Generator().manual_seed(3))
    model, history = fit_positions(rooms, y, {"dtype": torch.float64}, epochs=1, progress=False)
    assert model.dtype == torch.float64
    with torch.no_grad():
        h = sdn.SDN(rooms, dtype=torch.float64).impulse_response(1000)
        expected = SDNLoss(16000)(h / h.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True))["total"].item()
    assert history[0]["total"] == pytest.approx(expected, rel=1e-12)


def test_targets_must_fit_the_model():
    model = sdn.SDN(ROOMS[:2])
    with pytest.raises(TypeError, match="real"):
        position_losses(model, torch.ones(2, 100, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"\(P, T\) with P = 2"):
        position_losses(model, torch.ones(3, 100))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        position_losses(sdn.SDN(ROOMS[0]), torch.ones(2, 100))
