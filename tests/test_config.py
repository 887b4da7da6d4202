"""sdn.config and sdn.yamlfile: strict YAML, validated values, room configs read and written."""
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sdn
from sdn.config import (ConfigError, ExperimentConfig, RoomConfig, TargetSpec, load_experiment,
                        load_room_config, write_room_config)
from sdn.train import build_model

REPO = Path(__file__).resolve().parents[1]
ROOMS = sorted((REPO / "config/rooms").glob("*.yaml"))
EXPERIMENTS = sorted((REPO / "config/experiments").glob("*.yaml"))
GOOD = "name: x\nmodel: {fir_order: 0}\ntraining: {epochs: 3, lr: 0.01}\nloss: {edc: 0.5, edr: 1.0, edp: 1.0}\n"
ROOM = ("name: r\nsize: [4.0, 5.0, 3.0]\nsource: [1.0, 1.0, 1.5]\nmic: [3.0, 4.0, 1.2]\n"
        "target: {file: homula-rir/rir-S1-R2-HOM1.wav, channel: mean}\n")


def _write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _changed(tmp_path, text, change):
    """``text`` with the top-level line of ``change``'s key replaced by ``change``, written."""
    key = change.split(":")[0]
    kept = [line for line in text.splitlines() if not line.startswith(key + ":")]
    return _write(tmp_path, "\n".join(kept + [change]) + "\n")


# ------------------------------------------------------------------ the committed files


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_committed_experiments_load_and_are_named_after_their_file(path):
    assert load_experiment(path).name == path.stem


@pytest.mark.parametrize("path", ROOMS, ids=lambda p: p.stem)
def test_committed_rooms_load_and_are_written_back_identically(path, tmp_path):
    config = load_room_config(path)
    assert config.name == path.stem
    again = load_room_config(_write(tmp_path, write_room_config(config, decimals=6), "again.yaml"))
    assert again.to_dict() == config.to_dict() and again.description == config.description


def test_writer_reproduces_the_calibrated_config_line_for_line():
    """The config notebook 01 writes (comment + values) is byte-identical to the committed one."""
    path = REPO / "config/rooms/homula_s1_r2hom1.yaml"
    text = path.read_text()
    comment = "\n".join(line[2:] for line in text.splitlines() if line.startswith("#"))
    assert write_room_config(load_room_config(path), comment=comment) == text


# ------------------------------------------------------------------ strict YAML


def test_duplicate_key_is_an_error(tmp_path):
    path = _write(tmp_path, "name: x\ntraining: {epochs: 3}\ntraining: {epochs: 300}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 3, column 1: key 'training' is given twice \(first on line 2\)"):
        load_experiment(path)
    room = _write(tmp_path, ROOM.replace("mic: [3.0, 4.0, 1.2]", "mic: [3.0, 4.0, 1.2]\nmic: [2, 2, 1]"))
    with pytest.raises(ConfigError, match="'mic' is given twice"):
        load_room_config(room)


def test_anchor_bomb_fails_at_the_first_anchor_with_a_short_message(tmp_path):
    """A 600-byte "billion laughs" in description: expanded, it would hold 10^8 strings."""
    levels = ["&a0 lol"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "name: x\ndescription: [" + ", ".join(levels) + "]\n"
    assert len(text.encode()) < 700
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 2, column 15:") and "anchors and aliases" in message
    assert len(message) < 300 and "\n" not in message


@pytest.mark.parametrize("text, where", [
    ("name: x\nmodel: {fir_order: 6\n", "line 3"),
    ("name: x\n  training: 3\n", "line 2"),
    ("name: [x\n", "line 2"),
    ("\tname: x\n", "line 1"),
])
def test_syntax_errors_are_one_line_naming_file_and_line(tmp_path, text, where):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}, {where}") and "\n" not in message


