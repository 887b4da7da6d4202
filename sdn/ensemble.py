r"""Ensembles of fits: each configuration fitted from several initial points, and what they support.

A fit of this model is chaotic: two trajectories that differ by one rounding separate within a
few epochs and end in different places. One fit per configuration therefore says little about the
configuration; an ensemble of fits from seeds 0, 1, ..., n - 1 (:mod:`sdn.initialisation`: seed 0
is the paper's initial model, seed k > 0 a perturbation of it by a few percent) gives its
typical result and its spread, and comparisons between configurations become tests on two samples.

Members
    Seed 0 of a configuration is its single run, the run folder of its ``02_train`` page
    (:func:`rows_from_runs`). Seeds 1 ... n - 1 run in memory (:func:`run_members`), in parallel
    processes with one torch thread each. A paper-budget configuration ``X`` and its converged
    variant ``converged_X`` differ only in when they stop, and the converged one runs at least
    ``X``'s epochs (``training.min_epochs``), so one trajectory gives both (:func:`fit_trajectory`):
    ``X`` evaluated after its budget, ``converged_X`` at its plateau stop, the same numbers as two
    separate fits (``tests/test_ensemble.py`` checks this against :func:`sdn.train.fit`).
    Every member is evaluated at its lowest-loss weights (:func:`sdn.train.evaluated_model`).
Status (:func:`classify`)
    ``diverged``: training stopped on a growing render or a non-finite loss; ``unstable``: the
    evaluated weights' response grows within the evaluation render; ``far above``: the fit's
    final loss exceeds :data:`FAR_ABOVE` times the median loss of the configuration's fits that
    neither diverged nor are unstable (a failed optimisation, stuck far from where the others
    end; the median ignores up to half the members, whatever their losses); ``ok`` otherwise.
    A configuration's failure rate is the share of members that are not ``ok``; its medians and
    ranges are over the ``ok`` ones only, and no ranking uses a configuration without one.
Tables
    ``ensemble.csv`` (:data:`MEMBER_COLUMNS`), one row per configuration and seed, failed fits
    included; ``summary.csv`` (:func:`summary_rows`), one row per configuration: the median of
    every measure, its minimum and maximum, the number of seeds and the failures.
Claims (:func:`compare`, :func:`compare_with_value`)
    Two configurations: a two-sided Mann-Whitney U test on their ``ok`` fits. A configuration
    against a baseline (one deterministic model): a two-sided sign test of its fits against the
    baseline's value. Each at the 5 % level (:data:`ALPHA`) after Holm's correction over the
    claims of a page (:func:`holm`); otherwise the sentence says that no difference was detected
    at this sample size.
Verification (:func:`verdict`)
    A rerun on the reader's machine is bit-identical to the committed member of the same seed, or
    within the committed ensemble's range, or outside it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pandas as pd

from . import results, study
from .filterbank import octave_band_centres

__all__ = ["FAR_ABOVE", "ALPHA", "MEMBER_COLUMNS", "STATUSES", "VERDICTS", "pairs", "fit_trajectory",
           "run_members", "rounding_spread", "rows_from_runs", "assemble", "read_members", "classify",
           "summary_rows", "compare", "compare_with_value", "holm", "claims", "sentence", "verdict"]

#: A fit whose final loss exceeds this multiple of its configuration's median loss failed.
FAR_ABOVE = 2.0
#: Level of the tests behind every comparison sentence (after Holm's correction).
ALPHA = 0.05
#: The statuses of a member, "ok" first.
STATUSES = ("ok", "diverged", "unstable", "far above")
#: The columns of ``ensemble.csv`` before the measures of :func:`sdn.results.metric_columns`.
MEMBER_COLUMNS = ("model", "seed", "status", "epochs", "best_epoch", "stopped", "stable", "wall_gain_max_db",
                  "config_hash")
#: Measures a verification compares with the committed ensemble's range.
VERIFIED = ("edc_error_db", "t30_error_pct", "edt_error_pct", "loss_total")
#: The three verdicts of :func:`verdict`.
VERDICTS = ("bit-identical", "within the committed ensemble's range", "outside the committed ensemble's range")


def pairs() -> dict:
    """Each paper configuration with its converged variant, which shares its trajectory."""
    return {name: f"converged_{name}" for name in study.PAPER_CONFIGURATIONS}


def _shared_trajectory(budget, converged) -> bool:
    """Whether ``converged`` runs ``budget``'s fit and more: equal but for when they stop, and it
    cannot stop before ``budget``'s last epoch."""
    def core(experiment):
        values = experiment.to_dict()
        values.pop("name"), values.pop("description")
        values["training"] = {k: v for k, v in values["training"].items()
                              if k not in ("epochs", "patience", "min_delta", "min_epochs")}
        return values

    t = converged.training
    reaches = t.epochs <= budget.training.epochs or not t.patience or t.min_epochs >= budget.training.epochs
    return core(budget) == core(converged) and reaches and t.epochs >= budget.training.epochs


