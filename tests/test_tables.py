"""The presentation standard of the book's tables, on hand-made rows with known values."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdn import study, tables

SUMMARY = pd.DataFrame({
    "model": ["untrained", "faithful_prior_fir0", "prior_fir6", "converged_prior_fir0", "prior_fir0", "sabine"],
    "edc_error_db": [25.4653, 1.2345, 0.3449, 2.005, 8.30488, np.nan],
    "T30_err_mean": [18.7482, 0.0917, 0.1105, 0.30, 1.15205, 1.2614],
    "EDT_err_mean": [20.7221, 0.0551, 0.0, 0.12, 0.29304, 1.7020],
    "C50": [-9.8, 3.0, 2.0, 1.0, 5.7, 1.2],  # ignored by the headline
})


def cells(styler) -> list[list[str]]:
    """The table's body cells as the reader sees them."""
    html = styler.to_html()
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    return [re.findall(r"<td(?:\s[^>]*)?>(.*?)</td>", row, flags=re.S) for row in rows if "<td" in row]


def headers(styler) -> list[str]:
    return [h.strip() for h in re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", styler.to_html(), flags=re.S)]


def test_headline_table_values_order_labels_and_rounding():
    table = tables.headline_table(SUMMARY)
    assert headers(table) == ["model", "EDC error (dB)", "T30 error (%)", "EDT error (%)"]
    assert cells(table) == [
        ["scalar walls", "8.30", "115.2", "29.3"],
        ["scalar walls, converged", "2.00", "30.0", "12.0"],
        ["FIR-6 walls", "0.34", "11.1", "0.0"],
        ["untrained SDN", "25.47", "1874.8", "2072.2"],
        ["SDN, Sabine absorption", "n/a", "126.1", "170.2"],
        ["scalar walls, released code's behaviours", "1.23", "9.2", "5.5"],
    ]
    # the numbers behind the display are the summary's, in the headers' units
    data = table.data.set_index("model")
    assert data.loc["scalar walls", "T30 error (%)"] == pytest.approx(115.205)
    assert data.loc["FIR-6 walls", "EDC error (dB)"] == 0.3449


def test_tables_show_no_index_no_raw_reprs_and_scroll_instead_of_widening_the_page():
    html = tables.headline_table(SUMMARY).to_html()
    assert "row_heading" not in html and "index_name" not in html  # no index column
    for raw in ("np.float64", "edc_error_db", "T30_err_mean", "{", "nan"):
        assert raw not in html.split("</style>")[1], raw
    style = html.split("</style>")[0]
    assert "overflow-x: auto" in style and "display: block" in style and "max-width: 100%" in style


def test_the_same_table_is_the_same_html_and_another_table_has_another_id():
    """A rerun of the study writes the same files: no random element id (pandas's default)."""
    first, again = tables.headline_table(SUMMARY).to_html(), tables.headline_table(SUMMARY.copy()).to_html()
    assert first == again
    other = tables.headline_table(SUMMARY.iloc[:3]).to_html()
    ids = [re.search(r'<table id="(T_[^"]+)"', html).group(1) for html in (first, other)]
    assert ids[0] != ids[1]  # two tables on one page keep their own styles


def test_converged_variants_follow_their_configuration_and_unknown_models_are_refused():
    assert study.label("converged_correction_fir6") == f"{study.label('correction_fir6')}, converged"
    names = ["faithful_prior_fir0", "eyring", "converged_prior_fir6", "prior_fir6", "prior_fir0"]
    assert tables.study_order(names) == ["prior_fir0", "prior_fir6", "converged_prior_fir6", "eyring",
                                         "faithful_prior_fir0"]
    for bad in ("converged_sabine", "prior_fir7"):
        with pytest.raises(KeyError):
            tables.study_order([bad])


def test_format_table_needs_a_header_for_every_column():
    rows = SUMMARY[["model", "C50"]].assign(config_hash="abc")
    with pytest.raises(ValueError, match=r"\['config_hash'\] have no header"):
        tables.format_table(rows)
    table = tables.format_table(rows[["model", "C50"]], caption="Clarity of each model.")
    assert headers(table) == ["model", "C50 (dB)"] and cells(table)[0] == ["scalar walls", "5.7"]
    assert "<caption>Clarity of each model.</caption>" in table.to_html()
    with pytest.raises(ValueError, match="'model' column"):
        tables.format_table(SUMMARY[["C50"]])


def test_band_error_table_is_one_narrow_table_per_parameter_with_signed_percentages():
    metrics = {
        "prior_fir6": {"T30_err_125": float("nan"), "T30_err_250": 0.2762, "T30_err_4000": -0.0049,
                       "EDT_err_250": 0.5},
        "prior_fir0": {"T30_err_125": float("nan"), "T30_err_250": 0.9460, "T30_err_4000": 0.8858},
    }
    table = tables.band_error_table(metrics, "T30")
    assert headers(table) == ["model", "T30 error, 125 Hz (%)", "T30 error, 250 Hz (%)", "T30 error, 4 kHz (%)"]
    assert cells(table) == [["scalar walls", "n/a", "94.6", "88.6"], ["FIR-6 walls", "n/a", "27.6", "-0.5"]]
    assert tables.NOT_MEASURABLE in table.to_html()
    with pytest.raises(ValueError, match="T20_err_"):
        tables.band_error_table(metrics, "T20")


def test_sensitivity_table_gives_the_spread_over_positions():
    rows = pd.DataFrame({
        "model": ["prior_fir6"] * 4 + ["prior_fir0"] * 2,
        "position": ["calibrated", "runner_up1", "runner_up2", "runner_up3", "calibrated", "runner_up1"],
        "edc_error_db": [0.35, 0.80, 0.20, 0.50, 8.3, 7.1],
        "T30_err_mean": [0.11, 0.15, 0.05, 0.30, 1.15, 0.90],
        "EDT_err_mean": [0.30, 0.25, 0.20, 0.41, 0.29, 0.31],
    })
    table = tables.sensitivity_table(rows, reference="calibrated")
    assert headers(table) == ["model", "error", "calibrated position", "mean", "min", "max", "max - min",
                              "positions"]
    assert cells(table) == [
        ["scalar walls", "EDC error (dB)", "8.30", "7.70", "7.10", "8.30", "1.20", "2"],
        ["scalar walls", "T30 error (%)", "115.0", "102.5", "90.0", "115.0", "25.0", "2"],
        ["scalar walls", "EDT error (%)", "29.0", "30.0", "29.0", "31.0", "2.0", "2"],
        ["FIR-6 walls", "EDC error (dB)", "0.35", "0.46", "0.20", "0.80", "0.60", "4"],
        ["FIR-6 walls", "T30 error (%)", "11.0", "15.2", "5.0", "30.0", "25.0", "4"],
        ["FIR-6 walls", "EDT error (%)", "30.0", "29.0", "20.0", "41.0", "21.0", "4"],
    ]
    # the same fits with the errors in percent, as summary.csv holds them
    percent = rows.rename(columns={"T30_err_mean": "t30_error_pct", "EDT_err_mean": "edt_error_pct"})
    percent[["t30_error_pct", "edt_error_pct"]] *= 100
    assert cells(tables.sensitivity_table(percent, reference="calibrated")) == cells(table)
    with pytest.raises(ValueError, match="no fit at the reference position 'elsewhere'"):
        tables.sensitivity_table(rows, reference="elsewhere")


def test_headline_table_of_the_committed_summary_shows_its_numbers():
    summary = pd.read_csv(Path(__file__).resolve().parents[1] / "results/tables/summary.csv")
    table = tables.headline_table(summary)
    assert headers(table)[:4] == ["model", "EDC error (dB)", "T30 error (%)", "EDT error (%)"]
    by_label = {row[0]: row[1:] for row in cells(table)}
    assert len(by_label) == len(summary)
    for _, row in summary.iterrows():
        shown = by_label[study.label(row["model"])]
        medians = [f"{row[k]:.{tables.COLUMNS[k].decimals}f}" if row[k] == row[k] else "n/a"
                   for k in tables.HEADLINE_PCT]
        assert shown[:3] == medians, row["model"]
        if "n_seeds" in summary:  # an ensemble's: the ranges and the seeds beside the medians
            assert headers(table)[4:] == ["EDC error range (dB)", "T30 error range (%)", "EDT error range (%)",
                                          "largest wall gain (dB)", "seeds", "failed"]
            assert shown[3] == (f"{row['edc_error_db_min']:.2f} to {row['edc_error_db_max']:.2f}"
                                if row["n_ok"] else "n/a")
            assert shown[7] == str(int(row["n_seeds"]))
    with pytest.raises(ValueError, match="t30_error_pct"):
        tables.headline_table(summary[["model", "edc_error_db"]])
