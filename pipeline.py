"""Run every notebook of the study with papermill, then build the book.

    python pipeline.py                   # full run into results/, then the book (book/_build/html)
    python pipeline.py --quick           # same notebooks, quick parameters, into results-quick/
    python pipeline.py --only NAME       # one run (NAME as in RUNS), then the book
    python pipeline.py --book-only       # build the book from what results/ holds already
    python pipeline.py --no-book         # notebooks only
    python pipeline.py --room config/rooms/homula_s1_ula.yaml --results results-ula
                                         # the whole study on another room configuration
    python pipeline.py --jobs 1          # one notebook at a time (default: one per core, at most 4)
    python pipeline.py --sync-notebooks  # rewrite every notebook's Colab badge and install cell
    python pipeline.py --verify          # rerun correction_fir6 at seeds 0-2 here, compare with results/

The list ``RUNS`` below is the whole study: one line per executed notebook. A notebook joins the
book by its output name: ``book/_toc.yml`` names each page ``generated/<name>``, and the
``02_train_*`` pages are listed in the order of ``RUNS`` when the book is staged.

Conventions every listed notebook follows (checked before anything runs):

* kernelspec ``python3`` and one cell tagged ``parameters`` that declares every parameter the
  pipeline passes (``results_dir`` included), one per line, in a form papermill parses;
* an "Open in Colab" badge and, as the first code cell, the install cell of :func:`colab_cell`:
  both name the repository of ``[project.urls]`` in ``pyproject.toml`` and are identical in every
  notebook (``--sync-notebooks`` writes them);
* paths are relative to the repository root: papermill runs each notebook with the working
  directory at the root, and a notebook opened elsewhere finds the root with ``sdn.notebook.setup``;
* everything a notebook writes goes under the results folder. The pipeline injects it as
  ``results_dir`` ("results" or "results-quick" relative to the root, absolute when outside the
  repository). In a parameter value of ``RUNS``, ``{results_dir}`` is replaced by it and ``{room}``
  by the room configuration of the study (``--room``).

Quick mode goes through the same notebooks and code with the ``quick`` overrides of each run (fewer
epochs, shorter renders, smaller grids) and writes to a separate, git-ignored folder, so it can
never overwrite committed results. Every cell has a time limit (``--cell-timeout``); the whole run
has none.

Outputs in the results folder: ``notebooks/<name>.ipynb`` (executed; their install cell clones the
commit they were made from), ``runtimes.csv`` (seconds per run) and ``environment.csv`` (versions
of what produced them and the compute path of its fits, :func:`compute_path_rows`). The book is built from a staged copy of ``book/`` into which the executed
notebooks and those two tables are copied; a missing notebook, one that holds an error output, or
any Sphinx warning fails the build.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from sdn.study import BASELINES, FITS, PAPER_CONFIGURATIONS, ROOM

REPO = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"
DEFAULT_RESULTS = REPO / "results"
QUICK_RESULTS = REPO / "results-quick"
CELL_TIMEOUT = {False: 3600, True: 900}  # seconds per cell, full and quick runs
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))  # kernels at a time, one torch thread each
START_TIMEOUT = 300  # seconds for a kernel to start (a loaded machine is slow)

MATHJAX_VERSION = "3.2.2"
MATHJAX_NPM = REPO / ".cache" / "mathjax-npm"  # git-ignored npm prefix
# Parts of the MathJax 3 ES5 distribution the book needs: the TeX-to-CommonHTML bundle, its fonts,
# the input extensions it may autoload, and the menu/accessibility modules (with the speech rule
# engine's maps, which would otherwise come from a CDN) that the reader may switch on.
# They are copied into the built HTML (_static/mathjax) after Sphinx has run: Jupyter Book adds a
# <script> tag for every .js file found in the book's own _static folder, which would load all of
# MathJax's lazily loaded modules on every page.
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y", "sre")


def repository_url() -> str:
    """The repository's URL: ``Repository`` in ``[project.urls]`` of ``pyproject.toml`` (its one home)."""
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("urls", {})
    url = urls.get("Repository", "")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit("pipeline: pyproject.toml needs [project.urls] Repository = "
                         "\"https://github.com/OWNER/NAME\" (the Colab badges and install cells use it)")
    return url