def fit_trajectory(experiments: Sequence, room_config, seed: int, epochs: int | None = None,
                   max_eval_seconds: float | None = None, target=None) -> list[dict]:
    """Fit the configurations of one trajectory from ``seed`` in memory; one member row each.

    Parameters
    ----------
    experiments : sequence of sdn.config.ExperimentConfig
        One configuration, or a paper-budget one followed by its converged variant (checked to
        share the trajectory: same model, loss, learning rate; the variant runs at least the
        budget's epochs).
    room_config : sdn.config.RoomConfig
    seed : int
        The initial point (:func:`sdn.initialisation.perturb_parameters`).
    epochs : int, optional
        Overrides every configuration's epochs (quick runs).
    max_eval_seconds : float, optional
        Longest evaluation render, s (default :data:`sdn.train.MAX_EVAL_SECONDS`).
    target : sdn.rir.MeasuredRIR, optional
        Preloaded target.

    Returns
    -------
    list of dict
        Per configuration, in order: :data:`MEMBER_COLUMNS` (status "" until :func:`classify`)
        and the measures of :func:`sdn.results.metric_columns`; the same values as
        :func:`sdn.train.fit` of that configuration with this seed.

    Raises
    ------
    ValueError
        When the configurations do not share one trajectory.
    """
    import torch

    from . import train
    from .initialisation import perturb_parameters
    from .losses import SDNLoss
    from .optimisation import Diverged, PlateauStop, train_step, unit_norm_targets

    max_eval_seconds = train.MAX_EVAL_SECONDS if max_eval_seconds is None else max_eval_seconds
    experiments = [e.replace(training={"seed": int(seed), **({} if epochs is None else {"epochs": int(epochs)})})
                   for e in experiments]
    *budgets, last = experiments
    if any(not _shared_trajectory(b, last) for b in budgets):
        raise ValueError(f"{[e.name for e in experiments]} do not share one trajectory: they must differ only in "
                         f"when they stop, the last running at least the others' epochs")
    fs = last.model.sample_rate
    target = target if target is not None else room_config.load_target(sample_rate=fs)
    alpha = train.resolve_alpha(last, room_config, target.rt60 if target.rt60 else train._rt60(target.signal, fs))
    model = perturb_parameters(train.build_model(last, room_config, alpha), seed)
    y = unit_norm_targets(target.signal, model)
    loss_fn = SDNLoss(fs, weights=(last.loss.edc, last.loss.edr, last.loss.edp))
    optimizer = torch.optim.Adam(model.parameters(), lr=last.training.lr)
    t = last.training
    plateau = PlateauStop(t.patience, t.min_delta, t.min_epochs) if t.patience else None
    centres = [int(round(f)) for f in octave_band_centres(fs)]
    history, best, stopped, rows = [], None, None, {}

    def member(experiment) -> dict:
        evaluated = train.evaluated_model(model, best)
        trained, _ = train._model_metrics(evaluated, y, loss_fn, max_eval_seconds)
        return {"model": experiment.name, "seed": int(seed), "status": "", "epochs": len(history),
                "best_epoch": -1 if best is None else best["epoch"], "stopped": "" if stopped is None else str(stopped),
                "stable": bool(trained["stable"]), "wall_gain_max_db": results.wall_gain_db(evaluated),
                "config_hash": train.run_hash(experiment, room_config), **results.metric_columns(trained, centres)}

    for epoch in range(t.epochs):
        try:
            row, state = train_step(model, y, loss_fn, optimizer, epoch)
        except Diverged as err:
            stopped = err
            break
        history.append(row)
        if best is None or row["total"] < best["total"]:
            best = {"epoch": epoch, "total": row["total"], "state": state}
        for budget in budgets:
            if epoch + 1 == budget.training.epochs:
                rows[budget.name] = member(budget)
        if plateau is not None and plateau.update(row["total"]):
            break
    for experiment in experiments:  # the last one, and budgets not reached before a divergence
        rows.setdefault(experiment.name, member(experiment))
    return [rows[e.name] for e in experiments]


