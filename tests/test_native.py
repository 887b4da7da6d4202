"""sdn.native: the compiled kernels' results do not depend on which thread runs which part."""
import pytest
import torch

from sdn import native
from sdn.echo_density import echo_density_window

BINS = 4097


def _in_reverse(run, parts):
    """One thread, the parts in reverse order: what a scheduler may do."""
    for index in reversed(range(len(parts))):
        run(*parts[index], index)


def _echo_density(generator):
    h = torch.randn(1, 8000, dtype=torch.float64, generator=generator)
    window = echo_density_window(16000, dtype=torch.float64)
    kappa = torch.linspace(1e2, 1e5, h.shape[-1] - window.shape[0], dtype=torch.float64)
    target = torch.rand(1, kappa.shape[0], dtype=torch.float64, generator=generator)
    return native.soft_echo_density(h, kappa, window, target=target)[1]


def _node_system_backward(generator):
    def c(*shape):
        return 0.3 * torch.randn(*shape, BINS, dtype=torch.complex128, generator=generator)

    pair, walls, source, mic = c(15), c(6), c(6), c(6)
    junction, extraction = torch.rand(2, 6, 6, dtype=torch.float64, generator=generator)
    out = torch.empty(BINS, dtype=torch.complex128)
    derivatives = (c(15), c(6), c(6), c(6), c(6, 6))
    native.node_system(pair, walls, source, mic, junction, extraction, out, derivatives)
    gradients = tuple(torch.empty_like(d) for d in derivatives[:4])
    return native.node_system_backward(c(), mic, derivatives, gradients)


@pytest.mark.parametrize("kernel", [_echo_density, _node_system_backward])
def test_sums_over_parts_do_not_depend_on_the_threads_that_ran_them(kernel, monkeypatch):
    assert native.available(torch.zeros(1)), "the C kernels did not build (see sdn.native)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # how sdn.native shares out work
    threaded = kernel(torch.Generator().manual_seed(0))
    monkeypatch.setattr(native, "_in_threads", _in_reverse)
    assert torch.equal(kernel(torch.Generator().manual_seed(0)), threaded)
