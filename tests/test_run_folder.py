"""A run folder belongs to one run (issue 11, items 1, 7 and 8 for sdn.train)."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch

import sdn
from sdn.checkpoint import CheckpointError
from sdn.config import RoomConfig, load_experiment
from sdn.losses import SDNLoss
from sdn.rir import MeasuredRIR
from sdn import run_folder
from sdn.run_folder import RUN_FILES, RunFolderError
from sdn.train import fit, resume_hash, run_hash

REPO = Path(__file__).resolve().parents[1]
ROOM = sdn.Room((3.0, 4.0, 2.5), (1.0, 1.2, 1.3), (2.1, 2.9, 1.4))
ROOM_CONFIG = RoomConfig(name="synthetic", room=ROOM, target=None)
N = 1200


@pytest.fixture(scope="module")
def target() -> MeasuredRIR:
    """A short SDN-generated target (uniform wall gain sqrt(1 - 0.4)), float32 like a loaded RIR."""
    with torch.no_grad():
        h = sdn.SDN(ROOM, alpha=0.4, dtype=torch.float64).impulse_response(N)
    h = (h / h.norm()).float()
    return MeasuredRIR(signal=h, sample_rate=16000, path=Path("synthetic"), channel=0, n_channels=1,
                       original_sample_rate=16000, original_length=N, rt60=None,
                       peak_index=int(h.abs().argmax()), scale=1.0)


def experiment(**training):
    config = load_experiment(REPO / "config/experiments/prior_fir0.yaml")
    return config.replace(training={"epochs": 3, "lr": 0.01, "checkpoint_every": 3, **training})


def run(out, target, training=None, **kwargs):
    return fit(experiment(**(training or {})), ROOM_CONFIG, out=out, target=target, progress=False,
               max_eval_seconds=0.1, **kwargs)


def history_rows(run_dir: Path) -> list:
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_new_run_refuses_a_folder_that_holds_files(tmp_path, target):
    """A user's own files, one of them with one of our names, are never touched without overwrite."""
    (tmp_path / "metrics.json").write_text("my own notes")
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / ".mine.tmp").write_text("keep me too")
    (tmp_path / ".model.pt.k1ll3d.tmp").write_bytes(b"half a file")  # left by a killed write
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunFolderError, match="is not empty .*metrics.json.*--overwrite") as info:
        run(tmp_path, target)
    assert str(tmp_path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "metrics.json").read_text() == "my own notes"
    # --overwrite replaces our file names (and temporary files of theirs) only
    run(tmp_path, target, overwrite=True)
    assert "trained" in json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*RUN_FILES, "notes.txt", ".mine.tmp"])
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_the_issue_scenario_cannot_mix_two_runs(tmp_path, target, monkeypatch):
    """Issue 11: a run with lr 0.01 is in the folder; a run with lr 0.001 started there must not
    resume with the other run's weights, optimiser (lr 0.01) and history."""
    run(tmp_path, target, {"lr": 0.01})
    other = {"lr": 0.001}
    with pytest.raises(RunFolderError, match="is not empty"):  # formerly: config.json rewritten at once
        run(tmp_path, target, other)
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["training"]["lr"] == 0.01
    old_checkpoint = (tmp_path / "checkpoint.pt").read_bytes()

    # The new run started with --overwrite and interrupted before its first checkpoint: the old
    # run's checkpoint is gone, so --resume has nothing to continue.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(sdn.train, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, target, other, overwrite=True)
    assert json.loads((tmp_path / "config.json").read_text())["experiment"]["training"]["lr"] == 0.001
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "best.pt").exists()
    with pytest.raises(RunFolderError, match="no .*checkpoint.pt"):
        run(tmp_path, target, other, resume=True)

    # The old run's checkpoint put back beside the new config.json: refused, naming both runs.
    (tmp_path / "checkpoint.pt").write_bytes(old_checkpoint)
    with pytest.raises(RunFolderError, match="belongs to run") as info:
        run(tmp_path, target, other, resume=True)
    old_hash, new_hash = (resume_hash(experiment(**lr), ROOM_CONFIG) for lr in ({"lr": 0.01}, other))
    assert old_hash != new_hash and old_hash in str(info.value) and new_hash in str(info.value)


def test_zero_epochs_into_an_old_folder_keeps_no_old_best(tmp_path, target):
    run(tmp_path, target)
    assert (tmp_path / "best.pt").is_file()
    with pytest.raises(RunFolderError, match="not empty"):
        run(tmp_path, target, {"epochs": 0})
    run(tmp_path, target, {"epochs": 0}, overwrite=True)
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "checkpoint.pt").exists()
    assert history_rows(tmp_path) == []
    assert json.loads((tmp_path / "metrics.json").read_text())["best_epoch"] is None


