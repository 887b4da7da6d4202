"""Time-domain recursion of an SDN: the reference for the closed form, and a streaming renderer.

It runs the network's difference equations directly (float64 numpy), block by block, on the same
components as the closed form (:meth:`sdn.SDN.network`): the same FIR delay lines (fractional
or whole-sample), wall filters, junctions and extraction weights, quirks included. Every line
between nodes delays by at least ``B`` samples (its first tap), so within a block of ``B`` samples
the waves arriving at the nodes depend only on earlier blocks and the whole block is computed at
once.
"""
from __future__ import annotations

import numpy as np
import torch

from .closed_form import PAIRS
from .geometry import N_WALLS

_OFF = ~np.eye(N_WALLS, dtype=bool)


def _numpy(line) -> tuple[np.ndarray, np.ndarray]:
    """(offsets as int64, taps as float64) of a DelayLine."""
    return line.offset.cpu().numpy().astype(np.int64), line.taps.double().cpu().numpy()


def _fir(history: np.ndarray, t: np.ndarray, offset: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """sum_j taps[..., j] * history[..., t - offset - j] for the lines (...) at times t, shape (..., len(t))."""
    j = np.arange(taps.shape[-1])
    index = t - offset[..., None, None] - j[:, None]  # (..., J, len(t))
    lines = np.indices(offset.shape)
    values = history[(*(i[..., None, None] for i in lines), index)]
    return np.einsum("...j,...jt->...t", taps, values)


class TimeDomainSDN:
    """Stateful renderer of a frozen snapshot of an SDN (one position).

    Parameters
    ----------
    model : sdn.SDN
        Any delays (fractional or integer) and quirks. Its parameters are copied: later training
        does not change this renderer.

    Notes
    -----
    ``process(x)`` consumes the next samples of the input (1-D) and returns as many output
    samples; successive calls continue the same signal. ``reset()`` clears the state. The cost
    is about 36 x 32 multiply-adds per sample for fractional lines: a reference, not a real-time
    renderer.
    """

    def __init__(self, model):
        if model.batch_shape:
            raise ValueError("the time-domain recursion renders one position: build the SDN from one sdn.Room")
        with torch.no_grad():
            net = model.network()
            self.source = _numpy(net.source_node)  # (6,), (6, J)
            pair_offset, pair_taps = _numpy(net.node_pair)
            self.mic = _numpy(net.node_mic)
            self.direct = _numpy(net.direct)
            self.wall_taps = net.wall_taps.double().cpu().numpy()  # (6, M+1)
            self.a = net.junction.double().cpu().numpy()  # (6, 6), zero diagonal
            self.w = net.extraction.double().cpu().numpy()  # (6, 6), zero diagonal
            self.b = net.injection.double().cpu().numpy()
            self.g_mic = net.mic_gain.double().cpu().numpy()
            self.g_direct = float(net.direct_gain.double()[0])
        # [k, l]: the line from node k to node l (the same filter both ways); the diagonal is unused.
        offset = np.ones((N_WALLS, N_WALLS), dtype=np.int64)
        taps = np.zeros((N_WALLS, N_WALLS, pair_taps.shape[-1]))
        for (k, l), o, c in zip(PAIRS.T.tolist(), pair_offset, pair_taps):
            offset[k, l] = offset[l, k] = o
            taps[k, l] = taps[l, k] = c
        self.line = (offset, taps)
        self.block = int(offset[_OFF].min())
        reach = max(int((o + c.shape[-1]).max()) for o, c in (self.source, self.line, self.mic, self.direct))
        self.memory = reach + self.wall_taps.shape[1]  # history kept before the current sample
        self.reset()

    def reset(self) -> None:
        self._x = np.zeros(self.memory)
        self._scattered = np.zeros((N_WALLS, N_WALLS, self.memory))  # [k, l]: node k towards l, before H_k
        self._out = np.zeros((N_WALLS, N_WALLS, self.memory))  # after H_k: what enters line k -> l
        self._mic = np.zeros((N_WALLS, self.memory))  # sum_l w_kl out[k, l]

    def _wall_filter(self, history: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Apply each node's wall filter (along axis 0) to history[..., start:stop]."""
        shape = (N_WALLS,) + (1,) * (history.ndim - 1)
        return sum(self.wall_taps[:, m].reshape(shape) * history[..., start - m : stop - m]
                   for m in range(self.wall_taps.shape[1]))

    def process(self, x) -> np.ndarray:
        """Filter the next block of input samples, shape (n,) -> (n,)."""
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
        x_all = np.broadcast_to(self._x, (N_WALLS,) + self._x.shape)
        for t0 in range(start, start + n, self.block):
            t = np.arange(t0, min(t0 + self.block, start + n))
            # arriving[l, k] = b_l (E_Sl x)(t) + (E_kl out[k -> l])(t)
            from_lines = _fir(self._out, t, *self.line).transpose(1, 0, 2)
            arriving = (self.b[:, None] * _fir(x_all, t, *self.source))[:, None, :] + from_lines
            junction = (self.a[..., None] * arriving).sum(1)  # q_l, (6, len(t))
            self._scattered[..., t] = (junction[:, None, :] - arriving) * _OFF[..., None]
            self._out[..., t] = self._wall_filter(self._scattered, t[0], t[-1] + 1)
            self._mic[:, t] = (self.w[..., None] * self._out[..., t]).sum(1)
        t = np.arange(start, start + n)
        y = (self.g_mic[:, None] * _fir(self._mic, t, *self.mic)).sum(0)
        y += self.g_direct * _fir(self._x[None], t, *self.direct)[0]
        # Keep only the history later samples can reach.
        self._x = self._x[-self.memory :]
        self._scattered = self._scattered[..., -self.memory :]
        self._out = self._out[..., -self.memory :]
        self._mic = self._mic[:, -self.memory :]
        return y
