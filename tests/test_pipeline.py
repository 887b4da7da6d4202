"""The pipeline: its run list, papermill execution, error handling, and the whole study in quick mode."""
from __future__ import annotations

import csv
import functools
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import pipeline  # noqa: E402

# Notebooks that exist but cannot join RUNS yet, each with the reason. Empty it as they join.
NOT_YET_IN_PIPELINE: dict[str, str] = {}


@functools.lru_cache(maxsize=None)
def quick_study() -> tuple[Path, Path]:
    """Run ``python pipeline.py --quick`` once per session into a fresh folder.

    Returns (results folder, built HTML folder). Shared by test_pipeline and test_book (a cached
    function rather than a fixture, so that both modules reuse the same run).
    """
    results = Path(tempfile.mkdtemp(prefix="sdn-quick-")) / "results"
    done = subprocess.run([sys.executable, str(REPO / "pipeline.py"), "--quick", "--results", str(results)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"pipeline --quick failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return results, results / "book" / "_build" / "html"


def _notebook(path: Path, code: str, parameters: str = 'results_dir = "results"') -> Path:
    """A minimal notebook that follows the pipeline's conventions, then runs ``code``."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    badge = f"https://colab.research.google.com/github/{pipeline.GITHUB_REPOSITORY}/blob/main/notebooks/{path.name}"
    parameters_cell = new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    nb.cells = [
        new_markdown_cell(f"# Test\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge})"),
        new_code_cell('import sys\nif "google.colab" in sys.modules:\n    pass'),
        parameters_cell,
        new_code_cell(code),
    ]
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------------
# The run list


def test_runs_are_well_formed():
    names = [run.name for run in pipeline.RUNS]
    assert len(names) == len(set(names)), f"duplicate run names: {names}"
    for run in pipeline.RUNS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", run.name), f"{run.name}: name runs as NN_topic"
        assert (pipeline.NOTEBOOKS / run.notebook).is_file(), f"{run.notebook} does not exist"
        assert set(run.quick) <= set(run.parameters), \
            f"{run.name}: quick overrides {set(run.quick) - set(run.parameters)} have no full value"
        pipeline.check_notebook(pipeline.NOTEBOOKS / run.notebook)


def test_every_notebook_is_in_the_pipeline():
    listed = {run.notebook for run in pipeline.RUNS}
    for path in sorted(pipeline.NOTEBOOKS.glob("*.ipynb")):
        if path.name in NOT_YET_IN_PIPELINE:
            assert path.name not in listed, f"{path.name} is in RUNS: remove it from NOT_YET_IN_PIPELINE"
            continue
        assert path.name in listed, f"{path.name} is not in pipeline.RUNS: add one line for it"


def test_waiting_notebooks_follow_the_conventions():
    for name in NOT_YET_IN_PIPELINE:
        if (pipeline.NOTEBOOKS / name).is_file():
            pipeline.check_notebook(pipeline.NOTEBOOKS / name)


# ---------------------------------------------------------------------------------------------
# Execution and staging, on small throw-away notebooks


def test_parameters_reach_the_notebook_and_quick_overrides(tmp_path):
    nb = _notebook(tmp_path / "01_echo.ipynb", code=(
        "import json, os, pathlib\n"
        "pathlib.Path(results_dir, 'seen.json').write_text(json.dumps("
        "{'epochs': epochs, 'cwd': os.getcwd(), 'results_dir': results_dir, 'out_dir': out_dir}))"),
        parameters='results_dir = "results"\nepochs = 300\nout_dir = "results/echo"')
    run = pipeline.Run(str(nb), "01_echo", {"epochs": 300, "out_dir": "{results_dir}/echo"},
                       quick={"epochs": 3})
    results = tmp_path / "results"
    pipeline.run_notebooks([run], results, quick=True)
    seen = json.loads((results / "seen.json").read_text())
    assert seen["epochs"] == 3
    assert Path(seen["cwd"]) == pipeline.REPO
    assert Path(pipeline.REPO, seen["results_dir"]).resolve() == results.resolve()
    assert seen["out_dir"] == f"{seen['results_dir']}/echo"
    assert (results / "notebooks" / "01_echo.ipynb").is_file()
    with (results / "runtimes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["01_echo"] and rows[0]["quick"] == "True"
    assert float(rows[0]["seconds"]) > 0
    assert (results / "environment.csv").is_file()


def test_results_inside_the_repository_are_passed_relative_to_its_root():
    assert pipeline.root_relative(pipeline.DEFAULT_RESULTS) == "results"
    assert pipeline.root_relative(pipeline.QUICK_RESULTS) == "results-quick"
    assert pipeline.root_relative(Path("/tmp/elsewhere")) == "/tmp/elsewhere"


def test_first_failing_notebook_stops_the_pipeline_and_is_named(tmp_path):
    bad = _notebook(tmp_path / "01_bad.ipynb", code="raise RuntimeError('deliberate failure')")
    after = _notebook(tmp_path / "02_after.ipynb", code="open('ran', 'w').close()")
    runs = [pipeline.Run(str(bad), "01_bad"), pipeline.Run(str(after), "02_after")]
    with pytest.raises(SystemExit) as err:
        pipeline.run_notebooks(runs, tmp_path / "results", quick=False)
    message = str(err.value)
    assert "01_bad.ipynb" in message and "deliberate failure" in message
    assert not (tmp_path / "results" / "notebooks" / "02_after.ipynb").exists()


def test_notebook_without_parameters_cell_is_refused_before_running(tmp_path):
    path = _notebook(tmp_path / "01_plain.ipynb", code="x = 1")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = []
    nbformat.write(nb, path)
    with pytest.raises(SystemExit, match="01_plain.ipynb.*parameters"):
        pipeline.check_notebook(path)


def test_book_refuses_missing_or_failed_notebooks(tmp_path):
    results = tmp_path / "results"
    (results / "notebooks").mkdir(parents=True)
    runs = [pipeline.Run("x.ipynb", "01_missing")]
    with pytest.raises(SystemExit, match="01_missing"):
        pipeline.stage_book(results, tmp_path / "source", runs)
    nb = new_notebook()
    cell = new_code_cell("1/0")
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    nb.cells = [cell]
    nbformat.write(nb, results / "notebooks" / "01_missing.ipynb")
    with pytest.raises(SystemExit, match="error output"):
        pipeline.stage_book(results, tmp_path / "source", runs)


def test_book_copies_hide_setup_and_load_no_badge_image():
    nb = nbformat.read(
        _notebook(Path(tempfile.mkdtemp()) / "01_x.ipynb", code="x = 1"), as_version=4)
    staged = pipeline.for_book(nb)
    assert "colab-badge.svg" not in staged.cells[0].source
    assert "[Open in Colab](https://colab.research.google.com/github/" in staged.cells[0].source
    assert "remove-cell" in staged.cells[1].metadata["tags"]  # install-in-Colab cell
    assert "hide-input" in staged.cells[2].metadata["tags"]  # parameters: folded, not removed


# ---------------------------------------------------------------------------------------------
# The whole study, quick mode (same notebooks and code, few epochs)


def test_quick_pipeline_runs_every_notebook_and_builds_the_book():
    if not pipeline.RUNS:
        pytest.skip("pipeline.RUNS lists no notebook yet")
    results, html = quick_study()
    for run in pipeline.RUNS:
        executed = nbformat.read(results / "notebooks" / f"{run.name}.ipynb", as_version=4)
        assert executed.metadata["papermill"]["exception"] in (None, False), run.name
        assert (html / "generated" / f"{run.name}.html").is_file(), f"no book page for {run.name}"
    with (results / "runtimes.csv").open() as f:
        assert [r["name"] for r in csv.DictReader(f)] == [r.name for r in pipeline.RUNS]
    for page in ("index", "intro", "model", "deviations", "reproducibility", "api", "references"):
        assert (html / f"{page}.html").is_file(), page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_quick_mode_writes_to_a_git_ignored_folder():
    assert pipeline.QUICK_RESULTS != pipeline.DEFAULT_RESULTS
    ignored = subprocess.run(["git", "check-ignore", "-q", str(pipeline.QUICK_RESULTS / "x.csv")], cwd=REPO)
    assert ignored.returncode == 0, "results-quick/ must be git-ignored"
