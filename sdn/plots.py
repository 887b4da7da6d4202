"""Figures of the study: room geometry, impulse responses, decay curves, reliefs, wall responses,
losses (comparisons of fitted models with the target and across fits: :mod:`sdn.study_plots`).

Every function draws one matplotlib figure and returns it; none calls ``plt.show`` or saves a
file (a notebook shows the returned figure; ``fig.savefig`` writes it). Signals may be numpy
arrays or torch tensors (time on the last axis); several curves are passed as a mapping
``label -> values``, drawn in the mapping's order. The target, when present, is drawn in black.
Figures of several panels use at most two columns (:func:`panel_grid`), so that every panel stays
readable at the width of a book page.

Conventions: time in ms or s as labelled, levels in dB, frequencies in Hz on a log axis.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .geometry import N_WALLS, WALL_NAMES

TARGET_LABEL = "target"


def as_array(x) -> np.ndarray:
    """A float64 numpy copy of an array or tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def line_style(label: str, index: int) -> dict:
    """Black for the target, the default colour cycle for the others."""
    if label == TARGET_LABEL:
        return {"color": "black", "lw": 1.4, "zorder": 5}
    return {"color": f"C{index % 10}", "lw": 1.0}


def colour_index(labels: Sequence[str]) -> dict:
    """Index of each label's colour in the cycle (:func:`line_style`), the target not counted."""
    others = [label for label in labels if label != TARGET_LABEL]
    return {label: others.index(label) if label in others else 0 for label in labels}


def panel_grid(n_panels: int, panel=(4.2, 3.0), figsize=None, **kwargs):
    """A figure of ``n_panels`` axes in at most two columns, so that each stays readable at the
    text width of a page; the unused cell of an odd count is hidden.

    Parameters
    ----------
    n_panels : int
        Number of axes, >= 1.
    panel : (float, float)
        Width and height of one panel, inches.
    figsize : (float, float), optional
        Size of the whole figure instead.
    **kwargs
        Passed to ``plt.subplots`` (``sharex``, ``layout``, ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : list of matplotlib.axes.Axes
        In reading order.
    """
    cols = min(2, n_panels)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=figsize or (panel[0] * cols, panel[1] * rows),
                             **kwargs)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.ravel()[:n_panels])


# ---------------------------------------------------------------------------------- geometry


def room_geometry(room, show_paths: bool = True, figsize=(8.0, 5.6)):
    """Plan (y-x) and side (y-z) views of a shoebox with source, microphone and the six SDN nodes.

    Parameters
    ----------
    room : sdn.Room
        Geometry in metres; ``room.nodes`` (6, 3) are the first-order reflection points.
    show_paths : bool
        Draw the first-order paths source -> node -> microphone (dotted).
    figsize : (width, height) in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes sharing the long (y) axis; nodes are labelled with :data:`sdn.WALL_NAMES`. A node on a wall parallel to a
        view's plane is drawn inside the outline (it projects there).
    """
    size = np.asarray(room.size)
    source, mic, nodes = np.asarray(room.source), np.asarray(room.mic), np.asarray(room.nodes)
    fig, axes = plt.subplots(2, 1, figsize=figsize,
                             gridspec_kw={"height_ratios": [size[0] + 0.1 * size.max(), size[2] + 0.1 * size.max()]})
    for ax, (i, j), title in zip(axes, ((1, 0), (1, 2)), ("plan (y-x)", "side (y-z)")):
        ax.add_patch(plt.Rectangle((0, 0), size[i], size[j], fill=False, lw=1.2))
        if show_paths:
            for k in range(N_WALLS):
                ax.plot([source[i], nodes[k, i], mic[i]], [source[j], nodes[k, j], mic[j]],
                        ls=":", lw=0.8, color=f"C{k}")
        for k in range(N_WALLS):
            ax.plot(nodes[k, i], nodes[k, j], "o", color=f"C{k}", ms=6, label=f"node {WALL_NAMES[k]}")
        ax.plot(source[i], source[j], "k*", ms=13, label="source")
        ax.plot(mic[i], mic[j], "kv", ms=9, label="microphone")
        ax.set_aspect("equal")
        ax.set_anchor("W")
        pad = 0.05 * size.max()
        ax.set_xlim(-pad, size[i] + pad)
        ax.set_ylim(-pad, size[j] + pad)
        ax.set_ylabel(f"{'xyz'[j]} (m)")
        ax.set_title(title, fontsize=10)
    axes[1].set_xlabel("y (m)")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="center right")
    return fig


