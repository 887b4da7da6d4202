"""sdn.notebook: the set-up every notebook of the study runs first."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdn import notebook

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cwd():
    """Restore the working directory that notebook.setup changes."""
    before = os.getcwd()
    yield
    os.chdir(before)


def test_root_is_found_from_the_notebooks_folder_and_becomes_the_working_directory(cwd):
    os.chdir(REPO / "notebooks")
    assert notebook.find_root() == REPO
    assert notebook.setup() == REPO
    assert Path.cwd() == REPO


def test_a_folder_outside_any_checkout_is_refused_in_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")  # a project, but not this one: no sdn/ beside it
    with pytest.raises(FileNotFoundError, match="not inside a checkout of the sdn repository"):
        notebook.find_root(tmp_path)


def test_a_missing_measured_file_says_how_to_fetch_it(cwd, monkeypatch, tmp_path):
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python -m sdn\.data fetch rir-S1-ULA\.wav"):
        notebook.setup("rir-S1-ULA.wav")
    with pytest.raises(FileNotFoundError, match="measured RIR not found"):
        notebook.setup("data/no-such-file.wav")


def test_output_folder_is_created_under_the_results_folder(tmp_path):
    folder = notebook.output_folder(tmp_path / "results", "tables", "x")
    assert folder == tmp_path / "results" / "tables" / "x" and folder.is_dir()
