"""Strict configuration files: experiments and rooms, read and written in one place.

Two kinds of YAML file, both read by :func:`read_yaml`:

- an **experiment** (``config/experiments/*.yaml``, :func:`load_experiment`)::

      name: prior_fir0
      model: {fir_order: 0, distance_correction: false}
      training: {epochs: 300, lr: 0.01, seed: 0}     # + patience, min_delta, min_epochs: a plateau stop
      loss: {edc: 0.5, edr: 1.0, edp: 1.0}

- a **room** (``config/rooms/*.yaml``, :func:`load_room_config`, written by
  :func:`write_room_config`)::

      name: homula_s1_r2hom1
      size: [5.46, 14.52, 3.38]
      source: [2.28, 0.96, 1.20]
      mic: [0.649, 4.021, 1.137]        # or {published: R2-HOM1}, see below
      target: {file: homula-rir/rir-S1-R2-HOM1.wav, channel: mean}   # + latency: seconds removed

Reading is strict. A file must hold one mapping; an unknown or misspelt key, a key given twice, a
value of the wrong type, a NaN or infinite number and a value outside its documented range are
errors naming the file and the option. YAML anchors and aliases (``&name``, ``*name``) are
refused, so no file can expand into a huge document. A YAML syntax error is one line naming the
file, line and column. Every error is a :class:`ConfigError` (a ``ValueError``) with a short,
one-line message.

The documented range of every value is in the attributes of the classes below. A ``name`` is a
plain file-name component (letters, digits, ``.``, ``_``, ``-``; not starting with ``.``): run
folders are named after it.

Published positions. ``mic`` or ``source`` may name a position published with the HOMULA-RIR
dataset instead of giving numbers: ``{published: R2-HOM1}`` (the centre of that array's capsules),
``{published: ULA, capsule: 63}`` (one capsule) or ``{published: S1}`` (a source). They are read
from the dataset's position files (:func:`sdn.homula.published_position`), present once
``python -m sdn.data fetch --from-zenodo`` has run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from .baselines import RULES
from .geometry import SPEED_OF_SOUND, Room
from .yamlfile import ConfigError, build_section, check_keys, read_yaml, short, yaml_scalar

__all__ = [
    "ModelConfig", "TrainingConfig", "LossConfig", "ExperimentConfig",
    "load_experiment", "config_hash", "TargetSpec", "RoomConfig", "load_room_config",
    "write_room_config",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a plain file-name component
#: Most epochs a run may have (the paper's fits take 300; a million take days even on short targets).
MAX_EPOCHS = 1_000_000


# --------------------------------------------------------------------------------------------
# Experiment configurations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of :class:`sdn.SDN` (see its docstring for their meaning).

    Attributes
    ----------
    sample_rate : int
        Hz, 1000 to 192000.
    fir_order : int
        0 for scalar wall gains, M in 1 to 32 for FIR walls of order M.
    alpha : float or str
        Initial uniform absorption in [0, 1), or ``"sabine"`` / ``"eyring"``: the absorption
        obtained by inverting that formula with the target's broadband T30 (:mod:`sdn.baselines`).
    distance_correction : bool
        Learn a bounded correction of every distance.
    integer_delays : bool
        Round every delay to whole samples.
    c : float
        Speed of sound, m/s, 100 to 2000.
    max_correction : float
        Largest distance correction, metres, > 0 and <= 10.
    correction_scale : float
        Slope of the distance correction, > 0 and <= 1000.
    quirks : str
        Behaviours of the paper's released code: ``"paper"`` or names, comma-separated.
    """

    sample_rate: int = 16000
    fir_order: int = 0
    alpha: Union[float, str] = 0.02
    distance_correction: bool = False
    integer_delays: bool = False
    c: float = SPEED_OF_SOUND
    max_correction: float = 0.5
    correction_scale: float = 10.0
    quirks: str = ""

    def sdn_kwargs(self, alpha: float | None = None) -> dict:
        """Keyword arguments of :class:`sdn.SDN` (all but the room).

        Parameters
        ----------
        alpha : float, optional
            The absorption to use; required when ``self.alpha`` names a rule (the caller resolves
            it from the target's reverberation time), else defaults to ``self.alpha``.

        Returns
        -------
        dict
            ``SDN(room, **kwargs)`` builds the configured model.
        """
        if alpha is None:
            if isinstance(self.alpha, str):
                raise ValueError(f"alpha is the rule {self.alpha!r}: pass the absorption it gives")
            alpha = self.alpha
        kwargs = dataclasses.asdict(self)
        kwargs["alpha"] = float(alpha)
        return kwargs


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation: full-batch Adam on one target. ``epochs: 0`` evaluates the initial model.

    Attributes
    ----------
    epochs : int
        Number of epochs, 0 to :data:`MAX_EPOCHS`; with a plateau stop, the most that are run.
    lr : float
        Adam learning rate, > 0 and <= 1.
    seed : int
        Initialisation, >= 0 (:func:`sdn.initialisation.perturb_parameters`): 0 is the paper's
        initial model; k > 0 perturbs every trainable parameter by a small amount drawn from a
        generator seeded with k (an ensemble member, :mod:`sdn.ensemble`).
    checkpoint_every : int
        Epochs between checkpoints, >= 1.
    patience : int
        Plateau stop (:class:`sdn.optimisation.PlateauStop`): end training once the lowest total
        loss has not fallen by the relative amount ``min_delta`` for this many epochs, >= 0;
        0 (default) runs all ``epochs``, as the paper does.
    min_delta : float
        Relative decrease of the lowest loss that counts as progress, in [0, 1).
    min_epochs : int
        Epochs run before the plateau stop may end training, >= 0 (the converged fits run at least
        the paper's 300).
    """

    epochs: int = 300
    lr: float = 0.01
    seed: int = 0
    checkpoint_every: int = 25
    patience: int = 0
    min_delta: float = 1e-3
    min_epochs: int = 0


@dataclass(frozen=True)
class LossConfig:
    """Weights of the paper's loss terms (:mod:`sdn.losses`): 0 to 1000, not all zero.

    Attributes
    ----------
    edc : float
        Weight of the energy decay curve loss.
    edr : float
        Weight of the mel energy decay relief loss.
    edp : float
        Weight of the echo density profile loss.
    """

    edc: float = 0.5
    edr: float = 1.0
    edp: float = 1.0


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: what model to build, how to train it and on which loss.

    Attributes
    ----------
    name : str
        A plain file-name component (run folders are named after it).
    description : str
        Free text.
    model : ModelConfig
        The SDN.
    training : TrainingConfig
        The optimisation.
    loss : LossConfig
        The loss weights.
    """

    name: str
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        """Nested plain dict of the values (JSON-serialisable): what a run's hash is computed from.

        The plateau stop's fields (``training.patience``, ``min_delta``, ``min_epochs``) appear only when
        a plateau stop is configured (``patience > 0``), so that configurations without one keep
        the hashes of the runs made before these fields existed.
        """
        values = dataclasses.asdict(self)
        if not self.training.patience:
            for key in ("patience", "min_delta", "min_epochs"):
                del values["training"][key]
        return values

    def replace(self, **sections) -> "ExperimentConfig":
        """Copy with some fields of some sections replaced, validated like a file.

        Parameters
        ----------
        **sections
            Section name to a dict of new values, e.g. ``replace(training={"epochs": 3})``, or
            ``name=...`` / ``description=...``.

        Returns
        -------
        ExperimentConfig
        """
        updated = dataclasses.asdict(self)
        for name, values in sections.items():
            updated[name] = {**updated[name], **values} if isinstance(updated.get(name), dict) else values
        return build_section(ExperimentConfig, updated, "<replace>", _validate)


def _check_name(name, where: str) -> str:
    """``name`` if it is a plain file-name component, else ConfigError naming ``where``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: name must be a plain file name (letters, digits, '.', '_', '-'; at most 100, "
            f"not starting with '.'), got {short(name)}")
    return name


# The allowed range of every number a config sets: (low, high, low_open, unit). Wide enough for any
# room a shoebox SDN models, narrow enough that no value can exhaust the machine or overflow.
_RANGES = {
    ModelConfig: {
        # Below 1 kHz nothing of a room's response is left; 192 kHz is the highest common audio
        # rate. A render's memory grows with the rate (10 MHz filled 17 GB in under 3 minutes).
        "sample_rate": (1000, 192000, False, " Hz"),
        # The paper uses orders 0 and 6; every order adds six taps and a pole per wall.
        "fir_order": (0, 32, False, ""),
        # From cold air (about 300 m/s) to helium (about 1000 m/s) and water (about 1500 m/s) with
        # a margin: a delay of d / c samples neither vanishes nor outgrows any render.
        "c": (100.0, 2000.0, False, " m/s"),
        # A correction of the measured geometry, not another room.
        "max_correction": (0.0, 10.0, True, " m"),
        "correction_scale": (0.0, 1000.0, True, ""),
    },
    TrainingConfig: {
        "epochs": (0, MAX_EPOCHS, False, ""),  # the paper's fits take 300
        # Adam's step is about lr per epoch in each parameter, most of which act through a
        # squashing function of range about 1: a larger rate only jumps between extremes.
        "lr": (0.0, 1.0, True, ""),
        "seed": (0, 2**63 - 1, False, ""),  # what torch.manual_seed takes as a signed 64-bit integer
        "checkpoint_every": (1, MAX_EPOCHS, False, " epochs"),
        "patience": (0, MAX_EPOCHS, False, " epochs"),
        "min_delta": (0.0, 1.0, False, ""),
        "min_epochs": (0, MAX_EPOCHS, False, " epochs"),
    },
    # Weights scale the loss and its gradient like lr; the paper's are 0.5 and 1.
    LossConfig: {name: (0.0, 1000.0, False, "") for name in ("edc", "edr", "edp")},
}
#: Room dimensions, metres: from a cupboard to a stadium.
ROOM_SIZE_RANGE = (0.1, 1000.0)


def _check_range(where: str, name: str, value, low, high, low_open: bool = False, unit: str = "") -> None:
    """ConfigError naming ``where``, ``name`` and the range unless ``value`` lies in it."""
    if not ((low < value) if low_open else (low <= value)) or not value <= high:
        raise ConfigError(f"{where}: {name} must be {'>' if low_open else '>='} {low} and <= {high}{unit}, "
                          f"got {short(value)}")


def _validate(config, where: str) -> None:
    if isinstance(config, ExperimentConfig):
        _check_name(config.name, where)
    if isinstance(config, ModelConfig):
        if isinstance(config.alpha, str):
            if config.alpha not in RULES:
                raise ConfigError(f"{where}: alpha must be a number or one of {RULES}, "
                                  f"got {short(config.alpha)}")
        elif not 0.0 <= config.alpha < 1.0:
            raise ConfigError(f"{where}: alpha (absorption) must lie in [0, 1), got {config.alpha!r}")
        from .model import QUIRKS

        names = [q.strip() for q in config.quirks.split(",") if q.strip()]
        if config.quirks != "paper" and not set(names) <= set(QUIRKS):
            raise ConfigError(f"{where}: quirks must be 'paper' or names from {sorted(QUIRKS)}, "
                              f"got {short(config.quirks)}")
    if isinstance(config, TrainingConfig) and config.min_delta >= 1.0:
        raise ConfigError(f"{where}: min_delta (a relative decrease) must be < 1, got {short(config.min_delta)}")
    for name, (low, high, low_open, unit) in _RANGES.get(type(config), {}).items():
        _check_range(where, name, getattr(config, name), low, high, low_open, unit)
    if isinstance(config, LossConfig):
        if not any((config.edc, config.edr, config.edp)):
            raise ConfigError(f"{where}: at least one loss weight (edc, edr, edp) must be positive")


def load_experiment(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment YAML strictly (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The experiment file, e.g. ``config/experiments/prior_fir0.yaml``.

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ConfigError
        For any invalid content, naming the file and the option.
    """
    return build_section(ExperimentConfig, read_yaml(path, "experiment config"), str(path), _validate)


def config_hash(resolved: dict) -> str:
    """Short sha256 of a configuration's canonical JSON (sorted keys): ties results to configs.

    Parameters
    ----------
    resolved : dict
        JSON-serialisable configuration.

    Returns
    -------
    str
        The first 16 hex digits.
    """
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Room configurations
# --------------------------------------------------------------------------------------------

_ROOM_KEYS = ("name", "description", "size", "source", "mic", "target")
_REQUIRED_ROOM_KEYS = ("name", "size", "source", "mic")
_TARGET_KEYS = ("file", "channel", "latency")
_PUBLISHED_KEYS = ("published", "capsule")


@dataclass(frozen=True)
class TargetSpec:
    """Which measured RIR a room config is fitted to.

    Attributes
    ----------
    file : str
        A registered name or ``"homula-rir/<name>"`` (found by :mod:`sdn.data`), or a path.
    channel : int or str
        Channel index (negative from the end) or ``"mean"``.
    latency : float
        Measurement latency removed from the start of the recording, seconds, >= 0 (default 0:
        the file's timing). With the latency estimated by :mod:`sdn.calibration`, the direct
        sound then lands at the model's direct-path delay (see :func:`sdn.rir.load_rir`).
    """

    file: str
    channel: int | str = 0
    latency: float = 0.0

    def load(self, **kwargs):
        """The preprocessed target: :func:`sdn.rir.load_rir` of the file, channel and latency."""
        from .rir import load_rir

        return load_rir(self.file, channel=self.channel, latency=self.latency, **kwargs)

    def to_dict(self) -> dict:
        """``{"file", "channel"}``, and ``"latency"`` when it is not 0 (so that targets without
        one keep the run hashes they had before the option existed)."""
        spec = {"file": self.file, "channel": self.channel}
        return {**spec, "latency": self.latency} if self.latency else spec


@dataclass(frozen=True)
class RoomConfig:
    """A room configuration: geometry (:class:`sdn.Room`) and its measured target.

    Attributes
    ----------
    name : str
        Identifier, a plain file-name component (the YAML file's stem by convention).
    room : Room
        Size, source and microphone, metres.
    target : TargetSpec or None
        The measured RIR to fit.
    description : str
        Free text.
    path : pathlib.Path or None
        The YAML file it was read from.
    published : dict
        ``{"mic": "R2-HOM1"}`` etc. for positions taken from the dataset's published files
        (``{"mic": "ULA:63"}`` for one capsule); written back as such by :func:`write_room_config`.
    """

    name: str
    room: Room
    target: TargetSpec | None
    description: str = ""
    path: Path | None = None
    published: dict = field(default_factory=dict, hash=False)

    def load_target(self, **kwargs):
        """Load the measured target (keywords of :func:`sdn.rir.load_rir`)."""
        if self.target is None:
            raise ValueError(f"room config {self.name!r} ({self.path}) has no target")
        return self.target.load(**kwargs)

    def to_dict(self) -> dict:
        """Name, geometry (numbers, metres) and target: what a run's hash is computed from.

        Returns
        -------
        dict
            ``{"name", "size", "source", "mic", "target"}``, the target as
            :meth:`TargetSpec.to_dict` or None.
        """
        return {
            "name": self.name,
            **self.room.to_dict(),
            "target": None if self.target is None else self.target.to_dict(),
        }


def _position_text(config: RoomConfig, key: str, decimals: int) -> str:
    if key in config.published:
        name, _, capsule = config.published[key].partition(":")
        extra = f", capsule: {capsule}" if capsule else ""
        return f"{{published: {yaml_scalar(name)}{extra}}}"
    values = getattr(config.room, key)
    return "[" + ", ".join(f"{float(x):.{decimals}f}" for x in values) + "]"


def write_room_config(config: RoomConfig, path: str | os.PathLike | None = None, comment: str = "",
                      decimals: int = 3) -> str:
    """Write a room config as strict YAML (atomically) and return its text.

    Parameters
    ----------
    config : RoomConfig
        What to write.
    path : str or os.PathLike, optional
        The file; None only returns the text.
    comment : str
        Provenance, written as leading ``#`` lines (one per line of ``comment``).
    decimals : int
        Decimals of the positions (3: millimetres).

    Returns
    -------
    str
        The YAML text; :func:`load_room_config` reads it back to ``config`` (positions rounded).
    """
    lines = [f"# {line}".rstrip() for line in comment.strip().splitlines()]
    lines.append(f"name: {yaml_scalar(config.name)}")
    if config.description:
        lines.append(f"description: {yaml_scalar(config.description)}")
    lines += [f"{key}: {_position_text(config, key, decimals)}" for key in ("size", "source", "mic")]
    if config.target is not None:
        latency = f", latency: {config.target.latency!r}" if config.target.latency else ""
        lines.append(f"target: {{file: {yaml_scalar(config.target.file)}, "
                     f"channel: {yaml_scalar(config.target.channel)}{latency}}}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        from .fileio import write_text

        write_text(path, text)
    return text


def _coordinates(value, key: str, where: str) -> tuple:
    """``value`` if it is a list of three real numbers (not text, not booleans), as a tuple."""
    if not (isinstance(value, list) and len(value) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)):
        raise ConfigError(f"{where}: {key} must be three numbers [x, y, z] in metres, got {short(value)}")
    return tuple(value)


def _position(raw: dict, key: str, where: str):
    """Numbers of ``raw[key]``, or the published position it names; and its provenance."""
    value = raw[key]
    if not isinstance(value, dict):
        return _coordinates(value, key, where), None
    check_keys(value, _PUBLISHED_KEYS, f"{where}: {key}")
    name, capsule = value.get("published"), value.get("capsule")
    if not isinstance(name, str) or (capsule is not None and
                                     (not isinstance(capsule, int) or isinstance(capsule, bool))):
        raise ConfigError(f"{where}: {key} must be three numbers or {{published: NAME}} with an "
                          f"optional integer capsule, got {short(value)}")
    from .homula import published_position

    try:
        position = published_position(name, capsule=capsule)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"{where}: {key}: {err}") from None
    return tuple(position.tolist()), name if capsule is None else f"{name}:{capsule}"


