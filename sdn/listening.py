r"""Listening examples: a dry test signal, played through a measured room and through SDNs.

The dry signal (:func:`dry_signal`) is synthesised from a seed, so nothing is downloaded. It has
three parts, each suited to hearing one aspect of a reverberator:

1. four clicks (1 ms raised-cosine bursts of alternating sign, 0.18 s apart): the echo pattern
   and the decay;
2. four plucked strings, G3 B3 D4 G4 (Karplus-Strong synthesis: a burst of uniform noise
   recirculating through a delay line of :math:`P = \mathrm{round}(f_s / f_0)` samples with a
   two-point average and a loss of 0.996 in the loop,
   :math:`y[n] = 0.498\,(y[n-P] + y[n-P+1])`, whose loop delay is :math:`P - 1/2` samples
   (the average of two neighbours is half a sample earlier than the older one), so the
   fundamental is :math:`f_s / (P - 1/2)`): tonal colouration;
3. an exponential sine sweep from 200 Hz to 4 kHz: the frequency response,

followed by ``silence`` seconds in which the reverberation dies away. :func:`auralise` convolves
it with a measured RIR (:func:`sdn.convolution.overlap_add`) and renders it through each SDN
(``model(x)``); :func:`match_levels` gives every version the same RMS level and one common gain.

References
----------
- K. Karplus, A. Strong, "Digital synthesis of plucked-string and drum timbres", Computer Music
  Journal 7(2), 43-55, 1983.
- A. Farina, "Simultaneous measurement of impulse response and distortion with a swept-sine
  technique", 108th AES Convention, 2000.

Examples
--------
>>> from sdn.listening import dry_signal
>>> x = dry_signal(16000, seconds=3.0, silence=1.0, seed=7)
>>> x.shape, float(abs(x).max())
((48000,), 1.0)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import scipy.signal
import torch

from .convolution import overlap_add
from .fileio import atomic_path

__all__ = ["NOTES", "dry_signal", "pluck", "auralise", "match_levels", "write_audio"]

#: Fundamentals of the plucked strings, Hz (G3, B3, D4, G4).
NOTES = (196.0, 246.9, 293.7, 392.0)
_CLICK_START, _CLICK_SPACING, _N_CLICKS = 0.05, 0.18, 4  # s, s, clicks
_SWEEP = (200.0, 4000.0)  # Hz
_LOOP_GAIN = 0.996


def pluck(frequency: float, n_samples: int, sample_rate: float, rng: np.random.Generator) -> np.ndarray:
    """One Karplus-Strong string (see the module docstring).

    Parameters
    ----------
    frequency : float
        Nominal fundamental, Hz; the loop is :math:`P = \\mathrm{round}(f_s / f)` samples long.
    n_samples : int
        Length of the output.
    sample_rate : float
        Hz.
    rng : numpy.random.Generator
        Source of the initial noise burst (P uniform samples in [-1, 1)).

    Returns
    -------
    ndarray, shape (n_samples,)
    """
    period = int(round(sample_rate / frequency))
    burst = rng.uniform(-1, 1, period)
    # y[n] = burst[n] for n < P, then y[n] = g/2 (y[n-P] + y[n-P+1]): the recursion as a filter
    # driven by the burst; the last burst sample cancels the feedback it would otherwise receive.
    drive = np.zeros(n_samples)
    drive[:period] = burst[:n_samples]
    if n_samples >= period:
        drive[period - 1] -= 0.5 * _LOOP_GAIN * burst[0]
    feedback = np.zeros(period + 1)
    feedback[0], feedback[period - 1], feedback[period] = 1.0, -0.5 * _LOOP_GAIN, -0.5 * _LOOP_GAIN
    return scipy.signal.lfilter([1.0], feedback, drive)


def dry_signal(sample_rate: int, seconds: float, silence: float, seed: int) -> np.ndarray:
    """The dry test signal: clicks, plucked strings and a sine sweep, then silence.

    Parameters
    ----------
    sample_rate : int
        Hz.
    seconds : float
        Total length, seconds.
    silence : float
        Seconds of silence at the end (within ``seconds``).
    seed : int
        Seed of the noise bursts of the strings.

    Returns
    -------
    ndarray, shape (round(seconds * sample_rate),)
        float64, peak 1.

    Raises
    ------
    ValueError
        When the clicks and strings do not fit before the silence.
    """
    fs = sample_rate
    n = int(round(seconds * fs))
    active = seconds - silence
    t_strings = _CLICK_START + _CLICK_SPACING * _N_CLICKS
    if active <= t_strings:
        raise ValueError(f"seconds - silence = {active:g} s leaves no room for the strings and the sweep: "
                         f"it must exceed {t_strings:g} s")
    x = np.zeros(n)
    click = np.hanning(int(0.001 * fs) + 2)[1:-1]
    for k in range(_N_CLICKS):
        start = int((_CLICK_START + _CLICK_SPACING * k) * fs)
        x[start:start + click.size] += click * (-1) ** k
    rng = np.random.default_rng(seed)
    pluck_seconds = 0.44 * (active - t_strings) / len(NOTES)  # each string overlaps the next by half
    length = int(pluck_seconds * fs)
    fade = np.hanning(2 * length)[length:]
    for k, f0 in enumerate(NOTES):
        start = int((t_strings + k * pluck_seconds / 2) * fs)
        stop = min(n, start + length)
        x[start:stop] += 0.5 * (pluck(f0, length, fs, rng) * fade)[: stop - start]
    s0 = t_strings + (len(NOTES) + 1) * pluck_seconds / 2
    if active > s0 + 0.1:
        t = np.arange(int((active - s0) * fs)) / fs
        duration, (f0, f1) = t[-1], _SWEEP
        sweep = np.sin(2 * np.pi * f0 * duration / np.log(f1 / f0) * np.expm1(t / duration * np.log(f1 / f0)))
        ramp = np.minimum(1, np.minimum(t, duration - t) / 0.01)  # 10 ms fades
        start = int(s0 * fs)
        x[start:start + t.size] += 0.3 * sweep * ramp
    return x / np.max(np.abs(x))


def auralise(dry: np.ndarray, target: np.ndarray, models: Mapping) -> dict:
    """The dry signal through the measured room and through each model.

    Parameters
    ----------
    dry : ndarray, shape (T,)
        The dry signal.
    target : ndarray, shape (L,)
        The measured RIR at the dry signal's sample rate.
    models : mapping of str to sdn.SDN
        Models by name; each renders the signal itself (``model(x)``, no gradient).

    Returns
    -------
    dict of str to ndarray, shape (T,)
        ``"dry"``, ``"target"`` (the first T samples of the convolution with ``target``) and one
        entry per model, float64.
    """
    x = torch.from_numpy(np.asarray(dry, dtype=np.float64))
    wet = {"dry": x.numpy(), "target": overlap_add(x, torch.from_numpy(np.asarray(target, dtype=np.float64))).numpy()}
    with torch.no_grad():
        for name, model in models.items():
            wet[name] = model(x.to(model.dtype)).double().cpu().numpy()
    return wet


def match_levels(signals: Mapping, reference: str = "target", peak: float = 0.89) -> dict:
    """Scale signals to the RMS level of one of them, then all by one gain to a common peak.

    Parameters
    ----------
    signals : mapping of str to ndarray
        Signals by name, none of them silent.
    reference : str
        Name of the signal whose RMS level every other one gets.
    peak : float
        Largest absolute sample over all outputs (0.89 is -1 dBFS).

    Returns
    -------
    dict of str to ndarray
        Same keys; equal RMS levels, loudest peak ``peak``.
    """
    rms = {name: float(np.sqrt(np.mean(np.square(v)))) for name, v in signals.items()}
    silent = [name for name, value in rms.items() if not value > 0]
    if silent:
        raise ValueError(f"cannot match the level of silent signal(s) {silent}")
    levelled = {name: np.asarray(v) * rms[reference] / rms[name] for name, v in signals.items()}
    gain = peak / max(float(np.max(np.abs(v))) for v in levelled.values())
    return {name: v * gain for name, v in levelled.items()}


def write_audio(signals: Mapping, folder: str | os.PathLike, sample_rate: int) -> dict:
    """Write each signal as ``<folder>/<name>.wav``, 16-bit PCM, atomically.

    Parameters
    ----------
    signals : mapping of str to ndarray, shape (T,)
        Signals by name, within [-1, 1].
    folder : str or os.PathLike
        Created if needed.
    sample_rate : int
        Hz.

    Returns
    -------
    dict of str to pathlib.Path
        The files, by name.
    """
    import soundfile as sf

    paths = {}
    for name, signal in signals.items():
        paths[name] = Path(folder) / f"{name}.wav"
        with atomic_path(paths[name]) as tmp:
            sf.write(str(tmp), np.asarray(signal, dtype=np.float32), int(sample_rate), subtype="PCM_16", format="WAV")
    return paths
