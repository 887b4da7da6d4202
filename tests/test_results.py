"""The committed results (results/): consistent with the committed configs, the tables with the runs,
and the results page with the tables.

They run only where results/ holds a full run of the study (``python pipeline.py``). Without one
they skip locally and fail in CI (``CI`` set), where the committed results must be present.
"""
from __future__ import annotations

import csv
import functools
import json
import math
import os
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline  # noqa: E402
from test_book import check_results_page  # noqa: E402

from sdn.config import load_experiment  # noqa: E402
from sdn.config import load_room_config  # noqa: E402
from sdn.train import run_hash  # noqa: E402

RESULTS = REPO / "results"
MODELS = pipeline.BASELINES + pipeline.TRAINED  # the rows of summary.csv, in order
RUN_FOLDERS = [run.parameters["experiment"].split("/")[-1].removesuffix(".yaml")
               for run in pipeline.RUNS if run.notebook == "02_train.ipynb"]  # every fit of the study
BANDS = (125, 250, 500, 1000, 2000, 4000)


@functools.lru_cache(maxsize=None)
def full_run() -> Path:
    """results/, if it holds a complete full run; otherwise skip (fail in CI) naming what is missing."""
    needed = [RESULTS / "runs" / m / name for m in RUN_FOLDERS for name in ("config.json", "metrics.json")]
    needed += [RESULTS / "tables" / "summary.csv", RESULTS / "tables" / "bands.csv", RESULTS / "runtimes.csv"]
    needed += [RESULTS / "notebooks" / f"{run.name}.ipynb" for run in pipeline.RUNS]
    missing = [str(p.relative_to(REPO)) for p in needed if not p.is_file()]
    if missing:
        message = (f"results/ holds no full run of the study (missing {', '.join(missing[:4])}"
                   f"{' ...' if len(missing) > 4 else ''}); run `python pipeline.py` and commit results/")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return RESULTS


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def same(csv_value: str, value) -> bool:
    """A CSV cell equals a number from JSON (to the last digit pandas writes; NaN equals NaN)."""
    number = float(csv_value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.isnan(number)
    return math.isclose(number, float(value), rel_tol=1e-12, abs_tol=1e-15)


# ---------------------------------------------------------------------------------------------


def test_results_are_a_full_run_of_every_notebook():
    results = full_run()
    rows = read_csv(results / "runtimes.csv")
    assert [r["name"] for r in rows] == [run.name for run in pipeline.RUNS], "runtimes.csv: not every run"
    quick = [r["name"] for r in rows if r["quick"] != "False"]
    assert not quick, f"results/ holds quick-mode runs {quick}: commit a full run"
    for run in pipeline.RUNS:
        nb = nbformat.read(results / "notebooks" / f"{run.name}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["exception"] in (None, False), run.name


@pytest.mark.parametrize("model", RUN_FOLDERS)
def test_run_hash_matches_the_committed_configs(model):
    """config.json's hash is recomputed from config/experiments/<model>.yaml and the room YAML."""
    results = full_run()
    folders = sorted(p.name for p in (results / "runs").iterdir() if p.is_dir())
    assert folders == sorted(RUN_FOLDERS), f"results/runs holds {folders}, the study {sorted(RUN_FOLDERS)}"
    config = json.loads((results / "runs" / model / "config.json").read_text())
    experiment = load_experiment(REPO / "config" / "experiments" / f"{model}.yaml")
    room = load_room_config(REPO / "config" / "rooms" / f"{config['room']['name']}.yaml")
    assert config["experiment"] == json.loads(json.dumps(experiment.to_dict())), \
        f"runs/{model} was run with another experiment config than config/experiments/{model}.yaml"
    assert config["hash"] == run_hash(experiment, room), \
        f"runs/{model}: hash {config['hash']} does not match the committed experiment and room configs"


def summary_expectations(model: str) -> dict:
    """What each summary.csv column must hold for ``model``, from its run folder."""
    folder = RESULTS / "runs" / model
    trained = json.loads((folder / "metrics.json").read_text())["trained"]
    config = json.loads((folder / "config.json").read_text())
    pct = {key: None if trained[key] is None else 100 * trained[key] for key in trained
           if isinstance(trained[key], float) or trained[key] is None}
    expected = {
        "edc_error_db": trained["edc_error_db"],
        "t30_error_pct": pct["T30_err_mean"], "t20_error_pct": pct["T20_err_mean"],
        "edt_error_pct": pct["EDT_err_mean"],
        **{f"t30_err_{f}_pct": pct[f"T30_err_{f}"] for f in BANDS},
        **{key: trained[key] for key in ("C50", "C50_err", "D50", "DRR",
                                         "loss_edc", "loss_edr", "loss_edp", "loss_total")},
    }
    return {"numbers": expected, "config_hash": config["hash"]}


def test_summary_table_equals_the_run_metrics():
    rows = read_csv(full_run() / "tables" / "summary.csv")
    assert [r["model"] for r in rows] == MODELS
    for row in rows:
        expected = summary_expectations(row["model"])
        columns = set(row) - {"model"}
        assert columns == set(expected["numbers"]) | {"config_hash"}, \
            f"summary.csv columns {sorted(columns)} differ from what this test checks"
        assert row["config_hash"] == expected["config_hash"], row["model"]
        for column, value in expected["numbers"].items():
            assert same(row[column], value), f"summary.csv {row['model']}/{column}: {row[column]} != run {value}"


def test_band_table_equals_the_run_metrics():
    rows = read_csv(full_run() / "tables" / "bands.csv")
    assert [(r["model"], int(r["band_hz"])) for r in rows] == [(m, f) for m in MODELS for f in BANDS]
    for row in rows:
        metrics = json.loads((RESULTS / "runs" / row["model"] / "metrics.json").read_text())
        for key in ("T30", "T20", "EDT"):
            band = f"{key}_{row['band_hz']}"
            assert same(row[key], metrics["trained"][band]), f"bands.csv {row['model']} {band}"
            assert same(row[f"{key}_target"], metrics["target"][band]), f"bands.csv target {band}"


def test_committed_results_page_shows_the_summary_table():
    """The executed results page (what the book renders) shows exactly the numbers of summary.csv.

    The rendered HTML of the quick study and of a made-up table are checked in a browser by
    tests/test_book.py; here the same check runs on the committed page's outputs.
    """
    results = full_run()
    nb = nbformat.read(results / "notebooks" / "05_results.ipynb", as_version=4)
    outputs = [o.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    page = "\n".join(d.get("text/html", "") + d.get("text/markdown", "") for d in outputs)
    check_results_page(page, results / "tables" / "summary.csv")