def rounding_spread(experiment, room_config, epochs: int = 5, target=None) -> dict:
    """How far rounding alone moves one fit's parameters within its first epochs: what a seed's
    perturbation (:mod:`sdn.initialisation`) must at least match.

    The same fit from the paper's initial model is run three times for ``epochs`` epochs, in
    memory: with the C kernels (as the study runs), with PyTorch only (``SDN_NATIVE=0``), and in
    float64 instead of float32. Each parameter element's difference is divided by its magnitude,
    floored at :data:`sdn.initialisation.FLOOR` like the perturbation.

    Parameters
    ----------
    experiment : sdn.config.ExperimentConfig
    room_config : sdn.config.RoomConfig
    epochs : int
        Epochs of each run.
    target : sdn.rir.MeasuredRIR, optional
        Preloaded target.

    Returns
    -------
    dict
        ``"kernels against PyTorch"`` and ``"float32 against float64"``, each ``(rms, max)`` of
        the relative differences over every parameter element (dimensionless).
    """
    import torch

    from . import train
    from .initialisation import FLOOR

    def parameters(native: bool, dtype) -> torch.Tensor:
        saved_native, saved_dtype = os.environ.get("SDN_NATIVE"), torch.get_default_dtype()
        os.environ["SDN_NATIVE"] = "1" if native else "0"
        torch.set_default_dtype(dtype)
        try:
            model = train.fit(experiment.replace(training={"seed": 0}), room_config, epochs=epochs, progress=False,
                              target=target, max_eval_seconds=0.1).model
        finally:
            torch.set_default_dtype(saved_dtype)
            if saved_native is None:
                os.environ.pop("SDN_NATIVE")
            else:
                os.environ["SDN_NATIVE"] = saved_native
        return torch.cat([p.detach().double().flatten() for p in model.parameters()])

    reference = parameters(True, torch.float32)
    spread = {}
    for name, other in (("kernels against PyTorch", parameters(False, torch.float32)),
                        ("float32 against float64", parameters(True, torch.float64))):
        relative = (other - reference).abs() / reference.abs().clamp_min(FLOOR)
        spread[name] = (float(relative.square().mean().sqrt()), float(relative.max()))
    return spread


def _worker_setup() -> None:
    import torch

    from .allocator import keep_freed_memory

    torch.set_num_threads(1)  # one process per core (benchmarks/README.md)
    keep_freed_memory()


