"""sdn.real_fft: torch.fft's real transforms, a single long one computed as a batch of two."""
import pytest
import torch

from sdn.real_fft import LONG, irfft, rfft


@pytest.mark.parametrize("shape", [(LONG,), (1, 2 * LONG), (1, 1, LONG + 6), (3, LONG), (LONG // 2,)])
def test_transforms_equal_torchs_and_invert_each_other(shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n = shape[-1]
    spectrum = rfft(x, n)
    torch.testing.assert_close(spectrum, torch.fft.rfft(x, n=n), rtol=0, atol=1e-12 * n)
    torch.testing.assert_close(irfft(spectrum, n), x, rtol=0, atol=1e-12)
    assert spectrum.shape == (*shape[:-1], n // 2 + 1)


def test_gradients_equal_torchs():
    x = torch.randn(1, LONG, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(LONG // 2 + 1, dtype=torch.complex128)

    def loss(forward, inverse):
        return inverse(forward(x) * weights).square().sum()

    got, = torch.autograd.grad(loss(lambda s: rfft(s, LONG), lambda s: irfft(s, LONG)), x)
    expected, = torch.autograd.grad(loss(lambda s: torch.fft.rfft(s, n=LONG), lambda s: torch.fft.irfft(s, n=LONG)), x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
