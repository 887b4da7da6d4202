"""Figures of the study: room geometry, impulse responses, decay curves, learned parameters, losses.

Every function draws one matplotlib figure and returns it; none calls ``plt.show`` or saves a
file (a notebook shows the returned figure; ``fig.savefig`` writes it). Signals may be numpy
arrays or torch tensors (time on the last axis); several curves are passed as a mapping
``label -> values``, drawn in the mapping's order. The target, when present, is drawn in black.

Conventions: time in ms or s as labelled, levels in dB, frequencies in Hz on a log axis.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .geometry import N_WALLS, WALL_NAMES

TARGET_LABEL = "target"


def _array(x) -> np.ndarray:
    """A float64 numpy copy of an array or tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _style(label: str, index: int) -> dict:
    """Black for the target, the default colour cycle for the others."""
    if label == TARGET_LABEL:
        return {"color": "black", "lw": 1.4, "zorder": 5}
    return {"color": f"C{index % 10}", "lw": 1.0}


def _colour_index(labels: Sequence[str]) -> dict:
    others = [label for label in labels if label != TARGET_LABEL]
    return {label: others.index(label) if label in others else 0 for label in labels}


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
    colours = _colour_index(labels)
    first, last = int(round(start * sample_rate)), int(round((start + duration) * sample_rate))
    for ax, label in zip(axes[:, 0], labels):
        h = _array(irs[label])[first:last]
        if normalise and np.max(np.abs(h)) > 0:
            h = h / np.max(np.abs(h))
        t = 1e3 * (first + np.arange(h.size)) / sample_rate
        ax.plot(t, h, **{**_style(label, colours[label]), "lw": 0.8})
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
    colours = _colour_index(list(irs))
    longest = 0.0
    for label, h in irs.items():
        h = _array(h)
        with np.errstate(divide="ignore"):
            edc = energy_decay_curve(h, db=True)
        t = np.arange(h.size) / sample_rate
        longest = max(longest, t[-1])
        ax.plot(t, edc, label=label, ls="--" if label in dashed else "-", **_style(label, colours[label]))
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
    f = _array(frequencies)
    colours = _colour_index(list(values))
    for label, v in values.items():
        ax.plot(f, _array(v), marker="o", ms=4, label=label, ls="--" if label in dashed else "-",
                **_style(label, colours[label]))
    ax.set_xscale("log")
    if log_values:
        ax.set_yscale("log")
    ax.set_xticks(f)
    ax.set_xticklabels([f"{x:g}" if x < 1000 else f"{x / 1000:g}k" for x in f])
    ax.minorticks_off()
    ax.set_xlabel("octave band centre (Hz)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mel_edr_maps(maps: Mapping, sample_rate: float, hop: int = 160, figsize=None):
    """Mel energy decay reliefs (dB) side by side, on one colour scale.

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
    arrays = [_array(maps[label]) for label in labels]
    top = max(a.max() for a in arrays)
    figsize = figsize or (4.2 * len(labels) + 1.0, 3.6)
    fig, axes = plt.subplots(1, len(labels), sharey=True, squeeze=False, figsize=figsize)
    image = None
    for ax, label, edr in zip(axes[0], labels, arrays):
        duration = edr.shape[-1] * hop / sample_rate
        image = ax.imshow(edr, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                          extent=(0, duration, 0, edr.shape[0]))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel("mel band")
    fig.colorbar(image, ax=list(axes[0]), label="EDR (dB)", shrink=0.9)
    return fig


# ------------------------------------------------------------------------- model parameters


def wall_responses(responses: Mapping, figsize=None, floor_db: float = -30.0):
    """Magnitude responses of the six wall filters, one panel per model.

    Parameters
    ----------
    responses : mapping label -> (frequencies (F,) Hz, magnitudes (6, F) dB), e.g. from
        ``model.physical_parameters()["wall_response_freqs"]`` and ``["wall_response_db"]``.
    floor_db : lower limit of the level axis (the upper limit is at least +1 dB).

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = list(responses)
    cols = min(2, len(labels))
    rows = -(-len(labels) // cols)
    figsize = figsize or (5.0 * cols, 3.3 * rows)
    fig, axes = plt.subplots(rows, cols, squeeze=False, sharey=True, figsize=figsize)
    top = 1.0
    for ax, label in zip(axes.ravel(), labels):
        freqs, db = (_array(x) for x in responses[label])
        for k in range(N_WALLS):
            ax.plot(freqs[1:], db[k, 1:], color=f"C{k}", lw=1.0, label=WALL_NAMES[k])
        top = max(top, float(np.max(db)) + 1.0)
        ax.set_xscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("frequency (Hz)")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[:, 0]:
        ax.set_ylabel("|H| (dB)")
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    axes[0, 0].set_ylim(floor_db, top)
    axes[0, 0].legend(fontsize=7, ncol=2)
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
    S = _array(matrices)
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
    """Training loss per epoch, one panel per loss term, one curve per run.

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
    figsize = figsize or (3.2 * len(terms), 3.2)
    fig, axes = plt.subplots(1, len(terms), figsize=figsize, squeeze=False)
    for index, (label, history) in enumerate(histories.items()):
        if isinstance(history, list):
            history = {key: [row[key] for row in history] for key in (history[0] if history else {})}
        if len(history) == 0 or len(history["epoch"]) == 0:
            continue
        epoch = _array(history["epoch"])
        for ax, term in zip(axes[0], terms):
            ax.plot(epoch + 1, _array(history[term]), color=f"C{index % 10}", lw=1.0, label=label)
    for ax, term in zip(axes[0], terms):
        low, high = ax.dataLim.y0, ax.dataLim.y1
        if ax.lines and low > 0 and high / low > 10:  # log scale only where the loss spans decades
            ax.set_yscale("log")
        ax.set_title(f"{term} loss", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("loss")
    if axes[0, 0].lines:
        axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