def run_members(trajectories: Sequence[Sequence], room_config, seeds: Iterable[int], epochs: int | None = None,
                max_eval_seconds: float | None = None, workers: int | None = None) -> list[dict]:
    """:func:`fit_trajectory` for every trajectory and seed, in parallel processes.

    Parameters
    ----------
    trajectories : sequence of sequence of sdn.config.ExperimentConfig
        E.g. ``[[prior_fir0, converged_prior_fir0], ...]``.
    room_config : sdn.config.RoomConfig
    seeds : iterable of int
    epochs, max_eval_seconds
        As for :func:`fit_trajectory`.
    workers : int, optional
        Processes, each with one torch thread (default: one per core). 1 runs in this process, with
        one torch thread too.

    Returns
    -------
    list of dict
        Member rows, by trajectory then seed.
    """
    tasks = [(list(experiments), room_config, seed, epochs, max_eval_seconds)
             for experiments in trajectories for seed in seeds]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(tasks) <= 1:
        import torch

        # one thread, as in the workers and the study's notebooks: torch's own CPU operations
        # split their sums by the thread count, so a fit is the same bits only at the same count
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [row for task in tasks for row in fit_trajectory(*task)]
        finally:
            torch.set_num_threads(threads)
    # spawn: a fresh interpreter per worker, never a fork of a process that holds torch's threads
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_setup) as pool:
        futures = [pool.submit(fit_trajectory, *task) for task in tasks]
        return [row for future in futures for row in future.result()]


def rows_from_runs(runs: Mapping[str, "results.Run"]) -> list[dict]:
    """Member rows (seed 0) of single runs, from their run folders (:func:`sdn.results.read_runs`).

    The measures are those of ``metrics.json``, so seed 0 of the ensemble is the single run of the
    configuration, bit for bit.
    """
    rows = []
    for name, run in runs.items():
        trained, centres = run.metrics["trained"], results.band_centres(runs)
        history = (run.folder / "history.csv").read_text().strip().splitlines()[1:]
        best = run.metrics.get("best_epoch")
        rows.append({"model": name, "seed": int(run.config["experiment"]["training"].get("seed", 0)), "status": "",
                     "epochs": len(history), "best_epoch": -1 if best is None else int(best),
                     "stopped": run.metrics.get("stopped") or "", "stable": bool(trained.get("stable", True)),
                     "wall_gain_max_db": results.wall_gain_db(run.evaluated_model()),
                     "config_hash": run.config["hash"], **results.metric_columns(trained, centres)})
    return rows


def assemble(runs: Mapping[str, "results.Run"], members: pd.DataFrame | None = None) -> pd.DataFrame:
    """The classified ``ensemble.csv`` table: seed 0 of every run folder, the members of other seeds.

    Parameters
    ----------
    runs : mapping of str to sdn.results.Run
        The single runs (seed 0), e.g. every fit of the study.
    members : pandas.DataFrame, optional
        Rows of :func:`run_members` (as read from CSV by :func:`read_members`).

    Returns
    -------
    pandas.DataFrame
        :data:`MEMBER_COLUMNS` and the measures, sorted by model (the study's order) and seed,
        with ``status`` from :func:`classify`.

    Raises
    ------
    ValueError
        For a member whose configuration hash is not that of its model's run folder with its seed
        (members of an older configuration, or of a model without a run folder).
    """
    from .config import config_hash
    from .tables import study_order

    frame = pd.DataFrame(rows_from_runs(runs))
    if members is not None and len(members):
        for row in members.itertuples():
            config = runs[row.model].config if row.model in runs else None
            expected = None if config is None else config_hash(  # sdn.train.run_hash of the run with this seed
                {"experiment": {**config["experiment"], "training": {**config["experiment"]["training"],
                                                                     "seed": int(row.seed)}},
                 "room": config["room"]})
            if row.config_hash != expected:
                raise ValueError(f"ensemble member {row.model} seed {row.seed} was not fitted with the configuration "
                                 f"of runs/{row.model} (hash {row.config_hash}, expected {expected}): rerun "
                                 f"09_ensemble (python pipeline.py --only 09_ensemble)")
        frame = pd.concat([frame, members[frame.columns]], ignore_index=True)
    order = {name: i for i, name in enumerate(study_order(list(dict.fromkeys(frame["model"]))))}
    frame = frame.sort_values(["model", "seed"], key=lambda c: c.map(order) if c.name == "model" else c,
                              kind="stable").reset_index(drop=True)
    frame["stopped"] = frame["stopped"].fillna("")
    frame["status"] = classify(frame)
    return frame


