r"""The SDN's node system, one 6x6 complex solve per frequency bin, with its adjoint.

Eliminating the two waves of each line pair (:mod:`sdn.closed_form`) leaves, per bin, for the
junction pressures minus the injection :math:`x = q - b`, with the symmetric, zero-diagonal

.. math::

    R_{kl} = \frac{1}{1 - E_{kl}^2 H_k H_l}, \qquad S_{kl} = R_{kl} E_{kl},

the system and output

.. math::

    A x = b, \quad A = \operatorname{diag}\Big(\sum_k a_{lk} R_{lk}\Big) - I
    - (a \circ S) \operatorname{diag}(H), \qquad
    Y_\text{rev} = c^\top B x, \quad B = \operatorname{diag}\Big(\sum_l w_{kl} R_{kl}\Big)
    - (w \circ S) \operatorname{diag}(H),

with the junction weights :math:`a`, the extraction weights :math:`w`, the wall responses
:math:`H`, the injection :math:`b_k = (g_{Sk}/2) E_{Sk}` and :math:`c_k = g_{kM} E_{kM} H_k`.

No pivoting. With matched admittances (:math:`y_{kl} = y_{lk}`) and passive walls and lines,
row l of A times :math:`\sum_k y_{lk} / 2` is half the nodal admittance matrix of the network of
lines, each line a strictly passive two-port on :math:`|z| > 1`: its Hermitian part is positive
definite, so Gaussian elimination without pivoting never meets a zero pivot and is stable. Far
from that (admittance ratios up to :math:`e^{10}`, walls louder than 1) the tests find it equal to
the 30x30 wave system solved by LAPACK with pivoting to 1e-10. Unlike LAPACK's one-matrix-at-a-
time batched solve, it runs on a whole block of bins per tensor operation.

The gradient is the adjoint: with :math:`\mu = A^{-\top} B^\top c` (one transposed solve with
the same factors) every derivative is a sum of rank-one terms, e.g.
:math:`\partial Y / \partial A = -\mu x^\top`, :math:`\partial Y / \partial B = c x^\top`.
Sums over matrix entries with the constant real weights :math:`a, w` are matrix products with
constant coefficient matrices. Bins are processed in blocks of ``CACHE_BINS`` so that the
per-bin temporaries stay in cache. On CPU tensors the same equations run compiled
(:mod:`sdn.native`, ``node_system.c``), all bins in one call, and so does the backward pass.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import native
from .geometry import N_WALLS

PAIRS = torch.triu_indices(N_WALLS, N_WALLS, offset=1)  # the 15 node pairs (k < l)
N_PAIRS = PAIRS.shape[1]
#: Bins (of all positions together) per step: 2048 was the fastest of 512-8192 (benchmarks/README.md).
CACHE_BINS = 2048
_PAIR_INDEX = torch.full((N_WALLS, N_WALLS), N_PAIRS, dtype=torch.int64)  # [k, l] -> pair; diagonal -> a zero
_PAIR_INDEX[PAIRS[0], PAIRS[1]] = _PAIR_INDEX[PAIRS[1], PAIRS[0]] = torch.arange(N_PAIRS)
_FAR_END = torch.cat([PAIRS[1], PAIRS[0]])  # per pair (k, l): l, then k
_NEAR_END = (torch.cat([PAIRS[0], PAIRS[1]]) == torch.arange(N_WALLS).unsqueeze(1)).double()  # (6, 30) incidence
_ENTRY = torch.stack([PAIRS[0] * N_WALLS + PAIRS[1], PAIRS[1] * N_WALLS + PAIRS[0]])  # [k, l] and [l, k] flattened


def _combine(coefficients: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Real (m, n) coefficients times complex (..., n, F) values, one matrix product: (..., m, F)."""
    real = coefficients @ torch.view_as_real(values).flatten(-2)
    return torch.view_as_complex(real.unflatten(-1, (-1, 2)))


