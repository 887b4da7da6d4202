"""Run every notebook of the study with papermill, then build the book.

    python pipeline.py                   # full run into results/, then the book (book/_build/html)
    python pipeline.py --quick           # same notebooks, quick parameters, into results-quick/
    python pipeline.py --only NAME       # one run (NAME as in RUNS), then the book
    python pipeline.py --book-only       # build the book from what results/ holds already
    python pipeline.py --no-book         # notebooks only

The list ``RUNS`` below is the whole study: one line per executed notebook. Adding a notebook to the
study and to the book is one line here; the book's table of contents picks every executed notebook
up by its output name (``book/_toc.yml`` globs ``generated/*``), so name outputs ``NN_topic`` to
order them.

Conventions every listed notebook follows (checked before anything runs):

* kernelspec ``python3`` and one cell tagged ``parameters`` with every run parameter;
* an "Open in Colab" badge and a first code cell that installs the package only inside Colab;
* paths are relative to the repository root: papermill runs each notebook with the working
  directory at the root, and a notebook opened elsewhere (Jupyter starts in ``notebooks/``) finds
  the root by walking up to ``pyproject.toml``;
* everything a notebook writes goes under the results folder. The pipeline injects it as
  ``results_dir`` ("results" or "results-quick" relative to the root, absolute when outside the
  repository), and ``{results_dir}`` in a parameter value of ``RUNS`` is replaced by it, for
  notebooks that take an output folder under another name.

Quick mode goes through the same notebooks and code with the ``quick`` overrides of each run (fewer
epochs) and writes to a separate, git-ignored folder, so it can never overwrite committed results.

Outputs in the results folder: ``notebooks/<name>.ipynb`` (executed), ``runtimes.csv`` (seconds per
run) and ``environment.csv`` (versions of what produced them). The book is built from a staged copy
of ``book/`` into which the executed notebooks and those two tables are copied; a missing notebook,
one that holds an error output, or any Sphinx warning fails the build.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"
DEFAULT_RESULTS = REPO / "results"
QUICK_RESULTS = REPO / "results-quick"
GITHUB_REPOSITORY = "sdn-companion/differentiable-sdn"  # the Colab badges open notebooks from here

MATHJAX_VERSION = "3.2.2"
MATHJAX_NPM = REPO / ".cache" / "mathjax-npm"  # git-ignored npm prefix
# Parts of the MathJax 3 ES5 distribution the book needs: the TeX-to-CommonHTML bundle, its fonts,
# the input extensions it may autoload, and the menu/accessibility modules (with the speech rule
# engine's maps, which would otherwise come from a CDN) that the reader may switch on.
# They are copied into the built HTML (_static/mathjax) after Sphinx has run: Jupyter Book adds a
# <script> tag for every .js file found in the book's own _static folder, which would load all of
# MathJax's lazily loaded modules on every page.
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y", "sre")


@dataclass(frozen=True)
class Run:
    """One executed notebook: ``notebooks/<notebook>`` -> ``<results>/notebooks/<name>.ipynb``."""

    notebook: str
    name: str
    parameters: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)  # overrides applied in quick mode
    title: str | None = None  # the page title in the book, when one notebook serves several runs


# The study, in book order. One line per run (one per configuration for 02_train).
TRAINED = ["prior_fir0", "correction_fir0", "prior_fir6", "correction_fir6"]  # the paper's configurations
BASELINES = ["untrained", "sabine", "eyring"]  # evaluated only (epochs: 0 in their configs)
FAITHFUL = [f"faithful_{name}" for name in TRAINED]  # the same with the released code's quirks (07_faithful)
RUNS: list[Run] = [
    # The SDN of the room: geometry, first-order reflections, closed form against the recursion.
    Run("00_model.ipynb", "00_model", {"room": "config/rooms/homula_s1_r2hom1.yaml"}),
    # Microphone position of R2-HOM1; a quick run must not rewrite the committed room config.
    Run("01_calibration.ipynb", "01_calibration",
        {"out_dir": "{results_dir}/calibration", "write_config": True}, quick={"write_config": False}),
    # One fit per configuration: the paper's four (quick: 3 epochs), the three baselines (0 epochs),
    # and the paper's four with the released code's quirks.
    *[Run("02_train.ipynb", f"02_train_{name}",
          {"experiment": f"config/experiments/{name}.yaml", "room": "config/rooms/homula_s1_r2hom1.yaml",
           "epochs": None, "device": "cpu"},
          quick={} if name in BASELINES else {"epochs": 3}, title=f"02 · Fitting {name}")
      for name in TRAINED + BASELINES + FAITHFUL],
    # Tables and figures from every run folder, then audio, then the results page.
    Run("03_evaluation.ipynb", "03_evaluation"),
    Run("04_listening.ipynb", "04_listening", {"duration": 3.0}),
    Run("05_results.ipynb", "05_results"),
    # Beyond the paper: one SDN per room, fitted at K positions, tested at held-out ones (simulated room).
    Run("06_generalisation.ipynb", "06_generalisation",
        {"epochs": 40, "n_sources": 4, "n_mics": 6, "n_heldout_mics": 2, "k_values": [1, 4, 16]},
        quick={"epochs": 2, "n_sources": 2, "n_mics": 3, "n_heldout_mics": 1, "k_values": [1, 2]}),
    # Exact model against the released code's behaviours, per configuration.
    Run("07_faithful.ipynb", "07_faithful"),
]


# ----------------------------------------------------------------------------------------------
# Notebook checks and execution


def check_notebook(path: Path) -> None:
    """Fail early, naming the notebook, if it breaks a convention papermill or the book relies on."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    problems = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec must be python3")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"needs exactly one cell tagged 'parameters' (found {len(tagged)})")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    badge = f"colab.research.google.com/github/{GITHUB_REPOSITORY}/blob/main/notebooks/{path.name}"
    if badge not in markdown:
        problems.append(f"needs an 'Open in Colab' badge linking to https://{badge}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "google.colab" not in code[0].source:
        problems.append("the first code cell must install the package only in Colab ('google.colab')")
    if problems:
        raise SystemExit(f"pipeline: notebook {path.name}: " + "; ".join(problems))


def root_relative(folder: Path) -> str:
    """``folder`` as the notebooks see it: relative to the repository root inside it, else absolute."""
    folder = folder.resolve()
    try:
        return folder.relative_to(REPO).as_posix()
    except ValueError:
        return str(folder)


def execute(run: Run, results: Path, quick: bool) -> float:
    """Execute one run with papermill; returns its wall time in seconds."""
    import papermill

    results_dir = root_relative(results)
    parameters = {**run.parameters, **(run.quick if quick else {})}
    parameters = {key: value.replace("{results_dir}", results_dir) if isinstance(value, str) else value
                  for key, value in parameters.items()}
    parameters["results_dir"] = results_dir
    out = results / "notebooks" / f"{run.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / run.notebook), str(out), parameters=parameters,
            kernel_name="python3", cwd=str(REPO), progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as err:
        raise SystemExit(
            f"pipeline: notebook {run.notebook} (run '{run.name}') failed in cell {err.exec_count}:\n"
            f"  {err.ename}: {err.evalue}\n  executed notebook with the traceback: {out}"
        ) from None
    return time.perf_counter() - start


RUNTIME_COLUMNS = ["name", "notebook", "seconds", "quick", "finished_utc"]


def record_runtime(results: Path, run: Run | None, seconds: float = 0.0, quick: bool = False) -> None:
    """Insert or replace the run's row in ``<results>/runtimes.csv`` (kept in RUNS order).

    With ``run=None`` the file is only created (header) if it does not exist yet.
    """
    path = results / "runtimes.csv"
    rows = {}
    if path.is_file():
        with path.open(newline="") as f:
            rows = {row["name"]: row for row in csv.DictReader(f)}
    if run is not None:
        rows[run.name] = {
            "name": run.name, "notebook": run.notebook, "seconds": f"{seconds:.1f}",
            "quick": str(quick),
            "finished_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        }
    order = [r.name for r in RUNS] + sorted(set(rows) - {r.name for r in RUNS})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RUNTIME_COLUMNS)
        writer.writeheader()
        writer.writerows(rows[name] for name in order if name in rows)


def record_environment(results: Path) -> None:
    """Write ``<results>/environment.csv``: interpreter, platform and package versions."""
    rows = [("python", platform.python_version()), ("platform", platform.platform()),
            ("cpu cores", str(os.cpu_count()))]
    for package in ("differentiable-sdn", "torch", "numpy", "scipy", "librosa", "pandas",
                    "matplotlib", "papermill", "jupyter-book"):
        try:
            rows.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    with (results / "environment.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["component", "version"])
        writer.writerows(rows)


def run_notebooks(runs: list[Run], results: Path, quick: bool) -> None:
    for run in runs:
        check_notebook(NOTEBOOKS / run.notebook)
    results.mkdir(parents=True, exist_ok=True)
    record_environment(results)
    record_runtime(results, None)
    total = time.perf_counter()
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.notebook} -> {results / 'notebooks' / run.name}.ipynb"
              f"{' (quick)' if quick else ''}", flush=True)
        seconds = execute(run, results, quick)
        record_runtime(results, run, seconds, quick)
        print(f"      done in {seconds:.1f} s", flush=True)
    print(f"pipeline: {len(runs)} notebook(s) in {time.perf_counter() - total:.1f} s", flush=True)


