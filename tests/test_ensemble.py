"""Ensembles (sdn.ensemble, sdn.initialisation): what a seed does, shared trajectories, failure
classification, the median/range table, the tests behind comparison sentences, and the verdicts
of a verification on another machine."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import pipeline  # noqa: E402

from sdn import ensemble, initialisation, results, study, train  # noqa: E402
from sdn.config import load_experiment, load_room_config  # noqa: E402

ROOM = REPO / study.ROOM


def experiment(name: str):
    return load_experiment(REPO / "config" / "experiments" / f"{name}.yaml")


def initial_model(name: str = "correction_fir6"):
    return train.build_model(experiment(name), load_room_config(ROOM), 0.02)


# ---------------------------------------------------------------------------------------------
# What a seed does


def test_seed_zero_is_the_papers_initial_model():
    model, reference = initial_model(), initial_model()
    initialisation.perturb_parameters(model, 0)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("name", ["prior_fir0", "correction_fir6"])
def test_a_seed_moves_every_parameter_by_at_most_the_stated_relative_amount(name):
    reference = initial_model(name)
    moved = initialisation.perturb_parameters(initial_model(name), 7)
    eps, floor = initialisation.RELATIVE, initialisation.FLOOR
    ratios = []
    for (key, p), q in zip(moved.named_parameters(), reference.parameters()):
        scale = q.detach().double().abs().clamp_min(floor)
        ratio = (p.detach().double() - q.detach().double()).abs() / scale
        # at most eps, up to the rounding of the result to the parameter's dtype
        assert ratio.max() <= eps * (1 + 1e-5), key
        assert (ratio > 0).all(), f"{key}: an element was not moved"
        ratios.append(ratio.flatten())
    ratios = torch.cat(ratios)
    # uniform on [-eps, eps): the largest of many draws comes close to eps, the RMS near eps / sqrt(3)
    assert ratios.max() > 0.9 * eps
    assert ratios.square().mean().sqrt() == pytest.approx(eps / math.sqrt(3), rel=0.25)


def test_a_seed_gives_the_same_bits_every_time_and_another_seed_other_ones():
    first = initialisation.perturb_parameters(initial_model(), 3)
    again = initialisation.perturb_parameters(initial_model(), 3)
    other = initialisation.perturb_parameters(initial_model(), 4)
    for (key, a), b, c in zip(first.named_parameters(), again.parameters(), other.parameters()):
        assert torch.equal(a, b), key
        assert not torch.equal(a, c), key


def test_the_perturbation_does_not_depend_on_torchs_global_generator():
    torch.manual_seed(1)
    a = initialisation.perturb_parameters(initial_model(), 5)
    torch.manual_seed(2)
    b = initialisation.perturb_parameters(initial_model(), 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_rounding_spread_is_small_after_one_epoch_and_below_the_perturbation():
    """Rounding (C kernels against PyTorch, float32 against float64) moves a fit's parameters
    after one epoch by far less than a seed's perturbation: the perturbation is what separates
    the members, not the machine."""
    spread = ensemble.rounding_spread(experiment("prior_fir6"), load_room_config(ROOM), epochs=1)
    assert set(spread) == {"kernels against PyTorch", "float32 against float64"}
    for rms, largest in spread.values():
        assert 0 <= rms <= largest < initialisation.RELATIVE / 100


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        initialisation.perturb_parameters(initial_model(), -1)


# ---------------------------------------------------------------------------------------------
# One trajectory, two configurations


def test_one_trajectory_gives_the_same_members_as_separate_fits():
    """fit_trajectory (budget 2 epochs, converged variant 4) equals sdn.train.fit of each, bit
    for bit, at a seed > 0: the ensemble's members are the fits the study's pages would make."""
    room = load_room_config(ROOM)
    budget = experiment("correction_fir0").replace(training={"epochs": 2})
    converged = experiment("converged_correction_fir0").replace(training={"epochs": 4, "min_epochs": 2})
    rows = ensemble.fit_trajectory([budget, converged], room, seed=2, max_eval_seconds=1.0)
    assert [r["model"] for r in rows] == ["correction_fir0", "converged_correction_fir0"]
    for config, row in zip((budget, converged), rows):
        single = train.fit(config.replace(training={"seed": 2}), room, progress=False, max_eval_seconds=1.0)
        expected = results.metric_columns(single.metrics["trained"], [125, 250, 500, 1000, 2000, 4000])
        for key, value in expected.items():
            assert row[key] == value or (math.isnan(value) and math.isnan(row[key])), (config.name, key)
        assert row["epochs"] == len(single.history) and row["best_epoch"] == single.metrics["best_epoch"]
        assert row["config_hash"] == single.config["hash"]
        assert row["seed"] == 2 and row["status"] == ""


def test_configurations_that_do_not_share_a_trajectory_are_refused():
    room = load_room_config(ROOM)
    with pytest.raises(ValueError, match="share one trajectory"):
        ensemble.fit_trajectory([experiment("prior_fir0"), experiment("converged_prior_fir6")], room, 1, epochs=1)
    # a converged variant that may stop before the budget's last epoch
    early = experiment("converged_prior_fir0").replace(training={"min_epochs": 10})
    with pytest.raises(ValueError, match="share one trajectory"):
        ensemble.fit_trajectory([experiment("prior_fir0"), early], room, 1)


# ---------------------------------------------------------------------------------------------
# Failures, the median/range table


def members_frame(rows) -> pd.DataFrame:
    columns = ["model", "seed", "loss_total", "stopped", "stable"]
    return pd.DataFrame(rows, columns=columns)


def test_classify_names_diverged_unstable_and_failed_optimisations():
    frame = members_frame([
        ("a", 0, 0.10, "", True), ("a", 1, 0.12, "", True), ("a", 2, 0.08, "", True),
        ("a", 3, 0.25, "", True),                      # 2.5 x the median of the finished fits
        ("a", 4, 0.05, "epoch 3: non-finite loss", True), ("a", 5, 0.09, "", False),
        ("b", 0, 0.25, "", True), ("b", 1, 0.20, "", True),  # the same loss is fine in another ensemble
    ])
    status = ensemble.classify(frame).tolist()
    assert status == ["ok", "ok", "ok", "far above", "diverged", "unstable", "ok", "ok"]


def test_far_above_is_relative_to_the_median_and_strict():
    losses = [0.1, 0.1, 0.2, 0.2000001]
    frame = members_frame([("a", i, loss, "", True) for i, loss in enumerate(losses)])
    # median 0.15: 2 x 0.15 = 0.3, nothing above; with a factor of 1.3 the two largest fail
    assert (ensemble.classify(frame) == "ok").all()
    assert ensemble.classify(frame, factor=1.3).tolist() == ["ok", "ok", "far above", "far above"]
    # stopped as read from CSV (NaN for an empty cell) counts as not stopped
    frame["stopped"] = np.nan
    assert (ensemble.classify(frame) == "ok").all()


def synthetic_members(rng) -> pd.DataFrame:
    rows = []
    for model, n in (("prior_fir0", 8), ("prior_fir6", 5), ("untrained", 1)):
        for seed in range(n):
            rows.append({"model": model, "seed": seed, "status": "", "epochs": 300, "best_epoch": 299,
                         "stopped": "", "stable": True, "wall_gain_max_db": rng.normal(),
                         "config_hash": f"{model}{seed}", "edc_error_db": rng.uniform(1, 5),
                         "t30_error_pct": rng.uniform(1, 50), "edt_error_pct": rng.uniform(1, 50),
                         "loss_total": rng.uniform(0.05, 0.1)})
    frame = pd.DataFrame(rows)
    frame.loc[3, "t30_error_pct"] = np.nan  # not measurable in one fit
    frame.loc[5, "stable"] = False
    frame["status"] = ensemble.classify(frame)
    return frame


def test_summary_rows_equal_an_independent_groupby_of_a_written_csv(tmp_path):
    frame = synthetic_members(np.random.default_rng(0))
    results.write_csv(frame.to_dict("records"), tmp_path / "ensemble.csv")
    members = ensemble.read_members(tmp_path / "ensemble.csv")
    summary = pd.DataFrame(ensemble.summary_rows(members)).set_index("model")
    ok = members[members["status"] == "ok"].groupby("model")
    for measure in ("edc_error_db", "t30_error_pct", "loss_total", "wall_gain_max_db"):
        pd.testing.assert_series_equal(summary[measure], ok[measure].median(), check_names=False)
        pd.testing.assert_series_equal(summary[f"{measure}_min"], ok[measure].min(), check_names=False)
        pd.testing.assert_series_equal(summary[f"{measure}_max"], ok[measure].max(), check_names=False)
    assert summary["n_seeds"].to_dict() == {"prior_fir0": 8, "prior_fir6": 5, "untrained": 1}
    assert summary.at["prior_fir0", "n_unstable"] == 1 and summary.at["prior_fir0", "n_ok"] == 7
    assert summary.at["prior_fir0", "failure_rate"] == pytest.approx(1 / 8)
    assert summary.at["prior_fir0", "wall_gain_max_db_all"] == members.loc[:7, "wall_gain_max_db"].max()
    assert summary.at["prior_fir6", "config_hash"] == "prior_fir60"
    assert list(summary.columns)[0] == "edc_error_db"  # the headline measure first, as read_summary wants


def test_headline_table_shows_medians_ranges_seeds_and_failures():
    from sdn import tables

    frame = synthetic_members(np.random.default_rng(1))
    summary = pd.DataFrame(ensemble.summary_rows(frame))
    table = tables.headline_table(summary).data.set_index("model")
    row = summary.set_index("model").loc["prior_fir0"]
    shown = table.loc[study.label("prior_fir0")]
    assert shown["EDC error (dB)"] == row["edc_error_db"]
    assert shown["EDC error range (dB)"] == f"{row['edc_error_db_min']:.2f} to {row['edc_error_db_max']:.2f}"
    assert shown["seeds"] == 8 and shown["failed"] == "1 of 8 (12 %): 1 unstable"
    assert table.loc[study.label("prior_fir6"), "failed"] == "none"
    assert "Medians and ranges" in tables.headline_table(summary).caption


# ---------------------------------------------------------------------------------------------
# Claims


def separated(n: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = [{"model": m, "seed": s, "status": "ok", "edc_error_db": rng.normal() + (shift if m == "prior_fir0" else 0)}
            for m in ("prior_fir6", "prior_fir0") for s in range(n)]
    return pd.DataFrame(rows)


def test_compare_claims_a_clear_difference_and_nothing_from_two_seeds():
    clear = ensemble.compare(separated(8, 10.0), "prior_fir6", "prior_fir0")
    assert clear["n_a"] == clear["n_b"] == 8 and clear["statistic"] == 0.0  # no fit of a above one of b
    assert clear["p"] < 0.001
    text = ensemble.sentence(clear, clear["p"], "EDC error (dB)")
    assert "Mann-Whitney U" in text and text.endswith(f"{study.label('prior_fir6')} is lower.")
    tiny = ensemble.compare(separated(2, 10.0), "prior_fir6", "prior_fir0")
    assert tiny["p"] > ensemble.ALPHA  # two against two can never reach 5 %
    assert ensemble.sentence(tiny, tiny["p"], "EDC error (dB)").endswith(
        "no difference detected at this sample size.")


def test_compare_with_a_baseline_is_a_sign_test():
    frame = separated(8, 0.0)
    values = np.sort(frame.loc[frame["model"] == "prior_fir6", "edc_error_db"].to_numpy())
    result = ensemble.compare_with_value(frame, "prior_fir6", "sabine", float(values[5]) + 1e-9)
    assert result["test"] == "sign test" and result["statistic"] == 6  # six of the eight fits below
    assert result["p"] == pytest.approx(2 * (1 + 8 + 28) / 256)       # P(X <= 2) twice, X ~ B(8, 1/2)


def test_holm_adjusts_in_order_and_keeps_nan():
    assert ensemble.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = ensemble.holm([0.5, float("nan"), 0.02])
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_claims_cover_every_question_of_the_results_page():
    frame = synthetic_members(np.random.default_rng(2))
    extra = frame[frame["model"] == "prior_fir0"].assign(model="converged_prior_fir0")
    found = ensemble.claims(pd.concat([frame, extra], ignore_index=True))
    questions = {(r["question"], r["a"], r["b"]) for r in found}
    assert questions == {("FIR-6 against scalar walls", "prior_fir6", "prior_fir0"),
                         ("converged against the paper's budget", "converged_prior_fir0", "prior_fir0"),
                         ("trained against the best baseline", "prior_fir0", "untrained"),
                         ("trained against the best baseline", "prior_fir6", "untrained")}
    assert [r["p_adjusted"] for r in found] == pytest.approx(ensemble.holm([r["p"] for r in found]))


# ---------------------------------------------------------------------------------------------
# Verification


def committed_frame() -> pd.DataFrame:
    rows = [{"model": "correction_fir6", "seed": s, "status": "ok", "edc_error_db": e, "t30_error_pct": t,
             "edt_error_pct": 10.0 + s, "loss_total": loss, "wall_gain_max_db": 0.5, "C50": float("nan")}
            for s, (e, t, loss) in enumerate([(2.0, 10.0, 0.08), (2.5, 12.0, 0.09), (3.0, 14.0, 0.10)])]
    return pd.DataFrame(rows)


def test_verdicts_bit_identical_within_and_outside_the_committed_range():
    committed = committed_frame()
    rerun = committed.iloc[1].to_dict()
    assert ensemble.verdict(rerun, committed)[0] == "bit-identical"  # NaN equals NaN
    moved = {**rerun, "edc_error_db": 2.5000001}
    verdict, detail = ensemble.verdict(moved, committed)
    assert verdict == "within the committed ensemble's range" and "edc_error_db" in detail
    far = {**rerun, "loss_total": 0.2}
    verdict, detail = ensemble.verdict(far, committed)
    assert verdict == "outside the committed ensemble's range" and detail.startswith("loss_total 0.2 not in")
    new_seed = {**rerun, "seed": 9}
    assert ensemble.verdict(new_seed, committed)[0] == "within the committed ensemble's range"
    with pytest.raises(KeyError, match="prior_fir0"):
        ensemble.verdict({**rerun, "model": "prior_fir0"}, committed)


# ---------------------------------------------------------------------------------------------
# The quick study (tests/conftest.py runs it once per session)


@pytest.mark.slow
def test_quick_ensemble_table_holds_every_seed_and_seed_zero_is_the_run(quick_study):
    results_dir, _ = quick_study
    members = ensemble.read_members(results_dir / "tables" / "ensemble.csv")
    n_seeds = next(r for r in pipeline.RUNS if r.name == "09_ensemble").quick["n_seeds"]
    for name in [*study.PAPER_CONFIGURATIONS, *study.CONVERGED]:
        assert sorted(members.loc[members["model"] == name, "seed"]) == list(range(n_seeds)), name
    assert set(members["status"]) <= set(ensemble.STATUSES)
    check_seed_zero_is_the_single_run(results_dir, members)
    # members fitted with another configuration than the run folders' (a stale members.csv) are refused
    runs = results.read_runs(results_dir / "runs", sorted(set(members["model"])))
    stale = ensemble.read_members(results_dir / "ensemble" / "members.csv")
    stale.loc[0, "seed"] += 100
    with pytest.raises(ValueError, match=f"{stale.loc[0, 'model']} seed {stale.loc[0, 'seed']} was not fitted"):
        ensemble.assemble(runs, stale)


def check_seed_zero_is_the_single_run(results_dir: Path, members: pd.DataFrame) -> None:
    runs = results.read_runs(results_dir / "runs", sorted(set(members["model"])))
    for name, run in runs.items():
        row = members[(members["model"] == name) & (members["seed"] == 0)].iloc[0]
        expected = results.metric_columns(run.metrics["trained"], results.band_centres(runs))
        for key, value in expected.items():
            assert row[key] == value or (math.isnan(value) and math.isnan(row[key])), (name, key)
        assert row["config_hash"] == run.config["hash"], name


@pytest.mark.slow
def test_verify_reruns_the_quick_ensemble_bit_for_bit(quick_study, capsys):
    """The quick form of ``python pipeline.py --verify``: on the machine that made them, seeds 0
    and 1 of the quick ensemble come out bit-identical, and both compute paths are printed."""
    results_dir, _ = quick_study
    status = pipeline.verify(pipeline.Study(results_dir, quick=True), seeds=(0, 1), workers=1)
    out = capsys.readouterr().out
    assert status == 0
    assert out.count(": bit-identical") == 2, out
    assert "committed (" in out and "this machine: kernels" in out


@pytest.mark.slow
def test_every_comparison_on_the_results_page_carries_its_test(quick_study):
    results_dir, _ = quick_study
    check_claims(results_dir)


def check_claims(results_dir: Path) -> None:
    """The results page's comparisons are made by code (no comparison typed into its Markdown), and
    every sentence the code writes names its test, its statistic and its p-values."""
    nb = nbformat.read(results_dir / "notebooks" / "05_results.ipynb", as_version=4)
    typed = " ".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    for word in ("lower than", "higher than", "better than", "worse than", "outperform", "beats"):
        assert word not in typed, f"typed comparison '{word}' in the results page's Markdown"
    shown = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "text/markdown" in o.get("data", {})]
    sentences = [line for text in shown for line in text.splitlines() if " against " in line and "median" in line]
    assert len(sentences) == len(ensemble.claims(ensemble.read_members(results_dir / "tables" / "ensemble.csv")))
    for line in sentences:
        assert re.search(r"(Mann-Whitney U, U|sign test, fits below) = [\d.]+, p = [\d.e-]+, Holm-adjusted", line), line
        assert line.endswith(("is lower.", "no difference detected at this sample size.")), line