def test_every_checkpoint_names_its_run(tmp_path, target):
    result = run(tmp_path, target)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hash"] == run_hash(experiment(), ROOM_CONFIG) == result.config["hash"]
    assert config["resume_hash"] == resume_hash(experiment(), ROOM_CONFIG) != config["hash"]
    for name in ("model.pt", "best.pt"):
        assert torch.load(tmp_path / name, weights_only=True)["run_hash"] == config["hash"], name
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (saved["run_hash"], saved["resume_hash"]) == (config["hash"], config["resume_hash"])
    assert set(p.name for p in tmp_path.iterdir()) == set(RUN_FILES)


def test_out_pointing_at_a_file_is_refused(tmp_path, target):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(RunFolderError, match="a_file is a file"):
        run(path, target)
    assert path.read_text() == "x"
    with pytest.raises(ValueError, match="exclude each other"):
        run(tmp_path / "new", target, resume=True, overwrite=True)


def test_resume_verifies_the_checkpoint_and_config(tmp_path, target):
    run(tmp_path, target)
    config_text = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config_text[: len(config_text) // 2])
    with pytest.raises(RunFolderError, match="config.json is unreadable") as info:
        run(tmp_path, target, resume=True)
    assert str(tmp_path / "config.json") in str(info.value)
    (tmp_path / "config.json").write_text(config_text)

    data = bytearray((tmp_path / "checkpoint.pt").read_bytes())
    weights = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["wall_logit"]
    offset = bytes(data).find(weights.numpy().tobytes())
    data[offset] ^= 1  # the last mantissa bit of one wall logit
    (tmp_path / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint.pt is corrupt.*--overwrite"):
        run(tmp_path, target, resume=True)
    (tmp_path / "checkpoint.pt").write_bytes(bytes(data[:100]))
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        run(tmp_path, target, resume=True)


def test_resume_refuses_another_dtype(tmp_path, target):
    run(tmp_path, target)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with pytest.raises(RunFolderError, match="float32 weights.*float64"):
            run(tmp_path, target, resume=True)
    finally:
        torch.set_default_dtype(default)


def test_fit_under_float64_default_trains_against_a_float64_target(target):
    """Issue 11 item 7: the model's dtype drives the target's (was: TypeError, dtypes differ)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = fit(experiment(epochs=2), ROOM_CONFIG, target=target, progress=False, max_eval_seconds=0.1)
        model = sdn.SDN(ROOM, alpha=0.02)  # the untrained model, in float64
        with torch.no_grad():
            h = model.impulse_response(N)
            y64 = target.signal.double()
            loss = SDNLoss(16000)(h / h.norm(), y64 / y64.norm())["total"].item()
    finally:
        torch.set_default_dtype(default)
    assert result.model.dtype == torch.float64
    assert result.history[0]["total"] == pytest.approx(loss, rel=1e-12)
    assert all(math.isfinite(row["total"]) for row in result.history)


def test_the_lock_excludes_a_second_holder_and_leaves_nothing_behind(tmp_path):
    """locked() refuses a second holder (another open file, as another process would have), and on
    leaving, even by an exception, deletes its lock file and the folder it created if empty."""
    out = tmp_path / "new" / "run"
    with pytest.raises(KeyError):
        with run_folder.locked(out):
            assert (out / run_folder.LOCK_FILE).is_file()
            with pytest.raises(RunFolderError, match=f"{out} is in use by another run"):
                with run_folder.locked(out):
                    pass
            raise KeyError("the run failed")
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with run_folder.locked(out):
        pass
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # a folder it did not create stays


def test_a_lock_file_deleted_by_its_last_holder_is_not_locked_by_the_next(tmp_path, monkeypatch):
    """The next holder may open the lock file just before the last one deletes it; a lock on that
    deleted file would exclude nobody, so it locks the file at the path instead."""
    out = tmp_path / "run"
    out.mkdir()
    opened = []
    real_flock = run_folder.fcntl.flock

    def flock_after_the_file_was_replaced(handle, operation):
        if not opened:  # the last holder deletes the file this handle opened, and a new one appears
            opened.append(handle)
            (out / run_folder.LOCK_FILE).unlink()
            (out / run_folder.LOCK_FILE).write_text("")
        real_flock(handle, operation)

    monkeypatch.setattr(run_folder.fcntl, "flock", flock_after_the_file_was_replaced)
    with run_folder.locked(out):
        monkeypatch.setattr(run_folder.fcntl, "flock", real_flock)
        with pytest.raises(RunFolderError, match="in use by another run"):  # the file at the path is held
            with run_folder.locked(out):
                pass
