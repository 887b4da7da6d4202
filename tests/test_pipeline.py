"""The pipeline: its run list, papermill execution, error handling, and the whole study in quick mode."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import pipeline  # noqa: E402

# Notebooks that exist but cannot join RUNS yet, each with the reason. Empty it as they join.
NOT_YET_IN_PIPELINE: dict[str, str] = {}


def _notebook(path: Path, code: str, parameters: str = 'results_dir = "results"') -> Path:
    """A minimal notebook that follows the pipeline's conventions, then runs ``code``."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    parameters_cell = new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    nb.cells = [
        new_markdown_cell(f"{pipeline.colab_badge(path.name)}\n\n# Test"),
        new_code_cell(pipeline.colab_cell()),
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
        for quick in (False, True):  # every parameter passed is declared and parses without a warning
            study = pipeline.Study(pipeline.QUICK_RESULTS if quick else pipeline.DEFAULT_RESULTS, quick)
            pipeline.check_notebook(pipeline.NOTEBOOKS / run.notebook, run.resolved(study))


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


def test_the_repository_url_lives_only_in_pyproject():
    """Every notebook opens in Colab from, and clones, the Repository of [project.urls]: one cell for all."""
    url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    owner_name = url.removeprefix("https://github.com/")
    install_cells = set()
    for path in sorted(pipeline.NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        install_cells.add(code[0])
        assert f"colab.research.google.com/github/{owner_name}/blob/main/notebooks/{path.name})" in nb.cells[0].source
        mentioned = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", "\n".join(c.source for c in nb.cells)))
        assert mentioned <= {owner_name}, f"{path.name} names other repositories: {mentioned - {owner_name}}"
    assert install_cells == {pipeline.colab_cell()}, "the notebooks' install cells differ"
    assert f'REPOSITORY = "{url}"' in pipeline.colab_cell()


def test_parameter_cells_papermill_cannot_parse_or_that_miss_a_parameter_are_named():
    clean = 'results_dir = "results"  # relative to the root\nk_values = [1, 4]  # numbers of positions'
    assert pipeline.parameter_problems(clean, ["results_dir", "k_values"]) == []
    problems = pipeline.parameter_problems('fir_orders = [0, 6]  # 0 = scalar\nresults_dir = "x"', ["results_dir", "epochs"])
    assert any("fir_orders" in p for p in problems), problems  # papermill: "Unable to parse line"
    assert any("epochs" in p for p in problems), problems  # papermill: "Passed unknown parameter"


# ---------------------------------------------------------------------------------------------
# Execution and staging, on small throw-away notebooks


def test_parameters_reach_the_notebook_and_quick_overrides(tmp_path):
    nb = _notebook(tmp_path / "01_echo.ipynb", code=(
        "import json, os, pathlib, time\n"
        "time.sleep(0.5)\n"
        "pathlib.Path(results_dir, 'seen.json').write_text(json.dumps({'epochs': epochs, 'cwd': os.getcwd(), "
        "'results_dir': results_dir, 'out_dir': out_dir, 'room': room}))"),
        parameters='results_dir = "results"\nepochs = 300\nout_dir = "results/echo"\nroom = "x.yaml"')
    run = pipeline.Run(str(nb), "01_echo", {"epochs": 300, "out_dir": "{results_dir}/echo", "room": "{room}"},
                       quick={"epochs": 3})
    results = tmp_path / "results"
    pipeline.run_notebooks([run], pipeline.Study(results, quick=True, room="config/rooms/other.yaml"))
    seen = json.loads((results / "seen.json").read_text())
    assert seen["epochs"] == 3 and seen["room"] == "config/rooms/other.yaml"
    assert Path(seen["cwd"]) == pipeline.REPO
    assert Path(pipeline.REPO, seen["results_dir"]).resolve() == results.resolve()
    assert seen["out_dir"] == f"{seen['results_dir']}/echo"
    assert (results / "notebooks" / "01_echo.ipynb").is_file()
    with (results / "runtimes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["01_echo"] and rows[0]["quick"] == "True"
    assert float(rows[0]["seconds"]) >= 0.5, "the recorded time must include the notebook's own 0.5 s"
    assert (results / "environment.csv").is_file()


def test_results_inside_the_repository_are_passed_relative_to_its_root():
    assert pipeline.root_relative(pipeline.DEFAULT_RESULTS) == "results"
    assert pipeline.root_relative(pipeline.QUICK_RESULTS) == "results-quick"
    assert pipeline.root_relative(Path("/tmp/elsewhere")) == "/tmp/elsewhere"


def test_first_failing_notebook_stops_the_pipeline_and_is_named(tmp_path):
    bad = _notebook(tmp_path / "01_bad.ipynb", code="raise RuntimeError('deliberate failure')")
    after = _notebook(tmp_path / "02_after.ipynb", code="open('ran', 'w').close()")
    runs = [pipeline.Run(str(bad), "01_bad"), pipeline.Run(str(after), "02_after", after=("01_bad",))]
    with pytest.raises(SystemExit) as err:
        pipeline.run_notebooks(runs, pipeline.Study(tmp_path / "results"))
    message = str(err.value)
    assert "01_bad.ipynb" in message and "deliberate failure" in message
    assert not (tmp_path / "results" / "notebooks" / "02_after.ipynb").exists()


def test_a_cell_over_its_time_limit_stops_the_pipeline_and_is_named(tmp_path):
    slow = _notebook(tmp_path / "01_slow.ipynb", code="import time\ntime.sleep(120)")
    with pytest.raises(SystemExit, match="01_slow"):
        pipeline.run_notebooks([pipeline.Run(str(slow), "01_slow")], pipeline.Study(tmp_path / "results"),
                               cell_timeout=3)


def test_jobs_run_side_by_side_but_after_what_they_wait_for(tmp_path):
    code = ("import pathlib, time\nt0 = time.time()\ntime.sleep(2)\n"
            "pathlib.Path(results_dir, name + '.txt').write_text(f'{t0} {time.time()}')")
    runs = [pipeline.Run(str(_notebook(tmp_path / f"{n}.ipynb", code, f'results_dir = "results"\nname = "{n}"')),
                         n, {"name": n}, after=after) for n, after in (("01_a", ()), ("02_b", ()), ("03_c", ("01_a",)))]
    results = tmp_path / "results"
    pipeline.run_notebooks(runs, pipeline.Study(results), jobs=2)
    span = {r.name: [float(t) for t in (results / f"{r.name}.txt").read_text().split()] for r in runs}
    assert span["01_a"][0] < span["02_b"][1] and span["02_b"][0] < span["01_a"][1], "01_a and 02_b did not overlap"
    assert span["03_c"][0] >= span["01_a"][1], "03_c started before 01_a, which it waits for, had finished"


def test_runs_start_longest_chain_first_by_the_last_runtimes(tmp_path):
    """Chains from the durations of runtimes.csv: a = 10 s, then b (5 s, then d, 1 s) or c (20 s)."""
    runs = [pipeline.Run("x.ipynb", "a"), pipeline.Run("x.ipynb", "b", after=("a",)),
            pipeline.Run("x.ipynb", "c", after=("a",)), pipeline.Run("x.ipynb", "d", after=("b",)),
            pipeline.Run("x.ipynb", "e")]
    (tmp_path / "runtimes.csv").write_text("name,notebook,seconds,quick,finished_utc\n"
                                           + "".join(f"{n},x.ipynb,{s},False,\n" for n, s in
                                                     (("a", 10), ("b", 5), ("c", 20), ("d", 1))))
    assert pipeline.critical_paths(runs, tmp_path) == {"a": 30.0, "b": 6.0, "c": 20.0, "d": 1.0, "e": 0.0}
    assert set(pipeline.critical_paths(runs, tmp_path / "none").values()) == {0.0}  # no record: RUNS order
    # one job: of two ready notebooks, the one with the longer recorded chain starts first
    code = "import pathlib, time\npathlib.Path(results_dir, name + '.txt').write_text(str(time.time()))"
    runs = [pipeline.Run(str(_notebook(tmp_path / f"{n}.ipynb", code, f'results_dir = "results"\nname = "{n}"')),
                         n, {"name": n}) for n in ("01_short", "02_long")]
    results = tmp_path / "results"
    results.mkdir()
    (results / "runtimes.csv").write_text("name,notebook,seconds,quick,finished_utc\n02_long,x.ipynb,50,False,\n")
    pipeline.run_notebooks(runs, pipeline.Study(results), jobs=1)
    started = {n: float((results / f"{n}.txt").read_text()) for n in ("01_short", "02_long")}
    assert started["02_long"] < started["01_short"]


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


def test_book_copies_hide_setup_and_load_no_badge_image(tmp_path):
    nb = nbformat.read(_notebook(tmp_path / "01_x.ipynb", code="x = 1"), as_version=4)
    staged = pipeline.for_book(nb, colab="results/notebooks/01_x.ipynb")
    assert "colab-badge.svg" not in staged.cells[0].source
    assert f"[Open in Colab]({pipeline.colab_url('results/notebooks/01_x.ipynb')})" in staged.cells[0].source
    assert "remove-cell" in staged.cells[1].metadata["tags"]  # install-in-Colab cell
    assert "hide-input" in staged.cells[2].metadata["tags"]  # parameters: folded, not removed


# ---------------------------------------------------------------------------------------------
# Colab


def test_colab_install_cell_clones_the_commit_and_works_in_the_clone(tmp_path):
    """The install cell run as Colab would (a stand-in ``google.colab`` module) from a fresh folder,
    with a local clone of this repository for its URL. It clones, checks out the given commit and
    changes into the clone; the pip command it issues is recorded by a stand-in interpreter
    instead of installing into this environment."""
    origin = tmp_path / "origin"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(REPO), str(origin)], check=True)
    commit = subprocess.run(["git", "-C", str(origin), "rev-parse", "HEAD~1"], check=True, capture_output=True,
                            text=True).stdout.strip()
    cell = pipeline.colab_cell(commit).replace(pipeline.REPOSITORY_URL, str(origin))
    pip_log = tmp_path / "pip.txt"
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\necho "$@" > {pip_log}\n')
    fake_python.chmod(0o755)
    colab = tmp_path / "colab"
    colab.mkdir()
    script = (f"import os, sys, types\nsys.modules['google'] = types.ModuleType('google')\n"
              f"sys.modules['google.colab'] = types.ModuleType('google.colab')\nsys.executable = {str(fake_python)!r}\n"
              f"{cell}\nprint(os.getcwd())")
    done = subprocess.run([sys.executable, "-c", script], cwd=colab, capture_output=True, text=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    assert done.returncode == 0, done.stderr
    clone = colab / "origin"
    assert done.stdout.strip().splitlines()[-1] == str(clone)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.strip() == commit
    assert pip_log.read_text().split() == ["-m", "pip", "install", "--quiet", "-e", f"{clone}[book]"]
    assert (clone / "pyproject.toml").is_file() and (clone / "data" / "homula-rir").is_dir()


def test_executed_copies_name_the_commit_they_were_made_from(tmp_path):
    nb = nbformat.read(_notebook(tmp_path / "01_x.ipynb", code="x = 1"), as_version=4)
    first = [c for c in pipeline.with_commit(nb, "0123abc").cells if c.cell_type == "code"][0]
    assert "COMMIT = '0123abc'" in first.source
    nb = nbformat.read(tmp_path / "01_x.ipynb", as_version=4)
    assert "COMMIT = None" in [c for c in pipeline.with_commit(nb, None).cells if c.cell_type == "code"][0].source


# ---------------------------------------------------------------------------------------------
# The whole study, quick mode (same notebooks and code, few epochs)


@pytest.mark.slow
def test_quick_pipeline_runs_every_notebook_and_builds_the_book(quick_study):
    results, html = quick_study
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
    ignored = subprocess.run(["git", "check-ignore", "-q", str(pipeline.QUICK_RESULTS / "x.csv")], cwd=REPO)
    assert ignored.returncode == 0, "results-quick/ must be git-ignored"


# ---------------------------------------------------------------------------------------------
# The study on another room configuration (--room)


def test_another_room_needs_its_own_results_folder_and_its_measurement(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--room", "config/rooms/homula_s1_ula.yaml"])
    assert "--results" in capsys.readouterr().err
    monkeypatch.setenv("SDN_DATA_DIR", str(tmp_path))  # a folder without rir-S1-ULA.wav
    with pytest.raises(SystemExit, match=r"--room config/rooms/homula_s1_ula\.yaml: .*sdn\.data fetch rir-S1-ULA\.wav"):
        pipeline.check_room("config/rooms/homula_s1_ula.yaml")


def ula_stand_in(folder: Path, t60: float = 0.8) -> Path:
    """A synthetic 64-channel, 48 kHz, 1 s stand-in for rir-S1-ULA.wav: direct sound at the S1 ->
    last-microphone distance of the room config, then noise decaying 60 dB in ``t60`` seconds."""
    import numpy as np
    import soundfile as sf

    fs, n = 48000, 48000
    t = np.arange(n) / fs
    h = 0.05 * np.random.default_rng(0).standard_normal((n, 64)) * 10 ** (-3 * t / t60)[:, None]
    h[int(round(np.hypot(3.67 - 2.28, 1.96 - 0.96) / 343 * fs)), :] += 1.0
    path = folder / "homula-rir" / "rir-S1-ULA.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, h.astype(np.float32), fs, subtype="FLOAT")
    return path


@pytest.mark.slow
def test_whole_study_on_the_ula_room_config_in_quick_mode(tmp_path):
    """``pipeline.py --room config/rooms/homula_s1_ula.yaml --results ...`` end to end on a stand-in for
    the paper's target. The stand-in is found through SDN_DATA_DIR and registered for this test only:
    a ``sitecustomize`` on PYTHONPATH gives every interpreter of the run (the pipeline, each
    notebook's kernel, the book build) a registry entry with the stand-in's git blob id."""
    from sdn.data import git_blob_id

    stand_in = ula_stand_in(tmp_path / "data")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import dataclasses\nfrom sdn import data\n"
        "data.REGISTRY['rir-S1-ULA.wav'] = dataclasses.replace(data.REGISTRY['rir-S1-ULA.wav'], "
        f"git_blob={git_blob_id(stand_in)!r})\n")
    results = tmp_path / "results-ula"
    python_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(REPO / "pipeline.py"), "--quick", "--room",
                           "config/rooms/homula_s1_ula.yaml", "--results", str(results)],
                          cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "SDN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": python_path})
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    for run in pipeline.RUNS:
        executed = nbformat.read(results / "notebooks" / f"{run.name}.ipynb", as_version=4)
        assert executed.metadata["papermill"]["exception"] in (None, False), run.name
        assert (results / "book" / "_build" / "html" / "generated" / f"{run.name}.html").is_file(), run.name
    for name in pipeline.FITS:
        config = json.loads((results / "runs" / name / "config.json").read_text())
        assert config["room"]["name"] == "homula_s1_ula", name
    # the tables were made against the stand-in: its T30 is the one it was made with
    target = json.loads((results / "runs" / "prior_fir0" / "metrics.json").read_text())["target"]
    assert target["T30"] == pytest.approx(0.8, rel=0.1)


