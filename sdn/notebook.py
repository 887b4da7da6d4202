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

import numpy as np

from .allocator import keep_freed_memory
from .config import RoomConfig, load_room_config

__all__ = ["find_root", "setup", "room_config", "output_folder", "target_caveat", "CAVEAT_CLASS"]

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
    """Prepare a notebook: working directory at the repository root, measured files present, freed
    memory kept for reuse (:func:`sdn.allocator.keep_freed_memory`).

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
    keep_freed_memory()  # training steps reuse each other's buffers (sdn.allocator)
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


#: The HTML class of the caveat box of :func:`target_caveat` (the book's tests look for it).
CAVEAT_CLASS = "target-caveat"


def target_caveat(room_config: RoomConfig, calibration: str | os.PathLike | None = None) -> str:
    """The box that goes beside every table of errors: what the errors are measured against.

    Three facts: the target file and where it comes from; the microphone position (estimated by
    the calibration, with the runner-up positions that fit almost as well, or given by the room
    config); the measurement latency (the delay of the target's direct sound that the SDN does
    not model).

    Parameters
    ----------
    room_config : RoomConfig
        The room config of the study (its target and microphone position).
    calibration : str or os.PathLike, optional
        ``calibration.json`` of ``01_calibration``. When it is missing, or does not cover the
        room's target, the position is reported as given by the room config and the latency as
        not estimated.

    Returns
    -------
    str
        An HTML admonition (class ``admonition caution`` and :data:`CAVEAT_CLASS`), for
        ``IPython.display.HTML`` or a MyST page.

    Examples
    --------
    >>> from IPython.display import HTML, display  # doctest: +SKIP
    >>> display(HTML(target_caveat(room_config, "results/calibration/calibration.json")))  # doctest: +SKIP
    """
    import html
    import json

    from .data import REGISTRY

    target = room_config.target
    file = target.file.split("/")[-1] if target else None
    entry = REGISTRY.get(file)
    source = (f"fetched from a public mirror of the HOMULA-RIR files ({entry.url.rsplit('/', 1)[0]}/), "
              f"SHA-256 {entry.sha256[:12]}...; not verified here against the dataset's Zenodo record "
              f"10479726, which <code>python -m sdn.data fetch --from-zenodo</code> downloads and checks"
              if entry and entry.sha256 else "a measured file of the dataset")
    solution = None
    if calibration is not None and Path(calibration).is_file():
        found = json.loads(Path(calibration).read_text())
        solution = next((v for v in found.values() if isinstance(v, dict) and v.get("file") == file), None)
    mic = ", ".join(f"{v:.2f}" for v in room_config.room.mic)
    if solution:
        others = solution.get("alternatives", [])
        spread = max((float(np.linalg.norm(np.subtract(o["position"], solution["position_m"]))) for o in others),
                     default=0.0)
        position = (f"({mic}) m, estimated from the measurement by <code>01_calibration</code>; "
                    f"{len(others)} other positions fit its reflections almost as well, up to {spread:.1f} m away "
                    f"(<code>08_sensitivity</code> refits there)")
        latency = (f"the target's direct sound comes {solution['latency_ms']:.2f} ms later than the model's "
                   f"(the measurement chain); the SDN does not model it")
    else:
        position = f"({mic}) m, as given by the room config <code>{html.escape(room_config.name)}</code>"
        latency = "not estimated for this target"
    channel = f"channel {target.channel}" if target and target.channel != "mean" else "mean of its channels"
    items = [f"<b>Target</b>: <code>{html.escape(target.file if target else 'none')}</code> ({channel}), {source}.",
             f"<b>Microphone position</b>: {position}.",
             f"<b>Measurement latency</b>: {latency}."]
    return (f'<div class="admonition caution {CAVEAT_CLASS}"><p class="admonition-title">'
            f'What these errors are measured against</p><ul>'
            + "".join(f"<li>{item}</li>" for item in items) + "</ul></div>")
