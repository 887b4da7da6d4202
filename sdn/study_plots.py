"""Figures across the fits of a study: each model against the target (echo density, octave-band
errors), what the models learned, and how the errors move with the microphone position.

Like :mod:`sdn.plots`, every function returns one matplotlib figure, takes a mapping
``label -> item`` drawn in the mapping's order, and uses at most two columns of panels.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .closed_form import PAIRS
from .geometry import WALL_NAMES
from .model import SDN
from .plots import TARGET_LABEL, as_array, band_axis, colour_index, line_style, panel_grid

__all__ = ["LINE_GROUPS", "echo_density_profiles", "band_errors", "line_corrections", "distance_corrections",
           "extraction_weights", "position_sensitivity"]

#: The groups of lines of an SDN whose lengths the distance correction changes, with their labels.
LINE_GROUPS = {
    "source_node": ("source to node", list(WALL_NAMES)),
    "node_node": ("node to node", [f"{WALL_NAMES[k]}|{WALL_NAMES[l]}" for k, l in PAIRS.T.tolist()]),
    "node_mic": ("node to microphone", list(WALL_NAMES)),
    "direct": ("direct path", ["direct"]),
}


def echo_density_profiles(irs: Mapping, sample_rate: float, duration: float | None = None, figsize=None):
    """Normalised echo density profiles of the target and of each model, one panel per model.

    Parameters
    ----------
    irs : mapping of str to array or tensor, shape (T,)
        Label -> response, with the target under ``"target"``; the models are cut to the
        target's length.
    sample_rate : float
        Hz, of every response.
    duration : float, optional
        Seconds shown (default: the target's length).
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Per panel the target (black) and one model: the centred, hard-indicator profile of
        :func:`sdn.acoustics.normalized_echo_density` (1 for Gaussian noise, the dotted line).

    Examples
    --------
    In a notebook, with the target of the room config and each model's ``ir.wav``:

    >>> import soundfile as sf  # doctest: +SKIP
    >>> irs = {"target": target.signal.numpy(),
    ...        **{m: sf.read(f"results/runs/{m}/ir.wav")[0] for m in ("prior_fir0", "faithful_prior_fir0")}}  # doctest: +SKIP
    >>> fig = echo_density_profiles(irs, target.sample_rate, duration=0.3)  # doctest: +SKIP
    """
    from .acoustics import normalized_echo_density

    if TARGET_LABEL not in irs:
        raise ValueError(f"irs needs the target under {TARGET_LABEL!r}, got {list(irs)}")
    target = as_array(irs[TARGET_LABEL])
    n = target.shape[-1]
    t = np.arange(n) / sample_rate
    models = [label for label in irs if label != TARGET_LABEL]
    fig, axes = panel_grid(len(models), panel=(4.2, 2.6), figsize=figsize, sharex=True, sharey=True)
    for index, (ax, label) in enumerate(zip(axes, models)):
        ax.plot(t, normalized_echo_density(target, sample_rate), label=TARGET_LABEL, **line_style(TARGET_LABEL, 0))
        ax.plot(t, normalized_echo_density(as_array(irs[label])[:n], sample_rate), label=label, **line_style(label, index))
        ax.axhline(1.0, color="0.5", ls=":", lw=0.8)
        ax.set_xlim(0, duration or t[-1])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("echo density")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def band_errors(metrics: Mapping, parameters: Sequence[str] = ("T30", "T20", "EDT"), limit_pct: float | None = None,
                jnd_pct: float = 5.0, figsize=None):
    """Signed relative errors per octave band, one panel per parameter, on a linear axis.

    Parameters
    ----------
    metrics : mapping of str to mapping
        Label -> metrics of a model (``metrics.json``'s ``trained`` entry), with keys
        ``<parameter>_err_<f>`` (fractions, f the band centre in Hz).
    parameters : sequence of str
        The parameters, one panel each, stacked in one column.
    limit_pct : float, optional
        Symmetric limit of the error axis, %; larger errors are drawn at the limit as triangles
        labelled with their value. None: every point inside.
    jnd_pct : float
        Half-width of the grey band of just-noticeable differences, % (5 % for T30).
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Error in % = 100 (model - target) / target against the band centre; bands where it cannot
        be measured (NaN) leave a gap.

    Examples
    --------
    In a notebook, from the run folders:

    >>> import json  # doctest: +SKIP
    >>> metrics = {m: json.load(open(f"results/runs/{m}/metrics.json"))["trained"]
    ...            for m in ("prior_fir0", "prior_fir6", "converged_prior_fir0")}  # doctest: +SKIP
    >>> fig = band_errors(metrics, limit_pct=200.0)  # doctest: +SKIP
    """
    fig, axes = plt.subplots(len(parameters), 1, sharex=True, squeeze=False,
                             figsize=figsize or (7.0, 2.5 * len(parameters) + 0.6))
    colours = colour_index(list(metrics))
    for ax, parameter in zip(axes[:, 0], parameters):
        prefix = f"{parameter}_err_"
        clipped = {}  # off-scale points per band and side, so that their labels stack
        for label, values in metrics.items():
            bands = sorted(int(k[len(prefix):]) for k in values if k.startswith(prefix) and k[len(prefix):].isdigit())
            error = 100 * np.array([values[f"{prefix}{f}"] for f in bands], dtype=np.float64)
            shown = error if limit_pct is None else np.clip(error, -limit_pct, limit_pct)
            ax.plot(bands, shown, marker="o", ms=4, label=label, **line_style(label, colours[label]))
            for f, e in zip(bands, error):
                if limit_pct is not None and abs(e) > limit_pct:
                    side = np.sign(e)
                    stack = clipped[f, side] = clipped.get((f, side), -1) + 1
                    colour = line_style(label, colours[label])["color"]
                    ax.plot(f, side * limit_pct, marker="^" if e > 0 else "v", ms=8, color=colour)
                    ax.annotate(f"{e:+.0f} %", (f, side * limit_pct), fontsize=7, color=colour,
                                xytext=(5, -side * (10 + 9 * stack)), textcoords="offset points")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.axhspan(-jnd_pct, jnd_pct, color="0.85", zorder=0)
        ax.set_ylabel(f"{parameter} error (%)")
        ax.grid(alpha=0.3)
    band_axis(axes[-1, 0], bands)
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def line_corrections(model: SDN) -> dict:
    r"""Learned distance corrections :math:`\tilde d - d`, metres, per group of lines.

    Parameters
    ----------
    model : sdn.SDN
        One position (no batch of positions).

    Returns
    -------
    dict of str to ndarray
        Keys of :data:`LINE_GROUPS`: ``source_node`` (6,), ``node_node`` (15,) (the pairs k < l,
        one length per pair), ``node_mic`` (6,), ``direct`` (1,); zeros without distance
        correction.

    Examples
    --------
    >>> import sdn  # doctest: +SKIP
    >>> corrections = line_corrections(sdn.load("results/runs/correction_fir0/best.pt"))  # doctest: +SKIP
    >>> float(abs(corrections["direct"][0]))  # metres  # doctest: +SKIP
    """
    if model.batch_shape:
        raise ValueError("line_corrections takes a model of one position, not a batch")
    corrected = {k: v.detach().cpu().double().numpy() for k, v in model.distances().items()}
    room = model.room
    return {
        "source_node": corrected["source_node"] - room.source_node_distances,
        "node_node": (corrected["node_node"] - room.node_node_distances)[PAIRS[0].numpy(), PAIRS[1].numpy()],
        "node_mic": corrected["node_mic"] - room.node_mic_distances,
        "direct": corrected["direct"] - room.direct_distance,
    }


def distance_corrections(models: Mapping, figsize=None):
    """Learned distance corrections of each line, metres, one panel per group of lines.

    Parameters
    ----------
    models : mapping of str to sdn.SDN
        Label -> a model with ``distance_correction`` (one position each).
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Bars side by side per line, one colour per model; dashed lines at the largest correction
        the model allows (``max_correction``; each distance is further capped at half its length).

    Examples
    --------
    In a notebook, from the run folders' evaluated weights (``best.pt``):

    >>> import sdn  # doctest: +SKIP
    >>> models = {m: sdn.load(f"results/runs/{m}/best.pt") for m in ("correction_fir0", "correction_fir6")}  # doctest: +SKIP
    >>> fig = distance_corrections(models)  # doctest: +SKIP
    """
    missing = [label for label, model in models.items() if not model.config["distance_correction"]]
    if missing:
        raise ValueError(f"models {missing} learn no distance correction")
    corrections = {label: line_corrections(model) for label, model in models.items()}
    limit = max(model.config["max_correction"] for model in models.values())
    fig, axes = panel_grid(len(LINE_GROUPS), panel=(4.4, 3.0), figsize=figsize, sharey=True)
    width = 0.8 / len(models)
    for ax, (group, (title, names)) in zip(axes, LINE_GROUPS.items()):
        x = np.arange(len(names))
        for index, label in enumerate(models):
            ax.bar(x + (index - (len(models) - 1) / 2) * width, corrections[label][group], width,
                   color=f"C{index % 10}", label=label)
        for bound in (-limit, limit):
            ax.axhline(bound, color="0.5", ls="--", lw=0.8)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=90 if len(names) > 6 else 0, fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("correction (m)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def extraction_weights(models: Mapping, figsize=None):
    """Learned pressure-extraction weights, a map of the 30 lines per model on one colour scale.

    Parameters
    ----------
    models : mapping of str to sdn.SDN
        Label -> a model (one position each).
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Cell (k, l): the weight with which the microphone reads the wave leaving the node of wall
        k towards the node of wall l, written in the cell (the diagonal is empty). The classic SDN's
        weights are all 2/K = 0.4. For a model with the released code's summed weights
        (``summed_weights``) the title gives their sum, the one number that acts.

    Examples
    --------
    In a notebook, from the run folders' evaluated weights (``best.pt``):

    >>> import sdn  # doctest: +SKIP
    >>> fig = extraction_weights({m: sdn.load(f"results/runs/{m}/best.pt")
    ...                           for m in ("prior_fir6", "faithful_prior_fir6")})  # doctest: +SKIP
    """
    off_diagonal = ~np.eye(len(WALL_NAMES), dtype=bool)
    weights = {}
    for label, model in models.items():
        w = np.full((len(WALL_NAMES), len(WALL_NAMES)), np.nan)
        w[off_diagonal] = model.extraction_weights().detach().cpu().double().numpy().ravel()
        weights[label] = w
    low = min(np.nanmin(w) for w in weights.values())
    high = max(np.nanmax(w) for w in weights.values())
    fig, axes = panel_grid(len(models), panel=(4.2, 3.6), figsize=figsize, layout="constrained")
    image = None
    for ax, (label, model) in zip(axes, models.items()):
        w = weights[label]
        image = ax.imshow(w, cmap="viridis", vmin=low, vmax=high)
        for k, l in zip(*np.nonzero(off_diagonal)):
            ax.text(l, k, f"{w[k, l]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if w[k, l] < (low + high) / 2 else "black")
        ax.set_xticks(range(len(WALL_NAMES)))
        ax.set_xticklabels(WALL_NAMES, fontsize=7, rotation=45)
        ax.set_yticks(range(len(WALL_NAMES)))
        ax.set_yticklabels(WALL_NAMES, fontsize=7)
        ax.set_xlabel("towards the node of wall", fontsize=8)
        ax.set_ylabel("from the node of wall", fontsize=8)
        summed = "summed_weights" in model.config["quirks"]
        ax.set_title(f"{label}\n(they act as one number, their sum {np.nansum(w):.2f})" if summed else label,
                     fontsize=9)
    fig.colorbar(image, ax=axes, label="weight (classic SDN: 0.4)", shrink=0.9)
    return fig


def position_sensitivity(errors: Mapping, reference: str, figsize=None):
    """Headline errors of each model across microphone positions: the spread per model.

    Parameters
    ----------
    errors : mapping
        Model label -> position -> metrics (``metrics.json``'s ``trained`` entry, or any mapping
        with the headline's ``edc_error_db``, ``T30_err_mean`` and ``EDT_err_mean``, the last
        two fractions).
    reference : str
        The position of the calibrated estimate, drawn as a black diamond; the others as grey
        dots, joined by a line from the smallest to the largest value.
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels (EDC error in dB, mean octave T30 and EDT errors in %), models along x.

    Examples
    --------
    In a notebook, with one results folder per position (the room configs of
    :func:`sdn.room_variants.write_room_variants`; ``positions`` their names):

    >>> import json  # doctest: +SKIP
    >>> errors = {m: {p: json.load(open(f"results/positions/{p}/runs/{m}/metrics.json"))["trained"]
    ...               for p in positions} for m in ("prior_fir0", "prior_fir6")}  # doctest: +SKIP
    >>> fig = position_sensitivity(errors, reference="homula_s1_r2hom1")  # doctest: +SKIP
    """
    from .tables import COLUMNS, HEADLINE  # the headline's quantities, headers and units

    labels = list(errors)
    fig, axes = plt.subplots(len(HEADLINE), 1, sharex=True, figsize=figsize or (7.0, 7.0))
    for ax, key in zip(axes, HEADLINE):
        ylabel, scale = COLUMNS[key].header, COLUMNS[key].scale
        for x, label in enumerate(labels):
            values = {position: scale * float(m[key]) for position, m in errors[label].items()}
            others = [v for position, v in values.items() if position != reference]
            ax.plot([x, x], [min(values.values()), max(values.values())], color="0.6", lw=1.0)
            ax.plot([x] * len(others), others, "o", color="0.5", ms=5, label="other positions" if x == 0 else None)
            if reference in values:
                ax.plot(x, values[reference], "D", color="black", ms=6, label="calibrated position" if x == 0 else None)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
    axes[-1].set_xticks(range(len(labels)))
    axes[-1].set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
