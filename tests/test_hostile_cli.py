"""The training command line under attack (issue 25): bounded values, runs that cannot lie, one
line for every failure, byte-identical outputs.

Most cases call ``sdn.train.main`` in this process (a subprocess costs seconds of imports); the
two that need a second process (a concurrent run holding the lock, a real SIGINT) start one.
"""
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import sdn
import sdn.fileio
import sdn.optimisation
import sdn.train
from sdn import run_folder
from sdn.train import main

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "config" / "experiments" / "prior_fir0.yaml"
ROOM = REPO / "config" / "rooms" / "homula_s1_r2hom1.yaml"
WAV = REPO / "data" / "homula-rir" / "rir-S1-R2-HOM1.wav"
OTHER_WAV = REPO / "data" / "homula-rir" / "rir-S2-R2-HOM1.wav"
QUICK = ["--epochs", "2", "--max-eval-seconds", "1", "--quiet"]


def cli(out, *extra, config=EXPERIMENT, room=ROOM) -> list:
    return ["--config", str(config), "--room", str(room), "--out", str(out), *QUICK, *extra]


def status_and_line(args, capsys) -> tuple[int, str]:
    """Run the command in this process: its exit status and its one line on stderr."""
    capsys.readouterr()
    try:
        status = main(args)
    except SystemExit as done:  # argparse's errors
        status = done.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return status, lines[0]


def experiment_file(tmp_path, **sections) -> Path:
    """The shipped experiment config with some values replaced, e.g. ``model={"c": 1e300}``."""
    raw = yaml.safe_load(EXPERIMENT.read_text())
    for section, values in sections.items():
        raw[section].update(values)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def room_file(tmp_path, **replace) -> Path:
    """The shipped room config with some lines replaced (by key), its target a copy of the WAV."""
    target = tmp_path / "target.wav"
    if not target.exists():
        shutil.copyfile(WAV, target)
    lines = {"target": f"target: {{file: {target}, channel: mean}}"}
    lines.update({key: f"{key}: {value}" for key, value in replace.items()})
    text = "\n".join(lines.get(line.split(":")[0], line) for line in ROOM.read_text().splitlines()
                     if not line.startswith("#"))
    path = tmp_path / "room.yaml"
    path.write_text(text + "\n")
    return path


# ----------------------------------------------------------------- every attack: one line, status 1 or 2
#
# Each case returns the command's arguments (having patched what it needs), the exit status, what
# the line must say, and whether the run folder must be absent afterwards (refused before it).


def config_value(section, key, value):
    return lambda tmp_path, monkeypatch: cli(tmp_path / "out", config=experiment_file(tmp_path, **{section: {key: value}}))


def room_value(**replace):
    return lambda tmp_path, monkeypatch: cli(tmp_path / "out", room=room_file(tmp_path, **replace))


def option(name, value):
    def build(tmp_path, monkeypatch):
        args = cli(tmp_path / "out")
        if name in args:
            del args[args.index(name):args.index(name) + 2]
        return args + [name, value]
    return build


def deep_yaml(tmp_path, monkeypatch):
    config = tmp_path / "deep.yaml"
    config.write_text("name: deep\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")
    return cli(tmp_path / "out", config=config)


