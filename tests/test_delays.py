"""The causal fractional delay lines (sdn.delays): flat, linear phase, continuous, causal."""
import math

import numpy as np
import pytest
import torch
from scipy.special import i0, i1

from sdn.delays import HALF_WIDTH, KAISER_BETA, fractional_line, interpolation_window, line_gain

FS = 16000.0


def response(delay: float, freqs_hz: np.ndarray, min_lag: int = 0) -> np.ndarray:
    """E(e^jw) of one line, summed term by term in numpy."""
    line = fractional_line(torch.tensor(delay, dtype=torch.float64), min_lag=min_lag)
    m = float(line.offset) + np.arange(line.taps.shape[-1])
    omega = 2 * np.pi * freqs_hz / FS
    return np.exp(-1j * np.outer(omega, m)) @ line.taps.numpy()


def impulse(delay: float, min_lag: int = 0, length: int = 200) -> np.ndarray:
    """The line's taps placed on a common time axis."""
    line = fractional_line(torch.tensor(delay, dtype=torch.float64), min_lag=min_lag)
    h = np.zeros(length)
    start = int(line.offset)
    h[start:start + line.taps.shape[-1]] = line.taps.numpy()
    return h


def test_window_equals_kaiser_minus_its_edge_value_from_scipy_bessel():
    u = np.linspace(-1.2, 1.2, 2001)
    expected = np.where(np.abs(u) < 1, (i0(KAISER_BETA * np.sqrt(np.clip(1 - u * u, 0, None))) - 1) / (i0(KAISER_BETA) - 1), 0)
    np.testing.assert_allclose(interpolation_window(torch.tensor(u)).numpy(), expected, atol=1e-14)


def test_window_derivative_equals_the_kaiser_windows():
    """d/du of (I0(beta sqrt(1 - u^2)) - 1) / (I0(beta) - 1) is -beta u I1(beta s) / (s (I0(beta) - 1)),
    s = sqrt(1 - u^2), and 0 outside |u| < 1."""
    u = torch.tensor(np.concatenate([np.linspace(-1.2, 1.2, 2001), [0.0]]), requires_grad=True)
    interpolation_window(u).sum().backward()
    x = u.detach().numpy()
    s = np.sqrt(np.clip(1 - x * x, 1e-300, None))
    expected = np.where(np.abs(x) < 1, -KAISER_BETA * x * i1(KAISER_BETA * s) / (s * (i0(KAISER_BETA) - 1)), 0)
    np.testing.assert_allclose(u.grad.numpy(), expected, atol=1e-13)
    torch.autograd.gradcheck(interpolation_window, (torch.tensor([-0.7, 0.0, 0.3, 0.999], dtype=torch.float64,
                                                                  requires_grad=True),))


FRACTIONS = np.linspace(0.0, 1.0, 101)[:-1]


def test_flat_within_five_hundredths_of_a_decibel_up_to_6_khz_for_every_fractional_part():
    freqs = np.linspace(0, 6000, 601)
    worst = max(np.abs(20 * np.log10(np.abs(response(40 + mu, freqs)))).max() for mu in FRACTIONS)
    assert worst < 0.05  # the requirement
    assert worst < 1e-4  # what the module docstring states (5e-5 dB)


def test_never_louder_than_the_stated_bound_and_measured_gain_agrees():
    freqs = np.linspace(0, FS / 2, 4097)
    peak = max(np.abs(response(40 + mu, freqs)).max() for mu in FRACTIONS)
    assert 1.0 < peak < 1 + 6e-6  # stated in sdn.stability
    delays = torch.tensor(40 + FRACTIONS, dtype=torch.float64)
    np.testing.assert_allclose(line_gain(fractional_line(delays)).max().item(), peak, rtol=1e-8)


def test_low_frequency_phase_delay_is_the_fractional_delay():
    omega = 2 * math.pi * 50 / FS
    for delay in (17.0, 23.25, 40.5, 101.999):
        phase_delay = -np.angle(response(delay, np.array([50.0]))[0]) / omega
        assert abs(phase_delay - delay) < 0.01


def test_continuous_across_whole_sample_boundaries():
    for boundary in (20, 37, 100):
        below, above = impulse(boundary - 1e-9), impulse(boundary + 1e-9)
        assert np.abs(above - below).max() < 1e-6
        # and the integer itself is a pure delay, up to the rounding of sin(pi k)
        pure = np.zeros(200)
        pure[boundary] = 1
        assert np.abs(impulse(float(boundary)) - pure).max() < 1e-12