# ----------------------------------------------------------------------------------------------
# Book


def mathjax_source() -> Path:
    """The ES5 folder of MathJax 3, installed once from npm into .cache/ (git-ignored)."""
    source = MATHJAX_NPM / "node_modules" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(f"pipeline: npm is needed once to fetch mathjax@{MATHJAX_VERSION} "
                             f"into {MATHJAX_NPM} (the book serves MathJax itself)")
        print(f"pipeline: fetching mathjax@{MATHJAX_VERSION} with npm", flush=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(MATHJAX_NPM),
                        f"mathjax@{MATHJAX_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    return source


def install_mathjax(html: Path) -> None:
    """Copy MathJax into the built book as html/_static/mathjax (see MATHJAX_PARTS)."""
    source, target = mathjax_source(), html / "_static" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)


def stage_book(results: Path, source: Path, runs: list[Run]) -> None:
    """Copy book/ to ``source`` and add the executed notebooks and run tables under generated/."""
    import nbformat

    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(BOOK, source, ignore=shutil.ignore_patterns("_build", "generated"))
    generated = source / "generated"
    generated.mkdir()
    missing = [r for r in runs if not (results / "notebooks" / f"{r.name}.ipynb").is_file()]
    if missing:
        names = " ".join(f"--only {r.name}" for r in missing)
        raise SystemExit(f"pipeline: {results / 'notebooks'} lacks the executed notebook of "
                         f"{', '.join(r.name for r in missing)}; run `python pipeline.py {names}`")
    for run in runs:
        nb = nbformat.read(results / "notebooks" / f"{run.name}.ipynb", as_version=4)
        for cell in nb.cells:
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                raise SystemExit(f"pipeline: executed notebook {run.name}.ipynb holds an error "
                                 f"output; rerun `python pipeline.py --only {run.name}`")
        nbformat.write(for_book(nb, run.title), generated / f"{run.name}.ipynb")
    for table in ("runtimes.csv", "environment.csv"):
        if not (results / table).is_file():
            raise SystemExit(f"pipeline: {results / table} is missing; run the pipeline first")
        shutil.copy2(results / table, generated / table)