REPOSITORY_URL = repository_url()
GITHUB_REPOSITORY = REPOSITORY_URL.removeprefix("https://github.com/")  # OWNER/NAME
COLAB_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


@dataclass(frozen=True)
class Study:
    """One execution of the study: where it writes, quick or full, and on which room configuration."""

    results: Path
    quick: bool = False
    room: str = ROOM

    @property
    def reference(self) -> bool:
        """The committed study: full parameters, the study's room, into results/."""
        return not self.quick and self.room == ROOM and self.results.resolve() == DEFAULT_RESULTS


@dataclass(frozen=True)
class Run:
    """One executed notebook: ``notebooks/<notebook>`` -> ``<results>/notebooks/<name>.ipynb``."""

    notebook: str
    name: str
    parameters: dict = field(default_factory=dict)  # values: plain, "{results_dir}"/"{room}" templates,
    quick: dict = field(default_factory=dict)       # or functions of the Study; quick: overrides
    title: str | None = None  # the page title in the book, when one notebook serves several runs
    after: tuple = ()  # names (or name prefixes) of runs that must finish first

    def resolved(self, study: Study) -> dict:
        """The parameters papermill passes, ``results_dir`` included."""
        results_dir = root_relative(study.results)
        values = {**self.parameters, **(self.quick if study.quick else {})}
        out = {}
        for key, value in values.items():
            if callable(value):
                value = value(study)
            elif isinstance(value, str):
                value = value.replace("{results_dir}", results_dir).replace("{room}", study.room)
            out[key] = value
        out["results_dir"] = results_dir
        return out


def reference_only(study: Study) -> bool:
    """True only for the committed study (a notebook may then rewrite committed configuration)."""
    return study.reference


# The study, in book order. One line per run (one per fit of sdn.study.FITS for 02_train).
RUNS: list[Run] = [
    # The SDN of the room: geometry, first-order reflections, closed form against the recursion.
    Run("00_model.ipynb", "00_model",
        {"room": "{room}", "ir_seconds": 1.0, "compare_samples": 8000, "timing_repeats": 5},
        quick={"ir_seconds": 0.25, "compare_samples": 2000, "timing_repeats": 1}),
    # Microphone position of R2-HOM1; only the committed study rewrites the room config.
    Run("01_calibration.ipynb", "01_calibration", {"grid_step": 0.04, "write_config": reference_only},
        quick={"grid_step": 0.08}),
    # One fit per configuration: the paper's four, the three baselines (0 epochs), and the paper's
    # four with the released code's quirks. After 01, which may rewrite the room config.
    *[Run("02_train.ipynb", f"02_train_{name}",
          {"experiment": f"config/experiments/{name}.yaml", "room": "{room}", "epochs": None,
           "device": "cpu", "max_eval_seconds": 30.0},
          quick={"max_eval_seconds": 2.0, **({} if name in BASELINES else {"epochs": 3})},
          title=f"02 · Fitting {name}", after=("01_calibration",))
      for name in FITS],
    # Seeds 1 to 7 of the paper's configurations and their converged variants (seed 0: the runs
    # above), in parallel processes; independent of the runs above, so it starts after 01.
    Run("09_ensemble.ipynb", "09_ensemble",
        {"room": "{room}", "n_seeds": 8, "epochs": None, "max_eval_seconds": 30.0},
        quick={"n_seeds": 2, "epochs": 3, "max_eval_seconds": 2.0}, after=("01_calibration",)),
    # Tables (ensemble.csv, summary.csv) and figures from every run folder and the ensemble, then
    # audio, then the results page.
    Run("03_evaluation.ipynb", "03_evaluation", {"room": "{room}"}, after=("02_train", "09_ensemble")),
    Run("04_listening.ipynb", "04_listening", {"room": "{room}", "duration": 3.0}, quick={"duration": 2.0},
        after=("02_train",)),
    Run("05_results.ipynb", "05_results", {"room": "{room}"}, after=("03_evaluation",)),
    # Beyond the paper: one SDN per room, fitted at K positions, tested at held-out ones (simulated
    # room), and the real-data transfer S1 -> S2 (reads the calibration).
    Run("06_generalisation.ipynb", "06_generalisation",
        {"epochs": 40, "n_sources": 4, "n_mics": 6, "n_heldout_mics": 2, "k_values": [1, 4, 16],
         "ir_seconds": 1.0, "train_seconds": 0.5, "max_order": 3, "n_rays": 4000, "max_eval_seconds": 30.0,
         "calibration": "{results_dir}/calibration/calibration.json"},
        quick={"epochs": 2, "n_sources": 2, "n_mics": 3, "n_heldout_mics": 1, "k_values": [1, 2],
               "train_seconds": 0.25, "max_order": 1, "n_rays": 500, "max_eval_seconds": 2.0},
        after=("01_calibration",)),
    # Exact model against the released code's behaviours, per configuration.
    Run("07_faithful.ipynb", "07_faithful", {"room": "{room}"}, after=("02_train",)),
    # The paper's configurations refitted at the calibration's runner-up microphone positions and
    # with the measurement latency removed (room configs of sdn.room_variants).
    # Its tables compare with the paper's four fits only, so it can start before the other fits end.
    Run("08_sensitivity.ipynb", "08_sensitivity", {"room": "{room}", "epochs": None, "max_eval_seconds": 30.0},
        quick={"epochs": 3, "max_eval_seconds": 2.0},
        after=tuple(f"02_train_{name}" for name in PAPER_CONFIGURATIONS)),
]


