"""Every public function that can reach a compiled kernel, called with every dtype and layout.

Run as a script (``python [-O] tests/kernel_fuzz.py``) by ``tests/test_native.py``, in a child
process so that a crash is seen as one: each case must return finite numbers or raise TypeError
or ValueError. It prints one line per case that does neither and, last, ``cases: N, failures: M``.
"""
from __future__ import annotations

import math
import sys

import torch

import sdn
from sdn import native
from sdn.echo_density import echo_density_profile, echo_density_window, soft_echo_density_mse
from sdn.losses import EDPLoss, SDNLoss

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128)
SAMPLES = 800  # longer than the echo-density window at 16 kHz (320 taps)
FS = 16000


def signal(dtype: torch.dtype, layout: str, length: int = SAMPLES) -> torch.Tensor:
    """A test signal of ``dtype`` laid out as ``layout``: contiguous (2, T), a strided view of that
    shape, a 0-d tensor, or an empty (2, 0) one."""
    generator = torch.Generator().manual_seed(0)
    if layout == "0-d":
        return torch.tensor(0.5).to(dtype)
    if layout == "empty":
        return torch.empty(2, 0, dtype=dtype)
    base = torch.randn(2, 2 * length, generator=generator, dtype=torch.float64)
    base = base * torch.exp(-torch.arange(2 * length, dtype=torch.float64) / 300)
    base = base.to(dtype)
    return base[:, ::2] if layout == "strided" else base[:, :length].contiguous()


def finite(result) -> bool:
    """Whether every number in ``result`` (tensors, tuples, dicts) is finite."""
    if isinstance(result, dict):
        return all(finite(value) for value in result.values())
    if isinstance(result, (tuple, list)):
        return all(finite(value) for value in result if value is not None)
    if isinstance(result, torch.Tensor):
        return bool(torch.isfinite(result.detach().to(torch.complex128 if result.is_complex() else torch.float64)).all())
    return math.isfinite(complex(result).real)


def _profile_mse(x: torch.Tensor):
    target = echo_density_profile(x.detach(), FS, soft=True, windows="paper")
    return soft_echo_density_mse(x, target, FS)


def _native_echo_density(x: torch.Tensor):
    window = echo_density_window(FS, dtype=x.dtype if x.dtype.is_floating_point else torch.float64)
    width = x.shape[-1] - window.shape[0] if x.ndim else 1
    kappa = torch.full((max(width, 1),), 100.0, dtype=window.dtype)
    target = torch.zeros(x.shape[0] if x.ndim == 2 else 1, max(width, 1), dtype=torch.float32)
    return native.soft_echo_density(x, kappa, window, target=target)


def _native_node_system(x: torch.Tensor):
    bins = x.shape[-1] if x.ndim else 1
    complex_dtype = x.dtype if x.is_complex() else torch.complex128
    pair, walls, source, mic = (torch.zeros(rows, bins, dtype=x.dtype) for rows in (15, 6, 6, 6))
    weights = torch.eye(6, dtype=torch.float64)
    out = torch.empty(bins, dtype=complex_dtype)
    native.node_system(pair, walls, source, mic, weights, weights, out)
    return out


def _native_node_system_backward(x: torch.Tensor):
    bins = x.shape[-1] if x.ndim else 1
    complex_dtype = torch.complex64 if x.dtype in (torch.complex64, torch.float32) else torch.complex128
    grad = x.reshape(-1)[:bins] if x.is_complex() else torch.ones(bins, dtype=complex_dtype)
    mic = torch.zeros(6, bins, dtype=complex_dtype)
    derivatives = tuple(torch.zeros(*shape, bins, dtype=complex_dtype) for shape in ((15,), (6,), (6,), (6,), (6, 6)))
    gradients = tuple(torch.empty(*shape, bins, dtype=x.dtype) for shape in ((15,), (6,), (6,), (6,)))
    return native.node_system_backward(grad, mic, derivatives, gradients)


def _sdn_render(x: torch.Tensor):
    room = sdn.Room(size=(4.0, 5.0, 3.0), source=(1.0, 1.0, 1.5), mic=(3.0, 4.0, 1.5))
    model = sdn.SDN(room, sample_rate=FS, fir_order=2)
    return model(x)


def _edp_loss(x: torch.Tensor):
    return EDPLoss(FS)(x, x.detach().flip(-1) if x.ndim else x.detach())


def _sdn_loss(x: torch.Tensor):
    return SDNLoss(FS)(x, x.detach().flip(-1) if x.ndim else x.detach())


FUNCTIONS = {
    "echo_density_profile": lambda x: echo_density_profile(x, FS, soft=True, windows="paper"),
    "soft_echo_density_mse": _profile_mse,
    "EDPLoss": _edp_loss,
    "SDNLoss": _sdn_loss,
    "SDN": _sdn_render,
    "native.soft_echo_density": _native_echo_density,
    "native.node_system": _native_node_system,
    "native.node_system_backward": _native_node_system_backward,
}


def main() -> int:
    cases = failures = 0
    for name, function in FUNCTIONS.items():
        for dtype in DTYPES:
            for layout in ("contiguous", "strided", "0-d", "empty"):
                cases += 1
                x = signal(dtype, layout)
                try:
                    result = function(x)
                except (TypeError, ValueError):
                    continue
                except Exception as error:  # anything else is a failure of the contract
                    failures += 1
                    print(f"{name} {dtype} {layout}: {type(error).__name__}: {error}".splitlines()[0][:300])
                    continue
                if not finite(result):
                    failures += 1
                    print(f"{name} {dtype} {layout}: returned non-finite values")
    print(f"cases: {cases}, failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