def for_book(nb, title: str | None = None):
    """Prepare an executed notebook for the book.

    The install-only-in-Colab cell is removed; the parameter cells (defaults and the values the
    pipeline injected) stay, folded. The Colab badge image is hosted by Google: in the book it
    becomes a plain link, so that pages load nothing from outside the local server. ``title``
    replaces the first level-1 heading (the page title).
    """
    first_code = True
    for cell in nb.cells:
        if title and cell.cell_type == "markdown" and re.search(r"(?m)^# ", cell.source):
            cell.source = re.sub(r"(?m)^# .*$", f"# {title}", cell.source, count=1)
            title = None
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code" and first_code:
            first_code = False
            tags.append("remove-cell")
        elif "injected-parameters" in tags or "parameters" in tags:
            tags.append("hide-input")
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(
                "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]",
                "[Open in Colab]")
    return nb


def build_book(results: Path, out: Path, runs: list[Run] = RUNS) -> Path:
    """Stage and build the book for ``results``; returns the HTML folder (``out/_build/html``)."""
    if not runs:
        raise SystemExit("pipeline: RUNS lists no notebook, so the book would have no experiment")
    source = out / "_build" / "source"
    stage_book(results, source, runs)
    start = time.perf_counter()
    print(f"pipeline: building the book from {results} ...", flush=True)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.is_file():
        jupyter_book = shutil.which("jupyter-book") or "jupyter-book"
    command = [str(jupyter_book), "build", str(source),
               "--path-output", str(out), "--warningiserror", "--keep-going", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-6000:])
        raise SystemExit("pipeline: the book build failed (errors or warnings above)")
    html = out / "_build" / "html"
    install_mathjax(html)
    print(f"pipeline: book built in {time.perf_counter() - start:.1f} s -> {html / 'index.html'}",
          flush=True)
    return html


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="quick parameters (few epochs), default results folder results-quick/")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only this run (repeatable); names: "
                             + ", ".join(r.name for r in RUNS))
    parser.add_argument("--results", type=Path, help="results folder (default results/ or results-quick/)")
    parser.add_argument("--book-out", type=Path,
                        help="where the book's _build goes (default book/ for results/, else <results>/book)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-book", action="store_true", help="run the notebooks, skip the book")
    group.add_argument("--book-only", action="store_true", help="build the book, run no notebook")
    args = parser.parse_args(argv)

    results = (args.results or (QUICK_RESULTS if args.quick else DEFAULT_RESULTS)).resolve()
    runs = RUNS
    if args.only:
        unknown = set(args.only) - {r.name for r in RUNS}
        if unknown:
            parser.error(f"unknown run(s) {sorted(unknown)}; known: {[r.name for r in RUNS]}")
        runs = [r for r in RUNS if r.name in args.only]
    if not args.book_only:
        run_notebooks(runs, results, args.quick)
    if not args.no_book:
        out = args.book_out or (BOOK if results == DEFAULT_RESULTS else results / "book")
        build_book(results, out.resolve())


if __name__ == "__main__":
    main()