def read_members(path) -> pd.DataFrame:
    """A member table written as CSV (``members.csv``, ``ensemble.csv``), with its text columns as text."""
    frame = pd.read_csv(path, dtype={"config_hash": str, "stopped": str, "status": str, "model": str})
    frame["stopped"] = frame["stopped"].fillna("")
    return frame


def classify(members: pd.DataFrame, by: str = "model", factor: float = FAR_ABOVE) -> pd.Series:
    """The status of every fit (see the module docstring): ok, diverged, unstable or far above.

    Parameters
    ----------
    members : pandas.DataFrame
        One row per fit: the column ``by`` (the ensemble a fit belongs to), ``loss_total``,
        ``stopped`` (empty or NaN when training ran to its end) and ``stable`` (bool).
    by : str
        The column naming each fit's ensemble.
    factor : float
        :data:`FAR_ABOVE`.

    Returns
    -------
    pandas.Series
        Aligned with ``members``.
    """
    stopped = members["stopped"].notna() & (members["stopped"].astype(str).str.len() > 0)
    unstable = ~members["stable"].astype(bool)
    status = pd.Series("ok", index=members.index, dtype=object)
    status[unstable] = "unstable"
    status[stopped] = "diverged"
    finished = ~(stopped | unstable)
    median = members["loss_total"].where(finished).groupby(members[by]).transform("median")
    status[finished & (members["loss_total"] > factor * median)] = "far above"
    return status


def _measures(columns: Iterable[str]) -> list[str]:
    """The measure columns of a member table: those after :data:`MEMBER_COLUMNS`, and the wall gain."""
    return ["wall_gain_max_db", *[c for c in columns if c not in MEMBER_COLUMNS]]


def summary_rows(members: pd.DataFrame, order: Sequence[str] | None = None) -> list[dict]:
    """One row per configuration of an ``ensemble.csv`` table (classified): the rows of ``summary.csv``.

    Parameters
    ----------
    members : pandas.DataFrame
        :data:`MEMBER_COLUMNS` with ``status`` filled in, and the measures.
    order : sequence of str, optional
        The configurations, in table order (default: as they first appear).

    Returns
    -------
    list of dict
        ``model``; every measure's median over the ``ok`` fits (``edc_error_db`` first), then
        ``<measure>_min`` and ``<measure>_max`` over them; ``n_seeds``, ``n_ok``, ``n_diverged``,
        ``n_unstable``, ``n_far_above``, ``failure_rate`` (share of fits not ok),
        ``wall_gain_max_db_all`` (the largest wall gain of any fit, failed ones included);
        ``config_hash`` of seed 0. NaN where no fit is ok or a measure was not measurable in any.
    """
    measures = _measures(members.columns)
    measures.remove("wall_gain_max_db")
    measures.append("wall_gain_max_db")  # the headline measure stays first
    rows = []
    for name in order or list(dict.fromkeys(members["model"])):
        fits = members[members["model"] == name]
        ok = fits[fits["status"] == "ok"]
        row = {"model": name}
        row.update({m: float(ok[m].median()) if len(ok) else math.nan for m in measures})
        for end in ("min", "max"):
            row.update({f"{m}_{end}": float(getattr(ok[m], end)()) if len(ok) else math.nan for m in measures})
        row["n_seeds"] = len(fits)
        row["n_ok"] = len(ok)
        for status in STATUSES[1:]:
            row[f"n_{status.replace(' ', '_')}"] = int((fits["status"] == status).sum())
        row["failure_rate"] = 1.0 - len(ok) / len(fits)
        row["wall_gain_max_db_all"] = float(fits["wall_gain_max_db"].max())  # failed fits included
        row["config_hash"] = fits.loc[fits["seed"] == fits["seed"].min(), "config_hash"].iloc[0]
        rows.append(row)
    return rows