# ----------------------------------------------------------------------------------------------
# Notebook conventions


def colab_url(path: str) -> str:
    """The Colab address of the notebook at ``path`` in the repository, on its default branch."""
    return f"https://colab.research.google.com/github/{GITHUB_REPOSITORY}/blob/main/{path}"


def colab_badge(notebook: str) -> str:
    """The "Open in Colab" badge (Markdown) of ``notebooks/<notebook>``."""
    return f"[![Open In Colab]({COLAB_BADGE_IMAGE})]({colab_url(f'notebooks/{notebook}')})"


def colab_cell(commit: str | None = None) -> str:
    """The first code cell of every notebook: in Colab only, clone the repository and install the
    package with its ``book`` extra, then work in the clone.

    ``commit`` (None in the notebooks themselves) is the commit an executed copy was made from;
    its install cell then checks that commit out, so that the code matches the page.
    """
    return f'''\
# Only in Google Colab: clone the repository (code, configs, data) and install the package.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPOSITORY = "{REPOSITORY_URL}"
    COMMIT = {commit!r}  # pipeline.py fills in the commit of an executed copy; None: the default branch
    clone = os.path.abspath(REPOSITORY.rsplit("/", 1)[-1])
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "--quiet", REPOSITORY, clone], check=True)
        if COMMIT:
            subprocess.run(["git", "-C", clone, "checkout", "--quiet", COMMIT], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", clone + "[book]"], check=True)
    os.chdir(clone)'''


def parameter_problems(cell_source: str, names) -> list[str]:
    """What papermill would warn about: lines of the parameters cell it cannot parse, and
    parameters the pipeline passes that the cell does not declare."""
    from papermill.translators import PythonTranslator

    unparsable = []

    class Catch(logging.Handler):
        def emit(self, record):
            unparsable.append(record.getMessage())

    logger, handler = logging.getLogger("papermill.translators"), Catch(logging.WARNING)
    logger.addHandler(handler)
    try:
        declared = {p.name for p in PythonTranslator.inspect({"source": cell_source})}
    finally:
        logger.removeHandler(handler)
    problems = [f"parameters cell: {m} (no '=' in the comments of a parameter line)" for m in unparsable]
    undeclared = sorted(set(names) - declared)
    if undeclared:
        problems.append(f"the parameters cell does not declare {undeclared}, which the pipeline passes")
    return problems


def check_notebook(path: Path, parameters=("results_dir",)) -> None:
    """Fail early, naming the notebook, if it breaks a convention papermill or the book relies on.

    ``parameters``: the names the pipeline passes to it.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    problems = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec must be python3")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"needs exactly one cell tagged 'parameters' (found {len(tagged)})")
    else:
        problems += parameter_problems(tagged[0].source, parameters)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    if not markdown or colab_badge(path.name) not in markdown[0]:
        problems.append(f"its first Markdown cell needs the badge {colab_badge(path.name)}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or code[0].source != colab_cell():
        problems.append("its first code cell must be the Colab install cell of pipeline.colab_cell()")
    if problems:
        raise SystemExit(f"pipeline: notebook {path.name}: " + "; ".join(problems)
                         + " (python pipeline.py --sync-notebooks writes the badge and install cell)")


def sync_notebook(path: Path) -> bool:
    """Write the Colab badge and install cell of :func:`check_notebook` into a notebook; True if it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    pattern = r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)"
    if re.search(pattern, first_md.source):
        first_md.source = re.sub(pattern, lambda _: colab_badge(path.name), first_md.source, count=1)
    else:
        first_md.source = colab_badge(path.name) + "\n\n" + first_md.source
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    first_code.source = colab_cell()
    if nbformat.writes(nb) == before:
        return False
    nbformat.write(nb, path)
    return True