def lossless_on_a_small_machine(tmp_path, monkeypatch):
    """A lossless model rendered for up to 600 s (9.6 million samples) on a machine with 1 GiB."""
    monkeypatch.setattr(sdn.train, "available_memory", lambda device: 2**30)
    args = cli(tmp_path / "out", config=experiment_file(tmp_path, model={"alpha": 0}))
    args[args.index("--max-eval-seconds") + 1] = "600"
    return args


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def disk_full_in_torch_save(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", full_disk)
    return cli(tmp_path / "out")


def disk_full_in_ir_wav(tmp_path, monkeypatch):
    def half_written(path, samples, sample_rate):
        with sdn.fileio.atomic_path(path) as tmp:
            tmp.write_bytes(b"RIFF")
            full_disk()

    monkeypatch.setattr(run_folder, "write_float_wav", half_written)
    return cli(tmp_path / "out")


def torch_out_of_memory(tmp_path, monkeypatch):
    """torch reports exhausted CPU memory as a RuntimeError: neither divergence nor a traceback."""
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(sdn.optimisation, "unit_norm_render", exhausted)
    return cli(tmp_path / "out")


def ctrl_c_first_thing(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "set_num_threads", interrupted)
    return cli(tmp_path / "out")


def unexpected_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("something nobody expected")

    monkeypatch.setattr(sdn.train, "evaluate", broken)
    return cli(tmp_path / "out")


def target_that_is(kind):
    def build(tmp_path, monkeypatch):
        target = tmp_path / "x.wav"
        target.mkdir() if kind == "folder" else os.mkfifo(target)
        return cli(tmp_path / "out", room=room_file(tmp_path, target=f"{{file: {target}, channel: mean}}"))
    return build


ATTACKS = {
    # issue item 4: a value that exhausts the machine, or coordinates that are not numbers
    "sample_rate 1e7": (config_value("model", "sample_rate", 10_000_000), 2,
                        "model: sample_rate must be >= 1000 and <= 192000 Hz, got 10000000", True),
    "room size 1e9": (room_value(size="[1e9, 14.52, 3.38]"), 2, "size (x) must be >= 0.1 and <= 1000.0 m", True),
    "fir_order 5000": (config_value("model", "fir_order", 5000), 2, "fir_order must be >= 0 and <= 32", True),
    "seed 2**64": (config_value("training", "seed", 2**64), 2, "seed must be >= 0 and <= 9223372036854775807", True),
    "size as text": (room_value(size="['5.46', '14.52', '3.38']"), 2, "size must be three numbers [x, y, z]", True),
    "size with a boolean": (room_value(size="[true, 14.52, 3.38]"), 2, "size must be three numbers", True),
    "mic as text": (room_value(mic="['0.649', 4.021, 1.137]"), 2, "mic must be three numbers", True),
    "--threads 100000": (option("--threads", "100000"), 2,
                         "argument --threads: expected a whole number >= 1 and <= ", True),
    "--threads non-ASCII digit": (option("--threads", "٣"), 2, "argument --threads: expected a whole number", True),
    "--epochs 1e7": (option("--epochs", "10000000"), 2, "--epochs: expected a whole number >= 0 and <= 1000000", True),
    # item 6: tracebacks instead of one line
    "YAML nested 5000 deep": (deep_yaml, 2, "nested too deeply to read", True),
    "c 1e-300": (config_value("model", "c", 1e-300), 2, "c must be >= 100.0 and <= 2000.0 m/s", True),
    "c 1e300": (config_value("model", "c", 1e300), 2, "c must be >= 100.0 and <= 2000.0 m/s", True),
    "lr 1e38": (config_value("training", "lr", 1e38), 2, "lr must be > 0.0 and <= 1.0", True),
    "max_correction 1e300": (config_value("model", "max_correction", 1e300), 2,
                             "max_correction must be > 0.0 and <= 10.0 m", True),
    "full disk in torch.save": (disk_full_in_torch_save, 1,
                                "the disk is full ([Errno 28] No space left on device); free some space; "
                                "no checkpoint yet: run the same command again, with --overwrite",
                                False),
    "full disk in the ir.wav write": (disk_full_in_ir_wav, 1, "checkpoint.pt holds 2 epochs: run the same command "
                                                              "with --resume", False),
    "torch out of memory": (torch_out_of_memory, 1, "out of memory (DefaultCPUAllocator: can't allocate memory", False),
    "--device meta": (option("--device", "meta"), 2, "device 'meta' is not supported: use cpu or cuda", True),
    "Ctrl-C first thing": (ctrl_c_first_thing, 130, "interrupted; nothing was written: run the same command again",
                           True),
    "--max-eval-seconds 100000": (option("--max-eval-seconds", "100000"), 2,
                                  "--max-eval-seconds: expected a number of seconds > 0 and <= 600", True),
    "lossless model, larger than the memory": (lossless_on_a_small_machine, 2,
                                               "more than the 1.0 GiB available: lower --max-eval-seconds", True),
    "an unexpected error": (unexpected_error, 1, "error: KeyError: 'something nobody expected'", False),
    # item 7: a folder or FIFO named as the target
    "target is a folder": (target_that_is("folder"), 2, "x.wav is a folder, not an audio file", True),
    "target is a FIFO": (target_that_is("FIFO"), 2, "x.wav is a FIFO, not an audio file", True),
}


@pytest.mark.parametrize("case", ATTACKS)
def test_every_attack_is_one_line_without_traceback(case, tmp_path, capsys, monkeypatch):
    build, expected_status, says, refused_before_the_run = ATTACKS[case]
    args = build(tmp_path, monkeypatch)
    status, line = status_and_line(args, capsys)
    assert status == expected_status and says in line, line
    assert line.startswith("interrupted; " if status == 130 else "error: "), line
    out = tmp_path / "out"
    assert not out.exists() if refused_before_the_run else not list(out.glob(".*.tmp")), sorted(out.iterdir())


def test_the_memory_estimate_grows_with_the_evaluation_render():
    cpu = torch.device("cpu")
    short, long = (sdn.train.check_memory(16000, seconds, 16000, cpu) for seconds in (1.0, 2.0))
    assert long - short == sdn.train.EVALUATION_BYTES_PER_SAMPLE * 16000
    assert sdn.train.available_memory(cpu) > 0


# ----------------------------------------------------------------- runs that cannot lie


def test_two_runs_into_one_folder_at_once_only_one_runs(tmp_path, capsys):
    """A second run into a folder while a first holds it (another process) exits 2 naming the
    lock; the first ends normally and the folder holds its run only."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "sdn.train", *cli(out), "--epochs", "40"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "config.json").is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    status, line = status_and_line(cli(out, "--overwrite", "--epochs", "3"), capsys)
    assert status == 2 and f"{out} is in use by another run" in line and run_folder.LOCK_FILE in line, line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((out / "config.json").read_text())["experiment"]["training"]["epochs"] == 40
    assert sorted(p.name for p in out.iterdir()) == sorted(run_folder.RUN_FILES)  # no lock file left


def test_the_lock_file_is_not_content_and_overwrite_keeps_it_working(tmp_path, capsys):
    """A lock file left by a killed run neither makes the folder "not empty" nor stops a run."""
    out = tmp_path / "run"
    out.mkdir()
    (out / run_folder.LOCK_FILE).write_text("")
    assert main(cli(out)) == 0
    with run_folder.locked(out):
        assert (out / run_folder.LOCK_FILE).is_file()
        status, line = status_and_line(cli(out, "--overwrite"), capsys)
        assert status == 2 and "in use by another run" in line, line
    assert main(cli(out, "--overwrite")) == 0
    assert not (out / run_folder.LOCK_FILE).exists()


def test_resume_refuses_fewer_epochs_than_the_checkpoint_holds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, line = status_and_line(cli(out, "--resume", "--epochs", "1"), capsys)
    assert status == 2, line
    assert f"cannot resume {out}: its checkpoint.pt holds 2 epochs, more than the 1 asked for" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_refuses_a_replaced_target_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    room = room_file(tmp_path)
    assert main(cli(out, room=room)) == 0
    target = tmp_path / "target.wav"
    shutil.copyfile(OTHER_WAV, target)  # same path, other content
    status, line = status_and_line(cli(out, "--resume", "--epochs", "3", room=room), capsys)
    assert status == 2 and f"the target file {target} has changed since the run started" in line, line
    shutil.copyfile(WAV, target)  # the original back: the run goes on
    assert main(cli(out, "--resume", "--epochs", "3", room=room)) == 0
    assert run_folder.saved_epochs(out) == 3


# ----------------------------------------------------------------- divergence and a real Ctrl-C


@pytest.mark.parametrize("failure", ["the step raises", "the step makes a weight infinite"])
def test_a_failed_optimiser_step_is_divergence_and_keeps_the_last_finite_weights(tmp_path, capsys, monkeypatch,
                                                                                  failure):
    """lr 1e38 made Adam raise RuntimeError (float32 overflow) half-way through its step."""
    step, calls = torch.optim.Adam.step, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) < 2:
            return step(self, *args, **kwargs)
        first = self.param_groups[0]["params"][0]
        with torch.no_grad():
            first.fill_(float("inf"))  # half a step done
        if failure == "the step raises":
            raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(torch.optim.Adam, "step", failing)
    out = tmp_path / "run"
    status, line = status_and_line(cli(out, "--epochs", "3"), capsys)
    assert status == 1 and line.startswith("error: training stopped at epoch 1: "), line
    assert ("the step failed (RuntimeError" if failure == "the step raises" else "made a weight non-finite") in line
    model = sdn.load(out / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert json.loads((out / "metrics.json").read_text())["stopped"].startswith("epoch 1:")


def test_a_real_early_ctrl_c_is_one_line(tmp_path):
    """SIGINT while the command is still starting (importing torch) prints no traceback."""
    command = [sys.executable, "-m", "sdn.train", *cli(tmp_path / "run")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------- byte-identical outputs


def history_without_time(run_dir: Path) -> list:
    with open(run_dir / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_two_identical_runs_give_byte_identical_run_folders(tmp_path):
    """Every file is equal byte for byte but for the recorded wall-clock time of each epoch
    (``seconds``), in history.csv and in the history inside checkpoint.pt."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(cli(a)) == 0 and main(cli(b)) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) == sorted(run_folder.RUN_FILES)
    for name in names:
        if name not in ("history.csv", "checkpoint.pt"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert history_without_time(a) == history_without_time(b)
    saved = [torch.load(folder / "checkpoint.pt", weights_only=True) for folder in (a, b)]
    for state in saved:
        assert all(row.pop("seconds") > 0 for row in state["history"])
        state.pop("sha256")  # covers the times
    assert equal(*saved)


def equal(a, b) -> bool:
    """Nested content equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
