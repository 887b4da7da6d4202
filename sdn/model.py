"""The differentiable scattering delay network (SDN), evaluated in closed form per frequency bin.

Structure (De Sena et al., IEEE/ACM TASLP 2015): one node on each of the 6 walls at the first-order
reflection point; 30 directional lines between nodes; source->node and node->microphone lines; the
direct path. With ``G = c / fs`` (metres per sample):

- source->node gain ``g_Sk = G / d_Sk``, injected as ``g_Sk / 2`` into each of the 5 incoming waves;
- node->mic gain ``g_kM = 1 / (1 + d_kM / d_Sk)``; direct path ``G / d_SM``;
- scattering ``S_k = (2 / sum(y_k)) 1 y_k^T - I`` with trainable positive admittances ``y_k``;
- wall filter ``H_k(z)`` on every outgoing wave of node k (to the 5 lines and to the mic);
- the microphone reads ``w_k^T p_k^-`` from node k, with trainable positive weights ``w_k``
  (init 2/K).

So each first-order reflection arrives at ``(d_Sk + d_kM) / G`` samples with amplitude
``H_k * G / (d_Sk + d_kM)``, as the image-source method predicts.

Closed form. The network is linear and time-invariant. Writing ``q_k = (2/sum y_k) y_k^T p_k^+``
(the junction pressure) and ``U[l, k]`` for the wave arriving at node l from node k, the two waves
of the line pair {k, l} satisfy

    U[l,k] (1 - E_kl^2 H_k H_l) = b_l + E_kl H_k (q_k - b_k) - E_kl^2 H_k H_l q_l,

with ``E_kl = z^-D_kl`` and source injection ``b_k = (g_Sk / 2) z^-D_Sk``. Substituting into
``q_l = sum_k a_lk U[l,k]`` (``a_lk = 2 y_lk / sum y_l``) leaves one 6x6 linear system per
frequency instead of the 30x30 one (the two are equal by the Woodbury identity; the tests check).
It is solved on the circle ``|z| = r`` slightly outside the unit circle and the inverse FFT is
multiplied by ``r^n``, which attenuates time aliasing by ``aliasing_db`` decibels.

Given several rooms of one size (source/mic pairs), one model shares its wall filters, admittances
and extraction weights among them and renders all their impulse responses in one batched solve.
``quirks`` switches on behaviours of the paper's released code, one by one, for comparison.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .checkpoint import CheckpointError
from .geometry import N_WALLS, Room
from .stability import StabilityReport, UnstableSDNError, growth_ratio, passivity_certificate

K = N_WALLS - 1  # neighbours per node
_OFF_DIAGONAL = ~torch.eye(N_WALLS, dtype=torch.bool)
_PAIRS = torch.triu_indices(N_WALLS, N_WALLS, offset=1)  # the 15 node pairs (k < l)
CHECKPOINT_FORMAT = "sdn-checkpoint-v2"  # v2: with a checksum and the run hash
_BINS_PER_CHUNK = 1 << 15  # frequency bins per closed-form solve when no gradient is needed
# Behaviours of the paper's released code (DESIGN.md section 6), reproducible one by one:
QUIRKS = {
    "buffer_truncation": "every delay line holds 512 samples: a longer line outputs nothing",
    "late_taps": "each wall-to-wall hop is 2 samples late and each wall-to-mic line 1 sample late",
    "summed_weights": "the 30 extraction weights act as one scalar, their sum, on every outgoing wave",
    "direct_gain": "the direct path has gain 1/d instead of G/d",
}
BUFFER_SAMPLES = 512  # delay-line length of the released code (buffer_truncation)


def _next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))


def _rounded_delay(d: torch.Tensor) -> torch.Tensor:
    """Round to whole samples; the rounding carries no gradient (delays become piecewise constant)."""
    return torch.round(d)


class SDN(nn.Module):
    """Differentiable scattering delay network of a shoebox room.

    Parameters
    ----------
    room : sdn.Room, geometry (source, microphone, walls).
    sample_rate : Hz.
    fir_order : 0 for a scalar gain per wall (``beta_k = sigmoid(theta_k)``); M > 0 for an FIR wall
        filter with M + 1 unconstrained taps, initialised to the same pure gain (no extra delay).
    alpha : initial uniform absorption; walls start at ``sqrt(1 - alpha)``. 0 gives lossless walls.
    distance_correction : learn ``d~ = d + dmax * tanh(s * delta)`` for every distance (6
        source->node, 15 node<->node, 6 node->mic, 1 direct). ``dmax`` is capped at half of each
        geometric distance so that no corrected distance can reach zero.
    integer_delays : round every delay to whole samples (classic real-time SDN). The node->mic delay
        is chosen so that source->node->mic equals the rounded image-source delay exactly.
    c : speed of sound, m/s.
    max_correction, correction_scale : ``dmax`` (m) and ``s`` of the distance correction.
    aliasing_db : time-aliasing suppression of the closed form, in dB over one FFT length.
    quirks : reproduce behaviours of the paper's released code, by name (see ``QUIRKS``): a
        sequence of names, a comma-separated string, ``"paper"`` for all four, or ``()`` (default,
        the exact model).
    dtype, device : of the parameters (float32 or float64); complex arithmetic follows.
    """

    def __init__(
        self,
        room: Room,
        sample_rate: float = 16000,
        fir_order: int = 0,
        alpha: float = 0.02,
        distance_correction: bool = False,
        integer_delays: bool = False,
        c: float = 343.0,
        max_correction: float = 0.5,
        correction_scale: float = 10.0,
        aliasing_db: float = 70.0,
        quirks=(),
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        rooms = (room,) if isinstance(room, Room) else tuple(room) if isinstance(room, (list, tuple)) else None
        if not rooms or not all(isinstance(r, Room) for r in rooms):
            raise TypeError(f"room must be an sdn.Room or a non-empty sequence of them, got {type(room).__name__}")
        if len({r.size for r in rooms}) > 1:
            raise ValueError("a batch of positions must share one room: all sizes must be equal")
        if not (isinstance(fir_order, (int, np.integer)) and not isinstance(fir_order, bool) and fir_order >= 0):
            raise ValueError(f"fir_order must be a non-negative integer, got {fir_order!r}")
        for name, value in (("sample_rate", sample_rate), ("c", c), ("aliasing_db", aliasing_db)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha (absorption) must lie in [0, 1), got {alpha!r}")
        if not (max_correction > 0 and correction_scale > 0):
            raise ValueError("max_correction and correction_scale must be positive")
        if isinstance(quirks, str):
            quirks = tuple(QUIRKS) if quirks == "paper" else tuple(q.strip() for q in quirks.split(",") if q.strip())
        unknown = sorted(set(quirks) - set(QUIRKS))
        if unknown:
            raise ValueError(f"unknown quirk(s) {unknown}; known: {sorted(QUIRKS)} or 'paper'")
        dtype = dtype or torch.get_default_dtype()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

        self.room = room if isinstance(room, Room) else rooms
        self.batch_shape = () if isinstance(room, Room) else (len(rooms),)
        self.config = {
            "room": room.to_dict() if isinstance(room, Room) else [r.to_dict() for r in rooms],
            "sample_rate": float(sample_rate),
            "fir_order": int(fir_order),
            "alpha": float(alpha),
            "distance_correction": bool(distance_correction),
            "integer_delays": bool(integer_delays),
            "c": float(c),
            "max_correction": float(max_correction),
            "correction_scale": float(correction_scale),
            "aliasing_db": float(aliasing_db),
            "quirks": [q for q in QUIRKS if q in quirks],
        }
        factory = {"dtype": dtype, "device": device}
        self.metres_per_sample = float(c) / float(sample_rate)

        # Geometric distances (metres), fixed; a leading batch dimension for several positions.
        def geometry(values):
            stacked = torch.as_tensor(np.stack([values(r) for r in rooms]), **factory)
            return stacked.reshape(*self.batch_shape, *stacked.shape[1:])

        self.register_buffer("source_node_distance", geometry(lambda r: r.source_node_distances))
        self.register_buffer("node_pair_distance", geometry(lambda r: r.node_node_distances[_PAIRS[0], _PAIRS[1]]))
        self.register_buffer("node_mic_distance", geometry(lambda r: r.node_mic_distances))
        self.register_buffer("direct_distance", geometry(lambda r: np.array([r.direct_distance])))

        # Trainable quantities, stored raw; mapped to physical values in one place each.
        gain = math.sqrt(1.0 - alpha)
        if fir_order == 0:
            self.wall_logit = nn.Parameter(torch.full((N_WALLS,), torch.special.logit(torch.tensor(gain, dtype=torch.float64)).item(), **factory))
        else:
            taps = torch.zeros(N_WALLS, fir_order + 1, **factory)
            taps[:, 0] = gain
            self.wall_taps = nn.Parameter(taps)
        self.log_admittance = nn.Parameter(torch.zeros(N_WALLS, K, **factory))
        # Positive (stored as logs): unconstrained weights collapse to ~0 within the paper's first
        # 100 epochs on the HOMULA target, muting the reverberation instead of shortening it.
        self.log_extraction_weights = nn.Parameter(torch.full((N_WALLS, K), math.log(2.0 / K), **factory))
        if distance_correction:
            for name, buf in self._distance_buffers().items():
                self.register_parameter(name + "_correction", nn.Parameter(torch.zeros_like(buf)))

    # ------------------------------------------------------------------ physical parameters
    @property
    def device(self) -> torch.device:
        return self.log_admittance.device

    @property
    def dtype(self) -> torch.dtype:
        return self.log_admittance.dtype

    @property
    def sample_rate(self) -> float:
        return self.config["sample_rate"]

    @property
    def fir_order(self) -> int:
        return self.config["fir_order"]

    def _distance_buffers(self) -> dict:
        return {
            "source_node": self.source_node_distance,
            "node_pair": self.node_pair_distance,
            "node_mic": self.node_mic_distance,
            "direct": self.direct_distance,
        }

    def distances(self) -> dict:
        """Corrected distances in metres: ``source_node`` (..., 6), ``node_node`` (..., 6, 6)
        symmetric, ``node_mic`` (..., 6), ``direct`` (..., 1), with the batch shape of the positions
        in front. Equal to the geometry without distance correction."""
        out = {}
        for name, d in self._distance_buffers().items():
            if self.config["distance_correction"]:
                delta = getattr(self, name + "_correction")
                dmax = torch.clamp(d / 2, max=self.config["max_correction"])
                d = d + dmax * torch.tanh(self.config["correction_scale"] * delta)
            out[name] = d
        pair = out.pop("node_pair")
        node_node = pair.new_zeros(*pair.shape[:-1], N_WALLS, N_WALLS)
        node_node[..., _PAIRS[0], _PAIRS[1]] = pair
        out["node_node"] = node_node + node_node.transpose(-1, -2)
        return out

    def delays(self, integer: bool | None = None) -> dict:
        """Delays in samples of ``distances()``: fractional, or whole samples when ``integer``
        (default: the model's ``integer_delays``)."""
        delay = {name: value / self.metres_per_sample for name, value in self.distances().items()}
        if self.config["integer_delays"] if integer is None else integer:
            source_node = _rounded_delay(delay["source_node"])
            reflection = _rounded_delay(delay["source_node"] + delay["node_mic"])
            delay = {
                "source_node": source_node,
                # Lines between nodes need at least one sample: a zero-delay loop is algebraic.
                "node_node": torch.clamp(_rounded_delay(delay["node_node"]), min=1.0) * _OFF_DIAGONAL.to(self.device),
                "node_mic": reflection - source_node,
                "direct": _rounded_delay(delay["direct"]),
            }
        if "late_taps" in self.config["quirks"]:
            delay["node_node"] = delay["node_node"] + 2.0 * _OFF_DIAGONAL.to(self.device)
            delay["node_mic"] = delay["node_mic"] + 1.0
        return delay

    def wall_filters(self) -> torch.Tensor:
        """Wall filter taps, (6, fir_order + 1); a scalar wall is the single tap ``sigmoid(theta)``."""
        if self.fir_order == 0:
            return torch.sigmoid(self.wall_logit)[:, None]
        return self.wall_taps

    def wall_response(self, n_freqs: int = 513) -> tuple[torch.Tensor, torch.Tensor]:
        """Frequencies (Hz, (n_freqs,)) and complex wall responses ``H_k(e^jw)`` (6, n_freqs)."""
        response = torch.fft.rfft(self.wall_filters(), n=2 * (n_freqs - 1), dim=-1)
        freqs = torch.linspace(0, self.sample_rate / 2, n_freqs, dtype=self.dtype, device=self.device)
        return freqs, response

    def admittances(self) -> torch.Tensor:
        """Positive admittances (6, 6): ``[k, l]`` at node k for the line to node l; zero diagonal."""
        y = torch.exp(self.log_admittance)
        return y.new_zeros(N_WALLS, N_WALLS).masked_scatter(_OFF_DIAGONAL.to(y.device), y)

    def extraction_weights(self) -> torch.Tensor:
        """Pressure-extraction weights (6, 5), positive: the mic reads ``w_k^T p_k^-`` from node k."""
        return torch.exp(self.log_extraction_weights)

    def scattering_matrices(self) -> torch.Tensor:
        """Scattering matrices (6, 5, 5): ``S_k = (2 / sum(y_k)) 1 y_k^T - I`` (neighbours in wall order)."""
        y = torch.exp(self.log_admittance)
        eye = torch.eye(K, dtype=y.dtype, device=y.device)
        return (2.0 / y.sum(-1))[:, None, None] * y[:, None, :] - eye

    def physical_parameters(self) -> dict:
        """Detached physical values for reports: wall taps and |H| in dB, admittances, scattering
        matrices, extraction weights, corrected distances (m) and delays (samples)."""
        with torch.no_grad():
            freqs, response = self.wall_response()
            return {
                "wall_taps": self.wall_filters().detach().cpu(),
                "wall_response_freqs": freqs.cpu(),
                "wall_response_db": (20 * torch.log10(response.abs().clamp_min(1e-12))).cpu(),
                "admittances": self.admittances().cpu(),
                "scattering_matrices": self.scattering_matrices().cpu(),
                "extraction_weights": self.extraction_weights().cpu(),
                "distances": {k: v.cpu() for k, v in self.distances().items()},
                "delays": {k: v.cpu() for k, v in self.delays().items()},
            }

    def stability(self) -> StabilityReport:
        """Passivity certificate (see :mod:`sdn.stability`)."""
        with torch.no_grad():
            if self.fir_order == 0:
                gain = self.wall_filters()[:, 0].abs()
            else:
                gain = self.wall_response(1025)[1].abs().amax(-1)
            return passivity_certificate(self.admittances().double().cpu().numpy(), gain.double().cpu().numpy())

    # ------------------------------------------------------------------ closed form
    def transfer_function(self, z_log: torch.Tensor, integer_delays: bool | None = None) -> torch.Tensor:
        """Transfer function ``Y(z) / X(z)`` at ``z = exp(z_log)``, for complex ``z_log`` of shape (F,);
        returns (..., F) with the batch shape of the positions in front.

        ``integer_delays`` overrides the model's delay rounding (used by the stability check)."""
        cdtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        s = z_log.to(cdtype)
        delay = self.delays(integer_delays)
        dist = self.distances()
        G = self.metres_per_sample
        off = _OFF_DIAGONAL.to(self.device)

        truncate = "buffer_truncation" in self.config["quirks"]

        def z_pow(samples, node_dims=1):  # z^-D: (*batch, *nodes) -> (*batch, F, *nodes)
            grid = s.reshape(-1, *([1] * node_dims))
            power = torch.exp(-samples.to(cdtype).unsqueeze(-node_dims - 1) * grid)
            if truncate:  # a line longer than the buffer outputs nothing
                power = power * (samples < BUFFER_SAMPLES).unsqueeze(-node_dims - 1)
            return power

        taps = self.wall_filters()
        H = z_pow(torch.arange(taps.shape[-1], dtype=self.dtype, device=self.device)) @ taps.to(cdtype).T  # (F, 6)
        pair_delay = delay["node_node"][..., _PAIRS[0], _PAIRS[1]]
        E = s.new_zeros(*pair_delay.shape[:-1], s.shape[0], N_WALLS, N_WALLS)
        E[..., _PAIRS[0], _PAIRS[1]] = z_pow(pair_delay)
        E = E + E.transpose(-1, -2)  # (..., F, 6, 6), symmetric, zero diagonal
        b = (G / dist["source_node"] / 2).unsqueeze(-2) * z_pow(delay["source_node"])  # (..., F, 6)

        y = self.admittances()
        a = 2 * y / y.sum(-1, keepdim=True)  # (6, 6), zero diagonal
        EH = E * H[:, None, :]  # [l, k] = E_kl H_k
        loop = EH * EH.transpose(-1, -2)  # [l, k] = E_kl^2 H_k H_l
        den = 1 - loop  # diagonal is 1: E has a zero diagonal
        T = a / den
        P = T * EH
        M = P - torch.diag_embed((P * EH.transpose(-1, -2)).sum(-1))
        rhs = T.sum(-1) * b - (P * b.unsqueeze(-2)).sum(-1)
        eye = torch.eye(N_WALLS, dtype=cdtype, device=self.device)
        q = torch.linalg.solve(eye - M, rhs)  # (..., F, 6) junction pressures
        # [l, k]: the wave arriving at node l from node k
        U = (b.unsqueeze(-1) + EH * (q - b).unsqueeze(-2) - loop * q.unsqueeze(-1)) / den

        weights = self.extraction_weights()
        if "summed_weights" in self.config["quirks"]:
            w = weights.sum() * off
        else:
            w = weights.new_zeros(N_WALLS, N_WALLS).masked_scatter(off, weights)
        node_out = q * w.sum(-1) - (w * U).sum(-1)  # w_k^T (S_k p_k^+), before the wall filter
        g_mic = (1.0 / (1.0 + dist["node_mic"] / dist["source_node"])).unsqueeze(-2)
        Y = (g_mic * z_pow(delay["node_mic"]) * H * node_out).sum(-1)
        direct_gain = 1.0 if "direct_gain" in self.config["quirks"] else G
        return Y + (direct_gain / dist["direct"]) * z_pow(delay["direct"])[..., 0]

    def impulse_response(self, n_samples: int, method: str = "closed_form") -> torch.Tensor:
        """Impulse response, (..., n_samples) with the batch shape of the positions in front (none for
        one room), in the model's dtype and device.

        ``method="closed_form"`` (default, differentiable): the transfer function on ``|z| = r``
        with ``r = 10^(aliasing_db / (20 n_fft))`` and ``n_fft >= 2 n_samples``, inverse FFT,
        times ``r^n``. Raises :class:`UnstableSDNError` when the network is not certified passive
        and the response grows or wraps around (see :mod:`sdn.stability`).
        ``method="time"``: the sample-exact time-domain recursion (integer delays only; no gradient).
        """
        if not (isinstance(n_samples, (int, np.integer)) and n_samples > 0):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if method == "time":
            from .recursion import TimeDomainSDN

            pulse = np.zeros(int(n_samples))
            pulse[0] = 1.0
            return torch.as_tensor(TimeDomainSDN(self).process(pulse), dtype=self.dtype, device=self.device)
        if method != "closed_form":
            raise ValueError(f"method must be 'closed_form' or 'time', got {method!r}")

        buffer = self._anti_aliased_buffer(_next_pow2(2 * int(n_samples)))
        if not torch.isfinite(buffer).all():
            raise UnstableSDNError("the SDN impulse response is not finite (NaN or inf in the parameters or the solve)")
        report = self.stability()
        if not report.certified:
            self._check_growth(buffer, report)
        return buffer[..., :n_samples]

    def _anti_aliased_buffer(self, n_fft: int, integer_delays: bool | None = None) -> torch.Tensor:
        """``r^n * IDFT(Y(r e^jw))``, (n_fft,): the IR with time aliasing attenuated by aliasing_db."""
        log_r = self.config["aliasing_db"] / (20 * n_fft) * math.log(10)
        omega = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=self.device) / n_fft
        z_log = torch.complex(torch.full_like(omega, log_r), omega)
        if torch.is_grad_enabled():
            Y = self.transfer_function(z_log, integer_delays)
        else:  # bins are independent: bound the memory of long renders
            parts = z_log.split(_BINS_PER_CHUNK)
            Y = torch.cat([self.transfer_function(part, integer_delays) for part in parts], dim=-1)
        n = torch.arange(n_fft, dtype=self.dtype, device=self.device)
        return torch.fft.irfft(Y, n=n_fft) * torch.exp(log_r * n)

    def _check_growth(self, buffer: torch.Tensor, report: StabilityReport) -> None:
        """Raise if an uncertified network's response grows (see :func:`sdn.stability.growth_ratio`).

        The test runs on the same network with delays rounded to whole samples: an ideal fractional
        delay is not causal, and its wrapped pre-ringing, amplified by ``r^n``, would fill the end of
        the buffer. The buffer spans at least eight longest paths through the network and at least
        the FFT length of the request, so any pole outside the request's radius shows as growth.
        """
        with torch.no_grad():
            delay = self.delays()
            path = sum(float(delay[k].max()) for k in ("source_node", "node_node", "node_mic"))
            n_check = max(buffer.shape[-1], _next_pow2(int(8 * path)))
            if not self.config["integer_delays"] or buffer.shape[-1] < n_check:
                buffer = self._anti_aliased_buffer(n_check, integer_delays=True)
            ratio = growth_ratio(buffer)
        if ratio > 1.0:
            raise UnstableSDNError(
                f"the SDN is unstable: its impulse response grows (last-eighth/earlier energy ratio "
                f"{ratio:.3g} > 1); passivity certificate failed with cycle margin {report.margin:.3g} "
                f"(max wall gain {report.wall_gain_max.max():.3f}, admittance mismatch "
                f"{report.admittance_mismatch:.3g} nepers)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter a signal through the SDN: ``x`` (..., T) -> (..., T) (FFT convolution, truncated).

        A unit pulse returns the impulse response. For a batch of positions the impulse responses
        (P, T) broadcast against ``x`` as usual: ``x`` of shape (T,) gives (P, T).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (..., T), got {type(x).__name__}")
        if x.dim() == 0 or x.shape[-1] == 0:
            raise ValueError(f"x must have shape (..., T) with T > 0, got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf")
        n = x.shape[-1]
        h = self.impulse_response(n)
        n_fft = _next_pow2(2 * n)
        spectrum = torch.fft.rfft(x.to(self.dtype), n=n_fft) * torch.fft.rfft(h, n=n_fft)
        return torch.fft.irfft(spectrum, n=n_fft)[..., :n]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, run_hash: str | None = None) -> None:
        """Write the state_dict, config and dtype with their checksum, atomically (:mod:`sdn.checkpoint`).

        Parameters
        ----------
        path : str or os.PathLike
            File to write; its folder is created.
        run_hash : str, optional
            Hash of the training run that produced the weights (``hash`` in the run folder's
            ``config.json``, see :mod:`sdn.train`), stored so that the file names its run.
        """
        checkpoint.write(path, CHECKPOINT_FORMAT, {
            "config": self.config,
            "dtype": str(self.dtype).removeprefix("torch."),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "run_hash": run_hash,
        })

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "SDN":
        """A new SDN from the ``config`` attribute of one (as saved in checkpoints); ``kwargs`` add
        constructor arguments such as ``dtype`` and ``device``."""
        cfg = dict(config)
        room = cfg.pop("room")
        room = Room(**room) if isinstance(room, dict) else [Room(**r) for r in room]
        return cls(room, **cfg, **kwargs)


