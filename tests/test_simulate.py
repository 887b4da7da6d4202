"""Ground truth from pyroomacoustics (sdn.simulate)."""
import numpy as np
import pytest

import sdn
from sdn.acoustics import reverberation_time
from sdn.geometry import SPEED_OF_SOUND
from sdn.simulate import T60_PROFILE, band_absorption, position_grid, shoebox_rir, shoebox_rirs

pytest.importorskip("pyroomacoustics")
SIZE = (5.46, 14.52, 3.38)
REFERENCE = sdn.Room(SIZE, (2.28, 0.96, 1.2), (2.9, 6.5, 1.2))


def test_reproducible_aligned_and_near_the_target_t30():
    h = shoebox_rir(REFERENCE)
    assert h.shape == (16000,)
    assert np.array_equal(h, shoebox_rir(REFERENCE))  # seeded ray tracing
    direct = REFERENCE.direct_distance / SPEED_OF_SOUND * 16000
    # sample 0 is the emission time: the direct sound is the first and largest early arrival (a
    # stochastic ray-tracing impulse later on may be larger still)
    assert abs(int(np.argmax(np.abs(h[: int(direct) + 10]))) - direct) <= 1
    assert float(reverberation_time(h, 16000, decay="T30")) == pytest.approx(0.85, rel=0.03)


def test_absorption_falls_with_the_reverberation_profile():
    alpha = band_absorption(REFERENCE, 0.85)
    assert np.all(np.diff(alpha) >= 0) and np.all((alpha > 0) & (alpha < 1))


def test_band_absorption_gives_the_profile_by_eyrings_formula():
    """Eyring: T = 24 ln(10) V / (-c S ln(1 - alpha)); with no scaling each band gets its T60."""
    alpha = band_absorption(REFERENCE, 0.85, absorption_scale=1.0)
    volume, area = 5.46 * 14.52 * 3.38, 2 * (5.46 * 14.52 + 5.46 * 3.38 + 14.52 * 3.38)
    t60 = 24 * np.log(10) * volume / (-343.0 * area * np.log(1 - alpha))
    np.testing.assert_allclose(t60, 0.85 * np.array(T60_PROFILE), rtol=1e-12)


def test_grid_and_batched_simulation():
    rooms = position_grid(SIZE, 2, 3, seed=1)
    assert len(rooms) == 6 and len({r.source for r in rooms}) == 2
    assert min(r.direct_distance for r in rooms) >= 1.5
    h = shoebox_rirs(rooms, duration=0.25)
    assert h.shape == (6, 4000)
    # the same position alone gives the same RIR when its source is simulated with the same seed
    assert np.allclose(h[0], shoebox_rirs(rooms[:3], duration=0.25)[0])
