r"""Held-out positions: does an SDN fitted at some positions of a room predict others?

An SDN is built from a room's geometry and one source/microphone pair; what training changes (wall
filters, junction admittances, extraction weights) is meant to describe the room. This study
(``notebooks/06_generalisation``) fits those parameters at K positions and tests them at others:

1. :func:`simulate_grid`: ground-truth RIRs of every source x microphone pair of a random grid in
   a shoebox (:mod:`sdn.simulate`, an independent simulator); the pairs of the last
   ``n_heldout_mics`` microphones are held out, the others are put in a fixed random order, whose
   first K positions train the shared fits (:func:`split_positions`);
2. :func:`fit_models`: for each wall model, one SDN shared by the first K training positions for
   every K (:func:`sdn.multi.fit_positions`, one batched fit), and one SDN per held-out position
   fitted on that position itself, the paper's protocol there, with the same budget;
3. :func:`heldout_rows`: every model at every held-out position (shared fits moved there with
   :func:`sdn.multi.transfer`, the untrained SDN and the classic SDN with Sabine absorption from
   the position's own T30), scored by :func:`score` on its evaluation render
   (:func:`sdn.train.evaluation_render`: rendered until it has decayed 100 dB, at most
   ``max_eval_seconds``) against the ground truth; :func:`summarise` averages over positions;
4. :func:`real_transfer`: on measured data, an SDN fitted on S1 -> R2-HOM1 moved to candidate
   positions of S2 and compared with the measured S2 -> R2-HOM1 RIR.

Models without distance correction only: corrections belong to one position and cannot transfer.
Figures of the study: :func:`plot_grid`, :func:`plot_losses`, :func:`plot_errors_against_k`,
:func:`plot_heldout_edc`.

Examples
--------
>>> from sdn import generalisation as g
>>> grid = g.simulate_grid((5.46, 14.52, 3.38), n_sources=4, n_mics=6, n_heldout_mics=2)  # doctest: +SKIP
>>> fits = g.fit_models(grid, fir_orders=[0, 6], k_values=[1, 4], epochs=40, lr={0: 0.1, 6: 0.02})  # doctest: +SKIP
>>> summary = g.summarise(g.heldout_rows(grid, fits))  # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .baselines import absorption_from_reverberation_time
from .evaluation import evaluate
from .geometry import Room
from .model import SDN
from .multi import fit_positions, transfer
from .train import evaluation_render

__all__ = ["Grid", "Fit", "split_positions", "simulate_grid", "fit_models", "score", "heldout_rows",
           "summarise", "real_transfer", "plot_grid", "plot_losses", "plot_errors_against_k", "plot_heldout_edc"]

#: Uniform absorption of the untrained SDN (the paper's prior).
ALPHA = 0.02
#: The scores of :func:`score`, in table order.
SCORES = ("edc_error_db", "t30_err_pct", "edt_err_pct", "t30_broadband_err_pct")


@dataclass
class Grid:
    """Ground-truth RIRs of a grid of positions, split into training and held-out ones.

    Attributes
    ----------
    rooms : list of sdn.Room
        Every source x microphone pair, source-major (position ``i`` has microphone
        ``i % n_mics``).
    rirs : ndarray, shape (P, T)
        The ground truth, one RIR per position.
    sample_rate : int
        Hz.
    train_order : ndarray of int
        Training positions in the order in which the shared fits take them.
    heldout : ndarray of int
        Positions never used in training.
    truth : list of dict
        :func:`sdn.evaluation.evaluate` of each RIR.
    """

    rooms: list
    rirs: np.ndarray
    sample_rate: int
    train_order: np.ndarray
    heldout: np.ndarray
    truth: list

    @classmethod
    def from_rirs(cls, rooms: Sequence[Room], rirs, sample_rate: int, n_mics: int, n_heldout_mics: int,
                  seed: int = 42) -> "Grid":
        """A grid from given RIRs of ``len(rooms) // n_mics`` sources x ``n_mics`` microphones.

        Parameters
        ----------
        rooms : sequence of sdn.Room
            Source-major positions.
        rirs : array_like, shape (P, T)
            One RIR per position.
        sample_rate : int
            Hz.
        n_mics : int
            Microphones per source.
        n_heldout_mics : int
            The last ``n_heldout_mics`` microphones are held out.
        seed : int
            Seed of the order of the training positions.

        Returns
        -------
        Grid
        """
        rirs = np.asarray(rirs, dtype=np.float64)
        if len(rooms) % n_mics or rirs.shape[0] != len(rooms):
            raise ValueError(f"{len(rooms)} positions and {rirs.shape[0]} RIRs do not form a grid of "
                             f"sources x {n_mics} microphones")
        train_order, heldout = split_positions(len(rooms) // n_mics, n_mics, n_heldout_mics, seed)
        return cls(list(rooms), rirs, int(sample_rate), train_order, heldout,
                   [evaluate(h, None, sample_rate) for h in rirs])

    def role(self, i: int) -> str:
        """``"held out"`` or ``"train #k"`` (k = place in the training order, from 1)."""
        return "held out" if i in self.heldout else f"train #{list(self.train_order).index(i) + 1}"

    def position_rows(self) -> list[dict]:
        """One row per position: source and microphone (m), distance (m), role, T30 and EDT (s)."""
        return [{"source": np.round(r.source, 2).tolist(), "mic": np.round(r.mic, 2).tolist(),
                 "distance (m)": r.direct_distance, "role": self.role(i),
                 "T30 (s)": self.truth[i]["T30"], "EDT (s)": self.truth[i]["EDT"]}
                for i, r in enumerate(self.rooms)]


def split_positions(n_sources: int, n_mics: int, n_heldout_mics: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out positions of a source-major grid.

    Parameters
    ----------
    n_sources : int
        Sources.
    n_mics : int
        Microphones per source.
    n_heldout_mics : int
        The pairs of the last ``n_heldout_mics`` microphones are held out (0 < it < ``n_mics``).
    seed : int
        Seed of the random order of the training positions.

    Returns
    -------
    train_order : ndarray of int
        The other positions, in a random order; K training positions are its first K.
    heldout : ndarray of int
        The held-out positions, ascending.
    """
    if not 0 < n_heldout_mics < n_mics:
        raise ValueError(f"n_heldout_mics must be between 1 and n_mics - 1 = {n_mics - 1}, got {n_heldout_mics}")
    mic = np.arange(n_sources * n_mics) % n_mics
    heldout = np.flatnonzero(mic >= n_mics - n_heldout_mics)
    train_order = np.random.default_rng(seed).permutation(np.flatnonzero(mic < n_mics - n_heldout_mics))
    return train_order, heldout


