"""Ground-truth RIRs of a shoebox from an independent simulator (pyroomacoustics).

An SDN fitted at some positions of a room is tested at others against RIRs whose geometry is known
exactly. They come from pyroomacoustics (Scheibler et al., ICASSP 2018): image sources up to
``max_order`` for the early part, stochastic ray tracing (energy histograms turned into a signed
Poisson sequence) for the tail, octave-band processing for frequency-dependent materials. It shares
no code with the SDN.

Materials. All six walls get the same octave-band energy absorption (125 Hz to 4 kHz). The bands
follow a reverberation-time profile typical of a furnished seminar room, ``rt60_target *
T60_PROFILE`` (longer at low frequencies, shorter at high ones), turned into absorption by
inverting Eyring's formula per band (:func:`sdn.baselines.eyring_absorption`), then scaled by ``absorption_scale``: ray tracing with scattering decays a little differently from Eyring's
diffuse-field formula, and the scale (found by :func:`calibrate_absorption_scale`, a few secant
steps on the broadband T30 of a reference position) makes the simulated broadband T30 come out
near ``rt60_target`` (0.85 s, the measured HOMULA-RIR value). Scattering coefficient 0.2 in every
band; no air absorption (the SDN does not model it apart from its wall filters).

Reproducibility: both random number generators of pyroomacoustics (numpy's for the Poisson
sequences, the C++ one of the ray tracer) are seeded on every call; the same arguments give the
same RIR. Nothing is downloaded. pyroomacoustics is a development extra: it is imported inside the
functions.

The RIRs are aligned with the SDN's time axis: sample 0 is the emission time (the half length of
pyroomacoustics' fractional-delay filter is removed), so the direct sound is at
:math:`d_{SM} f_s / c`.

References
----------
- R. Scheibler, E. Bezzam, I. Dokmanic, "Pyroomacoustics: a Python package for audio room
  simulations and array processing algorithms", Proc. IEEE ICASSP, 351-355, 2018.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .baselines import eyring_absorption
from .filterbank import octave_band_centres
from .geometry import SPEED_OF_SOUND, Room

#: Octave bands of the materials, Hz: those of the analysis filter bank at 16 kHz (125 Hz to 4 kHz).
OCTAVE_CENTRES = tuple(float(f) for f in octave_band_centres(16000))
#: Reverberation time per octave band relative to the broadband target (a furnished room: more
#: absorption at high frequencies by seats and people, less at low ones).
T60_PROFILE = (1.2, 1.1, 1.0, 1.0, 0.95, 0.85)
#: Scattering coefficient of every wall in every band.
SCATTERING = 0.2
# From calibrate_absorption_scale(Room((5.46, 14.52, 3.38), (2.28, 0.96, 1.2), (2.9, 6.5, 1.2)))
# with the defaults below; see notebooks/06_generalisation.ipynb for the achieved T30.
ABSORPTION_SCALE = 0.872  # calibration gave T30 = 0.850 s at the reference position


def band_absorption(room: Room, rt60_target: float = 0.85, absorption_scale: float = ABSORPTION_SCALE,
                    c: float = SPEED_OF_SOUND) -> np.ndarray:
    """Octave-band energy absorption of every wall (see the module docstring).

    Parameters
    ----------
    room : Room
        The shoebox.
    rt60_target : float
        Broadband reverberation time, seconds; band ``b`` gets ``rt60_target * T60_PROFILE[b]``.
    absorption_scale : float
        Factor applied to the Eyring absorption of every band.
    c : float
        Speed of sound, m/s.

    Returns
    -------
    ndarray, shape (6,)
        Energy absorption at :data:`OCTAVE_CENTRES`, each in (0, 1).
    """
    alpha = np.array([eyring_absorption(room, rt60_target * p, c) for p in T60_PROFILE]) * absorption_scale
    if not np.all((alpha > 0) & (alpha < 1)):
        raise ValueError(f"absorption out of (0, 1): {alpha.round(3).tolist()}")
    return alpha


def shoebox_rirs(
    rooms: Sequence[Room],
    fs: int = 16000,
    rt60_target: float = 0.85,
    duration: float = 1.0,
    max_order: int = 3,
    n_rays: int = 4000,
    absorption_scale: float = ABSORPTION_SCALE,
    seed: int = 0,
    c: float = SPEED_OF_SOUND,
) -> np.ndarray:
    """Simulated RIRs of several source/microphone positions in one room.

    Positions that share a source are simulated together (one ray tracing per source, all its
    microphones at once). Each source gets the seed ``seed + index`` of its first appearance.

    Parameters
    ----------
    rooms : sequence of Room
        The positions, P of them, all with the same room size.
    fs : int
        Sample rate, Hz.
    rt60_target : float
        Broadband reverberation time the materials are designed for, seconds.
    duration : float
        Seconds of each RIR.
    max_order : int
        Highest image-source order (the tail comes from ray tracing).
    n_rays : int
        Rays per source.
    absorption_scale : float
        Factor on the Eyring absorption of every band (see :func:`band_absorption`).
    seed : int
        Seed of the first source (see above).
    c : float
        Speed of sound, m/s.

    Returns
    -------
    ndarray, shape (P, round(duration * fs))
        float64, sample 0 at the emission time.
    """
    import pyroomacoustics as pra

    rooms = [rooms] if isinstance(rooms, Room) else list(rooms)
    if not rooms or len({r.size for r in rooms}) != 1:
        raise ValueError("rooms must be a non-empty sequence of positions in one room (same size)")
    n = int(round(duration * fs))
    alpha = band_absorption(rooms[0], rt60_target, absorption_scale, c)
    material = pra.Material(
        energy_absorption={"coeffs": alpha.tolist(), "center_freqs": list(OCTAVE_CENTRES)},
        scattering={"coeffs": [SCATTERING] * len(OCTAVE_CENTRES), "center_freqs": list(OCTAVE_CENTRES)},
    )
    offset = pra.constants.get("frac_delay_length") // 2
    sources = list(dict.fromkeys(r.source for r in rooms))
    out = np.zeros((len(rooms), n))
    for index, source in enumerate(sources):
        members = [i for i, r in enumerate(rooms) if r.source == source]
        pra.random.seed(numpy=seed + index, libroom=seed + index)
        sim = pra.ShoeBox(list(rooms[0].size), fs=fs, materials=material, max_order=max_order,
                          air_absorption=False, ray_tracing=True, use_rand_ism=False)
        sim.set_sound_speed(c)
        sim.set_ray_tracing(n_rays=n_rays, receiver_radius=0.5, energy_thres=1e-7,
                            time_thres=duration + 0.1, hist_bin_size=0.004)
        sim.add_source(list(source))
        sim.add_microphone_array(np.array([rooms[i].mic for i in members]).T)
        sim.compute_rir()
        for j, i in enumerate(members):
            rir = np.asarray(sim.rir[j][0], dtype=np.float64)[offset:offset + n]
            out[i, : rir.size] = rir
    return out


def shoebox_rir(room: Room, fs: int = 16000, rt60_target: float = 0.85, **kwargs) -> np.ndarray:
    """Simulated RIR of one position.

    Parameters
    ----------
    room : Room
        The source/microphone position.
    fs : int
        Sample rate, Hz.
    rt60_target : float
        Broadband reverberation time the materials are designed for, seconds.
    **kwargs
        Further keywords of :func:`shoebox_rirs`.

    Returns
    -------
    ndarray, shape (round(duration * fs),)
        float64.
    """
    return shoebox_rirs([room], fs=fs, rt60_target=rt60_target, **kwargs)[0]


def calibrate_absorption_scale(room: Room, rt60_target: float = 0.85, steps: int = 4, fs: int = 16000,
                               **kwargs) -> tuple[float, list[tuple[float, float]]]:
    """Scale of the Eyring absorption that gives a broadband T30 of ``rt60_target`` at ``room``.

    Secant steps on ``log T30`` against ``log scale`` (T30 is nearly inversely proportional to the
    absorption), starting from 1; stops within 1 % of the target.

    Parameters
    ----------
    room : Room
        The reference position.
    rt60_target : float
        Broadband T30 to reach, seconds.
    steps : int
        Most simulations to run.
    fs : int
        Sample rate, Hz.
    **kwargs
        Further keywords of :func:`shoebox_rirs`.

    Returns
    -------
    scale : float
        The next scale to use.
    tried : list of (float, float)
        The (scale, T30 in seconds) pairs simulated.
    """
    from .acoustics import reverberation_time

    tried = []
    scale = 1.0
    for _ in range(steps):
        h = shoebox_rir(room, fs=fs, rt60_target=rt60_target, absorption_scale=scale, **kwargs)
        t30 = float(reverberation_time(h, fs, decay="T30"))
        tried.append((scale, t30))
        if abs(t30 / rt60_target - 1) < 0.01:
            break
        if len(tried) == 1:
            slope = -1.0
        else:
            (s0, t0), (s1, t1) = tried[-2], tried[-1]
            slope = (math.log(t1) - math.log(t0)) / (math.log(s1) - math.log(s0)) if s1 != s0 else -1.0
            slope = min(slope, -0.2)  # keep the step finite and in the right direction
        scale = scale * math.exp((math.log(rt60_target) - math.log(t30)) / slope)
    return scale, tried


def position_grid(room_size: Sequence[float], n_sources: int, n_mics: int, seed: int = 0,
                  margin: float = 0.8, height: tuple[float, float] = (1.0, 1.8),
                  min_distance: float = 1.5) -> list[Room]:
    """Every source x microphone pair of random positions in a shoebox.

    Positions are drawn uniformly at least ``margin`` metres from the side walls, at heights in
    ``height``; each microphone at least ``min_distance`` metres from every source, so that no
    pair sits inside the ray tracer's receiver sphere or in the near field.

    Parameters
    ----------
    room_size : sequence of 3 float
        (Lx, Ly, Lz), metres.
    n_sources : int
        Number of source positions.
    n_mics : int
        Number of microphone positions.
    seed : int
        Seed of the random positions (same seed, same grid).
    margin : float
        Metres from the side walls.
    height : (float, float)
        Range of heights, metres.
    min_distance : float
        Smallest source-microphone distance, metres.

    Returns
    -------
    list of Room
        ``n_sources * n_mics`` positions, source-major, rounded to the millimetre.
    """
    size = np.asarray(room_size, dtype=np.float64)
    rng = np.random.default_rng(seed)
    low = np.array([margin, margin, height[0]])
    high = np.array([size[0] - margin, size[1] - margin, height[1]])
    sources = rng.uniform(low, high, size=(n_sources, 3))
    mics = []
    for _ in range(10000):
        if len(mics) == n_mics:
            break
        m = rng.uniform(low, high)
        if np.all(np.linalg.norm(sources - m, axis=-1) >= min_distance):
            mics.append(m)
    if len(mics) < n_mics:
        raise ValueError("could not place the microphones: lower min_distance or margin")
    return [Room(tuple(size), tuple(np.round(s, 3)), tuple(np.round(m, 3))) for s in sources for m in mics]