def _pair_sum(matrix: torch.Tensor) -> torch.Tensor:
    """``[k, l] + [l, k]`` of (B, 6, 6, F) for the 15 pairs k < l, (B, 15, F)."""
    flat = matrix.flatten(1, 2)
    return flat[:, _ENTRY[0].to(flat.device)] + flat[:, _ENTRY[1].to(flat.device)]


class _Weights(NamedTuple):
    """The junction weights a and extraction weights w, and real matrices built from them."""

    junction: torch.Tensor  # a, (6, 6, 1), complex
    extraction: torch.Tensor  # w, (6, 6, 1), complex
    diagonal: torch.Tensor  # (12, 15): [sum_k a_lk R_lk ; sum_l w_kl R_kl] from the 15 R_p
    resolvent: torch.Tensor  # (15, 12): dY/dR_p from (mu x, c x)


def _weights(junction: torch.Tensor, extraction: torch.Tensor) -> _Weights:
    every = torch.arange(N_PAIRS, device=junction.device)

    def per_pair(weights):  # [l, p] = weight of node l towards the other node of pair p
        out = weights.new_zeros(N_WALLS, N_PAIRS)
        out[PAIRS[0], every] = weights[PAIRS[0], PAIRS[1]]
        out[PAIRS[1], every] = weights[PAIRS[1], PAIRS[0]]
        return out

    diagonal = torch.cat([per_pair(junction), per_pair(extraction)])
    complex_dtype = torch.complex128 if junction.dtype == torch.float64 else torch.complex64
    return _Weights(junction.to(complex_dtype).unsqueeze(-1), extraction.to(complex_dtype).unsqueeze(-1), diagonal,
                    torch.cat([-diagonal[:N_WALLS].T, diagonal[N_WALLS:].T], 1))


class _Walls(NamedTuple):
    """The wall responses of one block of bins and what the pairs need of them."""

    response: torch.Tensor  # H_k, (6, F)
    pair: torch.Tensor  # H_k H_l, (15, F)
    far_end: torch.Tensor  # H_l then H_k per pair (k, l), (30, F)


def _walls(walls: torch.Tensor) -> _Walls:
    far_end = walls.index_select(0, _FAR_END.to(walls.device))
    return _Walls(walls, far_end[N_PAIRS:] * far_end[:N_PAIRS], far_end)


def _factor(system: torch.Tensor) -> None:
    r"""Crout factorisation :math:`A = \tilde L U` of [A | rhs] (B, n, n + 1, F), in place, no pivoting.

    Afterwards :math:`\tilde L` is below the diagonal, the reciprocals of its diagonal are on it,
    the unit upper triangle U is above it, and the last column holds the solution.
    """
    n = system.shape[1]
    for i in range(n):
        inverse = system[:, i, i].reciprocal()
        system[:, i, i + 1:].mul_(inverse.unsqueeze(1))
        system[:, i, i] = inverse
        if i + 1 < n:
            system[:, i + 1:, i + 1:].addcmul_(system[:, i + 1:, i:i + 1], system[:, i, i + 1:].unsqueeze(1), value=-1)
    x = system[:, :, n]
    for i in range(n - 1, 0, -1):  # U x = y, column by column
        x[:, :i].addcmul_(system[:, :i, i], x[:, i:i + 1], value=-1)


