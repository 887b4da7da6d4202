"""Figures of the study: each draws the quantity it names, readable at the text width."""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sdn  # noqa: E402
from sdn import plots, study_plots  # noqa: E402
from sdn.acoustics import normalized_echo_density  # noqa: E402
from sdn.features import mel_energy_decay_relief  # noqa: E402

FS = 16000
ROOM = sdn.Room((4.0, 5.5, 3.0), (1.2, 1.0, 1.4), (2.9, 3.8, 1.5))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def decaying_noise(seed: int, n: int = 8000, rt: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * 10 ** (-3 * np.arange(n) / (rt * FS))


def panels(fig):
    """Visible axes that hold data (not colour bars)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def columns(fig) -> int:
    return len({round(ax.get_position().x0, 3) for ax in panels(fig)})


def test_echo_density_profiles_draw_the_target_and_each_model():
    target = decaying_noise(0)
    irs = {"target": target, "a": decaying_noise(1, 12000), "b": decaying_noise(2), "c": decaying_noise(3)}
    fig = study_plots.echo_density_profiles(irs, FS)
    axes = panels(fig)
    assert len(axes) == 3 and columns(fig) == 2
    for ax, label in zip(axes, ("a", "b", "c")):
        target_line, model_line = ax.lines[:2]
        np.testing.assert_allclose(target_line.get_ydata(), normalized_echo_density(target, FS))
        np.testing.assert_allclose(model_line.get_ydata(), normalized_echo_density(irs[label][:8000], FS))
        assert any(np.all(np.asarray(line.get_ydata()) == 1.0) for line in ax.lines[2:])  # the Gaussian level
    with pytest.raises(ValueError, match="target"):
        study_plots.echo_density_profiles({"a": target}, FS)


def test_mel_edr_differences_are_model_minus_target_over_the_target_length():
    target = decaying_noise(0)
    model = decaying_noise(1, 12000, rt=0.8)
    fig = plots.mel_edr_differences(target, {"slow": model, "same, louder": 7.0 * target}, FS, limit_db=15.0)
    slow, same = (ax.images[0] for ax in panels(fig))

    def edr(h):
        h = torch.from_numpy(h)
        return mel_energy_decay_relief(h / h.norm(), FS).numpy()

    np.testing.assert_allclose(slow.get_array(), edr(model[:8000]) - edr(target), atol=1e-9)
    np.testing.assert_allclose(same.get_array(), 0.0, atol=1e-9)  # unit norm: the level cancels
    assert slow.get_clim() == (-15.0, 15.0)
    assert slow.get_array()[:, -20:].mean() > 5  # the slower decay holds more late energy: red


def test_band_errors_plot_signed_percentages_with_zero_line_and_clipped_outliers():
    metrics = {
        "a": {"T30_err_125": float("nan"), "T30_err_250": 0.10, "T30_err_500": -0.20, "EDT_err_125": 0.05,
              "EDT_err_250": 3.0, "EDT_err_500": 0.0, "T30_err_mean": 0.15},
        "b": {"T30_err_125": 0.01, "T30_err_250": 0.02, "T30_err_500": 0.03, "EDT_err_125": -0.5,
              "EDT_err_250": -0.1, "EDT_err_500": 0.2},
    }
    fig = study_plots.band_errors(metrics, parameters=("T30", "EDT"), limit_pct=100.0)
    t30, edt = panels(fig)
    assert columns(fig) == 1 and t30.get_yscale() == "linear"
    t30_lines = {line.get_label(): line for line in t30.lines}
    edt_lines = {line.get_label(): line for line in edt.lines}
    np.testing.assert_allclose(t30_lines["a"].get_xdata(), [125, 250, 500])
    np.testing.assert_allclose(t30_lines["a"].get_ydata(), [np.nan, 10.0, -20.0])
    np.testing.assert_allclose(edt_lines["b"].get_ydata(), [-50.0, -10.0, 20.0])
    np.testing.assert_allclose(edt_lines["a"].get_ydata(), [5.0, 100.0, 0.0])  # 300 % drawn at the limit
    assert [text.get_text() for text in edt.texts] == ["+300 %"]
    for ax in (t30, edt):
        assert any(np.all(np.asarray(line.get_ydata()) == 0.0) for line in ax.lines)
    assert t30.get_ylabel() == "T30 error (%)"


def fir_model(gain: float) -> sdn.SDN:
    model = sdn.SDN(ROOM, fir_order=2, alpha=0.3)
    with torch.no_grad():
        model.wall_taps.zero_()
        model.wall_taps[:, 0] = 0.5
        model.wall_taps[2:4, 0] = gain  # two walls with a flat gain: max |H| is exactly |gain|
    return model


def test_wall_responses_show_the_zero_line_and_the_passivity_status():
    passive, loud = sdn.SDN(ROOM, alpha=0.3), fir_model(1.2)
    models = {"passive": passive, "loud": loud}
    responses = {}
    for label, model in models.items():
        p = model.physical_parameters()
        responses[label] = (p["wall_response_freqs"], p["wall_response_db"])
    fig = plots.wall_responses(responses, passivity={k: m.stability() for k, m in models.items()})
    first, second = panels(fig)
    for ax, (label, (freqs, db)) in zip((first, second), responses.items()):
        np.testing.assert_allclose(ax.lines[0].get_ydata(), db[0, 1:].numpy())
        assert any(np.all(np.asarray(line.get_ydata()) == 0.0) for line in ax.lines)
    assert first.texts[0].get_text() == f"certified passive\nmax wall gain {20 * math.log10(math.sqrt(0.7)):+.2f} dB"
    assert second.texts[0].get_text() == f"not certified passive\nmax wall gain {20 * math.log10(1.2):+.2f} dB"
    assert not loud.stability().certified  # the loop between the two loud walls gains 1.44


def test_multi_panel_figures_use_at_most_two_columns():
    maps = {f"m{i}": np.random.default_rng(i).random((64, 50)) for i in range(3)}
    assert columns(plots.mel_edr_maps(maps, FS)) == 2
    history = [{"epoch": e, "total": 1 / (e + 1), "edc": 1.0, "edr": 2.0, "edp": 0.1} for e in range(5)]
    fig = plots.loss_curves({"run": history})
    assert columns(fig) == 2 and len(panels(fig)) == 4
    np.testing.assert_allclose(panels(fig)[0].lines[0].get_ydata(), [1 / (e + 1) for e in range(5)])


# ------------------------------------------------------------------ study_plots


def corrected_model(seed: int) -> sdn.SDN:
    model = sdn.SDN(ROOM, distance_correction=True, max_correction=0.5, correction_scale=10.0)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for name in ("source_node", "node_pair", "node_mic", "direct"):
            getattr(model, f"{name}_correction").copy_(0.1 * torch.randn(getattr(model, f"{name}_distance").shape,
                                                                         generator=generator))
    return model


def test_line_corrections_are_the_bounded_tanh_of_the_raw_parameters():
    model = corrected_model(0)
    corrections = study_plots.line_corrections(model)
    distances = {"source_node": ROOM.source_node_distances, "node_mic": ROOM.node_mic_distances,
                 "direct": np.array([ROOM.direct_distance])}
    for group in ("source_node", "node_mic", "direct"):
        delta = getattr(model, f"{group}_correction").detach().double().numpy()
        expected = np.minimum(0.5, distances[group] / 2) * np.tanh(10 * delta)
        np.testing.assert_allclose(corrections[group], expected, atol=1e-6)
    pairs = np.triu_indices(6, 1)
    delta = model.node_pair_correction.detach().double().numpy()
    expected = np.minimum(0.5, ROOM.node_node_distances[pairs] / 2) * np.tanh(10 * delta)
    np.testing.assert_allclose(corrections["node_node"], expected, atol=1e-6)
    for value in study_plots.line_corrections(sdn.SDN(ROOM)).values():  # float32 distances
        np.testing.assert_allclose(value, 0.0, atol=1e-6)


def test_distance_corrections_figure_has_one_panel_per_line_group_and_the_bars_are_the_corrections():
    models = {"one": corrected_model(0), "two": corrected_model(1)}
    fig = study_plots.distance_corrections(models)
    axes = panels(fig)
    assert len(axes) == len(study_plots.LINE_GROUPS) == 4 and columns(fig) == 2
    for ax, group in zip(axes, study_plots.LINE_GROUPS):
        heights = [bar.get_height() for bar in ax.patches]
        n = len(study_plots.LINE_GROUPS[group][1])
        np.testing.assert_allclose(heights[:n], study_plots.line_corrections(models["one"])[group], atol=1e-7)
        np.testing.assert_allclose(heights[n:], study_plots.line_corrections(models["two"])[group], atol=1e-7)
        assert {0.5, -0.5} <= {float(line.get_ydata()[0]) for line in ax.lines}
    with pytest.raises(ValueError, match="learn no distance correction"):
        study_plots.distance_corrections({"plain": sdn.SDN(ROOM)})


def test_extraction_weight_maps_place_each_weight_on_its_line():
    exact = sdn.SDN(ROOM)
    faithful = sdn.SDN(ROOM, quirks="summed_weights")
    with torch.no_grad():
        exact.log_extraction_weights.copy_(torch.log(torch.arange(1, 31, dtype=torch.float32).reshape(6, 5) / 30))
    fig = study_plots.extraction_weights({"exact": exact, "faithful": faithful})
    first, second = panels(fig)
    image = first.images[0].get_array()
    assert np.all(np.ma.getmaskarray(image) == np.eye(6, dtype=bool))  # the diagonal is empty
    # node 0 reads its lines to walls 1..5 with weights 1..5 / 30; node 1 its lines to 0, 2..5
    np.testing.assert_allclose(image[0, 1:], np.arange(1, 6) / 30, rtol=1e-6)
    np.testing.assert_allclose(image[1, [0, 2, 3, 4, 5]], np.arange(6, 11) / 30, rtol=1e-6)
    assert "their sum 12.00" in second.get_title() and "sum" not in first.get_title()


def test_position_sensitivity_draws_every_position_and_marks_the_calibrated_one():
    errors = {"model A": {"cal": {"edc_error_db": 1.0, "T30_err_mean": 0.1, "EDT_err_mean": 0.2},
                          "alt1": {"edc_error_db": 2.0, "T30_err_mean": 0.3, "EDT_err_mean": 0.1},
                          "alt2": {"edc_error_db": 0.5, "T30_err_mean": 0.2, "EDT_err_mean": 0.4}},
              "model B": {"cal": {"edc_error_db": 3.0, "T30_err_mean": 0.5, "EDT_err_mean": 0.6}}}
    fig = study_plots.position_sensitivity(errors, "cal")
    edc, t30, edt = panels(fig)
    assert columns(fig) == 1
    span, others, calibrated = edc.lines[:3]
    np.testing.assert_allclose(span.get_ydata(), [0.5, 2.0])
    np.testing.assert_allclose(others.get_ydata(), [2.0, 0.5])
    np.testing.assert_allclose(calibrated.get_ydata(), [1.0])
    np.testing.assert_allclose(t30.lines[2].get_ydata(), [10.0])  # fractions shown in %
    np.testing.assert_allclose(edt.lines[1].get_ydata(), [10.0, 40.0])
    assert [t.get_text() for t in edt.get_xticklabels()] == ["model A", "model B"]