def source_commit() -> str | None:
    """The commit the study's code is checked out at, or None outside git or with local changes
    to the package, notebooks, experiment configs or this script."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return None
    changed = git("status", "--porcelain", "--", "sdn", "notebooks", "pipeline.py", "pyproject.toml",
                  "config/experiments")
    return head.stdout.strip() if changed.returncode == 0 and not changed.stdout.strip() else None


def with_commit(nb, commit: str | None):
    """``nb`` with the commit filled into its install cell (see :func:`colab_cell`)."""
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    if first_code.source == colab_cell():
        first_code.source = colab_cell(commit)
    return nb


# ----------------------------------------------------------------------------------------------
# Execution


def root_relative(folder: Path) -> str:
    """``folder`` as the notebooks see it: relative to the repository root inside it, else absolute."""
    folder = folder.resolve()
    try:
        return folder.relative_to(REPO).as_posix()
    except ValueError:
        return str(folder)


def execute(run: Run, study: Study, commit: str | None = None, cell_timeout: float | None = None) -> float:
    """Execute one run with papermill; returns its wall time in seconds."""
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError

    out = study.results / "notebooks" / f"{run.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = with_commit(nbformat.read(NOTEBOOKS / run.notebook, as_version=4), commit)
    limit = cell_timeout if cell_timeout is not None else CELL_TIMEOUT[study.quick]
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            nb, str(out), parameters=run.resolved(study), kernel_name="python3", cwd=str(REPO),
            progress_bar=False, log_output=False, start_timeout=START_TIMEOUT,
            execution_timeout=limit,
        )
    except papermill.PapermillExecutionError as err:
        raise SystemExit(
            f"pipeline: notebook {run.notebook} (run '{run.name}') failed in cell {err.exec_count}:\n"
            f"  {err.ename}: {err.evalue}\n  executed notebook with the traceback: {out}"
        ) from None
    except CellTimeoutError:
        raise SystemExit(
            f"pipeline: notebook {run.notebook} (run '{run.name}'): a cell ran longer than its limit of "
            f"{limit:g} s; raise it with --cell-timeout SECONDS (executed part: {out})"
        ) from None
    drop_removed_stderr(out)
    return time.perf_counter() - start


def drop_removed_stderr(path: Path) -> None:
    """Delete the stderr streams of the cells tagged ``remove-stderr`` from an executed notebook.

    The book hides them anyway; kept, the progress bars of a long fit store every update (a
    sensitivity run of 16 fits held 7,000 of them, 1.2 MB).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "remove-stderr" in cell.metadata.get("tags", []):
            cell.outputs = [o for o in cell.get("outputs", []) if o.get("name") != "stderr"]
    nbformat.write(nb, path)


RUNTIME_COLUMNS = ["name", "notebook", "seconds", "quick", "finished_utc"]
_RUNTIMES_LOCK = threading.Lock()


def record_runtime(results: Path, run: Run | None, seconds: float = 0.0, quick: bool = False) -> None:
    """Insert or replace the run's row in ``<results>/runtimes.csv`` (kept in RUNS order).

    With ``run=None`` the file is only created (header) if it does not exist yet.
    """
    path = results / "runtimes.csv"
    with _RUNTIMES_LOCK:
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
    for package in ("differentiable-sdn", "torch", "numpy", "scipy", "pandas",
                    "matplotlib", "papermill", "jupyter-book"):
        try:
            rows.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    rows += compute_path_rows()
    with (results / "environment.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["component", "version"])
        writer.writerows(rows)


def compute_path_rows() -> list[tuple[str, str]]:
    """This machine's compute path (:func:`sdn.native.compute_path`) as ``compute path: <key>`` rows:
    fits are the same bits only along one compute path, so the results record theirs."""
    from sdn import native

    describe = getattr(native, "compute_path", None)
    values = describe() if describe is not None else {"kernels": "not recorded (no sdn.native.compute_path)"}
    return [(f"compute path: {key}", str(value)) for key, value in values.items()]


def check_room(room: str) -> None:
    """Fail early, in one line, if the room configuration or its measured target is missing."""
    from sdn import data
    from sdn.config import load_room_config

    try:
        config = load_room_config(REPO / room)
        if config.target is not None:
            data.resolve(config.target.file)
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"pipeline: --room {room}: {' '.join(str(err).split())}") from None