def simulate_grid(room_size: Sequence[float], n_sources: int, n_mics: int, n_heldout_mics: int, *,
                  sample_rate: int = 16000, rt60: float = 0.85, seconds: float = 1.0, max_order: int = 3,
                  n_rays: int = 4000, grid_seed: int = 0, seed: int = 42) -> Grid:
    """Simulated ground truth of a random grid (:func:`sdn.simulate.position_grid`, :func:`sdn.simulate.shoebox_rirs`).

    Parameters
    ----------
    room_size : sequence of 3 float
        Metres.
    n_sources : int
        Sources.
    n_mics : int
        Microphones (every one paired with every source).
    n_heldout_mics : int
        Microphones held out (the last ones).
    sample_rate : int
        Hz.
    rt60 : float
        Broadband reverberation time the materials are designed for, seconds.
    seconds : float
        Length of each RIR.
    max_order : int
        Image-source order of the simulator (ray tracing does the rest).
    n_rays : int
        Rays per source.
    grid_seed : int
        Seed of the positions.
    seed : int
        Seed of the training order.

    Returns
    -------
    Grid
    """
    from .simulate import position_grid, shoebox_rirs

    rooms = position_grid(room_size, n_sources, n_mics, seed=grid_seed)
    rirs = shoebox_rirs(rooms, fs=sample_rate, rt60_target=rt60, duration=seconds, max_order=max_order,
                        n_rays=n_rays)
    return Grid.from_rirs(rooms, rirs, sample_rate, n_mics, n_heldout_mics, seed)


