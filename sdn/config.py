"""Strict experiment configuration: typed dataclasses read from YAML.

An unknown or misspelt key is an error naming the key and the file; so is a value of the wrong
type. Every run stores its resolved configuration, whose hash ties results to configs.

Example (``config/experiments/prior_fir0.yaml``)::

    name: prior_fir0
    model: {fir_order: 0, distance_correction: false}
    training: {epochs: 300, lr: 0.01, seed: 42}
    loss: {edc: 0.5, edr: 1.0, edp: 1.0}
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

ABSORPTION_RULES = ("sabine", "eyring")


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of :class:`sdn.SDN` (see its docstring).

    ``alpha`` is a number, or ``"sabine"`` / ``"eyring"``: uniform absorption obtained by inverting
    that reverberation formula with the target's measured broadband T30 (the classic baselines).
    """

    sample_rate: int = 16000
    fir_order: int = 0
    alpha: Union[float, str] = 0.02
    distance_correction: bool = False
    integer_delays: bool = False
    c: float = 343.0
    max_correction: float = 0.5
    correction_scale: float = 10.0
    quirks: str = ""  # behaviours of the paper's released code: "paper" or names, comma-separated


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation: full-batch Adam on one target. ``epochs: 0`` evaluates the initial model."""

    epochs: int = 300
    lr: float = 0.01
    seed: int = 42
    checkpoint_every: int = 25


@dataclass(frozen=True)
class LossConfig:
    """Weights of the paper's loss terms (DESIGN.md section 4)."""

    edc: float = 0.5
    edr: float = 1.0
    edp: float = 1.0


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "ExperimentConfig":
        """Copy with some fields of some sections replaced: ``replace(training={"epochs": 3})``."""
        updated = {}
        for name, values in sections.items():
            current = getattr(self, name)
            updated[name] = dataclasses.replace(current, **values) if dataclasses.is_dataclass(current) else values
        return _build(ExperimentConfig, {**self.to_dict(), **{k: _plain(v) for k, v in updated.items()}}, "<replace>")


def _plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _check_type(value, hint, where: str):
    origin = get_origin(hint)
    options = get_args(hint) if origin is Union else (hint,)
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (bool, str) and isinstance(value, option):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"{where} must be {names}, got {value!r}")


def _build(cls, raw, where: str):
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing key {f.name!r}")
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, raw[f.name], f"{where}: {f.name}")
        else:
            values[f.name] = _check_type(raw[f.name], hint, f"{where}: {f.name}")
    config = cls(**values)
    _validate(config, where)
    return config


def _validate(config, where: str) -> None:
    if isinstance(config, ModelConfig):
        if isinstance(config.alpha, str) and config.alpha not in ABSORPTION_RULES:
            raise ValueError(f"{where}: alpha must be a number or one of {ABSORPTION_RULES}, got {config.alpha!r}")
        if config.fir_order < 0 or config.sample_rate <= 0:
            raise ValueError(f"{where}: fir_order must be >= 0 and sample_rate > 0")
        from .model import QUIRKS

        names = [q.strip() for q in config.quirks.split(",") if q.strip()]
        if config.quirks != "paper" and not set(names) <= set(QUIRKS):
            raise ValueError(f"{where}: quirks must be 'paper' or names from {sorted(QUIRKS)}, got {config.quirks!r}")
    if isinstance(config, TrainingConfig):
        if config.epochs < 0 or config.lr <= 0 or config.checkpoint_every <= 0:
            raise ValueError(f"{where}: epochs must be >= 0, lr and checkpoint_every > 0")
    if isinstance(config, LossConfig):
        if min(config.edc, config.edr, config.edp) < 0:
            raise ValueError(f"{where}: loss weights must be non-negative")


def load_experiment(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment YAML strictly (see the module docstring)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config not found: {path}")
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return _build(ExperimentConfig, raw, str(path))


def config_hash(resolved: dict) -> str:
    """Short sha256 of a configuration's canonical JSON (sorted keys): ties results to configs."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