def test_stderr_of_cells_tagged_remove_stderr_is_dropped_from_executed_notebooks(tmp_path):
    import nbformat

    stream = lambda name, text: nbformat.v4.new_output("stream", name=name, text=text)  # noqa: E731
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fit()", metadata={"tags": ["remove-stderr"]},
                                          outputs=[stream("stderr", "epoch 1\r"), stream("stdout", "done\n")]),
                nbformat.v4.new_code_cell("warn()", outputs=[stream("stderr", "a warning\n")])]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    pipeline.drop_removed_stderr(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [o["name"] for o in cells[0].outputs] == ["stdout"]
    assert [o["name"] for o in cells[1].outputs] == ["stderr"]


# ---------------------------------------------------------------------------------------------
# The compute path and --verify


def test_environment_records_the_compute_path(tmp_path):
    """environment.csv names the compute path of the fits (sdn.native.compute_path), which
    --verify prints beside the reader's."""
    from sdn import native

    pipeline.record_environment(tmp_path)
    with (tmp_path / "environment.csv").open(newline="") as f:
        rows = {row["component"]: row["version"] for row in csv.DictReader(f)}
    path = native.compute_path()
    assert {key: rows[f"compute path: {key}"] for key in path} == {key: str(value) for key, value in path.items()}


def test_verify_needs_a_committed_ensemble(tmp_path):
    with pytest.raises(SystemExit, match="ensemble.csv is missing"):
        pipeline.verify(pipeline.Study(tmp_path))
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "ensemble.csv").write_text("model,seed,status,stopped,config_hash\nprior_fir0,0,ok,,ab\n")
    with pytest.raises(SystemExit, match="no fit of 'correction_fir6'"):
        pipeline.verify(pipeline.Study(tmp_path))