@dataclass
class Fit:
    """One fitted SDN of the study.

    Attributes
    ----------
    method : str
        ``"shared"`` (fitted at the first K training positions) or ``"per-position"`` (fitted at
        one held-out position).
    fir_order : int
        0 (scalar walls) or the FIR order of the walls.
    k : int or None
        K, for a shared fit.
    position : int or None
        The held-out position, for a per-position fit.
    model : sdn.SDN
    history : list of dict
        :func:`sdn.multi.fit_positions`' history.
    seconds : float
        Wall time of the fit.
    """

    method: str
    fir_order: int
    k: int | None
    position: int | None
    model: SDN
    history: list
    seconds: float

    @property
    def label(self) -> str:
        """``"shared FIR-6, K = 4"`` or ``"per-position FIR-6"``."""
        return f"{self.method} FIR-{self.fir_order}" + (f", K = {self.k}" if self.method == "shared" else "")


def _fit(rooms, targets, fir_order: int, epochs: int, lr: float, seed: int, sample_rate: int):
    start = time.perf_counter()
    model, history = fit_positions(rooms, targets, {"sample_rate": sample_rate, "fir_order": fir_order, "alpha": ALPHA},
                                   epochs=epochs, lr=lr, seed=seed, progress=False)
    return model, history, time.perf_counter() - start


def fit_models(grid: Grid, fir_orders: Sequence[int], k_values: Sequence[int], *, epochs: int,
               lr: Mapping[int, float], seed: int = 42, train_seconds: float | None = None) -> list:
    """The shared fits for every K and wall model, and one fit per held-out position.

    Parameters
    ----------
    grid : Grid
    fir_orders : sequence of int
        Wall models (0: scalar walls, as ``prior_fir0``; 6: FIR-6 walls, as ``prior_fir6``).
    k_values : sequence of int
        Numbers of training positions; those above the number of training positions are skipped.
    epochs : int
        Adam epochs of every fit.
    lr : mapping of int to float
        Learning rate per wall model.
    seed : int
        Seed of every fit.
    train_seconds : float, optional
        Length of the targets during training (the first part of each RIR); default all of it.

    Returns
    -------
    list of Fit
        Per wall model: the shared fits in the order of ``k_values``, then the per-position ones.
    """
    n = grid.rirs.shape[-1] if train_seconds is None else int(round(train_seconds * grid.sample_rate))
    targets = torch.as_tensor(grid.rirs[:, :n], dtype=torch.float32)
    fits = []
    for fir in fir_orders:
        for k in [k for k in k_values if k <= len(grid.train_order)]:
            idx = grid.train_order[:k]
            model, history, seconds = _fit([grid.rooms[i] for i in idx], targets[idx], fir, epochs, lr[fir], seed,
                                           grid.sample_rate)
            fits.append(Fit("shared", fir, k, None, model, history, seconds))
        for i in grid.heldout:
            model, history, seconds = _fit(grid.rooms[i], targets[i], fir, epochs, lr[fir], seed, grid.sample_rate)
            fits.append(Fit("per-position", fir, None, int(i), model, history, seconds))
    return fits


