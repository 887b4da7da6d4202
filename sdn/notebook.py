"""Set-up shared by the study's notebooks: repository root, measured data, output folders.

A notebook of the study runs with the working directory at the repository root (papermill starts
it there; Jupyter starts in ``notebooks/``; in Colab the install cell changes into the clone), reads
measured files that ship with the repository or were fetched with ``python -m sdn.data fetch``, and
writes under its results folder. Nothing here downloads: a missing file is an error that says how
to get it.

Examples
--------
>>> from sdn import notebook
>>> root = notebook.setup()                                   # doctest: +SKIP
>>> room_config = notebook.room_config("config/rooms/homula_s1_r2hom1.yaml")  # doctest: +SKIP
>>> out = notebook.output_folder("results", "model")          # doctest: +SKIP
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from .config import RoomConfig, load_room_config

__all__ = ["find_root", "setup", "room_config", "output_folder"]

#: Warnings that say nothing to a reader of an executed notebook: tqdm's note that ipywidgets is
#: missing (the text progress bar is used instead).
QUIET = ("IProgress not found",)


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder at or above ``start`` holding ``pyproject.toml`` and
    the ``sdn`` package.

    Parameters
    ----------
    start : str or os.PathLike, optional
        Where to start looking (default: the working directory).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        When no folder at or above ``start`` is a checkout of the repository.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "sdn" / "__init__.py").is_file():
            return folder
    raise FileNotFoundError(f"{start} is not inside a checkout of the sdn repository (no pyproject.toml "
                            f"next to sdn/ above it): start the notebook from the repository")


def setup(*files: str) -> Path:
    """Prepare a notebook: working directory at the repository root, measured files present.

    Parameters
    ----------
    *files : str
        Measured files the notebook reads: registered names (``"rir-S2-R2-HOM1.wav"``,
        ``"homula-rir/rir-S1-ULA.wav"``) or paths relative to the repository root.

    Returns
    -------
    pathlib.Path
        The repository root, now the working directory.

    Raises
    ------
    FileNotFoundError
        For a missing file, saying how to get it (``python -m sdn.data fetch NAME``).
    """
    from . import data

    root = find_root()
    os.chdir(root)
    for message in QUIET:
        warnings.filterwarnings("ignore", message=message)
    for name in files:
        data.resolve(name)
    return root


def room_config(path: str | os.PathLike) -> RoomConfig:
    """A room configuration whose measured target is present.

    Parameters
    ----------
    path : str or os.PathLike
        The room YAML (``config/rooms/*.yaml``), relative to the repository root.

    Returns
    -------
    sdn.config.RoomConfig

    Raises
    ------
    FileNotFoundError
        When the configuration or its target file is missing; the message says how to get it.
    """
    from . import data

    config = load_room_config(path)
    if config.target is not None:
        data.resolve(config.target.file)
    return config


def output_folder(results_dir: str | os.PathLike, *parts: str) -> Path:
    """``<results_dir>/<parts...>``, created if needed.

    Parameters
    ----------
    results_dir : str or os.PathLike
        The run's results folder (``results``, ``results-quick``, or any other the pipeline passes).
    *parts : str
        Sub-folders, e.g. ``"model"``.

    Returns
    -------
    pathlib.Path
    """
    folder = Path(results_dir, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
