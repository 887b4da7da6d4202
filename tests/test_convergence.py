"""The plateau stop of the converged fits: the rule, its configuration, and a short fit."""
import json
import math
from pathlib import Path

import pytest

import sdn
from sdn.config import ConfigError, RoomConfig, load_experiment, load_room_config
from sdn.optimisation import PlateauStop
from sdn.study import PAPER_CONFIGURATIONS
from sdn.train import fit, run_hash

from test_train import ROOM, experiment, read_history, synthetic_target

REPO = Path(__file__).resolve().parents[1]
ROOM_CONFIG = RoomConfig(name="synthetic", room=ROOM, target=None)


def stop_epoch(losses, patience, min_delta):
    """Number of losses consumed when the rule first says stop, None if it never does."""
    rule = PlateauStop(patience, min_delta)
    for count, loss in enumerate(losses, start=1):
        if rule.update(loss):
            return count
    return None


def test_flat_loss_stops_after_patience_epochs():
    losses = [1.0, 0.5, 0.25] + [0.25] * 20
    assert stop_epoch(losses, patience=7, min_delta=1e-3) == 3 + 7


@pytest.mark.parametrize("min_delta", [1e-3, 1e-2])
def test_geometric_decay_stops_exactly_when_it_falls_slower_than_the_threshold(min_delta):
    # L_t = r^t needs k = ceil(log(1 - delta) / log r) epochs for each improvement by the factor
    # (1 - delta): the rule waits k - 1 epochs between improvements, so it stops iff k - 1 >= patience.
    patience = 20
    for k in (patience, patience + 1, patience + 2):
        rate = (1 - min_delta) ** (1 / (k - 0.5))  # r^(k-1) > 1 - delta > r^k
        assert math.ceil(math.log(1 - min_delta) / math.log(rate)) == k
        losses = [rate**t for t in range(2000)]
        expected = None if k - 1 < patience else 1 + patience
        assert stop_epoch(losses, patience, min_delta) == expected, k


def test_oscillation_within_the_threshold_is_a_plateau_and_a_later_drop_is_not():
    # the first value of the wobble improves on 0.6; none after it beats it by 0.1 %
    wobble = [0.3 * (1 + 5e-4 * (-1) ** t) for t in range(40)]
    assert stop_epoch([1.0, 0.6] + wobble, patience=10, min_delta=1e-3) == 3 + 10
    # a drop beyond the threshold just before the patience runs out restarts the count
    losses = [1.0] + [0.999] * 8 + [0.9] + [0.9] * 30
    assert stop_epoch(losses, patience=10, min_delta=1e-2) == 10 + 10


@pytest.mark.parametrize("patience, min_delta", [(0, 1e-3), (3, -0.1), (3, 1.0), (2.5, 1e-3)])
def test_rule_rejects_bad_settings(patience, min_delta):
    with pytest.raises(ValueError, match="patience|min_delta"):
        PlateauStop(patience, min_delta)


@pytest.mark.parametrize("text, message", [
    ("training: {patience: -1}", "patience must be >= 0"),
    ("training: {patience: 5, min_delta: -0.01}", "min_delta must be >= 0"),
    ("training: {patience: 5, min_delta: 1.0}", "min_delta .* must be < 1"),
    ("training: {patience: 5.5}", "patience"),
])
def test_config_validates_the_plateau_fields(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\n{text}\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert str(path) in str(info.value)


def test_hashes_of_configs_without_a_plateau_stop_are_unchanged():
    # without a plateau stop the hashed dict is the one of the runs made before the fields existed
    # (tests/test_results.py checks every committed run's hash against its config files)
    paper = load_experiment(REPO / "config/experiments/prior_fir0.yaml")
    assert set(paper.to_dict()["training"]) == {"epochs", "lr", "seed", "checkpoint_every"}
    room = load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    stored = json.loads((REPO / "results/runs/prior_fir0/config.json").read_text())
    assert run_hash(paper, room) == stored["hash"]
    with_stop = paper.replace(training={"patience": 50})
    assert with_stop.to_dict()["training"]["patience"] == 50 and with_stop.to_dict()["training"]["min_delta"] == 1e-3
    assert run_hash(with_stop, room) != run_hash(paper, room)
    # replace keeps the plateau fields even while the stop is off
    assert paper.replace(training={"min_delta": 0.05}).replace(training={"patience": 3}).training.min_delta == 0.05


def test_converged_configs_differ_from_the_paper_ones_only_in_the_training_budget():
    for name in PAPER_CONFIGURATIONS:
        paper = load_experiment(REPO / f"config/experiments/{name}.yaml")
        converged = load_experiment(REPO / f"config/experiments/converged_{name}.yaml")
        assert converged.name == f"converged_{name}"
        assert converged.model == paper.model and converged.loss == paper.loss
        assert converged.training.patience > 0 and converged.training.epochs > paper.training.epochs
        assert converged.training.seed == paper.training.seed


def test_fit_stops_at_the_plateau_and_resumes_to_the_same_epoch(tmp_path):
    target = synthetic_target()
    config = experiment(epochs=400, lr=0.1, checkpoint_every=10, patience=8, min_delta=0.02)
    whole = fit(config, ROOM_CONFIG, out=tmp_path / "a", target=target, progress=False, max_eval_seconds=1.0)
    stopped = whole.metrics["plateau_epoch"]
    losses = [row["total"] for row in whole.history]
    assert stopped is not None and stopped == len(losses) < 400
    # nothing in the last `patience` epochs improved by 2 % on the lowest loss before them
    assert min(losses[-8:]) >= 0.98 * min(losses[:-8])
    assert losses[-1] < 0.2 * losses[0]  # it did train first
    assert json.loads((tmp_path / "a/metrics.json").read_text())["plateau_epoch"] == stopped
    # interrupted before the plateau, then resumed: the same epochs and the same stop
    fit(config, ROOM_CONFIG, out=tmp_path / "b", epochs=stopped - 3, target=target, progress=False,
        max_eval_seconds=1.0)
    resumed = fit(config, ROOM_CONFIG, out=tmp_path / "b", target=target, progress=False, max_eval_seconds=1.0,
                  resume=True)
    assert read_history(tmp_path / "b") == read_history(tmp_path / "a")
    assert resumed.metrics["plateau_epoch"] == stopped
    # resuming a converged run trains no further
    again = fit(config, ROOM_CONFIG, out=tmp_path / "b", target=target, progress=False, max_eval_seconds=1.0,
                resume=True)
    assert len(again.history) == stopped and again.metrics["plateau_epoch"] == stopped


def test_without_patience_every_epoch_runs():
    result = fit(experiment(epochs=12, lr=0.1), ROOM_CONFIG, target=synthetic_target(), progress=False,
                 max_eval_seconds=1.0)
    assert len(result.history) == 12 and result.metrics["plateau_epoch"] is None
    assert isinstance(result.model, sdn.SDN)
