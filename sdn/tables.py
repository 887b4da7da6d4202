"""The book's tables: human headers with units, sensible rounding, no index column, no raw reprs.

Every function returns a pandas ``Styler``: its ``.data`` holds the numbers (in the units of the
headers, unrounded, for checks), and it displays as an HTML table in a notebook (or
``.to_html()``) with

- one header per column with its unit, e.g. ``EDC error (dB)``, ``T30 error (%)``;
- each column rounded to its own number of decimals, ``n/a`` where a value is missing or could
  not be measured;
- models by their labels (:mod:`sdn.study`), in the study's order, and no index column;
- the same HTML for the same table (its element id is a hash of its content, not pandas's random
  one), so that a rerun of the study writes the same files;
- at most the text column's width: a table scrolls sideways inside its own box (CSS
  ``display: block; overflow-x: auto``) instead of widening the page, and the wide band tables are
  split, one table per parameter (:func:`band_error_table`).

Relative errors are stored as fractions in ``metrics.json`` (0.05 = 5 %, the keys ``T30_err_mean``
etc. of :func:`sdn.evaluation.evaluate`) and in percent in the evaluation's ``summary.csv``
(``t30_error_pct`` etc.); both are shown in percent.

Needs pandas and jinja2 (the ``book`` extra).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import study

__all__ = ["Column", "COLUMNS", "HEADLINE", "HEADLINE_PCT", "NOT_MEASURABLE", "ENSEMBLE_CAPTION", "study_order",
           "format_table", "headline_table", "failures", "band_error_table", "sensitivity_table"]


class Column(NamedTuple):
    """How a quantity is shown: ``header`` (with its unit), ``decimals``, and ``scale``, the factor
    from the stored value to the unit of the header (100 for a fraction shown in %)."""

    header: str
    decimals: int
    scale: float = 1.0


#: The quantities of the study's tables, by their key in ``metrics.json`` / the summary rows.
COLUMNS = {
    "edc_error_db": Column("EDC error (dB)", 2),
    **{f"{p}_err_mean": Column(f"{p} error (%)", 1, 100.0) for p in ("T30", "T20", "EDT")},
    **{f"{p.lower()}_error_pct": Column(f"{p} error (%)", 1) for p in ("T30", "T20", "EDT")},
    **{p: Column(f"{p} (s)", 2) for p in ("T30", "T20", "EDT")},
    "C50": Column("C50 (dB)", 1),
    "C80": Column("C80 (dB)", 1),
    "C50_err": Column("C50 error (dB)", 1),
    "D50": Column("D50", 2),
    "DRR": Column("DRR (dB)", 1),
    **{f"loss_{t}": Column(f"{t.upper()} loss", 3) for t in ("edc", "edr", "edp")},
    "loss_total": Column("total loss", 3),
    "epochs": Column("epochs", 0),
    "seconds": Column("time (s)", 0),
}
#: The headline: the EDC error and the mean absolute octave-band T30 and EDT errors.
HEADLINE = ("edc_error_db", "T30_err_mean", "EDT_err_mean")
#: The same in the percent columns of the evaluation's ``summary.csv``.
HEADLINE_PCT = ("edc_error_db", "t30_error_pct", "edt_error_pct")
#: What ``n/a`` means in an octave-band table.
NOT_MEASURABLE = ("n/a: not measurable, the bottom of the decay range lies less than 10 dB above the level at "
                  "the end of the record (ISO 3382-1, 5.3.3); such bands are left out of the means.")
_STYLE = [{"selector": "", "props": [("display", "block"), ("overflow-x", "auto"), ("max-width", "100%")]},
          {"selector": "td", "props": [("text-align", "right")]},
          {"selector": "caption", "props": [("caption-side", "bottom"), ("text-align", "left")]}]


def study_order(names: Sequence[str]) -> list[str]:
    """``names`` in the study's order: the paper's configurations, each followed by its converged
    variant, then the baselines, then the released code's emulation.

    Raises
    ------
    KeyError
        For a name that is not a model of the study (:func:`sdn.study.label`).
    """
    for name in names:
        study.label(name)
    order = [n for p in study.PAPER_CONFIGURATIONS for n in (p, f"converged_{p}")]
    order += [*study.BASELINES, *study.FAITHFUL]
    return sorted(dict.fromkeys(names), key=order.index)


def _style(frame: pd.DataFrame):
    """``frame.style`` with no index, the book's table style and an element id from the content."""
    uuid = hashlib.sha256(frame.to_csv().encode()).hexdigest()[:10]
    return frame.style.set_uuid(uuid).hide(axis="index").set_table_styles(_STYLE)