def waits_for(run: Run, pending: list[Run]) -> bool:
    """Whether ``run`` must wait for one of ``pending`` (its ``after`` names or prefixes)."""
    return any(other.name.startswith(prefix) for other in pending for prefix in run.after)


def critical_paths(runs: list[Run], results: Path) -> dict[str, float]:
    """Per run, the seconds from its start to the end of the study along its longest chain of
    runs that wait for it, from the durations in ``<results>/runtimes.csv`` of the last run (0
    for a run not in it). Started longest chain first, the runs keep every job busy while the
    longest chain (the calibration, the paper's four fits, then the sensitivity refits) runs."""
    seconds = {}
    if (results / "runtimes.csv").is_file():
        with (results / "runtimes.csv").open(newline="") as f:
            seconds = {row["name"]: float(row["seconds"]) for row in csv.DictReader(f)}
    chains: dict[str, float] = {}

    def chain(run: Run) -> float:
        if run.name not in chains:
            chains[run.name] = seconds.get(run.name, 0.0) + max(
                (chain(other) for other in runs if waits_for(other, [run])), default=0.0)
        return chains[run.name]

    return {run.name: chain(run) for run in runs}


def run_notebooks(runs: list[Run], study: Study, jobs: int = 1, cell_timeout: float | None = None) -> None:
    """Execute ``runs`` (after checking every notebook), at most ``jobs`` at a time, each after the
    runs of its ``after`` that are in ``runs``; stops at the first failure, naming it."""
    for run in runs:
        check_notebook(NOTEBOOKS / run.notebook, run.resolved(study))
    priority = critical_paths(runs, study.results)
    study.results.mkdir(parents=True, exist_ok=True)
    record_environment(study.results)
    record_runtime(study.results, None)
    commit = source_commit()
    total = time.perf_counter()
    todo, running, started = list(runs), {}, 0
    saved_env = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS",)}
    if jobs > 1:  # each kernel gets its share of the cores (torch reads this when it starts)
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while todo or running:
                ready = sorted((r for r in todo if not waits_for(r, [*todo, *running.values()])),
                               key=lambda r: -priority[r.name])  # longest chain first; ties in RUNS order
                for run in ready[: jobs - len(running)]:
                    todo.remove(run)
                    started += 1
                    print(f"[{started}/{len(runs)}] {run.notebook} -> {study.results / 'notebooks' / run.name}.ipynb"
                          f"{' (quick)' if study.quick else ''}", flush=True)
                    running[pool.submit(execute, run, study, commit, cell_timeout)] = run
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    run = running.pop(future)
                    if future.exception() is not None:
                        todo.clear()  # start nothing more; the running ones finish
                        for other in running:
                            other.cancel()
                        raise future.exception()
                    record_runtime(study.results, run, future.result(), study.quick)
                    print(f"      {run.name} done in {future.result():.1f} s", flush=True)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
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
    committed = results.resolve() == DEFAULT_RESULTS
    for run in runs:
        nb = nbformat.read(results / "notebooks" / f"{run.name}.ipynb", as_version=4)
        for cell in nb.cells:
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                raise SystemExit(f"pipeline: executed notebook {run.name}.ipynb holds an error "
                                 f"output; rerun `python pipeline.py --only {run.name}`")
        # The committed executed copy opens in Colab with its parameters and its commit.
        colab = f"results/notebooks/{run.name}.ipynb" if committed else f"notebooks/{run.notebook}"
        nbformat.write(for_book(nb, run.title, colab), generated / f"{run.name}.ipynb")
    stage_toc(source / "_toc.yml", [run.name for run in runs])
    stage_headline(results, generated, [run.name for run in runs])
    for table in ("runtimes.csv", "environment.csv"):
        if not (results / table).is_file():
            raise SystemExit(f"pipeline: {results / table} is missing; run the pipeline first")
        shutil.copy2(results / table, generated / table)