def test_not_utf8_and_not_a_mapping(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not a valid YAML file"):
        load_experiment(latin1)
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_room_config(_write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("which", ["experiment", "room"])
def test_cli_yaml_syntax_error_is_one_line_exit_2(tmp_path, which):
    bad = _write(tmp_path, "name: x\nmodel: {fir_order: 6\n")
    config = str(bad) if which == "experiment" else "config/experiments/prior_fir0.yaml"
    room = str(bad) if which == "room" else "config/rooms/homula_s1_r2hom1.yaml"
    done = subprocess.run([sys.executable, "-m", "sdn.train", "--config", config, "--room", room, "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{bad}, line 3" in done.stderr


# ------------------------------------------------------------------ validated values


@pytest.mark.parametrize("change, message", [
    ("training: {lr: .nan}", "training: lr must be a finite number"),
    ("training: {lr: .inf}", "training: lr must be a finite number"),
    ("training: {lr: -0.01}", r"training: lr must be > 0"),
    ("training: {lr: 0}", r"training: lr must be > 0"),
    ("training: {epochs: -1}", "training: epochs must be >= 0"),
    ("training: {seed: -3}", "training: seed must be >= 0"),
    ("training: {checkpoint_every: 0}", "training: checkpoint_every must be >= 1"),
    ("loss: {edc: .nan}", "loss: edc must be a finite number"),
    ("loss: {edp: -1}", "loss: edp must be >= 0"),
    ("loss: {edc: 0, edr: 0, edp: 0}", "at least one loss weight"),
    ("model: {alpha: 1.0}", r"alpha \(absorption\) must lie in \[0, 1\)"),
    ("model: {alpha: -0.1}", r"alpha \(absorption\) must lie in \[0, 1\)"),
    ("model: {alpha: .nan}", "alpha must be a finite number"),
    ("model: {c: -343}", r"model: c must be >= 100.0 and <= 2000.0 m/s"),
    ("model: {max_correction: -0.5}", "model: max_correction must be > 0"),
    ("model: {correction_scale: 0}", "model: correction_scale must be > 0"),
    ("model: {sample_rate: 0}", "model: sample_rate must be >= 1000 and <= 192000 Hz"),
    ("model: {fir_order: -1}", "model: fir_order must be >= 0"),
    # Upper bounds: values that exhausted memory, overflowed float32 or left no finite weights.
    ("model: {sample_rate: 10000000}", "model: sample_rate must be >= 1000 and <= 192000 Hz, got 10000000"),
    ("model: {c: 1e-300}", "model: c must be >= 100.0 and <= 2000.0 m/s, got 1e-300"),
    ("model: {c: 1e300}", "model: c must be >= 100.0 and <= 2000.0 m/s, got 1e[+]300"),
    ("model: {max_correction: 1e300}", r"model: max_correction must be > 0.0 and <= 10.0 m, got 1e\+300"),
    ("model: {correction_scale: 1e300}", r"model: correction_scale must be > 0.0 and <= 1000.0"),
    ("model: {fir_order: 100000}", "model: fir_order must be >= 0 and <= 32"),
    ("training: {lr: 1e38}", r"training: lr must be > 0.0 and <= 1.0, got 1e\+38"),
    ("training: {seed: 9223372036854775808}", r"training: seed must be >= 0 and <= 9223372036854775807"),
    ("training: {epochs: 1000000000}", "training: epochs must be >= 0 and <= 1000000"),
    ("loss: {edr: 1e300}", "loss: edr must be >= 0.0 and <= 1000.0"),
    ("model: {sample_rate: 16000.0}", "model: sample_rate must be int"),
    ("description: null", "description must be str, got None"),
])
def test_out_of_range_values_are_rejected(tmp_path, change, message):
    path = _changed(tmp_path, GOOD, change)
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert str(path) in str(info.value)


def test_values_at_the_edge_of_their_range_are_accepted(tmp_path):
    text = ("name: a.b_c-1\nmodel: {alpha: 0, c: 100, max_correction: 1e-6, sample_rate: 192000, fir_order: 32}\n"
            "training: {epochs: 0, seed: 9223372036854775807, lr: 1}\nloss: {edc: 0, edr: 0, edp: 1000}\n")
    config = load_experiment(_write(tmp_path, text, "ok.yaml"))
    assert (config.model.alpha, config.training.epochs, config.loss.edp) == (0.0, 0, 1000.0)
    assert (config.model.sample_rate, config.model.c, config.training.seed) == (192000, 100.0, 2**63 - 1)


@pytest.mark.parametrize("name", ["null", "../escape", "a/b", ".hidden", "''", "x" * 101, "1.5", "[a]"])
def test_names_must_be_plain_file_names(tmp_path, name):
    path = _write(tmp_path, f"name: {name}\n")
    with pytest.raises(ConfigError, match="name must be"):
        load_experiment(path)
    room = _write(tmp_path, ROOM.replace("name: r", f"name: {name}"), "room.yaml")
    with pytest.raises(ConfigError, match="name must be"):
        load_room_config(room)


def test_replace_is_validated_like_a_file():
    config = load_experiment(REPO / "config/experiments/prior_fir0.yaml")
    assert config.replace(training={"epochs": 3}).training.epochs == 3
    with pytest.raises(ConfigError, match="epochs must be >= 0"):
        config.replace(training={"epochs": -1})
    with pytest.raises(ConfigError, match="name must be"):
        config.replace(name="../x")


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    """A document nested deeper than the reader can recurse is one ConfigError, not a RecursionError."""
    path = _write(tmp_path, "name: x\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load_experiment(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_config_that_is_not_a_file_is_named_as_such(tmp_path, kind):
    path = tmp_path / "experiment.yaml"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(ConfigError, match=f"is a {'folder' if kind == 'folder' else 'FIFO'}, not a file") as info:
        load_experiment(path)
    assert str(path) in str(info.value)


def test_long_values_are_cut_in_messages(tmp_path):
    path = _write(tmp_path, f"name: x\ndescription: [{'1, ' * 5000}1]\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert len(str(info.value)) < 300


# ------------------------------------------------------------------ the model's arguments


def test_sdn_kwargs_cover_every_model_argument():
    config = load_experiment(REPO / "config/experiments/correction_fir6.yaml")
    kwargs = config.model.sdn_kwargs()
    expected = set(inspect.signature(sdn.SDN).parameters) - {"room", "aliasing_db", "dtype", "device"}
    assert set(kwargs) == expected
    model = build_model(config, RoomConfig("r", load_room_config(ROOMS[0]).room, None), alpha=0.1)
    # the values of the YAML file (correction_fir6: FIR walls of order 6 and distance correction)
    built = {k: model.config[k] for k in ("fir_order", "distance_correction", "sample_rate", "alpha", "c")}
    assert built == {"fir_order": 6, "distance_correction": True, "sample_rate": 16000, "alpha": 0.1, "c": 343.0}


def test_sdn_kwargs_need_the_absorption_of_a_rule():
    config = load_experiment(REPO / "config/experiments/sabine.yaml")
    with pytest.raises(ValueError, match="rule 'sabine'"):
        config.model.sdn_kwargs()
    assert config.model.sdn_kwargs(alpha=0.3)["alpha"] == 0.3


# ------------------------------------------------------------------ room configs


def test_room_config_round_trip_with_quoting(tmp_path):
    config = RoomConfig("demo", sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.2), (1.23456, 2.5, 1.2)),
                        TargetSpec("my data/x: y.wav", "mean"), description="a: b, {c} # d")
    text = write_room_config(config, tmp_path / "demo.yaml", comment="line one\nline two")
    assert text.startswith("# line one\n# line two\nname: demo\n")
    again = load_room_config(tmp_path / "demo.yaml")
    assert again.room.mic == (1.235, 2.5, 1.2)  # rounded to the millimetre
    assert again.target == TargetSpec("my data/x: y.wav", "mean")
    assert again.description == "a: b, {c} # d"


@pytest.mark.parametrize("change, message", [
    ("name: null", "name must be"),
    ("description: null", "description must be text"),
    ("target: {file: null}", "target needs a 'file'"),
    ("target: {file: x.wav, channel: true}", "channel must be an integer or 'mean'"),
    ("target: {file: x.wav, gain: 2}", r"target: unknown key\(s\) \['gain'\]"),
    ("absorption: 0.2", r"unknown key\(s\) \['absorption'\]"),
    ("mic: [3.0, 4.0, 4.0]", "mic .* not strictly inside"),
    ("size: [1e9, 5.0, 3.0]", r"size \(x\) must be >= 0.1 and <= 1000.0 m, got 1000000000.0"),
    ("size: [4.0, 0.01, 3.0]", r"size \(y\) must be >= 0.1"),
    ("size: ['4.0', '5.0', '3.0']", r"size must be three numbers \[x, y, z\] in metres, got \['4.0'"),
    ("size: [true, 5.0, 3.0]", r"size must be three numbers .*got \[True"),
    ("source: [1.0, '1.0', 1.5]", "source must be three numbers"),
    ("mic: [3.0, 4.0, false]", "mic must be three numbers"),
    ("mic: [3.0, 4.0]", "mic must be three numbers"),
    ("mic: {published: R2-HOM1, gain: 1}", r"mic: unknown key\(s\) \['gain'\]"),
    ("mic: {published: ../../etc/passwd}", "published position name must be like"),
    ("mic: {published: R2-HOM1, capsule: 1.5}", "optional integer capsule"),
])
def test_bad_room_configs(tmp_path, change, message):
    path = _changed(tmp_path, ROOM, change)
    with pytest.raises(ConfigError, match=message) as info:
        load_room_config(path)
    assert str(path) in str(info.value)


def test_published_mic_without_the_archive_says_how_to_get_it(tmp_path, nothing_shipped):
    path = _write(tmp_path, ROOM.replace("mic: [3.0, 4.0, 1.2]", "mic: {published: R2-HOM1}"))
    with pytest.raises(ConfigError, match=r"mic: published positions pos-R2-HOM1\.csv not found .*fetch --from-zenodo"):
        load_room_config(path)


def test_published_positions_in_a_room_config(tmp_path, monkeypatch, nothing_shipped):
    folder = tmp_path / "data" / "homula-rir"
    folder.mkdir(parents=True)
    capsules = np.array([[0.64, 4.01, 1.13], [0.66, 4.03, 1.15], [0.65, 4.02, 1.14], [0.65, 4.02, 1.13]])
    (folder / "pos-R2-HOM1.csv").write_text("x,y,z\n" + "".join(f"{x},{y},{z}\n" for x, y, z in capsules))
    (folder / "pos-sources.csv").write_text("x,y,z\n2.28,0.96,1.2\n4.1,1.1,1.3\n")
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path / "data"))
    text = ROOM.replace("size: [4.0, 5.0, 3.0]", "size: [5.46, 14.52, 3.38]")
    text = text.replace("mic: [3.0, 4.0, 1.2]", "mic: {published: R2-HOM1}")
    text = text.replace("source: [1.0, 1.0, 1.5]", "source: {published: S2}")
    config = load_room_config(_write(tmp_path, text, "pub.yaml"))
    np.testing.assert_allclose(config.room.mic, [0.65, 4.02, 1.1375], atol=1e-12)  # the capsules' centre
    assert config.room.source == (4.1, 1.1, 1.3)
    assert config.published == {"mic": "R2-HOM1", "source": "S2"}
    written = write_room_config(config)
    assert "mic: {published: R2-HOM1}" in written and "source: {published: S2}" in written
    one = load_room_config(_write(tmp_path, text.replace("{published: R2-HOM1}", "{published: R2-HOM1, capsule: -1}"), "one.yaml"))
    assert one.room.mic == (0.65, 4.02, 1.13) and one.published["mic"] == "R2-HOM1:-1"
    assert "mic: {published: R2-HOM1, capsule: -1}" in write_room_config(one)