def _styled(frame: pd.DataFrame, columns: Mapping, caption: str | None):
    """A Styler of ``frame`` (already in display units, human headers) with the given decimals."""
    formats = {column.header: f"{{:.{column.decimals}f}}" for column in columns.values()}
    styler = _style(frame).format(formats, na_rep="n/a")
    return styler.set_caption(caption) if caption else styler


def format_table(rows: pd.DataFrame, columns: Mapping[str, Column] | None = None, caption: str | None = None):
    """Present a table of per-model values: labels, human headers, units, rounding, no index.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per model: a ``model`` column (names of the study) and value columns keyed as in
        :data:`COLUMNS` (or in ``columns``); rows are put in the study's order.
    columns : mapping of str to Column, optional
        How to show columns that :data:`COLUMNS` does not know (e.g. ``{"T30_err_500":
        Column("T30 error 500 Hz (%)", 1, 100)}``); they take precedence.
    caption : str, optional
        One sentence under the table.

    Returns
    -------
    pandas.io.formats.style.Styler

    Raises
    ------
    ValueError
        For a column without a header (name it in ``columns``), or no ``model`` column.
    KeyError
        For a model that is not part of the study.
    """
    known = {**COLUMNS, **(columns or {})}
    if "model" not in rows.columns:
        raise ValueError(f"the table needs a 'model' column, got {list(rows.columns)}")
    unknown = [c for c in rows.columns if c != "model" and c not in known]
    if unknown:
        raise ValueError(f"columns {unknown} have no header: pass columns={{name: Column(header, decimals)}}")
    shown = {c: known[c] for c in rows.columns if c != "model"}
    rows = rows.set_index("model").loc[study_order(list(rows["model"]))]
    frame = pd.DataFrame({"model": [study.label(m) for m in rows.index]})
    for key, column in shown.items():
        frame[column.header] = rows[key].to_numpy(dtype=np.float64) * column.scale
    return _styled(frame, shown, caption)


def _headline_keys(rows: pd.DataFrame) -> tuple:
    """The headline's columns in ``rows``: :data:`HEADLINE` (fractions) or :data:`HEADLINE_PCT`."""
    for keys in (HEADLINE, HEADLINE_PCT):
        if all(key in rows.columns for key in keys):
            return keys
    raise ValueError(f"the rows need the columns {list(HEADLINE)} (fractions, as in metrics.json) or "
                     f"{list(HEADLINE_PCT)} (percent, as in summary.csv); got {list(rows.columns)}")


