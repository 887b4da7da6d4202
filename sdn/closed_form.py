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

from .delays import DelayLine, line_response
from .geometry import N_WALLS

PAIRS = torch.triu_indices(N_WALLS, N_WALLS, offset=1)  # the 15 node pairs (k < l)
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
    real = net.injection.dtype
    cdtype = torch.complex128 if real == torch.float64 else torch.complex64
    s = z_log.to(cdtype)
    lines = (net.source_node, net.node_pair, net.node_mic, net.direct)
    sizes = [line.offset.shape[-1] for line in lines]
    together = DelayLine(torch.cat([line.offset for line in lines], -1), torch.cat([line.taps for line in lines], -2))
    E_source, E_pair, E_mic, E_direct = line_response(together, s).transpose(-1, -2).split(sizes, -1)  # (..., F, n)

    H = line_response(DelayLine(net.wall_taps.new_zeros(N_WALLS), net.wall_taps), s).T  # (F, 6)
    E = s.new_zeros(*E_pair.shape[:-1], N_WALLS, N_WALLS)
    E[..., PAIRS[0], PAIRS[1]] = E_pair
    E = E + E.transpose(-1, -2)  # (..., F, 6, 6), symmetric, zero diagonal
    b = net.injection.unsqueeze(-2) * E_source  # (..., F, 6)

    a = net.junction
    EH = E * H[:, None, :]  # [l, k] = E_kl H_k
    loop = EH * EH.transpose(-1, -2)  # [l, k] = E_kl^2 H_k H_l
    den = 1 - loop  # diagonal is 1: E has a zero diagonal
    T = a / den
    P = T * EH
    M = P - torch.diag_embed((P * EH.transpose(-1, -2)).sum(-1))
    rhs = T.sum(-1) * b - (P * b.unsqueeze(-2)).sum(-1)
    eye = torch.eye(N_WALLS, dtype=cdtype, device=s.device)
    q = torch.linalg.solve(eye - M, rhs)  # (..., F, 6) junction pressures
    # [l, k]: the wave arriving at node l from node k
    U = (b.unsqueeze(-1) + EH * (q - b).unsqueeze(-2) - loop * q.unsqueeze(-1)) / den

    w = net.extraction
    node_out = q * w.sum(-1) - (w * U).sum(-1)  # w_k^T (S_k p_k^+), before the wall filter
    Y = (net.mic_gain.unsqueeze(-2) * E_mic * H * node_out).sum(-1)
    return Y + net.direct_gain * E_direct[..., 0]


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
    tensor, shape (..., n_fft), the network's real dtype. Without gradient, frequency bins are
    solved in chunks of ``BINS_PER_CHUNK`` to bound memory.
    """
    log_r = aliasing_db / (20 * n_fft) * math.log(10)
    dtype = net.injection.dtype
    omega = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=net.injection.device) / n_fft
    z_log = torch.complex(torch.full_like(omega, log_r), omega)
    if torch.is_grad_enabled():
        Y = transfer_function(net, z_log)
    else:
        Y = torch.cat([transfer_function(net, part) for part in z_log.split(BINS_PER_CHUNK)], dim=-1)
    n = torch.arange(n_fft, dtype=dtype, device=Y.device)
    return torch.fft.irfft(Y, n=n_fft) * torch.exp(log_r * n)