def stage_headline(results: Path, generated: Path, names: list[str]) -> None:
    """Write ``generated/headline.md``, which the intro includes: the caveats and headline table
    that 05_results wrote (``tables/headline.md``), the energy decay curves of 03_evaluation
    (``figures/edc.png``) and a link to the results page, each when it exists."""
    parts = []
    headline = results / "tables" / "headline.md"
    parts.append(headline.read_text() if headline.is_file() else "*No headline table: run 05_results.*\n")
    if (results / "figures" / "edc.png").is_file():
        shutil.copy2(results / "figures" / "edc.png", generated / "edc.png")
        parts.append("```{figure} generated/edc.png\n:width: 90%\n\nEnergy decay curves of the target, the "
                     "baselines and the paper's configurations (unit-norm responses over the target's length; "
                     "dashed: baselines).\n```\n")
    if "05_results" in names:
        parts.append("All tables, the octave bands and the sensitivity to the microphone position: "
                     "{doc}`generated/05_results`.\n")
    (generated / "headline.md").write_text("\n".join(parts))


def stage_toc(toc: Path, names: list[str]) -> None:
    """Rewrite the staged table of contents for the executed notebooks ``names``: the training
    runs in their order in ``names`` (the study's) instead of the glob's alphabetical one, and
    without the pages of notebooks that were not run (a partial build)."""
    import yaml

    def keep(entries: list) -> list:
        kept = []
        for entry in entries:
            if entry.get("glob") == "generated/02_train_*":
                kept += [{"file": f"generated/{name}"} for name in names if name.startswith("02_train_")]
            elif not entry.get("file", "").startswith("generated/") or entry["file"][len("generated/"):] in names:
                if "sections" in entry:
                    entry["sections"] = keep(entry["sections"])
                    if not entry["sections"]:
                        del entry["sections"]
                kept.append(entry)
        return kept

    content = yaml.safe_load(toc.read_text())
    for part in content["parts"]:
        part["chapters"] = keep(part["chapters"])
    content["parts"] = [part for part in content["parts"] if part["chapters"]]
    toc.write_text(yaml.safe_dump(content, sort_keys=False))