def headline_table(summary: pd.DataFrame, caption: str | None = None):
    """The headline: EDC error (dB) and mean octave-band T30 and EDT errors (%) per model.

    Parameters
    ----------
    summary : pandas.DataFrame
        Summary rows: ``model`` and either ``edc_error_db``, ``T30_err_mean``, ``EDT_err_mean``
        (fractions, as in ``metrics.json``) or ``edc_error_db``, ``t30_error_pct``,
        ``edt_error_pct`` (percent, as in ``tables/summary.csv``). When the rows are those of an
        ensemble (:func:`sdn.ensemble.summary_rows`: ``n_seeds`` and the ``_min``/``_max`` and
        ``n_<status>`` columns), these are medians, and the table adds their ranges, the largest
        wall gain over all fits and the failed fits (:data:`ENSEMBLE_CAPTION`).
    caption : str, optional
        One sentence under the table (e.g. what lower means); with an ensemble it follows
        :data:`ENSEMBLE_CAPTION`.

    Returns
    -------
    pandas.io.formats.style.Styler
        Columns ``model``, ``EDC error (dB)`` (2 decimals), ``T30 error (%)`` and ``EDT error
        (%)`` (1 decimal), then for an ensemble ``<error> range`` (min to max), ``largest wall
        gain (dB)``, ``seeds`` and ``failed`` (how many, the rate and why); the paper's
        configurations first, each converged variant right after its paper-budget row, then the
        baselines and the released code's emulation.

    Examples
    --------
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"model": ["untrained", "prior_fir0"], "edc_error_db": [25.47, 8.3],
    ...                         "T30_err_mean": [18.75, 1.5], "EDT_err_mean": [20.5, 0.25]})
    >>> headline_table(summary).data.values.tolist()
    [['scalar walls', 8.3, 150.0, 25.0], ['untrained SDN', 25.47, 1875.0, 2050.0]]

    In a notebook, from the evaluation's table (models the study does not know raise KeyError):

    >>> summary = pd.read_csv("results/tables/summary.csv")  # doctest: +SKIP
    >>> headline_table(summary, caption="Lower is better.")  # doctest: +SKIP
    """
    if "model" not in summary.columns:
        raise ValueError(f"the summary rows need a 'model' column, got {list(summary.columns)}")
    keys = _headline_keys(summary)
    if "n_seeds" not in summary.columns:
        return format_table(summary[["model", *keys]], caption=caption)
    rows = summary.set_index("model").loc[study_order(list(summary["model"]))]
    frame = pd.DataFrame({"model": [study.label(m) for m in rows.index]})
    shown = {key: COLUMNS[key] for key in keys}
    for key, column in shown.items():
        frame[column.header] = rows[key].to_numpy(dtype=np.float64) * column.scale
    for key, column in shown.items():
        low, high = (rows[f"{key}_{end}"].to_numpy(dtype=np.float64) * column.scale for end in ("min", "max"))
        frame[column.header.replace(" (", " range (")] = [
            "n/a" if np.isnan(a) else f"{a:.{column.decimals}f} to {b:.{column.decimals}f}" for a, b in zip(low, high)]
    gain = Column("largest wall gain (dB)", 2)
    frame[gain.header] = rows["wall_gain_max_db_all"].to_numpy(dtype=np.float64)
    frame["seeds"] = rows["n_seeds"].astype(int).to_numpy()
    frame["failed"] = [failures(row) for _, row in rows.iterrows()]
    caption = ENSEMBLE_CAPTION + (f" {caption}" if caption else "")
    return _styled(frame, {**shown, "gain": gain}, caption)


#: What the ensemble form of :func:`headline_table` shows.
ENSEMBLE_CAPTION = ("Medians and ranges (minimum to maximum) over the fits that did not fail, one per seed; "
                    "failed: training diverged, the trained response is unstable, or the final loss lies far above "
                    "the configuration's median (sdn.ensemble); n/a: every fit failed. Largest wall gain: the "
                    "highest |H(e^jw)| of any wall, over all fits (above 0 dB a wall adds energy).")


def failures(row) -> str:
    """The failed fits of a summary row in words, e.g. ``"2 of 8 (25 %): 1 unstable, 1 far above"``."""
    failed = int(row["n_seeds"] - row["n_ok"])
    if not failed:
        return "none"
    reasons = [f"{int(row[f'n_{s}'])} {s.replace('_', ' ')}" for s in ("diverged", "unstable", "far_above")
               if row[f"n_{s}"]]
    return f"{failed} of {int(row['n_seeds'])} ({100 * failed / row['n_seeds']:.0f} %): {', '.join(reasons)}"


