"""Checkpoint files: tensors and settings with a format tag and a SHA-256 checksum, verified on load.

A checkpoint is the dict ``{"format": ..., <content>, "sha256": ...}`` written atomically with
:func:`torch.save` and read back with ``torch.load(weights_only=True)``, which runs no code from
the file. The checksum covers every value of the content in a canonical order: dict keys sorted,
tensors by dtype, shape and raw bytes, numbers exactly. A flipped bit, a truncated file, a file
edited by hand or written by another program is therefore reported, naming the file, instead of
loading silently (a flipped exponent bit can turn a wall tap of 0.99 into 3.4e38).

What is not done: the checksum detects accidents, not attacks. Anyone who can write the file can
also write a matching checksum.

:class:`sdn.SDN` files (``model.pt``) and the training checkpoints of :mod:`sdn.train`
(``checkpoint.pt``) are both written with :func:`write` and read with :func:`read`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .fileio import atomic_path


class CheckpointError(ValueError):
    """A file is not a complete, intact checkpoint of the expected kind; the message names it."""


def checksum(content: dict) -> str:
    """SHA-256 (hexadecimal) of a checkpoint's content in a canonical order.

    Parameters
    ----------
    content : dict
        Nested dicts (string or integer keys), lists, tuples, tensors, strings, numbers, booleans
        and None. Lists and tuples count as the same sequence, as pickling may not keep them apart.

    Returns
    -------
    str
        64 hexadecimal digits; equal for equal content whatever the device or the key order.

    Raises
    ------
    TypeError
        For a value of any other type.

    Examples
    --------
    >>> import torch
    >>> checksum({"a": torch.ones(2), "b": 1}) == checksum({"b": 1, "a": torch.ones(2)})
    True
    """
    digest = hashlib.sha256()
    _feed(digest, content)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    """Add ``value`` to ``digest``; every item is tagged with its type and length, so that no two
    different contents give the same byte stream."""
    if isinstance(value, torch.Tensor):
        # The logical values, copied into a fresh buffer: any strides or offset give the same bytes.
        flat = value.detach().cpu().reshape(-1)
        dense = torch.empty(flat.shape, dtype=flat.dtype).copy_(flat)
        digest.update(f"T{flat.dtype}{tuple(value.shape)}".encode())
        digest.update(dense.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, k)):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        data = value.encode()
        digest.update(f"S{len(data)}:".encode() + data)
    elif isinstance(value, bool) or value is None:  # before int: bool is an int
        digest.update(f"C{value};".encode())
    elif isinstance(value, int):
        digest.update(f"I{value};".encode())
    elif isinstance(value, float):
        digest.update(f"F{value.hex()};".encode())
    else:
        raise TypeError(f"cannot checksum a value of type {type(value).__name__}")


def write(path: str | os.PathLike, kind: str, content: dict) -> None:
    """Write a checkpoint atomically: a reader or a crash never sees a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
        File to write; its folder is created.
    kind : str
        Format tag, e.g. ``"sdn-checkpoint-v2"``; :func:`read` refuses any other.
    content : dict
        What to store (see :func:`checksum` for the types allowed); keys ``format`` and ``sha256``
        are reserved.
    """
    payload = {"format": kind, **content}
    payload["sha256"] = checksum(payload)
    # Through a file object: given a path, torch.save names the archive's records after the
    # (random) temporary file, so equal content would give other bytes; and a full disk raises
    # OSError here instead of torch's RuntimeError.
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def read(path: str | os.PathLike, kind: str, required: tuple[str, ...], what: str, remedy: str) -> dict:
    """Read and verify a checkpoint written by :func:`write`.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    kind : str
        Expected format tag.
    required : tuple of str
        Keys the content must hold.
    what : str
        What the file is, with its article, for messages (e.g. ``"an SDN checkpoint"``).
    remedy : str
        What the user can do about a damaged file, appended to the message.

    Returns
    -------
    dict
        The content, without ``format`` and ``sha256``; tensors on the CPU.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    CheckpointError
        When the file cannot be read, has another format, lacks a required key or fails its
        checksum. The message names the file.
    """
    path = Path(path)
    noun = what.split(" ", 1)[-1]
    if not path.is_file():
        raise FileNotFoundError(f"no {noun} at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, foreign or unsafe files
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path} is not a readable {noun} ({type(err).__name__}: {first_line}); "
                              f"the file is truncated or was not written by sdn: {remedy}") from err
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != kind:
        raise CheckpointError(f"{path} is not {what} of this version of sdn (format {found!r}, "
                              f"expected {kind!r}): {remedy}")
    missing = [key for key in (*required, "sha256") if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is an incomplete {noun}: it lacks {', '.join(missing)}; {remedy}")
    stored = payload.pop("sha256")
    try:
        actual = checksum(payload)
    except (TypeError, RuntimeError) as err:  # a type we never write, or a tensor torch cannot read
        raise CheckpointError(f"{path} holds a value no {noun} holds ({err}): {remedy}") from err
    if actual != stored:
        raise CheckpointError(f"{path} is corrupt: its content does not match the SHA-256 checksum "
                              f"stored in it (a changed bit or an edit): {remedy}")
    del payload["format"]
    return payload


def load_state(module: torch.nn.Module, state_dict, source: str | os.PathLike, remedy: str) -> None:
    """Load saved weights into ``module``, whose buffers were computed from the config saved with them.

    Buffers hold what the config determines (an SDN's distances, from its room), so the module
    keeps its own: each stored buffer must equal it to a relative ``1e-6`` (1 micrometre per
    metre), otherwise the file was edited or mixes two models.

    Parameters
    ----------
    module : torch.nn.Module
        Built from the saved config.
    state_dict : dict
        The saved ``state_dict`` (tensors on any device).
    source : str or os.PathLike
        The file it came from, named in error messages.
    remedy : str
        What the user can do, appended to error messages.

    Raises
    ------
    CheckpointError
        When a stored buffer differs from the module's, or the state does not fit the module
        (missing, unexpected or misshapen entries).
    """
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{source}: its state_dict is not a mapping; {remedy}")
    own = dict(module.named_buffers())
    for name, buffer in own.items():
        stored = state_dict.get(name)
        if not isinstance(stored, torch.Tensor):
            continue  # reported by load_state_dict as a missing entry
        if stored.shape != buffer.shape or not torch.allclose(
                stored.to(device=buffer.device, dtype=buffer.dtype), buffer, rtol=1e-6, atol=0.0):
            raise CheckpointError(f"{source}: its stored {name} {stored.flatten().tolist()} differs from "
                                  f"{buffer.flatten().tolist()}, computed from its config; {remedy}")
    try:
        module.load_state_dict({**state_dict, **own})
    except RuntimeError as err:
        summary = " ".join(str(err).split())
        raise CheckpointError(f"{source} does not fit the model its config describes ({summary}); {remedy}") from err