def score(model: SDN, target, max_eval_seconds: float = 30.0) -> dict:
    """Errors of a model against a ground-truth RIR, on the model's evaluation render.

    Parameters
    ----------
    model : sdn.SDN
        One position (unbatched).
    target : array_like, shape (T,)
        The ground truth at the model's sample rate.
    max_eval_seconds : float
        Longest render (:func:`sdn.train.evaluation_render`).

    Returns
    -------
    dict
        ``edc_error_db`` (dB, over the target's length), ``t30_err_pct`` and ``edt_err_pct`` (mean
        absolute relative error over the octave bands, percent), ``t30_broadband_err_pct`` (signed,
        percent) and ``stable``; the errors are NaN for a model whose response grows.
    """
    target = np.asarray(target, dtype=np.float64)
    h, stable = evaluation_render(model, target.shape[-1], max_eval_seconds)
    if not stable:
        return {**{key: math.nan for key in SCORES}, "stable": False}
    e = evaluate(h, target, model.sample_rate)
    return {"edc_error_db": e["edc_error_db"], "t30_err_pct": 100 * e["T30_err_mean"],
            "edt_err_pct": 100 * e["EDT_err_mean"], "t30_broadband_err_pct": 100 * e["T30_err"], "stable": True}


def heldout_rows(grid: Grid, fits: Sequence[Fit], max_eval_seconds: float = 30.0) -> list:
    """Every model scored at every held-out position.

    Parameters
    ----------
    grid : Grid
    fits : sequence of Fit
        From :func:`fit_models`.
    max_eval_seconds : float
        Longest evaluation render.

    Returns
    -------
    list of dict
        One row per model and position: ``model`` (``"untrained"``, ``"sabine"`` or a
        :attr:`Fit.label`), ``method``, ``fir_order``, ``K``, ``position``, ``source``, ``mic`` and
        the entries of :func:`score`.
    """
    fs = grid.sample_rate
    rows = []
    for i in grid.heldout:
        room = grid.rooms[i]
        if not np.isfinite(grid.truth[i]["T30"]):
            raise ValueError(f"the ground truth at position {i} has no measurable T30 (a 35 dB decay): "
                             f"simulate longer RIRs")
        alpha = absorption_from_reverberation_time("sabine", grid.truth[i]["T30"], room)
        models = [("untrained", "untrained", 0, None, SDN(room, sample_rate=fs, alpha=ALPHA)),
                  ("sabine", "sabine", 0, None, SDN(room, sample_rate=fs, alpha=alpha))]
        for fit in fits:
            if fit.method == "shared":
                models.append((fit.label, fit.method, fit.fir_order, fit.k, transfer(fit.model, room)))
            elif fit.position == i:
                models.append((fit.label, fit.method, fit.fir_order, None, fit.model))
        for label, method, fir, k, model in models:
            rows.append({"model": label, "method": method, "fir_order": fir, "K": k, "position": int(i),
                         "source": list(room.source), "mic": list(room.mic),
                         **score(model, grid.rirs[i], max_eval_seconds)})
    return rows


def summarise(rows: Sequence[Mapping]) -> list:
    """Means over positions per model (stable positions only) and the number of unstable ones.

    Parameters
    ----------
    rows : sequence of dict
        From :func:`heldout_rows`.

    Returns
    -------
    list of dict
        One row per model, in order of first appearance: ``model``, the means of :data:`SCORES`
        (NaN when no position is stable or no value was measurable), ``unstable`` and ``positions``.
    """
    summary = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        row = {"model": model}
        for key in SCORES:
            values = [r[key] for r in mine if np.isfinite(r[key])]
            row[key] = float(np.mean(values)) if values else math.nan
        row["unstable"] = sum(not r["stable"] for r in mine)
        row["positions"] = len(mine)
        summary.append(row)
    return summary


