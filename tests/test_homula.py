"""sdn.homula: the Zenodo archive (a local zip of the same layout) and the published positions.

The position files here are made up for the tests (capsules around a chosen point); the RIRs in
the archive are the shipped HOMULA-RIR files, so the registry's hashes apply to them.
"""
import stat
import zipfile

import numpy as np
import pytest

from sdn import data, homula
from sdn.download import FetchError

S1 = "rir-S1-R2-HOM1.wav"
S2 = "rir-S2-R2-HOM1.wav"
NEEDED = [S1, S2, "pos-R2-HOM1.csv", "pos-sources.csv"]
SIZE = (5.46, 14.52, 3.38)
SOURCES = {"S1": (2.28, 0.96, 1.20), "S2": (4.10, 1.05, 1.35)}
# the 8 capsules of a small array: corners of a cube (2 cm from its centre to each corner)
CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * 0.02 / np.sqrt(3)


def _csv(points, header="x,y,z", labels=None) -> str:
    rows = [",".join(([labels[i]] if labels else []) + [f"{v:.4f}" for v in p]) for i, p in enumerate(points)]
    return header + "\n" + "\n".join(rows) + "\n"


def make_archive(path, homula_dir, centre=(0.65, 4.02, 1.14), top="HOMULA-RIR/", change=None):
    """A zip laid out like HOMULA-RIR.zip; ``change`` maps a member path to other content."""
    members = {
        "pos-sources.csv": _csv(SOURCES.values()),
        "hom/row2/rir-S1-R2-HOM1.wav": (homula_dir / S1).read_bytes(),
        "hom/row2/rir-S2-R2-HOM1.wav": (homula_dir / S2).read_bytes(),
        "hom/row2/pos-R2-HOM1.csv": _csv(np.asarray(centre) + CORNERS),
        "hom/row1/rir-S1-R1-HOM1.wav": b"another array, not extracted",
        "hom/row1/pos-R1-HOM1.csv": _csv(np.asarray(centre) + [0, -1.0, 0] + CORNERS),
    }
    members.update(change or {})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(top + name, content)
    return path


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def test_fetch_from_zenodo_over_http_extracts_only_what_is_needed(homula_dir, mirror, tmp_path):
    folder, base = mirror
    (folder / "files").mkdir()
    make_archive(folder / "files" / homula.ARCHIVE_NAME, homula_dir)
    dest = tmp_path / "data"
    code = data.main(["fetch", "--from-zenodo", "--archive-url", f"{base}/{homula.ARCHIVE_NAME}",
                      "--dest", str(dest), *NEEDED])
    assert code == 0
    assert _files(dest) == ["homula-rir"] + [f"homula-rir/{n}" for n in sorted(NEEDED)]
    for name in (S1, S2):
        assert (dest / "homula-rir" / name).read_bytes() == (homula_dir / name).read_bytes()
        assert stat.S_IMODE((dest / "homula-rir" / name).stat().st_mode) & 0o044  # group/other readable


def test_zip_without_a_top_folder_and_a_file_url(homula_dir, tmp_path):
    archive = make_archive(tmp_path / "flat.zip", homula_dir, top="")
    written = homula.fetch_archive(NEEDED, dest=tmp_path / "data", url=archive.as_uri(), progress=False)
    assert sorted(p.name for p in written) == sorted(NEEDED)


@pytest.mark.parametrize("change, message", [
    ({"hom/row2/rir-S1-R2-HOM1.wav": b"RIFF corrupted"}, "hom/row2/rir-S1-R2-HOM1.wav: size 14 bytes"),
    ({"hom/row2/pos-R2-HOM1.csv": _csv(1000 * (np.array([0.65, 4.02, 1.14]) + CORNERS))},
     r"pos-R2-HOM1\.csv: row 2 .* is not a position in metres"),
    ({"pos-sources.csv": "x;y;z\n2.28;0.96;1.2\n"}, r"pos-sources\.csv: cannot tell the x, y, z columns"),
])
def test_a_bad_member_fails_before_anything_is_written(homula_dir, tmp_path, change, message):
    archive = make_archive(tmp_path / "bad.zip", homula_dir, change=change)
    with pytest.raises(FetchError, match=message):
        homula.fetch_archive(NEEDED, dest=tmp_path / "data", url=archive.as_uri(), progress=False)
    assert _files(tmp_path / "data") == []