@pytest.mark.parametrize("delay", [30.4, 31.0 + 1e-7, 31.0 - 1e-7, 5.0 + 1e-7, 0.7])
def test_impulse_response_is_smooth_in_the_delay_gradcheck(delay):
    """Across a whole sample the taps shift by one slot; the filter itself is smooth."""

    def placed(d, min_lag):  # the taps on a fixed time axis of 64 samples
        line = fractional_line(d, min_lag=min_lag)
        index = line.offset.long() + torch.arange(line.taps.shape[-1])
        return torch.zeros(64, dtype=d.dtype).index_add(0, index.reshape(-1), line.taps.reshape(-1))

    d = torch.tensor([delay], dtype=torch.float64, requires_grad=True)
    for min_lag in (0, 1):
        assert torch.autograd.gradcheck(lambda x: placed(x, min_lag), (d,))


@pytest.mark.parametrize("min_lag", [0, 1])
def test_causal_and_passive_for_short_lines(min_lag):
    freqs = np.linspace(0, FS / 2, 2049)
    for delay in (0.05, 0.5, 1.0, 2.3, 7.5, 15.9, 16.0 + min_lag):
        h = impulse(delay, min_lag)
        assert np.all(h[:min_lag] == 0)  # nothing before the first allowed sample
        assert np.abs(response(delay, freqs, min_lag)).max() <= 1 + 6e-6  # never amplifies
    # a line shorter than min_lag becomes exactly min_lag samples long
    if min_lag:
        np.testing.assert_allclose(impulse(0.3, 1)[:3], [0, 1, 0], atol=1e-15)
    # long enough lines use the full 2 * HALF_WIDTH taps and stay flat
    long = HALF_WIDTH + min_lag + 0.5
    assert np.abs(20 * np.log10(np.abs(response(long, np.linspace(0, 6000, 61), min_lag)))).max() < 1e-4


def test_grid_response_equals_the_direct_sum_also_for_lines_longer_than_the_fft():
    """E(z_k) = sum_m taps_m z_k^-(offset+m) on z_k = r e^{j 2 pi k / N}, summed in numpy; the FFT
    evaluation folds a line longer than N modulo N, which is exact on that grid."""
    from sdn.delays import grid_response, line_response

    n_fft, log_r = 256, 0.003
    line = fractional_line(torch.tensor([[3.7, 40.25, 250.5, 600.1]], dtype=torch.float64), min_lag=1)
    z = np.exp(log_r + 2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    m = line.offset.numpy()[..., None] + np.arange(line.taps.shape[-1])
    expected = np.einsum("...j,...jk->...k", line.taps.numpy(), z[None, None, None, :] ** -m[..., None])
    np.testing.assert_allclose(grid_response(line, n_fft, log_r).numpy(), expected, rtol=1e-11, atol=1e-13)
    z_log = torch.complex(torch.full((n_fft // 2 + 1,), log_r, dtype=torch.float64),
                          2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft)
    np.testing.assert_allclose(line_response(line, z_log).numpy(), expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("stride", [2, 8])
def test_grid_response_on_interleaved_subgrids_equals_the_direct_sum(stride):
    """Every stride-th bin k = stride m + first of the whole N-point grid (both halves), by one
    complex FFT of N / stride points each, against the sum in numpy; lines longer than N included."""
    from sdn.delays import grid_response

    n_fft, log_r = 256, 0.003
    line = fractional_line(torch.tensor([[3.7, 40.25, 250.5, 600.1]], dtype=torch.float64), min_lag=1)
    z = np.exp(log_r + 2j * np.pi * np.arange(n_fft) / n_fft)
    m = line.offset.numpy()[..., None] + np.arange(line.taps.shape[-1])
    expected = np.einsum("...j,...jk->...k", line.taps.numpy(), z[None, None, None, :] ** -m[..., None])
    for first in range(stride):
        got = grid_response(line, n_fft, log_r, stride, first).numpy()
        np.testing.assert_allclose(got, expected[..., first::stride], rtol=1e-11, atol=1e-13)
    with pytest.raises(ValueError, match="stride must divide n_fft"):
        grid_response(line, n_fft, log_r, 3, 0)


def test_grid_response_gradient():
    """The grid response's own backward pass (one inverse real FFT) against finite differences."""
    from sdn.delays import DelayLine, grid_response

    offset = torch.tensor([0.0, 5.0, 30.0], dtype=torch.float64)
    taps = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: grid_response(DelayLine(offset, t), 16, 0.01), (taps,))
