r"""Amplitudes of the direct sound and of the first-order reflections of an SDN, read from its network.

A first-order reflection passes the network once: the source line of node k injects
:math:`b_k = g_{Sk}/2` into each of the node's five incoming waves; with equal incoming waves the
junction pressure is :math:`q_k = \sum_l a_{kl} b_k = 2 b_k`, so every outgoing wave is
:math:`q_k - b_k = b_k` whatever the admittances; the wall filter scales it by :math:`H_k`, and
the microphone reads :math:`g_{kM} H_k b_k \sum_l w_{kl}`. At low frequency (every filter and
line replaced by the sum of its taps, :math:`z = 1`):

.. math::

    a_0 = g_{SM} E_{SM}(1), \qquad
    a_k = \frac{g_{Sk}}{2}\, E_{Sk}(1)\, H_k(1) \Big(\sum_l w_{kl}\Big) g_{kM}\, E_{kM}(1).

With the classic initialisation (:math:`w_{kl} = 2/K`, so :math:`\sum_l w_{kl} = 2`) this is the
image-source amplitude :math:`\beta_k G / (d_{Sk} + d_{kM})` of the reflection, against
:math:`G / d_{SM}` for the direct sound.

The paper's released code departs from this in two places that both change these levels (see
:data:`sdn.model.QUIRKS`): its summed extraction weights (``summed_weights``) read every line with
the sum of all 30 weights, :math:`\sum_l w_{kl} = 5 \cdot 12 = 60` at initialisation instead of 2
(reflections 30 times louder), and its direct path has the gain :math:`1/d_{SM}` instead of
:math:`G/d_{SM}` (``direct_gain``, :math:`1/G` times louder). :func:`direct_to_reflection_change_db`
measures what the two do together.
"""
from __future__ import annotations

import torch

from .model import SDN

__all__ = ["first_order_amplitudes", "direct_to_reflection_db", "direct_to_reflection_change_db"]


def first_order_amplitudes(model: SDN) -> dict:
    """Low-frequency amplitudes of the direct sound and of the six first-order reflections.

    Parameters
    ----------
    model : sdn.SDN
        Any configuration, trained or not, quirks included (a line that the released code's
        buffers truncate gives 0).

    Returns
    -------
    dict
        ``direct`` (...,) and ``reflections`` (..., 6), float64 tensors without gradient, the
        batch shape of the model's positions in front; signed (a wall filter may invert).
    """
    with torch.no_grad():
        net = model.network().to(torch.float64)
        direct = net.direct_gain[..., 0] * net.direct.taps.sum(-1)[..., 0]
        reflections = (net.injection * net.source_node.taps.sum(-1) * net.wall_taps.sum(-1)
                       * net.extraction.sum(-1) * net.mic_gain * net.node_mic.taps.sum(-1))
    return {"direct": direct, "reflections": reflections}


def direct_to_reflection_db(model: SDN) -> torch.Tensor:
    r"""Level of the direct sound above each first-order reflection, :math:`20\log_{10}|a_0 / a_k|` dB.

    Parameters
    ----------
    model : sdn.SDN

    Returns
    -------
    torch.Tensor, shape (..., 6)
        dB, in wall order (:data:`sdn.WALL_NAMES`); +inf for a reflection the model does not
        render (a truncated line).
    """
    amplitudes = first_order_amplitudes(model)
    return 20 * torch.log10(amplitudes["direct"].abs()[..., None] / amplitudes["reflections"].abs())


def direct_to_reflection_change_db(model: SDN, reference: SDN) -> torch.Tensor:
    r"""How much louder the direct sound is, relative to the first-order reflections, in ``model``
    than in ``reference``, dB.

    For the released code's behaviours at initialisation (``quirks="paper"`` against the exact
    model, same room and absorption) the change is the same for every wall,

    .. math:: 20\log_{10}\frac{1/G}{30} = 20\log_{10}\frac{f_s}{30\,c},

    the direct path's :math:`1/G` against the summed weights' factor 30; after training it depends
    on the learned weights.

    Parameters
    ----------
    model : sdn.SDN
        E.g. a model with ``quirks="paper"``.
    reference : sdn.SDN
        E.g. the exact model of the same room.

    Returns
    -------
    torch.Tensor, shape (..., 6)
        dB per wall; positive when the direct sound stands out more in ``model``.

    Examples
    --------
    >>> import sdn
    >>> room = sdn.Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.20), (3.67, 1.96, 1.20))
    >>> change = direct_to_reflection_change_db(sdn.SDN(room, quirks="summed_weights,direct_gain"), sdn.SDN(room))
    >>> [round(float(x), 2) for x in change]
    [3.83, 3.83, 3.83, 3.83, 3.83, 3.83]
    """
    return direct_to_reflection_db(model) - direct_to_reflection_db(reference)
