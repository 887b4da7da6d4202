import numpy as np
import pytest

from sdn import Room
from sdn.geometry import image_sources

PAPER = dict(size=(5.46, 14.52, 3.38), source=(2.28, 0.96, 1.20), mic=(3.67, 1.96, 1.20))


def test_nodes_lie_on_their_walls_inside_the_room():
    room = Room(**PAPER)
    size = np.array(room.size)
    for wall, node in enumerate(room.nodes):
        axis, upper = divmod(wall, 2)
        assert node[axis] == (size[axis] if upper else 0.0)
        assert np.all(node >= 0) and np.all(node <= size)


def test_node_paths_equal_image_source_distances():
    rng = np.random.default_rng(1)
    for _ in range(20):
        size = rng.uniform(2, 15, 3)
        room = Room(size, rng.uniform(0.05, 0.95, 3) * size, rng.uniform(0.05, 0.95, 3) * size)
        path = room.source_node_distances + room.node_mic_distances
        np.testing.assert_allclose(path, room.image_distances, rtol=0, atol=1e-9)


def test_image_sources_are_mirror_images():
    room = Room(**PAPER)
    s = np.array(room.source)
    np.testing.assert_allclose(room.image_sources[0], [-s[0], s[1], s[2]])
    np.testing.assert_allclose(room.image_sources[3], [s[0], 2 * 14.52 - s[1], s[2]])
    np.testing.assert_allclose(room.image_sources[5], [s[0], s[1], 2 * 3.38 - s[2]])


def test_reflecting_twice_returns_the_source():
    """Mirror symmetry: the image of an image across the same wall is the source; each image moves
    only along its wall's axis, to the same distance on the other side of the wall."""
    rng = np.random.default_rng(3)
    size = np.array([5.46, 14.52, 3.38])
    sources = rng.uniform(0.01, 0.99, (50, 3)) * size
    images = image_sources(size, sources)  # (50, 6, 3)
    for wall in range(6):
        axis, upper = divmod(wall, 2)
        plane = size[axis] if upper else 0.0
        np.testing.assert_allclose(image_sources(size, images[:, wall])[:, wall], sources, rtol=0, atol=1e-12)
        others = [a for a in range(3) if a != axis]
        np.testing.assert_array_equal(images[:, wall, others], sources[:, others])
        np.testing.assert_allclose(images[:, wall, axis] - plane, plane - sources[:, axis], atol=1e-12)


def test_node_node_distances_symmetric():
    d = Room(**PAPER).node_node_distances
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0) and np.all(d[~np.eye(6, dtype=bool)] > 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(PAPER, size=(5.46, -1, 3)), "positive"),
        (dict(PAPER, size=(5.46, np.nan, 3)), "finite"),
        (dict(PAPER, size=(5.46, 3)), "three numbers"),
        (dict(PAPER, source=(2.28, 20.0, 1.2)), "source .* not strictly inside"),
        (dict(PAPER, mic=(0.0, 1.0, 1.0)), "mic .* not strictly inside"),
        (dict(PAPER, mic=PAPER["source"]), "coincide"),
        (dict(PAPER, mic="here"), "three numbers"),
    ],
)
def test_bad_rooms_are_rejected_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Room(**kwargs)


def test_source_wall_distances_are_the_perpendicular_distances_to_each_wall():
    room = Room((5.0, 7.0, 3.0), (1.0, 6.5, 0.4), (2.0, 2.0, 1.5))
    np.testing.assert_allclose(room.source_wall_distances, [1.0, 4.0, 6.5, 0.5, 0.4, 2.6])
