"""Time-domain recursion of an SDN with integer delays: the reference for the closed form, and a
streaming renderer.

It runs the network's difference equations directly (float64 numpy), block by block: every line
between nodes delays by at least ``B`` samples, so within a block of ``B`` samples the waves
arriving at the nodes depend only on earlier blocks and the whole block is computed at once.
Same model, same equations as :class:`sdn.SDN`, but no frequency domain: scattering at each node,
wall filter on each outgoing wave, delay lines as sample histories.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import N_WALLS


class TimeDomainSDN:
    """Stateful renderer of a frozen snapshot of an integer-delay SDN.

    Parameters
    ----------
    model : sdn.SDN built with ``integer_delays=True``. Its parameters are copied (later training
        does not change this renderer).

    ``process(x)`` consumes the next samples of the input (1-D) and returns as many output samples;
    successive calls continue the same signal. ``reset()`` clears the state.
    """

    def __init__(self, model):
        if model.config["quirks"]:
            raise ValueError("the time-domain recursion implements the exact model only (no quirks)")
        if model.batch_shape:
            raise ValueError("the time-domain recursion renders one position: build the SDN from one sdn.Room")
        if not model.config["integer_delays"]:
            raise ValueError(
                "the time-domain recursion needs whole-sample delays: build the SDN with "
                "integer_delays=True (or render fractional-delay models with the closed form, model(x))"
            )
        with torch.no_grad():
            dist = {k: v.double().cpu().numpy() for k, v in model.distances().items()}
            delay = {k: v.cpu().numpy().astype(np.int64) for k, v in model.delays().items()}
            self.taps = model.wall_filters().double().cpu().numpy()  # (6, M+1)
            y = model.admittances().double().cpu().numpy()
            w = np.zeros((N_WALLS, N_WALLS))
            w[~np.eye(N_WALLS, dtype=bool)] = model.extraction_weights().double().cpu().numpy().ravel()
        G = model.metres_per_sample
        self.a = 2 * y / y.sum(-1, keepdims=True)  # (6, 6) junction weights, zero diagonal
        self.w = w  # (6, 6) extraction weights, zero diagonal
        self.b = G / dist["source_node"] / 2  # injection into each incoming wave
        self.g_mic = 1.0 / (1.0 + dist["node_mic"] / dist["source_node"])
        self.g_direct = float(G / dist["direct"][0])
        self.d_source = delay["source_node"]
        self.d_line = np.where(np.eye(N_WALLS, dtype=bool), 1, delay["node_node"])  # [k, l]
        self.d_mic = delay["node_mic"]
        self.d_direct = int(delay["direct"][0])
        self.block = int(self.d_line[~np.eye(N_WALLS, dtype=bool)].min())
        # History kept before the current sample: longest delay plus the filter memory.
        order = self.taps.shape[1] - 1
        self.memory = int(max(self.d_line.max(), self.d_source.max(), self.d_mic.max(), self.d_direct)) + order
        self.reset()

    def reset(self) -> None:
        self._x = np.zeros(self.memory)
        self._scattered = np.zeros((N_WALLS, N_WALLS, self.memory))  # [k, l]: node k towards l, before H_k
        self._out = np.zeros((N_WALLS, N_WALLS, self.memory))  # after H_k: what enters line k -> l
        self._mic = np.zeros((N_WALLS, self.memory))  # w_k^T H_k S_k p_k^+

    def _filter(self, history: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Apply each node's wall filter (along axis 0) to history[..., start:stop]."""
        shape = (N_WALLS,) + (1,) * (history.ndim - 1)
        return sum(self.taps[:, m].reshape(shape) * history[..., start - m : stop - m] for m in range(self.taps.shape[1]))

    def process(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"process expects a 1-D block of samples, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("input block contains NaN or inf")
        n, start = len(x), self.memory
        self._x = np.concatenate([self._x, x])
        self._scattered = np.concatenate([self._scattered, np.zeros((N_WALLS, N_WALLS, n))], axis=-1)
        self._out = np.concatenate([self._out, np.zeros((N_WALLS, N_WALLS, n))], axis=-1)
        self._mic = np.concatenate([self._mic, np.zeros((N_WALLS, n))], axis=-1)
        rows, cols = np.indices((N_WALLS, N_WALLS))
        for t0 in range(start, start + n, self.block):
            t = np.arange(t0, min(t0 + self.block, start + n))
            # arriving[l, k, :] = b_l x(t - D_Sl) + out[k -> l](t - D_kl)
            from_lines = self._out[cols[..., None], rows[..., None], t - self.d_line.T[..., None]]
            arriving = self.b[:, None, None] * self._x[t - self.d_source[:, None]][:, None, :] + from_lines
            junction = (self.a[..., None] * arriving).sum(1)  # q_l, (6, len(t))
            self._scattered[..., t] = (junction[:, None, :] - arriving) * ~np.eye(N_WALLS, dtype=bool)[..., None]
            self._out[..., t] = self._filter(self._scattered, t[0], t[-1] + 1)
            self._mic[:, t] = (self.w[..., None] * self._out[..., t]).sum(1)
        t = np.arange(start, start + n)
        y = (self.g_mic[:, None] * self._mic[np.arange(N_WALLS)[:, None], t - self.d_mic[:, None]]).sum(0)
        y += self.g_direct * self._x[t - self.d_direct]
        # Keep only the history later samples can reach.
        self._x = self._x[-self.memory :]
        self._scattered = self._scattered[..., -self.memory :]
        self._out = self._out[..., -self.memory :]
        self._mic = self._mic[:, -self.memory :]
        return y
