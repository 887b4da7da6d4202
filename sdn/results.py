"""The study's evaluation tables, from its run folders.

Every fit of the study writes a run folder (:mod:`sdn.train`): ``config.json``, ``metrics.json``,
``history.csv``, ``ir.wav`` (the evaluation render the metrics come from, which runs on until the
response has decayed, so it is longer than the target) and the weights. :func:`read_runs` reads
the folders of a list of models and checks that they were fitted to the same target;
:func:`metric_columns` gives the measures of one evaluated model, the columns of ``ensemble.csv``
and ``summary.csv`` (:mod:`sdn.ensemble`), and :func:`band_rows` the rows of ``bands.csv``:

measures of a model
    ``edc_error_db`` (EDC error against the target, dB, over the target's length);
    ``t30_error_pct``, ``t20_error_pct``, ``edt_error_pct`` (mean absolute relative error over the
    octave bands, percent); ``t30_err_<f>_pct`` (signed relative T30 error in the band of centre
    ``f`` Hz, percent); ``C50`` (dB), ``C50_err`` (dB, model minus target), ``D50``, ``DRR`` (dB);
    ``loss_edc``, ``loss_edr``, ``loss_edp``, ``loss_total`` (the loss terms of the evaluated,
    lowest-loss weights); and :func:`wall_gain_db`, the walls' largest gain (dB).
``bands.csv``, one row per model and octave band
    ``band_hz``; ``T30``, ``T20``, ``EDT`` of the model and ``T30_target``, ``T20_target``,
    ``EDT_target`` (seconds); ``T30_err_pct``, ``T20_err_pct``, ``EDT_err_pct`` (signed, percent).

A value that could not be measured (a decay that does not fall far enough within the render) is
NaN, written ``nan``.

Examples
--------
>>> from sdn import results, study
>>> runs = results.read_runs("results/runs", study.EVALUATED)   # doctest: +SKIP
>>> results.write_csv(results.band_rows(runs), "results/tables/bands.csv")  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .fileio import write_text
from .filterbank import octave_band_centres

__all__ = ["Run", "read_runs", "band_centres", "metric_columns", "wall_gain_db", "band_rows", "learned_parameters",
           "write_csv",
           "COLUMN_LABELS", "read_summary", "summary_table_html"]

DECAYS = ("T30", "T20", "EDT")
_COPIED = ("C50", "C50_err", "D50", "DRR", "loss_edc", "loss_edr", "loss_edp", "loss_total")


@dataclass(frozen=True)
class Run:
    """One run folder of the study.

    Attributes
    ----------
    name : str
        The experiment name (the folder's name).
    folder : pathlib.Path
    config : dict
        ``config.json``: the resolved experiment and room configs, ``resolved`` (initial
        absorption, target metadata, ``n_samples`` = the target's length) and the run's ``hash``.
    metrics : dict
        ``metrics.json``: ``target``, ``initial`` and ``trained`` entries of
        :func:`sdn.evaluation.evaluate`, ``stopped`` and ``best_epoch``.
    """

    name: str
    folder: Path
    config: dict
    metrics: dict

    @property
    def sample_rate(self) -> int:
        """Hz, of the model and of ``ir.wav``."""
        return int(self.config["experiment"]["model"]["sample_rate"])

    @property
    def n_samples(self) -> int:
        """The target's length in samples."""
        return int(self.config["resolved"]["n_samples"])

    def evaluated_model(self):
        """The weights its metrics describe (:func:`sdn.train.evaluated_model`): ``best.pt``, or
        ``model.pt`` for a run without epochs (a baseline)."""
        from .saved_model import load

        best = self.folder / "best.pt"
        return load(best if best.is_file() else self.folder / "model.pt")

    def impulse_response(self) -> np.ndarray:
        """``ir.wav``: the trained model's evaluation render (unit norm, float64, longer than the target)."""
        import soundfile as sf

        return sf.read(self.folder / "ir.wav", dtype="float64")[0]


def read_runs(runs_dir: str | os.PathLike, names: Sequence[str], room_config=None) -> dict:
    """The run folders ``<runs_dir>/<name>`` of ``names``, checked to share one target.

    Parameters
    ----------
    runs_dir : str or os.PathLike
        The folder holding one run folder per model (``<results>/runs``).
    names : sequence of str
        Experiment names, in table order.
    room_config : sdn.config.RoomConfig, optional
        The room every run must have been fitted on, to its target (same name, same length).

    Returns
    -------
    dict of str to Run
        In the order of ``names``.

    Raises
    ------
    FileNotFoundError
        For a model without a finished run (no ``metrics.json``), naming the pipeline command that
        makes it.
    ValueError
        For runs fitted to different rooms or targets, or to another than ``room_config``'s.
    """
    runs_dir = Path(runs_dir)
    missing = [name for name in names if not (runs_dir / name / "metrics.json").is_file()]
    if missing:
        raise FileNotFoundError(f"no finished run for {missing} in {runs_dir}: run "
                                + " ".join(f"`python pipeline.py --only 02_train_{m}`" for m in missing))
    runs = {}
    for name in names:
        folder = runs_dir / name
        runs[name] = Run(name, folder, json.loads((folder / "config.json").read_text()),
                         json.loads((folder / "metrics.json").read_text()))
    targets = {(r.config["room"]["name"], r.n_samples, r.sample_rate) for r in runs.values()}
    if len(targets) > 1:
        raise ValueError(f"the runs in {runs_dir} were fitted to different targets (room, samples, Hz): "
                         f"{sorted(targets)}; rerun them with one room config")
    (room, length, rate), = targets
    if room_config is not None:
        expected = (room_config.name, len(room_config.load_target(sample_rate=rate)))
        if (room, length) != expected:
            raise ValueError(f"the runs in {runs_dir} were fitted to room {room!r} ({length} samples), not to "
                             f"{expected[0]!r} ({expected[1]} samples): rerun the 02_train pages with this room")
    return runs


def band_centres(runs: Mapping[str, Run]) -> list[int]:
    """Octave-band centres of the runs' metrics, Hz (:func:`sdn.filterbank.octave_band_centres`)."""
    return [int(round(f)) for f in octave_band_centres(next(iter(runs.values())).sample_rate)]


def _number(value) -> float:
    return math.nan if value is None else float(value)


def metric_columns(trained: Mapping, centres: Sequence[int]) -> dict:
    """The measures of one evaluated model as table columns (see the module docstring).

    Parameters
    ----------
    trained : mapping
        Its entry of ``metrics.json`` (:func:`sdn.evaluation.evaluate` plus the loss terms).
    centres : sequence of int
        Octave-band centres, Hz (:func:`band_centres`).

    Returns
    -------
    dict
        ``edc_error_db`` first (the headline measure), then the reverberation-time errors in
        percent, the per-band T30 errors, and :data:`_COPIED`; NaN where not measurable.
    """
    row = {"edc_error_db": _number(trained["edc_error_db"])}
    row.update({f"{key.lower()}_error_pct": 100 * _number(trained[f"{key}_err_mean"]) for key in DECAYS})
    row.update({f"t30_err_{f}_pct": 100 * _number(trained[f"T30_err_{f}"]) for f in centres})
    row.update({key: _number(trained[key]) for key in _COPIED})
    return row


def wall_gain_db(model, n_freqs: int = 4097) -> float:
    """The walls' largest gain: :math:`\\max_{k, \\omega} 20 \\log_{10} |H_k(e^{j\\omega})|`, dB.

    Above 0 dB a wall adds energy at some frequency (it is not passive).

    Parameters
    ----------
    model : sdn.SDN
    n_freqs : int
        Frequencies from 0 to the Nyquist frequency, evenly spaced: 4097 (a 2 Hz step at 16 kHz)
        resolve every peak of the study's filters of at most 7 taps, whose responses vary over
        hundreds of hertz.

    Returns
    -------
    float
    """
    import torch

    with torch.no_grad():
        taps = model.wall_filters().detach().double().cpu()
        gain = torch.fft.rfft(taps, n=2 * (n_freqs - 1), dim=-1).abs().max()
    return float(20 * torch.log10(gain))


def band_rows(runs: Mapping[str, Run]) -> list[dict]:
    """One row per run and octave band: the columns of ``bands.csv`` (see the module docstring).
    ``runs`` as for :func:`read_runs`; returns a list of dicts."""
    rows = []
    for name, run in runs.items():
        trained, target = run.metrics["trained"], run.metrics["target"]
        for f in band_centres(runs):
            row = {"model": name, "band_hz": f}
            for key in DECAYS:
                row[key] = _number(trained[f"{key}_{f}"])
                row[f"{key}_target"] = _number(target[f"{key}_{f}"])
                row[f"{key}_err_pct"] = 100 * _number(trained[f"{key}_err_{f}"])
            rows.append(row)
    return rows


def learned_parameters(model) -> dict:
    """What training changed, in physical terms, for a table of the trained models.

    Parameters
    ----------
    model : sdn.SDN
        A trained model (one position).

    Returns
    -------
    dict
        ``wall gain at DC, min`` and ``max`` (sum of each wall filter's taps), ``admittance min``
        (off the diagonal) and ``max``, ``extraction weight mean``, ``max |distance change| (m)``
        (largest distance correction) and ``passive`` (:meth:`sdn.SDN.stability` certifies it).
    """
    import torch

    from .model import SDN

    p = model.physical_parameters()
    taps_sum = p["wall_taps"].sum(-1)
    off_diagonal = p["admittances"][~torch.eye(p["admittances"].shape[-1], dtype=torch.bool)]
    geometric = SDN.from_config({**model.config, "distance_correction": False}, dtype=model.dtype).distances()
    shift = max(float((p["distances"][k] - geometric[k].cpu()).abs().max()) for k in geometric)
    return {"wall gain at DC, min": float(taps_sum.min()), "wall gain at DC, max": float(taps_sum.max()),
            "admittance min": float(off_diagonal.min()), "admittance max": float(p["admittances"].max()),
            "extraction weight mean": float(p["extraction_weights"].mean()),
            "max |distance change| (m)": shift, "passive": bool(model.stability().certified)}


def write_csv(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Write table rows as CSV (atomically; numbers at full precision, NaN as ``nan``).

    Parameters
    ----------
    rows : sequence of mapping
        Rows with the same keys, in column order.
    path : str or os.PathLike
        The CSV file; its folder is created.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("nan" if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
    write_text(path, text.getvalue())
    return path


# ----------------------------------------------------------------------------------------------
# The results page (notebooks/05_results)

#: Human headers, with units, of the columns of ``summary.csv``; any other column keeps its name.
COLUMN_LABELS = {
    "edc_error_db": "EDC error (dB)", "t30_error_pct": "T30 error (%)", "t20_error_pct": "T20 error (%)",
    "edt_error_pct": "EDT error (%)",
    **{f"t30_err_{f}_pct": f"T30 error {f} Hz (%)" for f in (125, 250, 500, 1000, 2000, 4000)},
    "C50": "C50 (dB)", "C50_err": "C50 error (dB)", "D50": "D50", "DRR": "DRR (dB)", "loss_edc": "loss EDC",
    "loss_edr": "loss EDR", "loss_edp": "loss EDP", "loss_total": "loss (total)", "config_hash": "config hash",
    "wall_gain_max_db": "largest wall gain (dB)", "wall_gain_max_db_all": "largest wall gain, all fits (dB)",
    "n_seeds": "seeds", "n_ok": "fits not failed", "n_diverged": "diverged", "n_unstable": "unstable",
    "n_far_above": "far above", "failure_rate": "failure rate",
}
COLUMN_LABELS.update({f"{key}_{end}": f"{label}, {end}" for key, label in list(COLUMN_LABELS.items())
                      for end in ("min", "max") if key != "config_hash" and not key.startswith("n_")})
_TEXT_COLUMNS = ("config_hash",)  # identifies the run; every other column is a number


def read_summary(path: str | os.PathLike, models: Sequence[str]):
    """``summary.csv`` as a table indexed by model, checked to be the one the results page can show.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV (``<results>/tables/summary.csv``).
    models : sequence of str
        The models it must hold (it may hold more, e.g. the released code's emulation).

    Returns
    -------
    pandas.DataFrame
        Index ``model``; the first column is the headline measure.

    Raises
    ------
    FileNotFoundError
        When the file is missing (the pipeline writes it).
    ValueError
        For missing models, a non-numeric measure, or a text column first.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the experiment notebooks first (python pipeline.py)")
    summary = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS}).set_index("model")
    if not set(models) <= set(summary.index):
        raise ValueError(f"{path}: models {sorted(set(models) - set(summary.index))} are missing (it holds "
                         f"{sorted(summary.index)})")
    measures = [c for c in summary.columns if c not in _TEXT_COLUMNS]
    if not measures or not all(pd.api.types.is_numeric_dtype(summary[m]) for m in measures):
        raise ValueError(f"{path}: needs at least one measure column, all numeric (text only in {list(_TEXT_COLUMNS)})")
    if summary.columns[0] in _TEXT_COLUMNS:
        raise ValueError(f"{path}: the first column after 'model' must be the headline measure")
    return summary


def summary_table_html(summary, models: Mapping[str, str], table_id: str, decimals: int = 2) -> str:
    """Rows of :func:`read_summary`'s table as HTML: a description column, human headers, every
    number rounded to ``decimals`` (``n/a`` where it could not be measured), scrolling sideways.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`read_summary`.
    models : mapping of str to str
        The rows to show, in order, with their descriptions.
    table_id : str
        The ``id`` of the ``<table>``.
    decimals : int
        Digits after the point.

    Returns
    -------
    str
    """
    rows = summary.loc[list(models)]
    # counts too, so that every number has the same form
    rows = rows.astype({c: float for c in rows.columns if c not in _TEXT_COLUMNS}).rename(columns=COLUMN_LABELS)
    rows.insert(0, "description", [models[m] for m in rows.index])
    rows.index.name = "model"
    html = rows.to_html(float_format=lambda v: f"{v:.{decimals}f}", na_rep="n/a", table_id=table_id,
                        classes="sdn-results", border=0)
    return f'<div style="overflow-x: auto; max-width: 100%;">{html}</div>'