def load_room_config(path: str | os.PathLike) -> RoomConfig:
    """Read a strict room YAML (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        A room file (``config/rooms/*.yaml``).

    Returns
    -------
    RoomConfig

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ConfigError
        For an unknown or missing key, a bad name or target, coordinates that are not three
        numbers, a room dimension outside :data:`ROOM_SIZE_RANGE` or a geometry the
        :class:`sdn.Room` checks refuse, naming the file.

    Examples
    --------
    From the repository's root:

    >>> from sdn.config import load_room_config
    >>> config = load_room_config("config/rooms/homula_s1_r2hom1.yaml")
    >>> config.room.mic, config.target
    ((0.649, 4.021, 1.137), TargetSpec(file='homula-rir/rir-S1-R2-HOM1.wav', channel='mean'))
    >>> target = config.load_target(sample_rate=16000)    # the shipped measurement, preprocessed
    """
    raw = read_yaml(path, "room config")
    where = str(path)
    check_keys(raw, _ROOM_KEYS, where)
    missing = [k for k in _REQUIRED_ROOM_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    _check_name(raw["name"], where)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be text, got {short(description)}")
    published, points = {}, {}
    for key in ("source", "mic"):
        points[key], name = _position(raw, key, where)
        if name is not None:
            published[key] = name
    size = _coordinates(raw["size"], "size", where)
    for axis, length in zip("xyz", size):
        _check_range(where, f"size ({axis})", length, *ROOM_SIZE_RANGE, unit=" m")
    try:
        room = Room(size=size, **points)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    target = None
    if raw.get("target") is not None:
        spec = raw["target"]
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: target must be a mapping with keys {list(_TARGET_KEYS)}")
        check_keys(spec, _TARGET_KEYS, f"{where}: target")
        if not isinstance(spec.get("file"), str) or not spec["file"]:
            raise ConfigError(f"{where}: target needs a 'file' (text), got {short(spec.get('file'))}")
        channel = spec.get("channel", 0)
        if not (channel == "mean" or (isinstance(channel, int) and not isinstance(channel, bool))):
            raise ConfigError(f"{where}: target channel must be an integer or 'mean', got {short(channel)}")
        latency = spec.get("latency", 0.0)
        if (isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency)
                or latency < 0):
            raise ConfigError(f"{where}: target latency must be a number of seconds >= 0, got {short(latency)}")
        target = TargetSpec(file=spec["file"], channel=channel, latency=float(latency))
    return RoomConfig(name=raw["name"], room=room, target=target, description=description,
                      path=Path(path), published=published)
