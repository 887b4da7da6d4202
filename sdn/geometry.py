"""Shoebox geometry of a scattering delay network: walls, first-order reflection points, distances.

The room is the box ``[0, Lx] x [0, Ly] x [0, Lz]`` (metres). Walls are numbered
``0: x=0, 1: x=Lx, 2: y=0, 3: y=Ly, 4: z=0 (floor), 5: z=Lz (ceiling)``; one SDN node sits on each
wall at the point where the first-order specular reflection from source S to microphone M hits it
(image-source method, Allen & Berkley 1979). Everything here is plain float64 numpy: the geometry
is fixed; what an SDN learns about distances is a bounded correction on top of it (``sdn.model``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WALL_NAMES = ("x=0", "x=Lx", "y=0", "y=Ly", "floor", "ceiling")
N_WALLS = len(WALL_NAMES)


def _as_point(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be three numbers (x, y, z) in metres, got {value!r}") from err
    if arr.shape != (3,):
        raise ValueError(f"{name} must be three numbers (x, y, z) in metres, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def image_sources(size, source) -> np.ndarray:
    """First-order image sources of ``source`` in the shoebox ``[0, size]``.

    Parameters
    ----------
    size : (3,) room dimensions (Lx, Ly, Lz), metres.
    source : (..., 3) source positions, metres.

    Returns
    -------
    (..., 6, 3) images across the walls in ``WALL_NAMES`` order.
    """
    size = np.asarray(size, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    images = np.repeat(source[..., None, :], N_WALLS, axis=-2)
    for wall in range(N_WALLS):
        axis, upper = divmod(wall, 2)
        plane = size[axis] if upper else 0.0
        images[..., wall, axis] = 2.0 * plane - source[..., axis]
    return images


@dataclass(frozen=True)
class Room:
    """A shoebox room with one source and one microphone.

    Parameters
    ----------
    size : (Lx, Ly, Lz), metres, all positive and finite.
    source, mic : (x, y, z), metres, strictly inside the room and distinct.

    Attributes (all float64 numpy, metres)
    ----------
    nodes : (6, 3) first-order reflection points, one per wall.
    image_sources : (6, 3) source mirrored across each wall.
    source_node_distances, node_mic_distances : (6,)
    node_node_distances : (6, 6), symmetric with a zero diagonal.
    direct_distance : float, |S - M|.
    image_distances : (6,) |image_k - M| = source_node + node_mic distances.
    """

    size: tuple
    source: tuple
    mic: tuple
    nodes: np.ndarray = field(init=False, repr=False, compare=False)
    image_sources: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        size = _as_point("size", self.size)
        if np.any(size <= 0):
            raise ValueError(f"room size must be positive in every dimension, got {size.tolist()}")
        source = _as_point("source", self.source)
        mic = _as_point("mic", self.mic)
        for name, point in (("source", source), ("mic", mic)):
            if np.any(point <= 0) or np.any(point >= size):
                raise ValueError(
                    f"{name} {point.tolist()} m is not strictly inside the room "
                    f"[0, {size[0]}] x [0, {size[1]}] x [0, {size[2]}] m"
                )
        if np.linalg.norm(source - mic) < 1e-6:
            raise ValueError(f"source and mic coincide at {source.tolist()} m")
        # Store plain tuples so the room is hashable, printable and serialisable.
        object.__setattr__(self, "size", tuple(size.tolist()))
        object.__setattr__(self, "source", tuple(source.tolist()))
        object.__setattr__(self, "mic", tuple(mic.tolist()))

        images = image_sources(size, source)
        nodes = np.empty((N_WALLS, 3))
        for wall in range(N_WALLS):
            axis, upper = divmod(wall, 2)
            plane = size[axis] if upper else 0.0
            # The image->mic segment crosses the wall plane at parameter t.
            t = (plane - images[wall, axis]) / (mic[axis] - images[wall, axis])
            nodes[wall] = images[wall] + t * (mic - images[wall])
            nodes[wall, axis] = plane  # exact on the wall, free of rounding
        for name, arr in (("nodes", nodes), ("image_sources", images)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def source_node_distances(self) -> np.ndarray:
        return np.linalg.norm(self.nodes - np.asarray(self.source), axis=-1)

    @property
    def node_mic_distances(self) -> np.ndarray:
        return np.linalg.norm(self.nodes - np.asarray(self.mic), axis=-1)

    @property
    def node_node_distances(self) -> np.ndarray:
        return np.linalg.norm(self.nodes[:, None, :] - self.nodes[None, :, :], axis=-1)

    @property
    def direct_distance(self) -> float:
        return float(np.linalg.norm(np.asarray(self.source) - np.asarray(self.mic)))

    @property
    def image_distances(self) -> np.ndarray:
        return np.linalg.norm(self.image_sources - np.asarray(self.mic), axis=-1)

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    @property
    def surface_area(self) -> float:
        lx, ly, lz = self.size
        return 2.0 * (lx * ly + lx * lz + ly * lz)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "source": list(self.source), "mic": list(self.mic)}
