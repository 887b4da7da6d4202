"""Room configurations derived from a microphone calibration, for the sensitivity studies.

The calibration (:func:`sdn.calibration.locate_microphone`, summarised in
``results/calibration/calibration.json``) estimates the microphone position and the measurement
latency, and reports the runner-up positions whose reflection scores come close to the estimate's
(the direction from the source is ambiguous). Two kinds of variant of the calibrated room config
are built here, and written through :func:`sdn.config.write_room_config`:

- one config per runner-up position (``<name>_runner_up<i>``): the same room, source and target,
  the microphone moved there; fitting each shows how much the results depend on the position;
- the calibrated position with the estimated latency removed from the target (``<name>_latency``,
  :attr:`sdn.config.TargetSpec.latency`), so that the target's direct sound lands at the model's
  direct-path delay.

Command line, from the repository's root (writes ``config/rooms/``)::

    python -m sdn.room_variants [--calibration results/calibration/calibration.json]
        [--room config/rooms/homula_s1_r2hom1.yaml] [--out config/rooms]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from .config import RoomConfig, load_room_config, write_room_config
from .geometry import Room

__all__ = ["runner_up_configs", "latency_config", "write_room_variants"]


def _solution(calibration: dict, key: str) -> dict:
    try:
        return calibration[key]
    except KeyError:
        raise KeyError(f"the calibration has no entry {key!r}; it has {sorted(calibration)}") from None


def runner_up_configs(calibration: dict, base: RoomConfig, key: str = "s1_r2hom1") -> list[RoomConfig]:
    """Copies of ``base`` with the microphone at each runner-up position of a calibration.

    Parameters
    ----------
    calibration : dict
        The content of ``calibration.json``: ``calibration[key]`` holds ``position_m``, ``score``,
        ``sample_rate`` and ``alternatives`` (each with ``position``, ``latency`` in samples and
        ``score``), as :meth:`sdn.calibration.CalibrationResult.to_dict` writes them.
    base : sdn.config.RoomConfig
        The calibrated room config (its microphone at ``calibration[key]["position_m"]``).
    key : str
        Which calibration of the file.

    Returns
    -------
    list of sdn.config.RoomConfig
        One per runner-up, best first, named ``<base.name>_runner_up<i>`` (i from 1), with a
        description giving its score against the estimate's.

    Examples
    --------
    >>> import json
    >>> from sdn.config import load_room_config
    >>> calibration = json.load(open("results/calibration/calibration.json"))
    >>> base = load_room_config("config/rooms/homula_s1_r2hom1.yaml")
    >>> [c.name for c in runner_up_configs(calibration, base)]
    ['homula_s1_r2hom1_runner_up1', 'homula_s1_r2hom1_runner_up2', 'homula_s1_r2hom1_runner_up3']
    """
    solution = _solution(calibration, key)
    configs = []
    for i, alternative in enumerate(solution["alternatives"], start=1):
        room = Room(size=base.room.size, source=base.room.source, mic=tuple(alternative["position"]))
        description = (f"Microphone at runner-up {i} of the calibration (reflection score "
                       f"{alternative['score']:.4f}; the estimate's {solution['score']:.4f})")
        configs.append(RoomConfig(name=f"{base.name}_runner_up{i}", room=room, target=base.target,
                                  description=description, published={}))
    return configs


def latency_config(calibration: dict, base: RoomConfig, key: str = "s1_r2hom1") -> RoomConfig:
    """``base`` with the calibration's latency removed from its target.

    Parameters
    ----------
    calibration : dict
        The content of ``calibration.json`` (``latency_samples`` and ``sample_rate`` of
        ``calibration[key]`` are used).
    base : sdn.config.RoomConfig
        The calibrated room config, with a target.
    key : str
        Which calibration of the file.

    Returns
    -------
    sdn.config.RoomConfig
        Named ``<base.name>_latency``; its target's ``latency`` is in seconds.

    Examples
    --------
    With ``calibration`` and ``base`` read as in :func:`runner_up_configs`:

    >>> config = latency_config(calibration, base)
    >>> config.name, round(1e3 * config.target.latency, 2)
    ('homula_s1_r2hom1_latency', 5.72)
    """
    if base.target is None:
        raise ValueError(f"room config {base.name!r} has no target to compensate")
    solution = _solution(calibration, key)
    latency = round(solution["latency_samples"] / solution["sample_rate"], 9)
    target = dataclasses.replace(base.target, latency=latency)
    description = (f"Calibrated position; the estimated measurement latency "
                   f"({1e3 * latency:.2f} ms) removed from the target")
    return dataclasses.replace(base, name=f"{base.name}_latency", target=target, description=description,
                               path=None)


def write_room_variants(calibration_path: str | os.PathLike, base_path: str | os.PathLike,
                        folder: str | os.PathLike, key: str = "s1_r2hom1") -> dict:
    """Write the runner-up and latency variants of a calibrated room config into ``folder``.

    Parameters
    ----------
    calibration_path : str or os.PathLike
        ``calibration.json`` of the calibration notebook.
    base_path : str or os.PathLike
        The calibrated room config.
    folder : str or os.PathLike
        Where to write ``<name>.yaml`` for each variant (atomically; existing files are replaced).
    key : str
        Which calibration of the file.

    Returns
    -------
    dict
        ``{"positions": [base_path, runner-up paths...], "latency": path}``: the room configs of
        the position study, the calibrated one first, and of the latency variant.

    Examples
    --------
    After the calibration notebook has written ``calibration.json``, from the repository's root
    (the pipeline then fits the four paper configurations with ``--room`` set to each path):

    >>> written = write_room_variants("results/calibration/calibration.json",
    ...                               "config/rooms/homula_s1_r2hom1.yaml", "config/rooms")
    >>> [p.name for p in written["positions"]]  # doctest: +NORMALIZE_WHITESPACE
    ['homula_s1_r2hom1.yaml', 'homula_s1_r2hom1_runner_up1.yaml', 'homula_s1_r2hom1_runner_up2.yaml',
     'homula_s1_r2hom1_runner_up3.yaml']
    """
    calibration = json.loads(Path(calibration_path).read_text())
    base = load_room_config(base_path)
    folder = Path(folder)
    source = f"{calibration_path} (key {key}) and {base_path}"
    written = {"positions": [Path(base_path)], "latency": None}
    variants = [(config, "runner-up position") for config in runner_up_configs(calibration, base, key)]
    variants.append((latency_config(calibration, base, key), "latency-compensated target"))
    for config, kind in variants:
        path = folder / f"{config.name}.yaml"
        comment = (f"{config.description}.\nWritten by sdn.room_variants ({kind}) from\n{source}.\n"
                   f"Do not edit by hand: run `python -m sdn.room_variants` after the calibration.")
        write_room_config(config, path, comment)
        if kind == "runner-up position":
            written["positions"].append(path)
        else:
            written["latency"] = path
    return written


def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m sdn.room_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", default="results/calibration/calibration.json")
    parser.add_argument("--room", default="config/rooms/homula_s1_r2hom1.yaml", help="the calibrated room config")
    parser.add_argument("--out", default="config/rooms", help="folder of the written configs")
    args = parser.parse_args(argv)
    try:
        written = write_room_variants(args.calibration, args.room, args.out)
    except (OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in [*written["positions"][1:], written["latency"]]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
