r"""Rendering an SDN's impulse response: the anti-aliased closed form, its stability checks, and
lengths sized by the decay.

:meth:`sdn.SDN.impulse_response` calls these with the model's network
(:class:`sdn.closed_form.Network`) and admittances:

- :func:`render` evaluates the closed form on an FFT grid of :math:`N = 2^{\lceil \log_2 2n \rceil}`
  points, so that what wraps around from beyond N samples is suppressed by the aliasing
  attenuation A (:func:`sdn.closed_form.impulse_response`); a network that the passivity
  certificate (:mod:`sdn.stability`) does not cover is rendered long enough to see any growth;
- :func:`render_until_decayed` renders longer and longer, from 1 s, until the response has decayed
  ``decay_db`` below its peak.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import closed_form
from .closed_form import Network
from .stability import StabilityReport, UnstableSDNError, growth_ratio, network_certificate

__all__ = ["ALIASING_DB", "DECAY_DB", "MAX_RENDER_SECONDS", "render", "render_until_decayed"]

#: Default time-aliasing suppression of the closed form (dB over one FFT length) per real dtype.
ALIASING_DB = {torch.float32: 70.0, torch.float64: 140.0}
#: Renders sized by their decay stop this many dB below the peak.
DECAY_DB = 100.0
#: Longest render sized by the decay, in seconds, unless the caller caps it.
MAX_RENDER_SECONDS = 60.0


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, math.ceil(math.log2(n)))


def render(net: Network, admittances: torch.Tensor, n_samples: int, aliasing_db: float | None = None,
           check_growth: bool = True) -> torch.Tensor:
    """The first ``n_samples`` of the network's impulse response, checked for stability.

    Parameters
    ----------
    net : Network
        The network (its dtype is that of the result).
    admittances : tensor, shape (6, 6)
        The junctions' admittances, for the passivity certificate.
    n_samples : int
        Length n, >= 1.
    aliasing_db : float, optional
        Aliasing attenuation A in dB (default ``ALIASING_DB`` of the computation's dtype).
        Without gradient the closed form is computed in float64 whatever the network's dtype: a
        float32 solve amplified by :math:`r^n` would leave rounding noise near -75 dB at the end of
        a minute-long render.
    check_growth : bool
        Check a network that the passivity certificate does not cover for growth (default). Off,
        only a non-finite response raises: training turns it off, because the loss sees a response
        that grows within the render and pulls the parameters back (the FIR-6 fits of the study
        grow for a few epochs early on and then recover).

    Returns
    -------
    tensor, shape (..., n_samples)

    Raises
    ------
    UnstableSDNError
        When the response is not finite, or (with ``check_growth``) the network is not certified
        passive and its response grows or wraps around.
    """
    buffer = _anti_aliased_buffer(net, next_pow2(2 * int(n_samples)), aliasing_db)
    if not torch.isfinite(buffer).all():
        raise UnstableSDNError("the SDN impulse response is not finite (NaN or inf in the parameters or the solve)")
    if check_growth:
        with torch.no_grad():
            report = network_certificate(admittances, net.wall_taps, net.node_pair)
        if not report.certified:
            _check_growth(buffer, report, net, aliasing_db)
    return buffer[..., :n_samples].to(net.injection.dtype)


def render_until_decayed(render_n: Callable[[int], torch.Tensor], sample_rate: float,
                         decay_db: float = DECAY_DB, max_samples: int | None = None) -> torch.Tensor:
    """Renders from 1 s on, each at least twice as long as the last, until the last quarter of one
    stays more than ``decay_db`` below the peak in every position.

    After a render that has not decayed, the next length comes from the decay rate of its third
    and last quarters, extrapolated to ``decay_db`` below the peak with a margin (when longer
    than twice the last): a slowly decaying model is rendered twice, not once per doubling.
    The result does not depend on the lengths tried (a render does not depend on its length).

    Parameters
    ----------
    render_n : callable
        ``render_n(n)`` gives the first n samples, shape (..., n).
    sample_rate : float
        Hz (the first render is the power of two at or above one second).
    decay_db : float
        Level below the peak, dB, at which the response counts as decayed.
    max_samples : int, optional
        Longest render (default ``MAX_RENDER_SECONDS``).

    Returns
    -------
    tensor, shape (..., L)
        Up to one past the last sample at or above the decay level in any position, at most
        ``max_samples`` long.
    """
    cap = int(max_samples) if max_samples is not None else int(MAX_RENDER_SECONDS * sample_rate)
    if cap <= 0:
        raise ValueError(f"max_samples must be positive, got {max_samples!r}")
    n = min(cap, next_pow2(int(sample_rate)))
    while True:
        h = render_n(n)
        magnitude = h.detach().abs().reshape(-1, n).amax(0)
        floor = magnitude.max() * 10 ** (-decay_db / 20)
        last = int(torch.nonzero(magnitude >= floor).max()) + 1
        if n >= cap or last <= n - n // 4:
            return h[..., :last]
        n = min(cap, max(2 * n, _decayed_length(magnitude, floor)))


def _decayed_length(magnitude: torch.Tensor, floor: torch.Tensor) -> int:
    """A render length whose last quarter should lie below ``floor``: the peaks of the third and
    last quarters of ``magnitude`` (n,) give a decay rate in dB per sample, extrapolated from the
    last quarter's peak down to the floor, plus a quarter for the check and 10 % margin. 0 when
    the response does not decay."""
    n = magnitude.shape[-1]
    third, fourth = (float(20 * torch.log10(part.max())) for part in magnitude[n // 2:].chunk(2))
    rate = (third - fourth) / (n // 4)
    if not rate > 0:
        return 0
    end = 3 * n / 4 + (fourth - float(20 * torch.log10(floor))) / rate
    return math.ceil(1.1 * end * 4 / 3)


def _anti_aliased_buffer(net: Network, n_fft: int, aliasing_db: float | None) -> torch.Tensor:
    """The anti-aliased FFT buffer (..., n_fft) of ``net``: float64 without gradient, else the net's dtype."""
    if not torch.is_grad_enabled():
        net = net.to(torch.float64)
    return closed_form.impulse_response(net, n_fft, aliasing_db or ALIASING_DB[net.injection.dtype])


def _check_growth(buffer: torch.Tensor, report: StabilityReport, net: Network, aliasing_db: float | None) -> None:
    """Raise if an uncertified network's response grows (see :func:`sdn.stability.growth_ratio`).

    The buffer checked spans at least eight longest paths through the network and at least the
    FFT length of the request, so any pole outside the request's radius shows as growth.
    """
    with torch.no_grad():
        path = sum(float((line.offset + line.taps.shape[-1]).max()) for line in net[:3])  # source, pair, mic
        n_check = max(buffer.shape[-1], next_pow2(int(8 * path)))
        if buffer.shape[-1] < n_check:
            buffer = _anti_aliased_buffer(net, n_check, aliasing_db)
        ratio = growth_ratio(buffer)
    if ratio > 1.0:
        raise UnstableSDNError(
            f"the SDN is unstable: its impulse response grows (last-eighth/earlier energy ratio "
            f"{ratio:.3g} > 1); passivity certificate failed with cycle margin {report.margin:.3g} "
            f"(max wall gain {report.wall_gain_max.max():.3f}, admittance mismatch "
            f"{report.admittance_mismatch:.3g} nepers)"
        )