def real_transfer(room_config, s2_file: str, candidates: Sequence, *, epochs: int, lr: float, seed: int = 42,
                  sample_rate: int = 16000, max_eval_seconds: float = 30.0) -> list:
    """Measured data: an SDN fitted on the room config's target, moved to candidate S2 positions.

    Parameters
    ----------
    room_config : sdn.config.RoomConfig
        S1 and the microphone, with the measured S1 target.
    s2_file : str
        The measured RIR of S2 at the same microphone (its channels are averaged, like the target's).
    candidates : sequence of (str, sequence of 3 float)
        Named candidate positions of S2, metres; the first is the best estimate.
    epochs : int
        Adam epochs of both fits (scalar walls).
    lr : float
        Learning rate.
    seed : int
        Seed of the fits.
    sample_rate : int
        Hz.
    max_eval_seconds : float
        Longest evaluation render.

    Returns
    -------
    list of dict
        ``model``, ``S2 position (m)``, ``EDC error (dB)``, ``T30 error (%)``, ``EDT error (%)`` for the
        S1 fit moved to each candidate, the untrained SDN, the Sabine SDN (from the measured S2 T30)
        and an SDN fitted on S2 at the best estimate.
    """
    from .rir import load_rir

    t1 = room_config.load_target(sample_rate=sample_rate)
    t2 = load_rir(s2_file, channel=room_config.target.channel, sample_rate=sample_rate)
    size, mic = room_config.room.size, room_config.room.mic
    best = Room(size, tuple(candidates[0][1]), mic)
    kwargs = {"sample_rate": sample_rate, "fir_order": 0, "alpha": ALPHA}
    s1_model, _ = fit_positions(room_config.room, t1.signal, kwargs, epochs=epochs, lr=lr, seed=seed, progress=False)
    s2_model, _ = fit_positions(best, t2.signal, kwargs, epochs=epochs, lr=lr, seed=seed, progress=False)
    alpha = absorption_from_reverberation_time("sabine", t2.rt60 or evaluate(t2.signal, None, sample_rate)["T30"], best)
    models = [(f"fitted on S1, moved to S2 ({name})", where, transfer(s1_model, Room(size, tuple(where), mic)))
              for name, where in candidates]
    models += [("untrained", candidates[0][1], SDN(best, sample_rate=sample_rate, alpha=ALPHA)),
               ("Sabine", candidates[0][1], SDN(best, sample_rate=sample_rate, alpha=alpha)),
               ("fitted on S2 itself (best)", candidates[0][1], s2_model)]
    rows = []
    for name, where, model in models:
        s = score(model, t2.signal.double().numpy(), max_eval_seconds)
        rows.append({"model": name, "S2 position (m)": np.round(where, 2).tolist(), "EDC error (dB)": s["edc_error_db"],
                     "T30 error (%)": s["t30_err_pct"], "EDT error (%)": s["edt_err_pct"]})
    return rows


# ----------------------------------------------------------------------------------------------
# Figures


