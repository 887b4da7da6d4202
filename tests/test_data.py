"""sdn.data: registry and verification, local-HTTP fetch, RIR loading, errors, room configs."""
import functools
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from sdn import data
from sdn.data import FetchError, HashMismatchError

REPO = Path(__file__).resolve().parents[1]
S1 = "rir-S1-R2-HOM1.wav"
S2 = "rir-S2-R2-HOM1.wav"


# ------------------------------------------------------------------ hashing and verification


def test_git_blob_id_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert data.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize("name", [S1, S2])
def test_verify_accepts_shared_files(homula_dir, name):
    entry = data.verify_file(homula_dir / name)
    assert entry.name == name and entry.size == (homula_dir / name).stat().st_size


def test_verify_rejects_modified_copy(homula_dir, tmp_path):
    content = bytearray((homula_dir / S1).read_bytes())
    content[5000] ^= 0x01
    copy = tmp_path / S1
    copy.write_bytes(bytes(content))
    with pytest.raises(HashMismatchError, match="git blob id"):
        data.verify_file(copy)


def test_load_by_name_rejects_modified_copy(homula_dir, tmp_path, monkeypatch):
    folder = tmp_path / "homula-rir"
    folder.mkdir()
    content = bytearray((homula_dir / S1).read_bytes())
    content[-1] ^= 0x01
    (folder / S1).write_bytes(bytes(content))
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    with pytest.raises(HashMismatchError):
        data.load_rir(S1)


# ------------------------------------------------------------------ fetch against 127.0.0.1


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/'mirror'; yields (folder, base_url)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/files"
    server.shutdown()
    server.server_close()


def _serve(folder, name, content):
    (folder / "files").mkdir(exist_ok=True)
    (folder / "files" / name).write_bytes(content)


def test_fetch_from_local_server(homula_dir, mirror, tmp_path):
    folder, base = mirror
    _serve(folder, S1, (homula_dir / S1).read_bytes())
    dest = tmp_path / "data"
    paths = data.fetch([S1], dest=dest, base_url=base, timeout=10)
    assert paths == [dest / "homula-rir" / S1]
    assert data.git_blob_id(paths[0]) == data.REGISTRY[S1].git_blob
    assert sorted(p.name for p in (dest / "homula-rir").iterdir()) == [S1]


def test_fetch_cli_with_env_base_url(homula_dir, mirror, tmp_path, monkeypatch, capsys):
    folder, base = mirror
    _serve(folder, S2, (homula_dir / S2).read_bytes())
    monkeypatch.setenv("SDN_DATA_BASE_URL", base)
    dest = tmp_path / "data"
    assert data.main(["fetch", S2, "--dest", str(dest)]) == 0
    assert "verified" in capsys.readouterr().out
    data.verify_file(dest / "homula-rir" / S2)


def test_fetch_corrupted_download_leaves_nothing(homula_dir, mirror, tmp_path):
    folder, base = mirror
    content = bytearray((homula_dir / S1).read_bytes())
    content[1234] ^= 0xFF
    _serve(folder, S1, bytes(content))
    dest = tmp_path / "data"
    with pytest.raises(FetchError, match="git blob id"):
        data.fetch([S1], dest=dest, base_url=base, timeout=10)
    assert not dest.exists()  # not even the folders it created


def test_fetch_keeps_existing_file_when_download_fails(homula_dir, mirror, tmp_path):
    folder, base = mirror  # serves nothing: HTTP 404
    dest = tmp_path / "data"
    (dest / "homula-rir").mkdir(parents=True)
    stale = b"not the right content"
    (dest / "homula-rir" / S1).write_bytes(stale)
    with pytest.raises(FetchError, match="404"):
        data.fetch([S1], dest=dest, base_url=base, timeout=10)
    assert (dest / "homula-rir" / S1).read_bytes() == stale
    assert [p.name for p in (dest / "homula-rir").iterdir()] == [S1]