def load(path: str | os.PathLike, device: torch.device | str | None = None) -> SDN:
    """Rebuild an SDN saved by :meth:`SDN.save`, after verifying the file.

    The checksum is checked, the model is built from the saved config (geometry included) and the
    stored distances must equal that geometry (:func:`sdn.checkpoint.load_state`). Loading uses
    ``torch.load(weights_only=True)``: no code from the file runs.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :meth:`SDN.save`.
    device : torch.device or str, optional
        Where to put the model (default: the CPU).

    Returns
    -------
    SDN
        With the saved dtype, config and weights.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    sdn.checkpoint.CheckpointError
        (a ``ValueError``) When the file is truncated, corrupt, incomplete (no ``config``,
        ``dtype`` or ``state_dict``), foreign, or inconsistent with its own config; the message
        names the file.

    Examples
    --------
    >>> model.save("model.pt")  # doctest: +SKIP
    >>> model = sdn.load("model.pt")  # doctest: +SKIP
    """
    path = Path(path)
    remedy = "save the model again, or rerun the training that wrote it"
    payload = checkpoint.read(path, CHECKPOINT_FORMAT, ("config", "dtype", "state_dict"), "an SDN checkpoint", remedy)
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(payload["dtype"])
    if dtype is None:
        raise CheckpointError(f"{path}: dtype {payload['dtype']!r} is not float32 or float64; {remedy}")
    try:
        model = SDN.from_config(payload["config"], dtype=dtype, device=device)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{path}: its config does not describe an SDN ({err}); {remedy}") from err
    checkpoint.load_state(model, payload["state_dict"], path, remedy)
    return model