def plot_grid(grid: Grid, n_mics: int):
    """Plan view: the room, the sources, the training and held-out microphones, the K = 1 pair."""
    import matplotlib.pyplot as plt

    size = grid.rooms[0].size
    fig, ax = plt.subplots(figsize=(4.2, 8))
    ax.add_patch(plt.Rectangle((0, 0), size[0], size[1], fill=False))
    sources = np.unique(np.array([r.source for r in grid.rooms]), axis=0)
    mics = np.array([grid.rooms[i].mic for i in range(n_mics)])
    held = np.isin(np.arange(n_mics), [i % n_mics for i in grid.heldout])
    ax.plot(sources[:, 0], sources[:, 1], "k*", ms=11, label="sources")
    ax.plot(mics[~held, 0], mics[~held, 1], "o", color="tab:blue", label="training mics")
    ax.plot(mics[held, 0], mics[held, 1], "s", color="tab:red", label="held-out mics")
    first = grid.rooms[grid.train_order[0]]
    ax.plot(*zip(first.source[:2], first.mic[:2]), "--", color="tab:green", label="K = 1 pair")
    ax.set_aspect("equal")
    ax.set_xlim(-0.2, size[0] + 0.2)
    ax.set_ylim(-0.2, size[1] + 0.2)
    ax.set(xlabel="x (m)", ylabel="y (m)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("plan view of the grid", fontsize=9)
    fig.tight_layout()
    return fig


def plot_losses(fits: Sequence[Fit], epochs: int):
    """Training loss per epoch of the shared fits and the mean of the per-position fits, per wall model."""
    import matplotlib.pyplot as plt

    fir_orders = list(dict.fromkeys(f.fir_order for f in fits))
    fig, axes = plt.subplots(1, len(fir_orders), figsize=(5 * len(fir_orders), 3.4), squeeze=False)
    for ax, fir in zip(axes[0], fir_orders):
        for fit in [f for f in fits if f.fir_order == fir and f.method == "shared"]:
            ax.plot([r["total"] for r in fit.history], label=f"shared, K = {fit.k}")
        per = [[r["total"] for r in f.history] for f in fits
               if f.fir_order == fir and f.method == "per-position" and len(f.history) == epochs]
        if per:
            ax.plot(np.mean(per, axis=0), "k--", label="per-position (mean)")
        ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="loss (mean over positions)")
        ax.set_title(f"FIR-{fir} walls", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_errors_against_k(summary: Sequence[Mapping], fir_orders: Sequence[int], k_values: Sequence[int]):
    """Mean held-out errors of the shared fits against K, with the per-position fits and Sabine as lines."""
    import matplotlib.pyplot as plt

    by_model = {r["model"]: r for r in summary}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, name) in zip(axes, [("edc_error_db", "EDC error (dB)"), ("t30_err_pct", "octave T30 error (%)"),
                                      ("edt_err_pct", "octave EDT error (%)")]):
        for j, fir in enumerate(fir_orders):
            ks = [k for k in k_values if f"shared FIR-{fir}, K = {k}" in by_model]
            ax.plot(ks, [by_model[f"shared FIR-{fir}, K = {k}"][key] for k in ks], "o-", color=f"C{j}",
                    label=f"shared FIR-{fir}")
            ax.axhline(by_model[f"per-position FIR-{fir}"][key], color=f"C{j}", ls="--", lw=1,
                       label=f"per-position FIR-{fir}")
        ax.axhline(by_model["sabine"][key], color="k", ls=":", lw=1, label="Sabine")
        ax.set_xscale("log")
        ax.set_xticks(list(k_values), [str(k) for k in k_values])
        ax.set_xlabel("training positions K")
        ax.set_title(name, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("held-out positions (mean); the untrained SDN is off the scale", fontsize=9)
    fig.tight_layout()
    return fig


def plot_heldout_edc(grid: Grid, fits: Sequence[Fit], position: int, fir_order: int):
    """EDCs at one held-out position: ground truth, Sabine, the shared fits moved there, the per-position fit."""
    import matplotlib.pyplot as plt

    from .acoustics import energy_decay_curve

    room, n = grid.rooms[position], grid.rirs.shape[-1]
    alpha = absorption_from_reverberation_time("sabine", grid.truth[position]["T30"], room)
    models = {"Sabine": SDN(room, sample_rate=grid.sample_rate, alpha=alpha)}
    for fit in fits:
        if fit.fir_order == fir_order and (fit.method == "shared" or fit.position == position):
            models[fit.label] = transfer(fit.model, room) if fit.method == "shared" else fit.model
    curves = {"ground truth": grid.rirs[position]}
    for name, model in models.items():
        h, stable = evaluation_render(model, n, n / grid.sample_rate)
        if stable:
            curves[name] = h.double().numpy()[:n]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    t = np.arange(n) / grid.sample_rate
    for name, h in curves.items():
        edc = energy_decay_curve(h, db=True)
        truth = name == "ground truth"
        ax.plot(t, edc - edc[0], lw=1.2 if truth else 1, color="k" if truth else None, label=name)
    ax.set_ylim(-70, 2)
    ax.set(xlabel="time (s)", ylabel="EDC (dB)")
    ax.set_title(f"held-out position {position}: source {np.round(room.source, 2).tolist()}, "
                 f"mic {np.round(room.mic, 2).tolist()}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