def test_fetch_offline_clear_message(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "data"
    code = data.main(["fetch", S1, "--dest", str(dest), "--base-url", f"http://127.0.0.1:{port}",
                      "--timeout", "5"])
    assert code == 1
    assert "offline" in capsys.readouterr().err
    assert not dest.exists()


def test_fetch_skips_valid_existing_file(homula_dir, tmp_path):
    dest = tmp_path / "data"
    (dest / "homula-rir").mkdir(parents=True)
    shutil.copy(homula_dir / S1, dest / "homula-rir" / S1)
    # an unreachable base URL proves nothing is downloaded
    assert data.fetch([S1], dest=dest, base_url="http://127.0.0.1:9", timeout=1) == [
        dest / "homula-rir" / S1
    ]


def test_verify_cli(homula_dir, tmp_path, monkeypatch, capsys):
    assert data.main(["verify"]) == 0  # absent files (the ULA) are listed, not failures
    assert "ok       " + S1 in capsys.readouterr().out
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    assert data.main(["verify", S1]) == 1
    assert "fetch" in capsys.readouterr().err


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown data file"):
        data.fetch(["nope.wav"], dest="/nonexistent")


# ------------------------------------------------------------------ loading


@pytest.mark.parametrize("name", [S1, S2])
def test_load_shared_file(homula_dir, name):
    rir = data.load_rir(name, channel=0)
    x = rir.signal
    assert x.ndim == 1 and str(x.dtype) == "torch.float32"
    assert rir.sample_rate == 16000 and rir.original_sample_rate == 48000
    assert rir.n_channels == 8 and rir.original_length == 48000
    assert abs(float(x.norm()) - 1.0) < 1e-5
    assert 0.6 < rir.rt60 < 1.1  # README: broadband T30 about 0.85 s
    assert len(rir) == round(rir.rt60 * 16000)
    assert rir.path == homula_dir / name
    # direct sound at ~15.9 ms in the 48 kHz file: kept at the same time after resampling
    assert abs(rir.peak_index / 16000 - 0.0159) < 1e-3


def test_trimmed_length_consistent_with_rt60_estimate(homula_dir):
    from sdn.acoustics import reverberation_time

    full = data.load_rir(S1, channel="mean", trim=False, normalize=False)
    trimmed = data.load_rir(S1, channel="mean")
    rt = float(reverberation_time(full.signal.double().numpy(), 16000, decay="T30"))
    assert trimmed.rt60 == pytest.approx(rt, rel=1e-6)
    assert len(trimmed) == round(rt * 16000)
    # trimming keeps time 0: the trimmed signal is the start of the untrimmed one, rescaled
    x = full.signal.numpy()[: len(trimmed)]
    np.testing.assert_allclose(trimmed.signal.numpy(), x / np.linalg.norm(x), atol=1e-6)


def test_channel_selection_and_mean(homula_dir):
    raw, fs = sf.read(homula_dir / S1, dtype="float64", always_2d=True)
    for channel, expected in ((3, raw[:, 3]), (-1, raw[:, 7]), ("mean", raw.mean(axis=1))):
        rir = data.load_rir(S1, channel=channel, trim=False, normalize=False)
        ref = soxr.resample(expected, fs, 16000, quality="VHQ")
        assert len(rir) == 16000
        np.testing.assert_allclose(rir.signal.numpy(), ref, rtol=1e-5, atol=1e-9)
        assert rir.channel == channel
    a = data.load_rir(S1, channel=-1)
    b = data.load_rir(S1, channel=7)
    assert np.array_equal(a.signal.numpy(), b.signal.numpy())


def test_other_sample_rate_and_path(homula_dir):
    rir = data.load_rir(homula_dir / S1, channel=2, sample_rate=24000, trim=False)
    assert rir.sample_rate == 24000 and len(rir) == 24000


# ------------------------------------------------------------------ bad inputs


def test_missing_file_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python -m sdn\.data fetch rir-S1-R2-HOM1\.wav"):
        data.load_rir(S1)
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load_rir(tmp_path / "missing.wav")


@pytest.mark.parametrize("channel", [8, -9, 100])
def test_channel_out_of_range(homula_dir, channel):
    with pytest.raises(IndexError, match="out of range .* 8 channel"):
        data.load_rir(S1, channel=channel)


def test_bad_channel_value(homula_dir):
    with pytest.raises(ValueError, match="'mean'"):
        data.load_rir(S1, channel="avg")


def _wav(path, x, fs=48000):
    sf.write(path, x, fs, subtype="FLOAT")
    return path


def test_non_finite_signal(tmp_path):
    decay = np.exp(-np.arange(4800) / 500)[:, None]
    x = np.random.default_rng(0).standard_normal((4800, 2)) * decay
    x[100, 1] = np.nan
    path = _wav(tmp_path / "nan.wav", x)
    with pytest.raises(ValueError, match="non-finite"):
        data.load_rir(path, channel=1)
    with pytest.raises(ValueError, match="non-finite"):
        data.load_rir(path, channel="mean")
    data.load_rir(path, channel=0, trim=False)  # the clean channel loads


def test_silent_signal(tmp_path):
    path = _wav(tmp_path / "silent.wav", np.zeros((4800, 1)))
    with pytest.raises(ValueError, match="silent"):
        data.load_rir(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(ValueError, match="unsupported or unreadable audio format"):
        data.load_rir(path)


def test_bad_sample_rate(homula_dir):
    with pytest.raises(ValueError, match="sample_rate"):
        data.load_rir(S1, sample_rate=0)


# ------------------------------------------------------------------ room configs


def test_room_configs_load():
    ula = data.load_room_config(REPO / "config/rooms/homula_s1_ula.yaml")
    assert ula.room.mic == (3.67, 1.96, 1.20) and ula.room.source == (2.28, 0.96, 1.20)
    assert ula.target == data.TargetSpec("homula-rir/rir-S1-ULA.wav", -1)
    ours = data.load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    assert ours.room.size == (5.46, 14.52, 3.38)
    assert ours.target.file == "homula-rir/rir-S1-R2-HOM1.wav"


def test_room_config_target_loads(homula_dir):
    cfg = data.load_room_config(REPO / "config/rooms/homula_s1_r2hom1.yaml")
    rir = cfg.load_target()
    assert rir.sample_rate == 16000 and abs(float(rir.signal.norm()) - 1) < 1e-5


def test_ula_target_absent_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    cfg = data.load_room_config(REPO / "config/rooms/homula_s1_ula.yaml")
    with pytest.raises(FileNotFoundError, match="fetch rir-S1-ULA.wav"):
        cfg.load_target()


def test_room_config_unknown_key(tmp_path):
    text = (REPO / "config/rooms/homula_s1_ula.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "absorption: 0.2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*absorption"):
        data.load_room_config(bad)
    bad.write_text(text.replace("channel: -1", "channel: -1, gain: 2"))
    with pytest.raises(ValueError, match=r"bad\.yaml.*gain"):
        data.load_room_config(bad)


def test_room_config_bad_geometry(tmp_path):
    text = (REPO / "config/rooms/homula_s1_ula.yaml").read_text()
    bad = tmp_path / "outside.yaml"
    bad.write_text(text.replace("mic: [3.67, 1.96, 1.20]", "mic: [3.67, 1.96, 4.0]"))
    with pytest.raises(ValueError, match=r"outside\.yaml.*mic"):
        data.load_room_config(bad)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.data_path(S1, must_exist=False) == tmp_path / "homula-rir" / S1
    monkeypatch.delenv("SDN_DATA_DIR")
    assert data.data_dir() == REPO / "data"  # a source checkout
