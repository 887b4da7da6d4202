r"""The SDN's transfer function in closed form, and its anti-aliased impulse response.

The network is linear and time-invariant. Write :math:`E_{kl}(z)` for the delay line between
nodes k and l (the same filter both ways, :mod:`sdn.delays`), :math:`H_k(z)` for the wall filter
of node k, :math:`b_k = (g_{Sk}/2) E_{Sk}(z)` for the source injection into each wave arriving at
node k, :math:`a_{lk} = 2 y_{lk} / \sum_m y_{lm}` for the junction weights and
:math:`q_l = \sum_k a_{lk} U_{lk}` for the junction pressure of node l, where :math:`U_{lk}` is
the wave arriving at node l from node k. The two waves of the line pair {k, l} satisfy

.. math::

    U_{lk}\,(1 - E_{kl}^2 H_k H_l) = b_l + E_{kl} H_k (q_k - b_k) - E_{kl}^2 H_k H_l\, q_l ,

and substituting into :math:`q_l` leaves one 6x6 linear system per frequency instead of the
30x30 one (the two are equal by the Woodbury identity; the tests check). The output is

.. math::

    Y = \sum_k g_{kM} E_{kM} H_k\, w_k^\top (S_k p_k^+) + g_{SM} E_{SM}\, X .

It is evaluated on the circle :math:`|z| = r`, :math:`r = 10^{A / (20 N)}` slightly outside the
unit circle (N the FFT length, A = ``aliasing_db``), and the inverse FFT is multiplied by
:math:`r^n`: whatever wraps around from beyond N samples is attenuated by A decibels. Every line is
causal, so nothing wraps from negative time and a render does not depend on its length.

References
----------
E. De Sena, H. Hacıhabiboğlu, Z. Cvetković, J. O. Smith, "Efficient synthesis of room acoustics
via scattering delay networks," IEEE/ACM TASLP 23(9), 2015.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .delays import DelayLine, grid_response, line_response
from .geometry import N_WALLS
from .node_system import PAIRS, NodeSystem
from .real_fft import irfft

BINS_PER_CHUNK = 1 << 15  # frequency bins per solve when no gradient is needed (bounds memory)


class Network(NamedTuple):
    r"""The components of an SDN, with the batch shape (...) of the positions in front.

    ``source_node``, ``node_pair``, ``node_mic``, ``direct`` (:class:`sdn.delays.DelayLine`): the
    lines source -> node (..., 6), between the 15 node pairs k < l (..., 15), node -> mic (..., 6)
    and the direct path (..., 1). ``injection`` (..., 6): :math:`g_{Sk}/2 = G / (2 d_{Sk})`, into
    each of the 5 waves arriving at node k. ``mic_gain`` (..., 6):
    :math:`g_{kM} = 1 / (1 + d_{kM} / d_{Sk})`. ``direct_gain`` (..., 1): :math:`G / d_{SM}`.
    ``wall_taps`` (6, M + 1): FIR wall filters :math:`H_k(z) = \sum_m h_{km} z^{-m}`.
    ``junction`` (6, 6): :math:`a_{kl} = 2 y_{kl} / \sum_m y_{km}`, zero diagonal.
    ``extraction`` (6, 6): extraction weights :math:`w_{kl}` (the mic reads :math:`\sum_l w_{kl}`
    times the wave leaving node k towards l), zero diagonal.
    """

    source_node: DelayLine
    node_pair: DelayLine
    node_mic: DelayLine
    direct: DelayLine
    injection: torch.Tensor
    mic_gain: torch.Tensor
    direct_gain: torch.Tensor
    wall_taps: torch.Tensor
    junction: torch.Tensor
    extraction: torch.Tensor

    def to(self, dtype: torch.dtype) -> "Network":
        """The same network with every tensor cast to ``dtype`` (line offsets included)."""
        return Network(*(DelayLine(*(t.to(dtype) for t in v)) if isinstance(v, DelayLine) else v.to(dtype)
                         for v in self))


def transfer_function(net: Network, z_log: torch.Tensor) -> torch.Tensor:
    """:math:`Y(z) / X(z)` at :math:`z = e^s` for complex ``s`` = ``z_log`` (F,), shape (..., F).

    Parameters
    ----------
    net : Network
    z_log : complex tensor, shape (F,)

    Returns
    -------
    complex tensor, shape (..., F), complex128 for a float64 network, complex64 otherwise.
    """
    s = z_log.to(torch.complex128 if net.injection.dtype == torch.float64 else torch.complex64)
    return _transfer(net, lambda line: line_response(line, s))


def _transfer(net: Network, respond) -> torch.Tensor:
    """Y on a set of frequencies, given ``respond(line)``, the responses (..., F) of a DelayLine there."""
    # The four sets of lines in one call (they share the positions and the number of taps): one
    # FFT of their 28 rows took 1.7 ms, one per set 2.4 ms (32768 points, float32).
    lines = (net.source_node, net.node_pair, net.node_mic, net.direct)
    joined = DelayLine(torch.cat([line.offset for line in lines], -1), torch.cat([line.taps for line in lines], -2))
    E_source, E_pair, E_mic, E_direct = respond(joined).split([line.offset.shape[-1] for line in lines], -2)
    H = respond(DelayLine(net.wall_taps.new_zeros(N_WALLS), net.wall_taps))  # (6, F)
    source = net.injection.unsqueeze(-1) * E_source
    mic = net.mic_gain.unsqueeze(-1) * E_mic * H
    batch = E_pair.shape[:-2]
    Y = NodeSystem.apply(E_pair.reshape(-1, *E_pair.shape[-2:]), H, source.reshape(-1, *source.shape[-2:]),
                         mic.reshape(-1, *mic.shape[-2:]), net.junction, net.extraction)
    return Y.reshape(*batch, -1) + net.direct_gain * E_direct[..., 0, :]


def impulse_response(net: Network, n_fft: int, aliasing_db: float) -> torch.Tensor:
    r"""The anti-aliased impulse response :math:`r^n\,\mathrm{IDFT}_N\{Y(r e^{j 2\pi k/N})\}`.

    Parameters
    ----------
    net : Network
    n_fft : int
        FFT length N (even); the response is exact, up to what wraps around from beyond N samples
        (attenuated by ``aliasing_db``), for every n < N.
    aliasing_db : float
        A, in dB.

    Returns
    -------
    tensor, shape (..., n_fft), the network's real dtype. The line responses on the FFT grid are
    real FFTs of their taps (:func:`sdn.delays.grid_response`); without gradient and for more
    than ``BINS_PER_CHUNK`` bins, the grid is solved in interleaved subgrids
    (:func:`_subgrid_transfer`), to bound memory.
    """
    log_r = aliasing_db / (20 * n_fft) * math.log(10)
    dtype = net.injection.dtype
    n_bins = n_fft // 2 + 1
    if torch.is_grad_enabled() or n_bins <= BINS_PER_CHUNK:
        Y = _transfer(net, lambda line: grid_response(line, n_fft, log_r))
    else:
        Y = _subgrid_transfer(net, n_fft, log_r)[..., :n_bins]
    n = torch.arange(n_fft, dtype=dtype, device=Y.device)
    return irfft(Y, n_fft) * torch.exp(log_r * n)


def _subgrid_transfer(net: Network, n_fft: int, log_r: float) -> torch.Tensor:
    r"""Y on the whole grid of N (even) bins, shape (..., N), solved on M interleaved subgrids of at
    most ``BINS_PER_CHUNK`` bins where N allows (M a power of two).

    Subgrid q holds the bins k = M m + q; its line responses are one complex FFT of N/M points
    each (:func:`sdn.delays.grid_response`). Only the subgrids q <= M/2 are solved: the network is
    real, so :math:`Y(z_{N-k}) = \overline{Y(z_k)}`, and subgrid M - q is subgrid q conjugated,
    in reverse order.
    """
    stride = 2
    while n_fft // stride > BINS_PER_CHUNK and n_fft % (2 * stride) == 0:
        stride *= 2
    Y = None
    for first in range(stride // 2 + 1):
        part = _transfer(net, lambda line: grid_response(line, n_fft, log_r, stride, first))
        if Y is None:
            Y = part.new_empty(*part.shape[:-1], n_fft)
        Y[..., first::stride] = part
        if 0 < first < stride - first:
            Y[..., stride - first::stride] = part.flip(-1).conj()
    return Y