def _ok_values(members: pd.DataFrame, name: str, measure: str) -> np.ndarray:
    fits = members[(members["model"] == name) & (members["status"] == "ok")]
    values = fits[measure].to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def compare(members: pd.DataFrame, a: str, b: str, measure: str = "edc_error_db") -> dict:
    """Two configurations' ``ok`` fits compared on one measure: a two-sided Mann-Whitney U test.

    Returns
    -------
    dict
        ``a``, ``b``, ``measure``, ``test`` ("Mann-Whitney U"), ``statistic`` (U of ``a``),
        ``p`` (two-sided), ``n_a``, ``n_b``, ``median_a``, ``median_b``.
    """
    from scipy.stats import mannwhitneyu

    x, y = _ok_values(members, a, measure), _ok_values(members, b, measure)
    statistic, p = mannwhitneyu(x, y, alternative="two-sided") if len(x) and len(y) else (math.nan, math.nan)
    return {"a": a, "b": b, "measure": measure, "test": "Mann-Whitney U", "statistic": float(statistic),
            "p": float(p), "n_a": len(x), "n_b": len(y), "median_a": float(np.median(x)) if len(x) else math.nan,
            "median_b": float(np.median(y)) if len(y) else math.nan}


def compare_with_value(members: pd.DataFrame, a: str, b: str, value: float, measure: str = "edc_error_db") -> dict:
    """A configuration's ``ok`` fits against one model's ``value`` (a baseline): a two-sided sign test.

    Returns
    -------
    dict
        As :func:`compare`, with ``test`` "sign test", ``statistic`` the number of fits below
        ``value`` (ties left out), ``n_b`` = 1 and ``median_b`` = ``value``.
    """
    from scipy.stats import binomtest

    x = _ok_values(members, a, measure)
    below, above = int((x < value).sum()), int((x > value).sum())
    p = binomtest(below, below + above).pvalue if below + above else math.nan
    return {"a": a, "b": b, "measure": measure, "test": "sign test", "statistic": float(below), "p": float(p),
            "n_a": len(x), "n_b": 1, "median_a": float(np.median(x)) if len(x) else math.nan, "median_b": float(value)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (the family-wise error rate of a page's claims).

    NaN p-values (no test possible) stay NaN and do not count.
    """
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full_like(p, np.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def claims(members: pd.DataFrame, measure: str = "edc_error_db") -> list[dict]:
    """Every comparison of the results page, tested, with Holm's correction over all of them.

    The questions: FIR-6 against scalar walls, with against without distance correction (each at
    both budgets), the converged variant against the paper's budget, and each paper configuration
    against the best baseline (the one with the lowest ``measure``). Configurations missing from
    ``members`` are left out.

    Parameters
    ----------
    members : pandas.DataFrame
        A classified ``ensemble.csv`` table (:func:`assemble`).
    measure : str
        The compared column (lower is better).

    Returns
    -------
    list of dict
        :func:`compare` or :func:`compare_with_value` results with ``question`` and ``p_adjusted``.
    """
    present = set(members["model"])
    questions = []
    for budget in ("", "converged_"):
        questions += [("FIR-6 against scalar walls", f"{budget}{walls}_fir6", f"{budget}{walls}_fir0")
                      for walls in ("prior", "correction")]
        questions += [("with against without distance correction", f"{budget}correction_{fir}", f"{budget}prior_{fir}")
                      for fir in ("fir0", "fir6")]
    questions += [("converged against the paper's budget", f"converged_{name}", name)
                  for name in study.PAPER_CONFIGURATIONS]
    found = []
    for question, a, b in questions:
        if a in present and b in present:
            found.append({"question": question, **compare(members, a, b, measure)})
    baselines = members[members["model"].isin(list(study.BASELINES)) & (members["status"] == "ok")]
    if len(baselines):
        best = baselines.loc[baselines[measure].idxmin()]
        found += [{"question": "trained against the best baseline",
                   **compare_with_value(members, name, best["model"], float(best[measure]), measure)}
                  for name in study.PAPER_CONFIGURATIONS if name in present]
    for result, p in zip(found, holm([r["p"] for r in found])):
        result["p_adjusted"] = p
    return found


def sentence(result: Mapping, p_adjusted: float, unit: str, label=study.label, decimals: int = 2) -> str:
    """One comparison, in words, with its test: which is lower, or that no difference was detected.

    Parameters
    ----------
    result : mapping
        From :func:`compare` or :func:`compare_with_value`.
    p_adjusted : float
        Its p-value after :func:`holm`; the claim is made when it is below :data:`ALPHA`.
    unit : str
        The measure's name and unit, e.g. ``"EDC error (dB)"``.
    label : callable
        Model name to words.
    decimals : int

    Returns
    -------
    str
    """
    a, b = label(result["a"]), label(result["b"])
    stat = "U" if result["test"] == "Mann-Whitney U" else "fits below"
    b_fits = "" if result["n_b"] == 1 else f", {result['n_b']} fits"
    numbers = (f"median {unit} {result['median_a']:.{decimals}f} ({result['n_a']} fits) against "
               f"{result['median_b']:.{decimals}f} ({b}{b_fits}); {result['test']}, {stat} = "
               f"{result['statistic']:g}, p = {result['p']:.3g}, Holm-adjusted {p_adjusted:.3g}")
    if not p_adjusted < ALPHA:
        return f"{a} against {b}: {numbers}: no difference detected at this sample size."
    lower = a if result["median_a"] < result["median_b"] else b
    return f"{a} against {b}: {numbers}: {lower} is lower."


def verdict(rerun: Mapping, committed: pd.DataFrame) -> tuple[str, str]:
    """How a rerun member compares with the committed ensemble.

    Parameters
    ----------
    rerun : mapping
        A member row (:func:`fit_trajectory`).
    committed : pandas.DataFrame
        The committed ``ensemble.csv`` (classified).

    Returns
    -------
    verdict : str
        One of :data:`VERDICTS`: every measure equal to the committed member of the same
        configuration and seed (NaN equal to NaN); else every measure of :data:`VERIFIED` within
        the minimum and maximum of the configuration's committed ``ok`` fits; else outside.
    detail : str
        The measures that differ, or lie outside, with their values.

    Raises
    ------
    KeyError
        When the committed ensemble has no fit of the rerun's configuration.
    """
    fits = committed[committed["model"] == rerun["model"]]
    if fits.empty:
        raise KeyError(f"the committed ensemble has no fit of {rerun['model']!r}")
    same = fits[fits["seed"] == rerun["seed"]]
    measures = [m for m in _measures(committed.columns) if m in rerun]
    if len(same):
        old = same.iloc[0]
        differ = [m for m in measures if not (old[m] == rerun[m] or (np.isnan(old[m]) and np.isnan(rerun[m])))]
        if not differ:
            return VERDICTS[0], f"{len(measures)} measures equal"
    ok = fits[fits["status"] == "ok"]
    outside = [f"{m} {rerun[m]:.4g} not in [{ok[m].min():.4g}, {ok[m].max():.4g}]" for m in VERIFIED
               if not ok[m].min() <= rerun[m] <= ok[m].max()]
    if not outside:
        return VERDICTS[1], ", ".join(f"{m} {rerun[m]:.4g} in [{ok[m].min():.4g}, {ok[m].max():.4g}]" for m in VERIFIED)
    return VERDICTS[2], "; ".join(outside)
