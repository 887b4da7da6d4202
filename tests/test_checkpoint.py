"""Checkpoint files are verified on load (sdn.checkpoint, sdn.load): damage gives one clear message."""
import random

import numpy as np
import pytest
import torch

import sdn
from sdn import checkpoint
from sdn.checkpoint import CheckpointError
from sdn.saved_model import CHECKPOINT_FORMAT

ROOM = sdn.Room((3.0, 4.0, 2.5), (1.0, 1.2, 1.3), (2.1, 2.9, 1.4))


def trained_model() -> sdn.SDN:
    """A model whose every parameter differs from its initial value."""
    torch.manual_seed(0)
    model = sdn.SDN(ROOM, fir_order=2, distance_correction=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def assert_same_weights(a: sdn.SDN, b: sdn.SDN) -> None:
    assert a.config == b.config and a.dtype == b.dtype
    state = b.state_dict()
    for key, value in a.state_dict().items():
        assert torch.equal(value, state[key]), key


def assert_one_clear_line(err: BaseException, path) -> None:
    message = str(err)
    assert str(path) in message and "\n" not in message


def test_a_flipped_bit_in_a_weight_is_reported(tmp_path):
    """The issue's case: one bit of a wall tap's exponent turns 0.99 into about 3.4e38."""
    model = trained_model()
    path = tmp_path / "model.pt"
    model.save(path)
    data = bytearray(path.read_bytes())
    taps = model.wall_taps.detach().numpy().tobytes()
    offset = bytes(data).find(taps)
    assert offset > 0 and bytes(data).count(taps) == 1
    data[offset + 3] ^= 0x40  # the top exponent bit of the first tap (little-endian float32)
    path.write_bytes(bytes(data))
    flipped = np.frombuffer(bytes(data[offset:offset + 4]), dtype=np.float32)[0]
    assert abs(flipped) > 1e30  # the damage the checksum must catch
    with pytest.raises(CheckpointError, match="corrupt: its content does not match the SHA-256 checksum") as info:
        sdn.load(path)
    assert_one_clear_line(info.value, path)


def test_every_sampled_single_bit_flip_is_reported_or_harmless(tmp_path):
    """Flip one bit anywhere in the file: loading either fails with a CheckpointError naming the
    file, or gives exactly the saved model (a bit the zip reader ignores). Nothing else."""
    model = trained_model()
    original = tmp_path / "model.pt"
    model.save(original)
    data = original.read_bytes()
    damaged = tmp_path / "damaged.pt"
    rng = random.Random(11)
    outcomes = {"reported": 0, "harmless": 0}
    for bit in rng.sample(range(8 * len(data)), 150):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        damaged.write_bytes(bytes(flipped))
        try:
            loaded = sdn.load(damaged)
        except CheckpointError as err:
            assert_one_clear_line(err, damaged)
            outcomes["reported"] += 1
        else:
            assert_same_weights(loaded, model)
            outcomes["harmless"] += 1
    assert outcomes["reported"] > 0


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_a_truncated_file_is_reported(tmp_path, keep):
    path = tmp_path / "model.pt"
    trained_model().save(path)
    data = path.read_bytes()
    n = int(keep * len(data)) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="not a readable SDN checkpoint") as info:
        sdn.load(path)
    assert_one_clear_line(info.value, path)


@pytest.mark.parametrize("missing", ["dtype", "config", "state_dict"])
def test_a_checkpoint_without_a_required_entry_is_reported(tmp_path, missing):
    """With a valid checksum, so that only the missing entry is wrong (was a bare KeyError)."""
    model = trained_model()
    content = {"config": model.config, "dtype": "float32", "state_dict": model.state_dict(), "run_hash": None}
    del content[missing]
    path = tmp_path / "model.pt"
    checkpoint.write(path, CHECKPOINT_FORMAT, content)
    with pytest.raises(CheckpointError, match=f"incomplete SDN checkpoint: it lacks {missing}") as info:
        sdn.load(path)
    assert_one_clear_line(info.value, path)