# ---------------------------------------------------------------------------- time signals


def ir_early_part(irs: Mapping, sample_rate: float, duration: float = 0.05, start: float = 0.0,
                  normalise: bool = True, markers: Mapping | None = None, figsize=None):
    """Early part of several impulse responses, one panel each, on a shared time axis.

    Parameters
    ----------
    irs : mapping label -> (T,) signal
    sample_rate : Hz.
    duration, start : seconds shown, from ``start``.
    normalise : scale each response to a peak of 1 (shapes are compared, not levels).
    markers : optional mapping label -> times in seconds (e.g. predicted arrivals), drawn as
        vertical dashed lines in that panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = list(irs)
    figsize = figsize or (10.0, 1.3 + 1.15 * len(labels))
    fig, axes = plt.subplots(len(labels), 1, sharex=True, squeeze=False, figsize=figsize)
    colours = colour_index(labels)
    first, last = int(round(start * sample_rate)), int(round((start + duration) * sample_rate))
    for ax, label in zip(axes[:, 0], labels):
        h = as_array(irs[label])[first:last]
        if normalise and np.max(np.abs(h)) > 0:
            h = h / np.max(np.abs(h))
        t = 1e3 * (first + np.arange(h.size)) / sample_rate
        ax.plot(t, h, **{**line_style(label, colours[label]), "lw": 0.8})
        for time in (markers or {}).get(label, []):
            ax.axvline(1e3 * time, color="0.5", ls="--", lw=0.7)
        ax.text(0.995, 0.92, label, transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("time (ms)")
    fig.tight_layout(h_pad=0.2)
    return fig


def edc_curves(irs: Mapping, sample_rate: float, floor_db: float = -80.0, duration: float | None = None,
               dashed: Sequence[str] = (), ax=None, figsize=(8.0, 4.5)):
    """Schroeder energy decay curves in dB (each normalised to 0 dB at its first sample).

    Parameters
    ----------
    irs : mapping label -> (T,) signal (lengths may differ).
    sample_rate : Hz.
    floor_db : lower limit of the level axis.
    duration : seconds shown (default: the longest signal).
    dashed : labels drawn with dashed lines (e.g. the baselines).
    ax : draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .acoustics import energy_decay_curve

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)
    colours = colour_index(list(irs))
    longest = 0.0
    for label, h in irs.items():
        h = as_array(h)
        with np.errstate(divide="ignore"):
            edc = energy_decay_curve(h, db=True)
        t = np.arange(h.size) / sample_rate
        longest = max(longest, t[-1])
        ax.plot(t, edc, label=label, ls="--" if label in dashed else "-", **line_style(label, colours[label]))
    ax.set_ylim(floor_db, 3)
    ax.set_xlim(0, duration or longest)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("EDC (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ band values


def octave_band_values(frequencies, values: Mapping, ylabel: str = "T30 (s)", dashed: Sequence[str] = (),
                       log_values: bool = False, ax=None, figsize=(7.0, 4.2)):
    """Per-octave-band values (e.g. T30) of several models against frequency.

    Parameters
    ----------
    frequencies : (B,) band centres in Hz.
    values : mapping label -> (B,) values; NaN (not measurable) leaves a gap.
    ylabel : label of the value axis.
    dashed : labels drawn with dashed lines.
    log_values : logarithmic value axis (for values spanning decades).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)
    f = as_array(frequencies)
    colours = colour_index(list(values))
    for label, v in values.items():
        ax.plot(f, as_array(v), marker="o", ms=4, label=label, ls="--" if label in dashed else "-",
                **line_style(label, colours[label]))
    band_axis(ax, f)
    if log_values:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mel_edr_maps(maps: Mapping, sample_rate: float, hop: int = 160, figsize=None):
    """Mel energy decay reliefs (dB) on one colour scale, two panels per row.

    Parameters
    ----------
    maps : mapping label -> (bands, frames) EDR in dB (:func:`sdn.features.mel_energy_decay_relief`).
    sample_rate : Hz; with ``hop`` (samples per frame) it gives the time axis.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per map; the colour scale spans the largest map maximum and 80 dB below it.
    """
    labels = list(maps)
    arrays = [as_array(maps[label]) for label in labels]
    top = max(a.max() for a in arrays)
    fig, axes = panel_grid(len(labels), figsize=figsize, sharey=True, layout="constrained")
    image = None
    for ax, label, edr in zip(axes, labels, arrays):
        image = _relief(ax, edr, sample_rate, hop, cmap="magma", vmin=top - 80, vmax=top)
        ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=axes, label="EDR (dB)", shrink=0.9)
    return fig


def _relief(ax, edr: np.ndarray, sample_rate: float, hop: int, **style):
    """Draw one (bands, frames) relief against time (s) and mel band; returns the image."""
    image = ax.imshow(edr, origin="lower", aspect="auto", extent=(0, edr.shape[-1] * hop / sample_rate, 0, edr.shape[0]),
                      **style)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    return image


def mel_edr_differences(target, irs: Mapping, sample_rate: float, limit_db: float = 20.0, figsize=None):
    """Mel EDR of each model minus the target's, in dB, over the target's length.

    Both signals are cut to the target's length and scaled to unit norm there, as the training
    loss compares them; each relief is :func:`sdn.features.mel_energy_decay_relief` in dB.

    Parameters
    ----------
    target : array or tensor, shape (T,)
        The measured response.
    irs : mapping of str to array or tensor, shape (T',)
        Label -> model response, T' >= T (e.g. a run folder's ``ir.wav``).
    sample_rate : float
        Hz, of the target and the models.
    limit_db : float
        The diverging colour scale spans +-``limit_db``; larger differences take its end colour.
    figsize : (float, float), optional
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per model, two per row, red where the model holds more energy than the target.

    Examples
    --------
    In a notebook, with ``target`` the room config's target (``room.load_target(sample_rate=fs)``)
    and the models' ``ir.wav`` from their run folders:

    >>> import soundfile as sf  # doctest: +SKIP
    >>> irs = {m: sf.read(f"results/runs/{m}/ir.wav")[0] for m in ("prior_fir0", "prior_fir6")}  # doctest: +SKIP
    >>> fig = mel_edr_differences(target.signal, irs, target.sample_rate)  # doctest: +SKIP
    >>> fig.savefig("results/figures/mel_edr_differences.png", dpi=120)  # doctest: +SKIP
    """
    import torch

    from .features import MEL_HOP, mel_energy_decay_relief

    def relief(h):
        h = torch.as_tensor(as_array(h)[:n])
        return mel_energy_decay_relief(h / torch.linalg.vector_norm(h), sample_rate).numpy()

    n = as_array(target).shape[-1]
    reference = relief(target)
    fig, axes = panel_grid(len(irs), figsize=figsize, sharex=True, sharey=True, layout="constrained")
    image = None
    for ax, (label, h) in zip(axes, irs.items()):
        image = _relief(ax, relief(h) - reference, sample_rate, MEL_HOP, cmap="RdBu_r", vmin=-limit_db, vmax=limit_db)
        ax.set_title(label, fontsize=10)
    fig.colorbar(image, ax=axes, label="model - target (dB)", shrink=0.9, extend="both")
    return fig


def band_axis(ax, frequencies) -> None:
    """Log frequency axis labelled with the octave band centres."""
    ax.set_xscale("log")
    ax.set_xticks(frequencies)
    ax.set_xticklabels([f"{x:g}" if x < 1000 else f"{x / 1000:g}k" for x in frequencies])
    ax.minorticks_off()
    ax.set_xlabel("octave band centre (Hz)")


# ------------------------------------------------------------------------- model parameters


def wall_responses(responses: Mapping, passivity: Mapping | None = None, figsize=None, floor_db: float = -30.0):
    """Magnitude responses of the six wall filters, one panel per model, with the 0 dB line.

    Parameters
    ----------
    responses : mapping label -> (frequencies (F,) Hz, magnitudes (6, F) dB), e.g. from
        ``model.physical_parameters()["wall_response_freqs"]`` and ``["wall_response_db"]``.
    passivity : optional mapping label -> :class:`sdn.stability.StabilityReport`
        (``model.stability()``): each panel then states whether the model is certified passive
        and its largest wall gain in dB (above 0 dB a wall amplifies).
    floor_db : lower limit of the level axis (the upper limit is at least +1 dB).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    In a notebook, from the trained models of the run folders (``<results>/runs/<model>/model.pt``):

    >>> models = {m: sdn.load(f"results/runs/{m}/model.pt") for m in ("prior_fir6", "correction_fir6")}  # doctest: +SKIP
    >>> parameters = {m: model.physical_parameters() for m, model in models.items()}  # doctest: +SKIP
    >>> fig = wall_responses({m: (p["wall_response_freqs"], p["wall_response_db"]) for m, p in parameters.items()},
    ...                      passivity={m: model.stability() for m, model in models.items()})  # doctest: +SKIP
    """
    labels = list(responses)
    fig, axes = panel_grid(len(labels), panel=(4.2, 3.0), figsize=figsize, sharey=True)
    top = 1.0
    for ax, label in zip(axes, labels):
        freqs, db = (as_array(x) for x in responses[label])
        for k in range(N_WALLS):
            ax.plot(freqs[1:], db[k, 1:], color=f"C{k}", lw=1.0, label=WALL_NAMES[k])
        ax.axhline(0.0, color="black", lw=0.8)
        top = max(top, float(np.max(db)) + 1.0)
        if passivity is not None and label in passivity:
            report = passivity[label]
            peak = 20 * np.log10(float(np.max(report.wall_gain_max)))
            status = "certified passive" if report.certified else "not certified passive"
            ax.text(0.03, 0.04, f"{status}\nmax wall gain {peak:+.2f} dB", transform=ax.transAxes, fontsize=8,
                    va="bottom", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_xscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("|H| (dB)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylim(floor_db, top)
    axes[0].legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    return fig


def scattering_matrices(matrices, title: str | None = None, annotate: bool = True, figsize=(11.0, 6.6)):
    """The six 5x5 scattering matrices as heat maps on one diverging colour scale.

    Parameters
    ----------
    matrices : (6, 5, 5) ``S_k`` (rows: outgoing lines, columns: incoming lines, neighbours in
        wall order, the node's own wall skipped).
    title : figure title.
    annotate : write each entry (two decimals) into its cell.

    Returns
    -------
    matplotlib.figure.Figure
        The isotropic matrix ``(2/5) 1 1^T - I`` has -0.6 on the diagonal and 0.4 elsewhere.
    """
    S = as_array(matrices)
    limit = max(1.0, float(np.abs(S).max()))
    fig, axes = plt.subplots(2, 3, figsize=figsize)
    image = None
    for k, ax in enumerate(axes.ravel()):
        neighbours = [WALL_NAMES[j] for j in range(N_WALLS) if j != k]
        image = ax.imshow(S[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(range(len(neighbours)))
        ax.set_xticklabels(neighbours, rotation=45, fontsize=7)
        ax.set_yticks(range(len(neighbours)))
        ax.set_yticklabels(neighbours, fontsize=7)
        ax.set_title(f"node {WALL_NAMES[k]}", fontsize=9)
        if annotate:
            for i in range(S.shape[1]):
                for j in range(S.shape[2]):
                    ax.text(j, i, f"{S[k, i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(S[k, i, j]) > 0.6 * limit else "black")
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.8, label="S_k entry")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------- training


def loss_curves(histories: Mapping, terms: Sequence[str] = ("total", "edc", "edr", "edp"), figsize=None):
    """Training loss per epoch, one panel per loss term (two per row), one curve per run.

    Parameters
    ----------
    histories : mapping label -> history with columns ``epoch`` and the terms (a pandas
        DataFrame, a dict of sequences, or a list of per-epoch dicts as in ``FitResult.history``).
    terms : loss terms to draw (columns of ``history.csv``).

    Returns
    -------
    matplotlib.figure.Figure
        Runs without epochs (baselines) are skipped. A panel whose values span more than a
        decade has a logarithmic axis.
    """
    fig, axes = panel_grid(len(terms), panel=(4.0, 2.8), figsize=figsize)
    for index, (label, history) in enumerate(histories.items()):
        if isinstance(history, list):
            history = {key: [row[key] for row in history] for key in (history[0] if history else {})}
        if len(history) == 0 or len(history["epoch"]) == 0:
            continue
        epoch = as_array(history["epoch"])
        for ax, term in zip(axes, terms):
            ax.plot(epoch + 1, as_array(history[term]), color=f"C{index % 10}", lw=1.0, label=label)
    for ax, term in zip(axes, terms):
        low, high = ax.dataLim.y0, ax.dataLim.y1
        if ax.lines and low > 0 and high / low > 10:  # log scale only where the loss spans decades
            ax.set_yscale("log")
        ax.set_title(f"{term} loss", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.set_ylabel("loss")
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig

