"""Shoebox geometry of a scattering delay network: walls, first-order reflection points, distances.

The room is the box :math:`[0, L_x] \times [0, L_y] \times [0, L_z]` (metres). Walls are numbered
``0: x=0, 1: x=Lx, 2: y=0, 3: y=Ly, 4: z=0 (floor), 5: z=Lz (ceiling)``; one SDN node sits on each
wall at the point where the first-order specular reflection from source S to microphone M hits it
(image-source method). Everything here is plain float64 numpy: the geometry is fixed; what an SDN
learns about distances is a bounded correction on top of it (``sdn.model``).

References
----------
- J. B. Allen, D. A. Berkley, "Image method for efficiently simulating small-room
  acoustics", J. Acoust. Soc. Am. 65(4), 943-950, 1979.
- E. De Sena, H. Hacihabiboglu, Z. Cvetkovic, J. O. Smith, "Efficient synthesis of room
  acoustics via scattering delay networks", IEEE/ACM Trans. Audio, Speech, Lang. Process.
  23(9), 1478-1492, 2015.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Speed of sound in air, m/s (dry air at about 20 degrees C); the default of every module of sdn.
SPEED_OF_SOUND = 343.0
#: Wall names in node order: ``0: x=0, 1: x=Lx, 2: y=0, 3: y=Ly, 4: floor, 5: ceiling``.
WALL_NAMES = ("x=0", "x=Lx", "y=0", "y=Ly", "floor", "ceiling")
#: Number of walls of a shoebox (one SDN node per wall).
N_WALLS = len(WALL_NAMES)
#: Closer to a wall than this (metres), a source feeds an SDN's node with a noticeably louder
#: reverberant level (it grows as 1/d^2, see :class:`sdn.SDN`).
MIN_WALL_DISTANCE = 0.1


def _as_point(name: str, value) -> np.ndarray:
    """``value`` as a finite float64 (3,) array; ValueError naming ``name`` otherwise."""
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

    The image across the wall :math:`x_a = P` (``a`` the wall's axis, ``P`` 0 or :math:`L_a`) is the
    source with its ``a`` coordinate replaced by :math:`2P - s_a` (Allen & Berkley 1979).

    Parameters
    ----------
    size : array_like, shape (3,)
        Room dimensions (Lx, Ly, Lz), metres.
    source : array_like, shape (..., 3)
        Source positions, metres.

    Returns
    -------
    ndarray, shape (..., 6, 3)
        Images across the walls in ``WALL_NAMES`` order, metres.
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

    The reflection points and image sources are computed once; the distances (source-node,
    node-mic, node-node, direct, image-mic), the volume and the wall area are properties.

    Parameters
    ----------
    size : sequence of 3 float
        (Lx, Ly, Lz), metres, all positive and finite.
    source : sequence of 3 float
        (x, y, z) of the source, metres, strictly inside the room.
    mic : sequence of 3 float
        (x, y, z) of the microphone, metres, strictly inside the room and distinct from the source.

    Attributes
    ----------
    nodes : ndarray, shape (6, 3)
        First-order reflection points, one per wall, metres.
    image_sources : ndarray, shape (6, 3)
        The source mirrored across each wall, metres.

    Raises
    ------
    ValueError
        For a size that is not three positive finite numbers, or a source or microphone that is
        not strictly inside the room, or when they coincide.

    Examples
    --------
    >>> import sdn
    >>> room = sdn.Room(size=(5.46, 14.52, 3.38), source=(2.28, 0.96, 1.20), mic=(3.67, 1.96, 1.20))
    >>> round(room.direct_distance, 3)
    1.712
    >>> room.nodes.shape
    (6, 3)
    >>> bool(abs(room.source_node_distances + room.node_mic_distances - room.image_distances).max() < 1e-12)
    True
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
        """Metres from the source to each node, shape (6,)."""
        return np.linalg.norm(self.nodes - np.asarray(self.source), axis=-1)

    @property
    def node_mic_distances(self) -> np.ndarray:
        """Metres from each node to the microphone, shape (6,)."""
        return np.linalg.norm(self.nodes - np.asarray(self.mic), axis=-1)

    @property
    def node_node_distances(self) -> np.ndarray:
        """Metres between nodes, shape (6, 6), symmetric, zero diagonal."""
        return np.linalg.norm(self.nodes[:, None, :] - self.nodes[None, :, :], axis=-1)

    @property
    def source_wall_distances(self) -> np.ndarray:
        """Metres from the source to each wall, shape (6,), in ``WALL_NAMES`` order."""
        low, high = np.asarray(self.source), np.asarray(self.size) - np.asarray(self.source)
        return np.stack([low, high], -1).reshape(-1)

    @property
    def direct_distance(self) -> float:
        """Metres from the source to the microphone."""
        return float(np.linalg.norm(np.asarray(self.source) - np.asarray(self.mic)))

    @property
    def image_distances(self) -> np.ndarray:
        """Metres from each image source to the microphone, shape (6,)."""
        return np.linalg.norm(self.image_sources - np.asarray(self.mic), axis=-1)

    @property
    def volume(self) -> float:
        """Cubic metres."""
        return float(np.prod(self.size))

    @property
    def surface_area(self) -> float:
        """Square metres, all six walls."""
        lx, ly, lz = self.size
        return 2.0 * (lx * ly + lx * lz + ly * lz)

    def to_dict(self) -> dict:
        """``{"size": [...], "source": [...], "mic": [...]}`` in metres (JSON-serialisable)."""
        return {"size": list(self.size), "source": list(self.source), "mic": list(self.mic)}
