"""The training command line: one-line errors with exit status 2, Ctrl-C, resume (issue 11 item 10)."""
import csv
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sdn
from sdn import run_folder
from sdn.train import main

REPO = Path(__file__).resolve().parents[1]
ROOM = sdn.Room((3.0, 4.0, 2.5), (1.0, 1.2, 1.3), (2.1, 2.9, 1.4))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A synthetic measured RIR (16 kHz WAV), its room YAML and a 4-epoch experiment YAML."""
    folder = tmp_path_factory.mktemp("cli")
    with torch.no_grad():  # whole-sample delays: a clean decay whose T30 the loader can measure
        h = sdn.SDN(ROOM, alpha=0.4, integer_delays=True, dtype=torch.float64).impulse_response(8000).numpy()
    sf.write(folder / "target.wav", (0.5 * h / np.abs(h).max()).astype(np.float32), 16000, subtype="FLOAT")
    (folder / "room.yaml").write_text(
        "name: synthetic\nsize: [3.0, 4.0, 2.5]\nsource: [1.0, 1.2, 1.3]\nmic: [2.1, 2.9, 1.4]\n"
        f"target: {{file: {folder / 'target.wav'}, channel: 0}}\n")
    (folder / "experiment.yaml").write_text(
        "name: cli\nmodel: {fir_order: 0}\ntraining: {epochs: 4, lr: 0.01, seed: 42, checkpoint_every: 2}\n")
    return {"config": folder / "experiment.yaml", "room": folder / "room.yaml", "folder": folder}


def argv(files, out, *extra) -> list:
    return ["--config", str(files["config"]), "--room", str(files["room"]), "--out", str(out), "--quiet",
            "--max-eval-seconds", "0.2", *extra]


@pytest.fixture(scope="module")
def finished(files) -> Path:
    """An uninterrupted run of 4 epochs."""
    out = files["folder"] / "finished"
    assert main(argv(files, out)) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def history(run_dir: Path) -> list:
    with open(run_dir / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def flip_a_stored_tensor_byte(path: Path) -> None:
    """Flip one byte inside the largest tensor record of a torch zip file.

    A byte in the zip's padding or headers may be harmless; a byte of stored weights never is.
    """
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, record.header_offset + 26)
    start = record.header_offset + 30 + name_length + extra_length  # after the local file header
    data[start + record.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def damage(case: str, files, finished, tmp_path) -> tuple[list, str]:
    """Arguments of a user error, and what its message must name."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    if case == "missing config":
        return ["--config", str(tmp_path / "nope.yaml")] + argv(files, tmp_path / "out")[2:], "--config"
    if case == "config with a YAML syntax error":
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: [cli\n")
        return ["--config", str(bad)] + argv(files, tmp_path / "out")[2:], str(bad)
    if case == "missing room":
        return argv(files, tmp_path / "out")[:2] + ["--room", str(tmp_path / "nope.yaml")] + argv(files, tmp_path)[4:], "--room"
    if case == "--out is a file":
        (tmp_path / "file").write_text("x")
        return argv(files, tmp_path / "file"), f"{tmp_path / 'file'} is a file"
    if case == "a new run into a run folder":
        return argv(files, copy), "--overwrite"
    if case == "resume without checkpoint":
        (copy / "checkpoint.pt").unlink()
        return argv(files, copy, "--resume"), str(copy / "checkpoint.pt")
    if case == "resume from a corrupt checkpoint":
        flip_a_stored_tensor_byte(copy / "checkpoint.pt")
        return argv(files, copy, "--resume"), str(copy / "checkpoint.pt")
    if case == "resume with a corrupt config.json":
        (copy / "config.json").write_text("{\"hash\": ")
        return argv(files, copy, "--resume"), str(copy / "config.json")
    if case == "resume with another config":
        other = tmp_path / "other.yaml"
        other.write_text(files["config"].read_text().replace("lr: 0.01", "lr: 0.02"))
        return ["--config", str(other)] + argv(files, copy, "--resume")[2:], "belongs to run"
    if case == "unknown device":
        return argv(files, tmp_path / "out", "--device", "gpu0"), "device 'gpu0'"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "missing config", "config with a YAML syntax error", "missing room", "--out is a file",
    "a new run into a run folder", "resume without checkpoint", "resume from a corrupt checkpoint",
    "resume with a corrupt config.json", "resume with another config", "unknown device",
])
def test_user_errors_are_one_line_with_status_2(case, files, finished, tmp_path, capsys):
    args, named = damage(case, files, finished, tmp_path)
    capsys.readouterr()
    assert main(args) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: ") and named in line, line


def test_ctrl_c_then_resume_equals_the_uninterrupted_run(files, finished, tmp_path, capsys, monkeypatch):
    """Ctrl-C during epoch 3 (checkpoints every 2 epochs): status 130, one line saying how to go
    on; --resume then gives the uninterrupted run's history and weights, bit for bit."""
    out = tmp_path / "run"
    step = sdn.train.train_step

    def interrupted_at_epoch_3(model, y, loss_fn, optimizer, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return step(model, y, loss_fn, optimizer, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(sdn.train, "train_step", interrupted_at_epoch_3)
        assert main(argv(files, out)) == 130
    line = one_error_line(capsys)
    assert "checkpoint.pt holds 2 epochs" in line and "--resume" in line
    assert not list(out.glob(".*.tmp"))
    assert main(argv(files, out, "--resume")) == 0
    assert history(out) == history(finished)
    resumed, whole = sdn.load(out / "model.pt"), sdn.load(finished / "model.pt")
    for key, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_a_real_sigint_exits_quietly_after_the_last_checkpoint(files, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sdn.train", *argv(files, out, "--epochs", "500")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "--resume" in err
    assert run_folder.saved_epochs(out) >= 2  # the checkpoint verifies
    assert not list(out.glob(".*.tmp"))


def test_divergence_exits_1_and_overwrite_replaces_the_run(files, finished, tmp_path, capsys):
    unstable = tmp_path / "unstable.yaml"
    unstable.write_text(files["config"].read_text().replace("epochs: 4, lr: 0.01", "epochs: 50, lr: 1.0"))
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    capsys.readouterr()
    assert main(["--config", str(unstable)] + argv(files, out, "--overwrite")[2:]) == 1
    line = one_error_line(capsys)
    assert line.startswith("error: training stopped at epoch") and str(out) in line
    assert torch.isfinite(sdn.load(out / "model.pt").impulse_response(2000)).all()


def test_resume_and_overwrite_exclude_each_other(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv(files, tmp_path, "--resume", "--overwrite"))
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_user_error(files, tmp_path, capsys):
    assert main(argv(files, tmp_path / "out", "--device", "cuda")) == 2
    assert "--device cpu" in one_error_line(capsys)



def test_out_of_memory_is_one_line_with_status_1(files, tmp_path, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\n(details)")

    monkeypatch.setattr(sdn.train, "fit", exhausted)
    assert main(argv(files, tmp_path / "out")) == 1
    assert one_error_line(capsys).startswith("error: out of memory")


def test_threads_option_sets_torch_threads_and_refuses_zero(files, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(argv(files, tmp_path / "one", "--epochs", "1", "--threads", "1")) == 0
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit) as info:
            main(argv(files, tmp_path / "zero", "--threads", "0"))
        assert info.value.code == 2 and "expected a whole number >= 1 and <= " in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
