"""One training step and one divergence exception for sdn.train and sdn.multi (issue 12 item 4)."""
import ast
import logging
from pathlib import Path

import pytest
import torch

import sdn
from sdn.config import RoomConfig, load_experiment
from sdn.losses import SDNLoss
from sdn.multi import fit_positions
from sdn.optimisation import Diverged, PlateauStop, unit_norm_targets
from sdn.rir import MeasuredRIR
from sdn.train import fit

REPO = Path(__file__).resolve().parents[1]
ROOM = sdn.Room((3.0, 4.0, 2.5), (1.0, 1.2, 1.3), (2.1, 2.9, 1.4))
N = 1000


def target_signal() -> torch.Tensor:
    with torch.no_grad():
        h = sdn.SDN(ROOM, alpha=0.4).impulse_response(N)
    return h / h.norm()


def nan_at_training_call(monkeypatch, call: int) -> None:
    """Make the loss of the ``call``-th training step (counted from 1) NaN."""
    original = SDNLoss.forward
    count = {"n": 0}

    def forward(self, pred, target):
        terms = original(self, pred, target)
        if torch.is_grad_enabled():
            count["n"] += 1
            if count["n"] == call:
                terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(SDNLoss, "forward", forward)


def test_no_module_imports_a_private_name_of_another():
    """Before: sdn.multi imported _render and _progress from sdn.train."""
    offences = []
    for path in sorted((REPO / "sdn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sdn")):
                offences += [f"{path.name}: {alias.name}" for alias in node.names
                             if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not offences


def test_fit_and_fit_positions_take_the_same_steps():
    """One room through sdn.train.fit and through sdn.multi.fit_positions: the same history and
    weights, to the last bit (the same step, the same target handling)."""
    experiment = load_experiment(REPO / "config/experiments/prior_fir0.yaml").replace(
        training={"epochs": 3, "lr": 0.05, "seed": 0})  # the paper's initial model (sdn.initialisation)
    signal = target_signal()
    target = MeasuredRIR(signal=signal, sample_rate=16000, path=Path("synthetic"), channel=0, n_channels=1,
                         original_sample_rate=16000, original_length=N, rt60=None, peak_index=0, scale=1.0)
    single = fit(experiment, RoomConfig(name="synthetic", room=ROOM, target=None), target=target,
                 progress=False, max_eval_seconds=0.1)
    model, history = fit_positions(ROOM, signal, {"alpha": 0.02}, epochs=3, lr=0.05, seed=0, progress=False)

    def without_time(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert without_time(single.history) == without_time(history)
    for key, value in model.state_dict().items():
        assert torch.equal(single.model.state_dict()[key], value), key


def test_one_divergence_exception_for_both(monkeypatch, caplog, tmp_path):
    """fit raises sdn.optimisation.Diverged; fit_positions catches the same one, logs it and keeps
    the weights of the last finite loss (those of epoch 1: after one step)."""
    assert not hasattr(sdn.train, "TrainingStopped")
    signal = target_signal()
    one_step, _ = fit_positions(ROOM, signal, epochs=1, lr=0.05, progress=False)
    with monkeypatch.context() as patch:
        nan_at_training_call(patch, 3)
        with caplog.at_level(logging.WARNING, logger="sdn.multi"):
            model, history = fit_positions(ROOM, signal, epochs=5, lr=0.05, progress=False)
    assert len(history) == 2 and "stopped at epoch 2: non-finite loss" in caplog.text
    for key, value in one_step.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    experiment = load_experiment(REPO / "config/experiments/prior_fir0.yaml").replace(training={"epochs": 5})
    target = MeasuredRIR(signal=signal, sample_rate=16000, path=Path("synthetic"), channel=0, n_channels=1,
                         original_sample_rate=16000, original_length=N, rt60=None, peak_index=0, scale=1.0)
    with monkeypatch.context() as patch:
        nan_at_training_call(patch, 2)
        with pytest.raises(Diverged) as info:
            fit(experiment, RoomConfig(name="synthetic", room=ROOM, target=None), target=target,
                progress=False, max_eval_seconds=0.1)
    assert info.value.epoch == 1 and str(info.value).startswith("epoch 1: non-finite loss")


def test_targets_follow_the_model_dtype():
    signal = target_signal().double() * 3.0
    for dtype in (torch.float32, torch.float64):
        y = unit_norm_targets(signal, sdn.SDN(ROOM, dtype=dtype))
        assert y.dtype == dtype
        torch.testing.assert_close(y, (signal / signal.norm()).to(dtype), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not silent"):
        unit_norm_targets(torch.zeros(N), sdn.SDN(ROOM))


def test_plateau_stop_waits_for_min_epochs():
    """The converged fits run at least the paper's budget: a plateau reached earlier stops them
    only once ``min_epochs`` epochs have run, and a later improvement still restarts the wait."""
    losses = [1.0, 0.5] + [0.5] * 10
    early = PlateauStop(patience=3, min_delta=0.01)
    assert [early.update(x) for x in losses].index(True) == 4  # 3 epochs without improvement after epoch 2
    late = PlateauStop(patience=3, min_delta=0.01, min_epochs=8)
    assert [late.update(x) for x in losses].index(True) == 7   # the 8th epoch
    improving = PlateauStop(patience=3, min_delta=0.01, min_epochs=8)
    stops = [improving.update(x) for x in [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3]]
    assert stops.index(True) == 10  # the drop at epoch 8 starts a new wait of 3 epochs
    with pytest.raises(ValueError, match="min_epochs"):
        PlateauStop(patience=3, min_delta=0.01, min_epochs=-1)