def test_a_missing_member_names_the_assumed_layout(homula_dir, tmp_path, capsys):
    archive = make_archive(tmp_path / "no-ula.zip", homula_dir)  # no ula/ folder
    code = data.main(["fetch", "--from-zenodo", "--archive-url", archive.as_uri(), "--dest", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 1 and "no member at [<top folder>/]ula/rir-S1-ULA.wav" in err and "layout" in err
    assert _files(tmp_path / "d") == []


def test_not_a_zip(tmp_path):
    bogus = tmp_path / "HOMULA-RIR.zip"
    bogus.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(FetchError, match="not a readable zip archive"):
        homula.fetch_archive(NEEDED, dest=tmp_path / "data", url=bogus.as_uri(), progress=False)
    assert _files(tmp_path / "data") == []


def test_unknown_member():
    with pytest.raises(KeyError, match="not extracted from the archive"):
        homula.fetch_archive(["pos-R9-HOM9.csv"], dest="/nonexistent")


# ------------------------------------------------------------------ reading positions


def test_read_positions_by_header_names_and_labels():
    text = "label,z,y,x\nS2,1.35,1.05,4.10\nS1,1.20,0.96,2.28\n"
    labels, positions = homula.read_positions(text.encode(), "pos-sources.csv")
    assert labels == ["S2", "S1"]
    np.testing.assert_array_equal(positions, [[4.10, 1.05, 1.35], [2.28, 0.96, 1.20]])


def test_read_positions_by_three_numeric_columns():
    labels, positions = homula.read_positions(b"px,py,pz\n1,2,3\n4,5,1\n", "p.csv")
    assert labels is None and positions.tolist() == [[1, 2, 3], [4, 5, 1]]


def test_published_positions(homula_dir, tmp_path, monkeypatch, nothing_shipped):
    centre = np.array([0.65, 4.02, 1.14])
    archive = make_archive(tmp_path / "a.zip", homula_dir, centre=centre)
    homula.fetch_archive(NEEDED, dest=tmp_path / "data", url=archive.as_uri(), progress=False)
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path / "data"))
    np.testing.assert_allclose(homula.published_position("R2-HOM1"), centre, atol=1e-4)  # rounded CSV
    np.testing.assert_allclose(homula.published_position("R2-HOM1", capsule=-1), centre + CORNERS[-1], atol=1e-4)
    np.testing.assert_allclose(homula.published_position("S2"), SOURCES["S2"])
    with pytest.raises(ValueError, match="8 capsules; capsule 8 is out of range"):
        homula.published_position("R2-HOM1", capsule=8)
    with pytest.raises(ValueError, match="S1 is a source"):
        homula.published_position("S1", capsule=0)
    with pytest.raises(FileNotFoundError, match="pos-R1-HOM1.csv not found .*fetch --from-zenodo"):
        homula.published_position("R1-HOM1")


# ------------------------------------------------------------------ calibration against them


def test_compare_calibration_with_the_published_position(homula_dir, tmp_path, monkeypatch, nothing_shipped):
    pra = pytest.importorskip("pyroomacoustics")
    from sdn.calibration import compare_with_published, locate_microphone

    mic = np.array([2.9, 5.1, 1.25])
    room = pra.ShoeBox(SIZE, fs=48000, materials=pra.Material(0.25), max_order=3, air_absorption=False)
    room.add_source(list(SOURCES["S1"]))
    room.add_microphone_array((mic + CORNERS[:3]).T)
    room.compute_rir()
    n = max(len(r[0]) for r in room.rir)
    h = np.stack([np.pad(r[0], (100, n - len(r[0]))) for r in room.rir])
    result = locate_microphone(h, 48000, SIZE, SOURCES["S1"])

    for centre, supported in ((mic, True), (mic + [0.0, 1.0, 0.0], False)):
        archive = make_archive(tmp_path / f"{supported}.zip", homula_dir, centre=centre)
        homula.fetch_archive(NEEDED, dest=tmp_path / str(supported), url=archive.as_uri(), progress=False)
        monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path / str(supported)))
        report = compare_with_published(result, "R2-HOM1")
        np.testing.assert_allclose(report["published_m"], centre, atol=1e-4)
        np.testing.assert_allclose(report["error_m"], result.position - report["published_m"])
        if supported:  # the estimate is within 5 cm, and the published point explains the reflections
            assert report["error_norm_m"] < 0.05 and report["horizontal_error_m"] <= report["error_norm_m"]
            assert report["published"]["score"] > 0.8 * report["estimate"]["score"]
            assert abs(report["published"]["latency_samples"] - result.latency) < 3
        else:  # 1 m off: the measured reflections do not support it
            assert report["error_norm_m"] == pytest.approx(1.0, abs=0.05)
            assert report["published"]["score"] < 0.5 * report["estimate"]["score"]
