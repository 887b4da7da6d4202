"""The differentiable scattering delay network (SDN) of a shoebox room.

Structure (De Sena et al., IEEE/ACM TASLP 2015): one node on each of the 6 walls at the first-order
reflection point; 30 directional lines between nodes; source->node and node->microphone lines; the
direct path. With :math:`G = c / f_s` (metres per sample):

- source->node gain :math:`g_{Sk} = G / d_{Sk}`, injected as :math:`g_{Sk}/2` into each of the 5
  waves arriving at node k;
- node->mic gain :math:`g_{kM} = 1 / (1 + d_{kM} / d_{Sk})`; direct path :math:`G / d_{SM}`;
- scattering :math:`S_k = (2 / \\sum_l y_{kl})\\, \\mathbf 1 y_k^\\top - I` with trainable positive
  admittances :math:`y_k`;
- wall filter :math:`H_k(z)` on every outgoing wave of node k (to the 5 lines and to the mic);
- the microphone reads :math:`w_k^\\top p_k^-` from node k, with trainable positive weights
  :math:`w_k` (init 2/K).

Each first-order reflection arrives at :math:`(d_{Sk} + d_{kM}) / G` samples with amplitude
:math:`H_k G / (d_{Sk} + d_{kM})`, as the image-source method predicts. Every line, fractional or
whole-sample, is a causal FIR filter (:mod:`sdn.delays`); the same lines are rendered in closed
form per frequency bin (:mod:`sdn.closed_form`) and by the time-domain recursion
(:mod:`sdn.recursion`).

Given several rooms of one size (source/mic pairs), one model shares its wall filters, admittances
and extraction weights among them and renders all their impulse responses in one batched solve.
``quirks`` switches on behaviours of the paper's released code, one by one, for comparison.

References
----------
E. De Sena, H. Hacıhabiboğlu, Z. Cvetković, J. O. Smith, "Efficient synthesis of room acoustics
via scattering delay networks," IEEE/ACM TASLP 23(9), 2015.
A. I. Mezza, R. Giampiccolo, E. De Sena, A. Bernardini, "Differentiable scattering delay networks
for artificial reverberation," DAFx25, 2025.
"""
from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np
import torch
from torch import nn

from . import closed_form
from .closed_form import PAIRS, Network
from .convolution import overlap_add
from .delays import DelayLine, fractional_line, whole_sample_line
from .geometry import MIN_WALL_DISTANCE, N_WALLS, SPEED_OF_SOUND, WALL_NAMES, Room
from .rendering import DECAY_DB, render, render_until_decayed
from .stability import StabilityReport, network_certificate

K = N_WALLS - 1  # neighbours per node
_OFF_DIAGONAL = ~torch.eye(N_WALLS, dtype=torch.bool)
# Behaviours of the paper's released code, reproducible one by one:
QUIRKS = {
    "buffer_truncation": "every delay line holds 512 samples: a longer line outputs nothing",
    "late_taps": "each wall-to-wall hop is 2 samples late and each wall-to-mic line 1 sample late",
    "summed_weights": "the 30 extraction weights act as one scalar, their sum, on every outgoing wave",
    "direct_gain": "the direct path has gain 1/d instead of G/d",
    "last_tap_init": "FIR wall filters start with their gain on the last tap (fir_order samples late)",
}
BUFFER_SAMPLES = 512  # delay-line length of the released code (buffer_truncation)


def _rounded_delay(d: torch.Tensor) -> torch.Tensor:
    """Round to whole samples; the rounding carries no gradient (delays become piecewise constant)."""
    return torch.round(d)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