def test_a_checkpoint_without_checksum_or_of_another_version_is_reported(tmp_path):
    model = trained_model()
    content = {"config": model.config, "dtype": "float32", "state_dict": model.state_dict()}
    unchecked = tmp_path / "unchecked.pt"
    torch.save({"format": CHECKPOINT_FORMAT, **content}, unchecked)
    with pytest.raises(CheckpointError, match="lacks sha256"):
        sdn.load(unchecked)
    older = tmp_path / "older.pt"
    torch.save({"format": "sdn-checkpoint-v1", **content}, older)
    with pytest.raises(CheckpointError, match=r"not an SDN checkpoint of this version .*'sdn-checkpoint-v1'"):
        sdn.load(older)


@pytest.mark.parametrize("content", [torch.zeros(3), [1, 2], {"weights": torch.zeros(3)}, "text", None])
def test_foreign_files_are_reported(tmp_path, content):
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="not an SDN checkpoint") as info:
        sdn.load(path)
    assert_one_clear_line(info.value, path)


def test_unusable_contents_are_reported(tmp_path):
    model = trained_model()
    good = {"config": model.config, "dtype": "float32", "state_dict": model.state_dict()}
    cases = {
        "dtype 'int64'": {**good, "dtype": "int64"},
        "config does not describe an SDN": {**good, "config": {**model.config, "fir_ordr": 2}},
        "does not fit the model": {**good, "state_dict": {k: v for k, v in model.state_dict().items() if k != "wall_taps"}},
    }
    for message, content in cases.items():
        path = tmp_path / "model.pt"
        checkpoint.write(path, CHECKPOINT_FORMAT, content)
        with pytest.raises(CheckpointError, match=message) as info:
            sdn.load(path)
        assert_one_clear_line(info.value, path)
    with pytest.raises(FileNotFoundError, match="no SDN checkpoint"):
        sdn.load(tmp_path)  # a folder


def test_stored_distances_must_match_the_room_in_the_config(tmp_path):
    """A file whose distance buffers disagree with its room (checksum intact) is refused; before,
    the stored distances silently replaced the geometry of the config."""
    model = trained_model()
    state = model.state_dict()
    state["source_node_distance"] = state["source_node_distance"] + 0.5
    path = tmp_path / "model.pt"
    checkpoint.write(path, CHECKPOINT_FORMAT, {"config": model.config, "dtype": "float32", "state_dict": state})
    with pytest.raises(CheckpointError, match="source_node_distance .* differs") as info:
        sdn.load(path)
    assert_one_clear_line(info.value, path)


def test_saved_model_round_trip_and_run_hash(tmp_path):
    model = trained_model()
    model.save(tmp_path / "model.pt", run_hash="0123456789abcdef")
    loaded = sdn.load(tmp_path / "model.pt")
    assert_same_weights(loaded, model)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["run_hash"] == "0123456789abcdef" and len(payload["sha256"]) == 64


def test_checksum_depends_on_content_not_on_order_or_device():
    a = {"w": torch.tensor([1.0, 2.0]), "n": 3, "s": "x", "l": [1, 2.5, None, True]}
    reordered = {"l": (1, 2.5, None, True), "s": "x", "n": 3, "w": torch.tensor([1.0, 2.0])}
    assert checkpoint.checksum(a) == checkpoint.checksum(reordered)
    one_bit = torch.tensor([1.0, 2.0])
    one_bit.view(torch.int32)[1] ^= 1
    different = [
        {**a, "w": one_bit},
        {**a, "w": torch.tensor([1.0, 2.0], dtype=torch.float64)},  # same values, other dtype
        {**a, "w": torch.tensor([[1.0, 2.0]])},  # same bytes, other shape
        {**a, "n": 3.0},  # an int is not a float
        {**a, "l": [1, 2.5, None, 1]},  # True is not 1
        {**a, "s": "x\x00"},
    ]
    digests = {checkpoint.checksum(d) for d in different}
    assert len(digests) == len(different) and checkpoint.checksum(a) not in digests
    with pytest.raises(TypeError, match="set"):
        checkpoint.checksum({"x": {1, 2}})