def _solve_transposed(factors: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    r""":math:`A^{-\top}` ``rhs`` from the factors of :func:`_factor`: (B, n, >= n, F), (B, n, F)."""
    x = rhs.clone()
    n = x.shape[1]
    for j in range(n - 1):  # U^T y = rhs, column by column
        x[:, j + 1:].addcmul_(factors[:, j, j + 1:n], x[:, j:j + 1], value=-1)
    for i in range(n - 1, -1, -1):  # L^T x = y
        x[:, i].mul_(factors[:, i, i])
        if i:
            x[:, :i].addcmul_(factors[:, i, :i], x[:, i:i + 1], value=-1)
    return x


def _blocks(n_bins: int) -> list[slice]:
    return [slice(i, min(i + CACHE_BINS, n_bins)) for i in range(0, n_bins, CACHE_BINS)]


class NodeSystem(torch.autograd.Function):
    r""":math:`Y_\text{rev} = c^\top B A^{-1} b` per bin (see the module docstring), with its adjoint.

    ``NodeSystem.apply(pair, walls, source, mic, junction, extraction)``: ``pair`` (B, 15, F) line
    responses of the node pairs (``PAIRS`` order), ``walls`` (6, F) wall responses, ``source``
    (B, 6, F) :math:`b`, ``mic`` (B, 6, F) :math:`c`, all complex, for B positions; ``junction``
    :math:`a` and ``extraction`` :math:`w`, (6, 6) real with zero diagonals. Returns (B, F).
    The positions' bins are laid out one after another and processed in blocks of
    ``CACHE_BINS``.

    Y is one number per bin, so its derivatives with respect to the bin's inputs do not depend on
    the incoming gradient: when any input requires a gradient, the forward pass computes them
    while the bin's quantities are in cache, and the backward pass only scales them by the
    incoming gradient (and sums over bins for the weights).
    """

    @staticmethod
    def forward(ctx, pair, walls, source, mic, junction, extraction):
        """Y per bin (B, F), and its derivatives when an input requires a gradient (see the class)."""
        ctx.batch = mic.shape[0]
        if ctx.batch > 1:  # the positions' bins one after another: long, contiguous blocks
            pair, source, mic = (_flat(t) for t in (pair, source, mic))
            walls = walls.repeat(1, ctx.batch)
        n_bins = mic.shape[-1]  # every tensor below has a leading dimension of 1
        derivatives = any(ctx.needs_input_grad)
        out = mic.new_empty(1, n_bins)
        if derivatives:  # dY/d(pair, walls, source, mic), and Z for the weights' gradients
            d_pair, d_walls = torch.empty_like(pair), mic.new_empty(1, N_WALLS, n_bins)
            d_source, d_mic = torch.empty_like(mic), torch.empty_like(mic)
            d_weights = mic.new_empty(1, N_WALLS, N_WALLS, n_bins)
        compiled = native.available(pair, walls, source, mic, dtypes=native.COMPLEX)
        if compiled:  # all bins in one call; else the blocks below
            native.node_system(pair[0], walls, source[0], mic[0], junction, extraction, out[0],
                               (d_pair[0], d_walls[0], d_source[0], d_mic[0], d_weights[0]) if derivatives else None)
        else:
            weights, near_end = _weights(junction, extraction), _NEAR_END.to(junction)
        for bins in [] if compiled else _blocks(n_bins):
            wall, E, c = _walls(walls[:, bins]), pair[..., bins], mic[..., bins]
            H = wall.response
            resolvent = torch.reciprocal(1 - E * E * wall.pair)
            padded = torch.nn.functional.pad(torch.stack([resolvent * E, resolvent], 1), (0, 0, 0, 1))  # 0: diagonal
            full = padded.index_select(2, _PAIR_INDEX.flatten().to(E.device)).unflatten(2, (N_WALLS, N_WALLS))
            coupling = full[:, 0]  # S_kl, (1, 6, 6, F); full[:, 1] is R_kl
            diagonal = _combine(weights.diagonal, resolvent)  # sum_k a_lk R_lk, then sum_l w_kl R_kl
            system = mic.new_empty(1, N_WALLS, N_WALLS + 1, H.shape[-1])  # [A | b]
            torch.mul(coupling, -weights.junction * H, out=system[:, :, :N_WALLS])
            system.diagonal(dim1=1, dim2=2).copy_(diagonal[:, :N_WALLS].transpose(1, 2) - 1)
            system[:, :, N_WALLS] = source[..., bins]
            _factor(system)
            x = system[:, :, N_WALLS]
            h = H * x
            spread = coupling * h.unsqueeze(1)  # [l, k] = S_lk H_k x_k
            bx = diagonal[:, N_WALLS:] * x - (weights.extraction * spread).sum(2)  # B x = dY / dc
            out[:, bins] = (c * bx).sum(1)
            if not derivatives:
                continue
            # mu = A^-T B^T c = dY / db, with (B^T c)_l = d_B[l] c_l - H_l sum_k w_kl S_kl c_k
            bt_c = diagonal[:, N_WALLS:] * c - H * (coupling * (weights.extraction * c.unsqueeze(2))).sum(1)
            mu = _solve_transposed(system, bt_c)
            node = torch.addcmul(weights.junction * mu.unsqueeze(2), weights.extraction, c.unsqueeze(2),
                                 value=-1)  # [l, k] = a_lk mu_l - w_lk c_l
            via_coupling = _pair_sum(node * h.unsqueeze(1))  # dY/dS_p
            via_resolvent = _combine(weights.resolvent, torch.cat([mu * x, c * x], 1)) + via_coupling * E  # dY/dR_p
            via_loop = via_resolvent * resolvent * resolvent * E  # through R = 1 / (1 - E^2 H_k H_l), times E
            torch.addcmul(via_coupling * resolvent, via_loop, wall.pair, value=2, out=d_pair[..., bins])
            via_walls = _combine(near_end, (via_loop * E).repeat(1, 2, 1) * wall.far_end)  # through H_k H_l
            d_walls[..., bins] = x * (node * coupling).sum(1) + via_walls
            d_source[..., bins], d_mic[..., bins] = mu, bx
            # dY/da_lk = mu_l Z_lk and dY/dw_lk = -c_l Z_lk with Z_lk = S_lk h_k - R_lk x_l
            torch.addcmul(spread, full[:, 1], x.unsqueeze(2), value=-1, out=d_weights[..., bins])
        if derivatives:
            ctx.save_for_backward(mic, d_pair, d_walls, d_source, d_mic, d_weights)
        return out.view(ctx.batch, -1)

    @staticmethod
    def backward(ctx, grad):
        """The stored derivatives times the output gradient, for every input."""
        # The forward's holomorphic derivatives times the conjugated output gradient; torch takes
        # their conjugates (and the real part for the real weights).
        mic, d_pair, d_walls, d_source, d_mic, d_weights = ctx.saved_tensors
        if native.available(grad, mic, dtypes=native.COMPLEX):
            g_pair, g_walls, g_source, g_mic = (torch.empty_like(t) for t in (d_pair, d_walls, d_source, d_mic))
            by_weight = native.node_system_backward(grad.reshape(-1), mic[0], (d_pair[0], d_walls[0], d_source[0],
                                                    d_mic[0], d_weights[0]), (g_pair[0], g_walls[0], g_source[0],
                                                    g_mic[0])).to(mic.real.dtype)
        else:
            gy = grad.conj().reshape(1, 1, -1)
            scaled = gy * torch.stack([d_source, mic], 1).flatten(1, 2)  # gy mu, gy c
            by_weight = torch.einsum("bslf,blkf->slk", scaled.unflatten(1, (2, N_WALLS)), d_weights).real
            by_weight[1].neg_()  # dY/dw_lk = -c_l Z_lk
            g_pair, g_walls, g_source, g_mic = ((gy * d).conj() for d in (d_pair, d_walls, d_source, d_mic))
        g_walls = g_walls.view(N_WALLS, ctx.batch, -1).sum(1)
        if ctx.batch > 1:
            g_pair, g_source, g_mic = (_unflat(g, ctx.batch) for g in (g_pair, g_source, g_mic))
        return g_pair, g_walls, g_source, g_mic, by_weight[0], by_weight[1]


def _flat(values: torch.Tensor) -> torch.Tensor:
    """(B, n, F) -> (1, n, B F): the positions' bins one after another."""
    return values.transpose(0, 1).reshape(1, values.shape[1], -1)


def _unflat(values: torch.Tensor, n_batch: int) -> torch.Tensor:
    """(1, n, B F) -> (B, n, F), the inverse of :func:`_flat`."""
    return values.view(values.shape[1], n_batch, -1).transpose(0, 1)
