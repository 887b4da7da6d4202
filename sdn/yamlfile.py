"""Strict YAML files: the one reader and the scalar writer of sdn's configuration files.

:func:`read_yaml` reads a file that must hold one mapping, with PyYAML's safe loader made
stricter: a key given twice in a mapping is an error (PyYAML keeps the last one silently), and
YAML anchors and aliases (``&name``, ``*name``) are refused, so that no file can expand into a
huge document ("billion laughs"). :func:`build_section` turns a mapping into typed dataclasses
(unknown keys, wrong types, ``null`` and non-finite numbers are errors). Errors are
:class:`ConfigError`, one line naming the file and, for syntax errors, the line and column; values
quoted in messages are cut by :func:`short`. :mod:`sdn.config` defines the files themselves.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

import yaml

__all__ = ["ConfigError", "read_yaml", "check_keys", "build_section", "short", "yaml_scalar"]

_MAX_MESSAGE = 300


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the option."""


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that no value makes a long message.

    Parameters
    ----------
    value : object
        Any value.
    limit : int
        Most characters returned.

    Returns
    -------
    str
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and repeated keys."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not allowed in sdn "
                "config files; write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {short(key)} is given twice (first on line {first})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 1e-3 as text; read it as a number, as YAML 1.2 does.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | os.PathLike, what: str = "config") -> dict:
    """Read a strict YAML file holding one mapping.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, for messages (``"experiment config"``, ``"room config"``).

    Returns
    -------
    dict
        The mapping.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ConfigError
        For a path that is a folder, a FIFO or another thing that is not a file, a syntax error,
        an anchor or alias, a repeated key, nesting too deep to read, undecodable text or a
        document that is not a mapping; one line naming the file (and line and column where
        known).
    """
    from .fileio import not_regular

    path = Path(path)
    kind = not_regular(path)
    if kind is not None:
        raise ConfigError(f"{path} is {kind}, not a file: give the {what} as a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(err.problem or err.context or "invalid YAML").split())
        raise ConfigError(f"{path}{where}: {problem[:_MAX_MESSAGE]}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{path}: not a valid YAML file ({first[:_MAX_MESSAGE]})") from None
    except RecursionError:  # the reader recurses once per level of nesting
        raise ConfigError(f"{path}: nested too deeply to read (no sdn config nests more than three "
                          f"levels); fix the file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys to values, "
                          f"got {type(raw).__name__}")
    return raw


def _check_type(value, hint, where: str):
    origin = get_origin(hint)
    options = get_args(hint) if origin is Union else (hint,)
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {short(value)}")
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (bool, str) and isinstance(value, option):
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{where} must be {names}, got {short(value)}")


def check_keys(raw: dict, allowed, where: str) -> None:
    """Raise ConfigError naming ``where`` and the unknown keys of ``raw`` unless all are ``allowed``.

    Parameters
    ----------
    raw : dict
        A mapping read from a file.
    allowed : iterable of str
        The keys it may have.
    where : str
        File (and section) for the message.
    """
    unknown = sorted(str(k) for k in set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {short(unknown, 120)}; allowed: {sorted(allowed)}")


def build_section(cls, raw, where: str, validate=None):
    """A (nested) dataclass from a mapping, strictly: known keys, exact types, finite numbers.

    A ``float`` field takes an int or a float (NaN and infinities are refused), an ``int`` field
    only an int, ``bool`` and ``str`` fields only their type (``null`` is refused everywhere);
    a dataclass-typed field is built recursively. Fields absent from ``raw`` take their defaults.

    Parameters
    ----------
    cls : type
        A dataclass.
    raw : dict
        The mapping.
    where : str
        File (and section) for messages.
    validate : callable, optional
        ``validate(section, where)`` checks ranges of every section built, innermost first.

    Returns
    -------
    cls instance
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    check_keys(raw, [f.name for f in dataclasses.fields(cls)], where)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {f.name!r}")
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            values[f.name] = build_section(hint, raw[f.name], f"{where}: {f.name}", validate)
        else:
            values[f.name] = _check_type(raw[f.name], hint, f"{where}: {f.name}")
    section = cls(**values)
    if validate is not None:
        validate(section, where)
    return section


def yaml_scalar(value) -> str:
    """``value`` as YAML flow text: plain when it reads back unchanged, else double-quoted.

    Parameters
    ----------
    value : str, int or float
        A scalar.

    Returns
    -------
    str
        Text that PyYAML's safe loader reads back to ``value`` (JSON's quoting otherwise).
    """
    text = str(value)
    plain = bool(text) and "\n" not in text
    if plain:
        try:
            plain = yaml.safe_load("{k: " + text + "}") == {"k": value}
        except yaml.YAMLError:
            plain = False
    return text if plain else json.dumps(value)