class SDN(nn.Module):
    r"""Differentiable scattering delay network of a shoebox room.

    Parameters
    ----------
    room : sdn.Room or sequence of sdn.Room
        Geometry (source, microphone, walls). Several rooms of one size share every trained
        parameter and are rendered in one batch (leading dimension P).
    sample_rate : float
        Hz.
    fir_order : int
        0 for a scalar gain per wall, :math:`\beta_k = \operatorname{sigmoid}(\theta_k)`;
        M > 0 for an FIR wall filter with M + 1 unconstrained taps, initialised to the same pure
        gain on tap 0 (no extra delay).
    alpha : float
        Initial uniform absorption in [0, 1): walls start at :math:`\sqrt{1 - \alpha}`. Scalar
        walls need :math:`\alpha` of at least a few machine epsilons: at :math:`\alpha = 0` the
        sigmoid would sit at :math:`+\infty` with no gradient and the walls could never train.
        FIR walls accept 0 (lossless walls).
    distance_correction : bool
        Learn :math:`\tilde d = d + d_\mathrm{max} \tanh(s\,\delta)` for every distance
        (6 source->node, 15 node<->node, 6 node->mic, 1 direct). :math:`d_\mathrm{max}` is capped
        at half of each geometric distance so that no corrected distance can reach zero.
    integer_delays : bool
        Round every delay to whole samples (the classic real-time SDN). The node->mic delay is
        chosen so that source->node->mic equals the rounded image-source delay exactly. Otherwise
        every line is a causal fractional delay line (:mod:`sdn.delays`).
    c : float
        Speed of sound, m/s.
    max_correction : float
        :math:`d_\mathrm{max}`, metres.
    correction_scale : float
        :math:`s` of the distance correction.
    aliasing_db : float, optional
        Time-aliasing suppression of the closed form, dB over one FFT length. Default
        ``sdn.rendering.ALIASING_DB``: 70 dB for float32 computations (the factor :math:`r^n` amplifies
        rounding errors) and 140 dB for float64 ones (renders without gradient included).
    quirks : str or sequence of str
        Behaviours of the paper's released code, by name (see ``QUIRKS``): a sequence of names,
        a comma-separated string, ``"paper"`` for all of them, or ``()`` (default, the exact
        model).
    dtype : torch.dtype, optional
        float32 or float64 (default: torch's default dtype); complex arithmetic follows.
    device : torch.device or str, optional

    Warns
    -----
    UserWarning
        When the source is closer than ``sdn.geometry.MIN_WALL_DISTANCE`` (0.1 m) to a wall. The source
        feeds node k with :math:`G / d_{Sk}`, so the reverberant energy grows as
        :math:`1/d^2` as the source nears a wall (about +10 dB at 0.2 m and +36 dB at 1 cm
        compared with a central position), while the direct sound does not. This is the model's
        source injection, not a numerical problem.

    Examples
    --------
    >>> room = Room(size=(5.46, 14.52, 3.38), source=(2.28, 0.96, 1.20), mic=(3.67, 1.96, 1.20))
    >>> model = SDN(room, fir_order=6, distance_correction=True)
    >>> h = model.impulse_response(16000)          # 1 s at 16 kHz, differentiable
    >>> wet = model(torch.randn(2, 48000))          # any signal (..., T)
    >>> tuple(h.shape), tuple(wet.shape)
    ((16000,), (2, 48000))
    """

    def __init__(
        self,
        room: Room,
        sample_rate: float = 16000,
        fir_order: int = 0,
        alpha: float = 0.02,
        distance_correction: bool = False,
        integer_delays: bool = False,
        c: float = SPEED_OF_SOUND,
        max_correction: float = 0.5,
        correction_scale: float = 10.0,
        aliasing_db: float | None = None,
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
        for name, value in (("sample_rate", sample_rate), ("c", c), ("aliasing_db", aliasing_db),
                            ("max_correction", max_correction), ("correction_scale", correction_scale)):
            if not (_is_number(value) and value > 0) and not (name == "aliasing_db" and value is None):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (_is_number(alpha) and 0.0 <= alpha < 1.0):
            raise ValueError(f"alpha (absorption) must lie in [0, 1), got {alpha!r}")
        if isinstance(quirks, str):
            quirks = tuple(QUIRKS) if quirks == "paper" else tuple(q.strip() for q in quirks.split(",") if q.strip())
        unknown = sorted(set(quirks) - set(QUIRKS))
        if unknown:
            raise ValueError(f"unknown quirk(s) {unknown}; known: {sorted(QUIRKS)} or 'paper'")
        dtype = dtype or torch.get_default_dtype()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        gain = math.sqrt(1.0 - float(alpha))
        if fir_order == 0 and not float(torch.sigmoid(torch.tensor(math.log(gain / (1 - gain)) if gain < 1 else math.inf,
                                                                     dtype=dtype))) < 1.0:
            smallest = 4 * torch.finfo(dtype).eps
            raise ValueError(
                f"alpha={alpha!r} makes the scalar wall gain sigmoid(theta) equal to 1 in {dtype}, where it has no "
                f"gradient: the walls could never train. Use alpha >= {smallest:.1e}, or FIR walls (fir_order > 0), "
                f"whose unconstrained taps can be lossless"
            )
        for r in rooms:
            clearance = r.source_wall_distances
            if clearance.min() < MIN_WALL_DISTANCE:
                warnings.warn(
                    f"the source is {clearance.min():.3f} m from wall {WALL_NAMES[int(np.argmin(clearance))]}: below "
                    f"{MIN_WALL_DISTANCE} m the SDN's reverberant level grows as 1/d^2 (source injection G/d); "
                    f"see sdn.SDN", stacklevel=2)

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
            "aliasing_db": None if aliasing_db is None else float(aliasing_db),
            "quirks": [q for q in QUIRKS if q in quirks],
        }
        factory = {"dtype": dtype, "device": device}
        self.metres_per_sample = float(c) / float(sample_rate)

        # Geometric distances (metres), fixed; a leading batch dimension for several positions.
        def geometry(values):
            stacked = torch.as_tensor(np.stack([values(r) for r in rooms]), **factory)
            return stacked.reshape(*self.batch_shape, *stacked.shape[1:])

        self.register_buffer("source_node_distance", geometry(lambda r: r.source_node_distances))
        self.register_buffer("node_pair_distance", geometry(lambda r: r.node_node_distances[PAIRS[0], PAIRS[1]]))
        self.register_buffer("node_mic_distance", geometry(lambda r: r.node_mic_distances))
        self.register_buffer("direct_distance", geometry(lambda r: np.array([r.direct_distance])))

        # Trainable quantities, stored raw; mapped to physical values in one place each.
        if fir_order == 0:
            self.wall_logit = nn.Parameter(torch.full((N_WALLS,), math.log(gain / (1 - gain)), **factory))
        else:
            taps = torch.zeros(N_WALLS, fir_order + 1, **factory)
            taps[:, -1 if "last_tap_init" in self.config["quirks"] else 0] = gain
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
        """Corrected distances in metres.

        Returns
        -------
        dict
            ``source_node`` (..., 6), ``node_node`` (..., 6, 6) symmetric, ``node_mic``
            (..., 6), ``direct`` (..., 1), with the batch shape of the positions in front. Equal
            to the geometry without distance correction.
        """
        out = {}
        for name, d in self._distance_buffers().items():
            if self.config["distance_correction"]:
                delta = getattr(self, name + "_correction")
                dmax = torch.clamp(d / 2, max=self.config["max_correction"])
                d = d + dmax * torch.tanh(self.config["correction_scale"] * delta)
            out[name] = d
        pair = out.pop("node_pair")
        node_node = pair.new_zeros(*pair.shape[:-1], N_WALLS, N_WALLS)
        node_node[..., PAIRS[0], PAIRS[1]] = pair
        out["node_node"] = node_node + node_node.transpose(-1, -2)
        return out

    def delays(self, integer: bool | None = None) -> dict:
        """Delays in samples of :meth:`distances`, keyed like it.

        Parameters
        ----------
        integer : bool, optional
            Whole samples (default: the model's ``integer_delays``) or fractional.
        """
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

    def delay_lines(self) -> dict:
        """Every line as a causal FIR filter (:class:`sdn.delays.DelayLine`).

        Returns
        -------
        dict
            ``source_node`` (..., 6), ``node_pair`` (..., 15; the pairs k < l in
            ``sdn.closed_form.PAIRS`` order, one filter for both directions), ``node_mic``
            (..., 6) and ``direct`` (..., 1). Whole-sample lines with ``integer_delays``,
            windowed-sinc fractional lines otherwise; lines between nodes start at least one
            sample late.
        """
        delay = self.delays()
        delay["node_pair"] = delay.pop("node_node")[..., PAIRS[0], PAIRS[1]]
        names = ("source_node", "node_pair", "node_mic", "direct")
        every = torch.cat([delay[name] for name in names], -1)
        if self.config["integer_delays"]:
            line = whole_sample_line(every)
        else:  # one call for every line: the taps are many small operations
            min_lag = torch.cat([torch.full(delay[name].shape[-1:], 1.0 if name == "node_pair" else 0.0,
                                            dtype=every.dtype, device=every.device) for name in names])
            line = fractional_line(every, min_lag=min_lag)
        if "buffer_truncation" in self.config["quirks"]:  # a line longer than the buffer outputs nothing
            line = DelayLine(line.offset, line.taps * (every < BUFFER_SAMPLES).unsqueeze(-1))
        sizes = [delay[name].shape[-1] for name in names]
        return {name: DelayLine(offset, taps) for name, offset, taps
                in zip(names, line.offset.split(sizes, -1), line.taps.split(sizes, -2))}

    def wall_filters(self) -> torch.Tensor:
        r"""Wall filter taps, (6, fir_order + 1); a scalar wall is the single tap
        :math:`\operatorname{sigmoid}(\theta_k)`."""
        if self.fir_order == 0:
            return torch.sigmoid(self.wall_logit)[:, None]
        return self.wall_taps

    def wall_response(self, n_freqs: int = 513) -> tuple[torch.Tensor, torch.Tensor]:
        """Frequencies (Hz, (n_freqs,)) and complex wall responses :math:`H_k(e^{j\\omega})` (6, n_freqs)."""
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

    def network(self) -> Network:
        """The network's components (:class:`sdn.closed_form.Network`), differentiable: the one
        description rendered by the closed form and by the time-domain recursion."""
        dist = self.distances()
        G = self.metres_per_sample
        weights = self.extraction_weights()
        off = _OFF_DIAGONAL.to(self.device)
        if "summed_weights" in self.config["quirks"]:
            extraction = weights.sum() * off
        else:
            extraction = weights.new_zeros(N_WALLS, N_WALLS).masked_scatter(off, weights)
        y = self.admittances()
        direct_gain = 1.0 if "direct_gain" in self.config["quirks"] else G
        return Network(
            **self.delay_lines(),
            injection=G / dist["source_node"] / 2,
            mic_gain=1.0 / (1.0 + dist["node_mic"] / dist["source_node"]),
            direct_gain=direct_gain / dist["direct"],
            wall_taps=self.wall_filters(),
            junction=2 * y / y.sum(-1, keepdim=True),
            extraction=extraction,
        )

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
        """Passivity certificate (see :mod:`sdn.stability`), for every position at once."""
        with torch.no_grad():
            return network_certificate(self.admittances(), self.wall_filters(), self.delay_lines()["node_pair"])

    # ------------------------------------------------------------------ rendering
    def transfer_function(self, z_log: torch.Tensor) -> torch.Tensor:
        """Transfer function :math:`Y(z)/X(z)` at :math:`z = e^s` for complex ``s`` = ``z_log`` (F,).

        Returns
        -------
        complex tensor, shape (..., F), the batch shape of the positions in front.
        """
        return closed_form.transfer_function(self.network(), z_log)

    def impulse_response(self, n_samples: int | None = None, method: str = "closed_form", *,
                         decay_db: float = DECAY_DB, max_samples: int | None = None,
                         check_growth: bool = True) -> torch.Tensor:
        """Impulse response, shape (..., n) with the batch shape of the positions in front.

        Parameters
        ----------
        n_samples : int, optional
            Length n. None renders until the response has decayed ``decay_db`` below its peak
            in every position, at most ``max_samples``.
        method : {"closed_form", "time"}
            ``"closed_form"`` (differentiable): the transfer function on :math:`|z| = r`,
            :math:`r = 10^{A / (20 N)}`, :math:`N \\ge 2n`, inverse FFT, times :math:`r^n`
            (:mod:`sdn.closed_form`). Without gradient it is computed in float64 whatever the
            model's dtype (a float32 solve amplified by :math:`r^n` would leave rounding noise
            near -75 dB at the end of a minute-long render). ``"time"``: the time-domain
            recursion (:class:`sdn.TimeDomainSDN`, float64, no gradient).
        decay_db, max_samples : float, int, optional
            For ``n_samples=None`` (default 100 dB, at most ``sdn.rendering.MAX_RENDER_SECONDS``).
        check_growth : bool
            Raise when a network that the passivity certificate does not cover grows (default).
            Training turns this off (see :func:`sdn.rendering.render`).

        Returns
        -------
        tensor in the model's dtype and device.

        Raises
        ------
        UnstableSDNError
            When the response is not finite, or (with ``check_growth``) the network is not
            certified passive and its response grows or wraps around (see :mod:`sdn.stability`).
        """
        if n_samples is None and method == "closed_form":
            return render_until_decayed(lambda n: self.impulse_response(n, check_growth=check_growth),
                                        self.sample_rate, decay_db, max_samples)
        if not (isinstance(n_samples, (int, np.integer)) and n_samples > 0):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if method == "time":
            from .recursion import TimeDomainSDN

            pulse = np.zeros(int(n_samples))
            pulse[0] = 1.0
            return torch.as_tensor(TimeDomainSDN(self).process(pulse), dtype=self.dtype, device=self.device)
        if method != "closed_form":
            raise ValueError(f"method must be 'closed_form' or 'time', got {method!r}")
        return render(self.network(), self.admittances(), int(n_samples), self.config["aliasing_db"], check_growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter signals through the SDN.

        The impulse response is rendered once, until it has decayed ``DECAY_DB`` (100 dB) below
        its peak or to the length of ``x`` if that is shorter, and
        convolved with ``x`` by FFT overlap-add (:func:`sdn.convolution.overlap_add`): memory
        grows with the length of ``x``, not with its square, so minutes of audio are fine.

        Parameters
        ----------
        x : tensor, shape (..., T)
            Real signals in the model's dtype and on its device.

        Returns
        -------
        tensor, shape (..., T)
            The first T samples of the reverberated signal. A unit pulse gives the impulse
            response (zero after the 100 dB point). For a batch of positions the impulse
            responses (P, L) broadcast against ``x`` as usual: ``x`` of shape (T,) gives (P, T).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (..., T), got {type(x).__name__}")
        if x.is_complex() or not x.is_floating_point():
            raise TypeError(f"x must be a real floating-point tensor, got {x.dtype}: filter real signals "
                            f"(for a complex one, its real and imaginary parts separately)")
        if x.dtype != self.dtype:
            raise TypeError(f"x is {x.dtype} but the model is {self.dtype}: convert one of them "
                            f"(x.to(model.dtype) or model.to({x.dtype}))")
        if x.dim() == 0 or x.shape[-1] == 0:
            raise ValueError(f"x must have shape (..., T) with T > 0, got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf")
        return overlap_add(x, self.impulse_response(None, max_samples=x.shape[-1]))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, run_hash: str | None = None) -> None:
        """Write the weights, config and dtype with their checksum, atomically; read back with
        :func:`sdn.load`. See :func:`sdn.saved_model.save`.

        Parameters
        ----------
        path : str or os.PathLike
            File to write; its folder is created.
        run_hash : str, optional
            Hash of the training run that produced the weights.
        """
        from .saved_model import save

        save(self, path, run_hash)

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "SDN":
        """A new SDN from the ``config`` attribute of one (as saved in checkpoints); ``kwargs`` add
        constructor arguments such as ``dtype`` and ``device``."""
        cfg = dict(config)
        room = cfg.pop("room")
        room = Room(**room) if isinstance(room, dict) else [Room(**r) for r in room]
        return cls(room, **cfg, **kwargs)