def band_error_table(metrics: Mapping[str, Mapping], parameter: str = "T30", caption: str | None = None):
    """Signed relative errors of one parameter per octave band (%), one row per model.

    One table per parameter keeps it narrow (seven columns); ``n/a`` marks bands where the model's
    or the target's value cannot be measured (:data:`NOT_MEASURABLE`, the default caption).

    Parameters
    ----------
    metrics : mapping of str to mapping
        Model name -> its ``metrics.json`` entry ``trained``, with keys ``<parameter>_err_<f>``
        (f the band centre in Hz).
    parameter : {"T30", "T20", "EDT"}
    caption : str, optional
        Default :data:`NOT_MEASURABLE`.

    Returns
    -------
    pandas.io.formats.style.Styler
        Columns ``model`` and ``125 Hz`` ... ``4 kHz`` (1 decimal), headed by the parameter.

    Examples
    --------
    In a notebook, from the run folders (``<results>/runs/<model>/metrics.json``), one table per
    parameter:

    >>> import json  # doctest: +SKIP
    >>> metrics = {m: json.load(open(f"results/runs/{m}/metrics.json"))["trained"]
    ...            for m in ("prior_fir0", "prior_fir6")}  # doctest: +SKIP
    >>> for parameter in ("T30", "T20", "EDT"):  # doctest: +SKIP
    ...     display(band_error_table(metrics, parameter))
    """
    prefix = f"{parameter}_err_"
    names = list(metrics)
    bands = sorted({int(k[len(prefix):]) for m in metrics.values() for k in m if k[len(prefix):].isdigit()
                    and k.startswith(prefix)})
    if not bands:
        raise ValueError(f"no {prefix}<band> values in the metrics (keys of sdn.evaluation.evaluate)")
    columns = {f"{prefix}{f}": Column(f"{parameter} error, {f if f < 1000 else f // 1000}"
                                      f"{' Hz' if f < 1000 else ' kHz'} (%)", 1, 100.0) for f in bands}
    rows = pd.DataFrame([{"model": name, **{key: metrics[name].get(key, np.nan) for key in columns}}
                         for name in names])
    return format_table(rows, columns, caption if caption is not None else NOT_MEASURABLE)


def sensitivity_table(rows: pd.DataFrame, reference: str, caption: str | None = None):
    """Spread of the headline errors over microphone positions, one row per model and error.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per fit: ``model``, ``position`` (e.g. the room config's name) and the
        :data:`HEADLINE` columns (fractions for the relative errors) or the
        :data:`HEADLINE_PCT` ones (percent).
    reference : str
        The ``position`` of the calibrated estimate.
    caption : str, optional

    Returns
    -------
    pandas.io.formats.style.Styler
        Columns ``model``, ``error``, ``calibrated position``, ``mean``, ``min``, ``max``,
        ``max - min`` and ``positions`` (the number of positions, the calibrated one included);
        the errors in the units of the headline table, statistics over the positions where the
        error is measurable.

    Raises
    ------
    ValueError
        When a model has no fit at the ``reference`` position.

    Examples
    --------
    In a notebook, after fitting the paper's configurations with each room config of
    :func:`sdn.room_variants.write_room_variants` (one results folder per position, here
    ``results/positions/<room name>/runs/<model>/metrics.json``):

    >>> import json, pandas as pd  # doctest: +SKIP
    >>> rows = pd.DataFrame([{"model": m, "position": p,
    ...                       **json.load(open(f"results/positions/{p}/runs/{m}/metrics.json"))["trained"]}
    ...                      for p in positions for m in ("prior_fir0", "prior_fir6")])  # doctest: +SKIP
    >>> sensitivity_table(rows, reference="homula_s1_r2hom1")  # doctest: +SKIP
    """
    keys = _headline_keys(rows)
    out = []
    for name in study_order(list(dict.fromkeys(rows["model"]))):
        fits = rows[rows["model"] == name]
        at_reference = fits[fits["position"] == reference]
        if at_reference.empty:
            raise ValueError(f"model {name!r} has no fit at the reference position {reference!r}")
        for key in keys:
            column = COLUMNS[key]
            values = fits[key].to_numpy(dtype=np.float64) * column.scale
            out.append({"model": study.label(name), "error": column.header,
                        "calibrated position": float(at_reference[key].iloc[0]) * column.scale,
                        "mean": np.nanmean(values), "min": np.nanmin(values), "max": np.nanmax(values),
                        "max - min": np.nanmax(values) - np.nanmin(values), "positions": len(fits)})
    frame = pd.DataFrame(out)
    styler = _style(frame).format("{:d}", subset=["positions"])
    values = ["calibrated position", "mean", "min", "max", "max - min"]
    for i, header in enumerate(frame["error"]):  # each row in the decimals of its error
        decimals = next(c.decimals for c in COLUMNS.values() if c.header == header)
        styler = styler.format(f"{{:.{decimals}f}}", subset=pd.IndexSlice[[i], values], na_rep="n/a")
    return styler.set_caption(caption) if caption else styler