def for_book(nb, title: str | None = None, colab: str | None = None):
    """Prepare an executed notebook for the book.

    The install-only-in-Colab cell is removed; the parameter cells (defaults and the values the
    pipeline injected) stay, folded. The Colab badge image is hosted by Google: in the book it
    becomes a plain link, so that pages load nothing from outside the local server; ``colab`` (a
    path in the repository) is the notebook it opens. ``title`` replaces the first level-1
    heading (the page title).
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
            cell.source = re.sub(rf"\[!\[Open In Colab\]\({re.escape(COLAB_BADGE_IMAGE)}\)\]\(([^)]*)\)",
                                 lambda m: f"[Open in Colab]({colab_url(colab) if colab else m[1]})", cell.source)
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
# Verification on the reader's machine

#: What ``--verify`` reruns: a configuration of the ensemble and its seeds.
VERIFY = ("correction_fir6", (0, 1, 2))


def verify(study: Study, model: str = VERIFY[0], seeds=VERIFY[1], workers: int | None = None) -> int:
    """Rerun ``seeds`` of ``model`` (those the committed ensemble holds) on this machine and compare
    them with the committed ensemble.

    Prints the compute path of both sides, then one line per rerun with its verdict
    (:func:`sdn.ensemble.verdict`): bit-identical, within the committed ensemble's range, or
    outside it. The reruns use the epochs and evaluation length of the committed ensemble
    (``tables/ensemble.csv`` and the ``09_ensemble`` parameters of the study).

    Returns
    -------
    int
        The exit status: 0 when no rerun lies outside the committed range, else 1.
    """
    from sdn import ensemble
    from sdn.config import load_experiment, load_room_config

    table = study.results / "tables" / "ensemble.csv"
    if not table.is_file():
        raise SystemExit(f"pipeline: {table} is missing: run the pipeline first (python pipeline.py"
                         f"{' --quick' if study.quick else ''})")
    committed = ensemble.read_members(table)
    fits = committed[committed["model"] == model]
    if fits.empty:
        raise SystemExit(f"pipeline: {table} has no fit of {model!r}")
    environment = study.results / "environment.csv"
    recorded = {}
    if environment.is_file():
        with environment.open(newline="") as f:
            recorded = {row["component"]: row["version"] for row in csv.DictReader(f)}

    def path_line(rows) -> str:
        return ", ".join(f"{k.removeprefix('compute path: ')} {v}" for k, v in rows if k.startswith("compute path: ")) \
            or "not recorded"

    print(f"committed ({table}): {path_line(recorded.items())}")
    print(f"this machine: {path_line(compute_path_rows())}")
    parameters = next(r for r in RUNS if r.name == "09_ensemble").resolved(study)
    seeds = [s for s in seeds if s in set(fits["seed"])]  # the seeds the committed ensemble holds
    rows = ensemble.run_members([[load_experiment(REPO / "config" / "experiments" / f"{model}.yaml")]],
                                load_room_config(REPO / study.room), seeds, epochs=int(fits["epochs"].max()),
                                max_eval_seconds=parameters["max_eval_seconds"], workers=workers)
    outside = 0
    for row in rows:
        verdict, detail = ensemble.verdict(row, committed)
        outside += verdict == ensemble.VERDICTS[2]
        print(f"{model} seed {row['seed']}: {verdict} ({detail})", flush=True)
    return 1 if outside else 0


# ----------------------------------------------------------------------------------------------


def _positive(kind: Callable):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="quick parameters (few epochs), default results folder results-quick/")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only this run (repeatable); names: "
                             + ", ".join(r.name for r in RUNS))
    parser.add_argument("--results", type=Path, help="results folder (default results/ or results-quick/)")
    parser.add_argument("--room", default=ROOM,
                        help=f"room configuration of the study (default {ROOM}); another one needs --results")
    parser.add_argument("--book-out", type=Path,
                        help="where the book's _build goes (default book/ for results/, else <results>/book)")
    parser.add_argument("--jobs", type=_positive(int), default=DEFAULT_JOBS,
                        help="notebooks run at the same time where the order allows, each kernel with its "
                             "share of the cores as torch threads (default %(default)s: one single-threaded "
                             "kernel per core, at most 4; one thread per process was fastest on a shared "
                             "2-core machine, benchmarks/README.md)")
    parser.add_argument("--cell-timeout", type=_positive(float), default=None,
                        help=f"seconds a cell may take (default {CELL_TIMEOUT[False]}, quick {CELL_TIMEOUT[True]})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-book", action="store_true", help="run the notebooks, skip the book")
    group.add_argument("--book-only", action="store_true", help="build the book, run no notebook")
    group.add_argument("--sync-notebooks", action="store_true",
                       help="write the Colab badge and install cell into every notebook, run nothing")
    group.add_argument("--verify", action="store_true",
                       help=f"rerun {VERIFY[0]} at seeds {', '.join(map(str, VERIFY[1]))} on this machine and compare "
                            "them with the committed ensemble (tables/ensemble.csv), run nothing else")
    args = parser.parse_args(argv)

    if args.sync_notebooks:
        for path in sorted(NOTEBOOKS.glob("*.ipynb")):
            print(f"{'updated' if sync_notebook(path) else 'unchanged'}  {path.relative_to(REPO)}")
        return
    room = root_relative(Path(args.room))
    if room != ROOM and args.results is None:
        parser.error(f"--room {args.room} needs --results (e.g. --results results-{Path(room).stem})")
    results = (args.results or (QUICK_RESULTS if args.quick else DEFAULT_RESULTS)).resolve()
    if args.verify:
        raise SystemExit(verify(Study(results, args.quick, room)))
    runs = RUNS
    if args.only:
        unknown = set(args.only) - {r.name for r in RUNS}
        if unknown:
            parser.error(f"unknown run(s) {sorted(unknown)}; known: {[r.name for r in RUNS]}")
        runs = [r for r in RUNS if r.name in args.only]
    if not args.book_only:
        check_room(room)
        run_notebooks(runs, Study(results, args.quick, room), args.jobs, args.cell_timeout)
    if not args.no_book:
        out = args.book_out or (BOOK if results == DEFAULT_RESULTS else results / "book")
        build_book(results, out.resolve())


if __name__ == "__main__":
    main()
