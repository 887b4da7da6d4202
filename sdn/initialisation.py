r"""What a seed does: the initial model of a fit (``training.seed``).

Seed 0 is the paper's initial model, unchanged. Seed :math:`k > 0` moves every trainable
parameter :math:`\theta` of the model, element by element, to

.. math:: \theta + \varepsilon \, \max(\lvert\theta\rvert, s) \, u, \qquad
          u \sim \mathcal{U}[-1, 1),

a relative change of at most :math:`\varepsilon` (:data:`RELATIVE`), with :math:`s` = 1
(:data:`FLOOR`) as the additive scale of the parameters that start at 0 (the log-admittances,
the FIR taps after the first, the distance corrections) or near it: every parameter of the SDN
acts through a function whose argument has a natural scale of about 1 (a logarithm, a tap of a
filter with unit gain, the argument of a tanh).

The draws come from a ``torch.Generator`` on the CPU seeded with :math:`k`, in float64, in the
order of ``model.named_parameters()``, and use only uniform draws (53 random bits each, no
transcendental function) and one multiply-add rounded once to the parameter's dtype: the
perturbation is the same bits on every machine and device.

Why :math:`\varepsilon` = 0.03. A fit is chaotic, so an ensemble samples the spread that matters
only when its members differ at least as much as two machines' rounding makes one fit differ
after a few epochs. Measured on the paper's four configurations (relative differences of the
parameters, floored at 1 like the perturbation, after 5 epochs of the same fit from seed 0,
:func:`sdn.ensemble.rounding_spread`, which ``09_ensemble`` reruns): the C kernels against the
PyTorch implementation (``SDN_NATIVE=0``, a change of compute path) differ by an RMS of 3.6e-6
(``prior_fir6``) to 6.1e-3 (``correction_fir0``), at most 2.2e-2 in one element; float32 against
float64 by an RMS of 1.7e-4 to 1.7e-2, at most 5.3e-2. A uniform draw on :math:`\pm\varepsilon`
has RMS :math:`\varepsilon / \sqrt{3}`, 1.7e-2 for 0.03: at least the largest of these RMS
values, and three of Adam's first steps at the paper's learning rate of 0.01 (each moves every
parameter by about the learning rate). It is not much larger, so that every member starts from a
network that decays: at 0.03 the initial responses of seeds 1 to 7 of the FIR-6 configurations
all decay within the target's length (last-eighth to earlier energy ratio at most 0.4), at 0.05
seed 4's grows (ratio 1.3) and its fit would stop at its first epoch.
"""
from __future__ import annotations

import torch

__all__ = ["RELATIVE", "FLOOR", "perturb_parameters"]

#: Largest relative change of a parameter, :math:`\varepsilon`.
RELATIVE = 0.03
#: Magnitude below which the change is additive, :math:`s` (in the parameter's own units).
FLOOR = 1.0


def perturb_parameters(model: torch.nn.Module, seed: int, relative: float = RELATIVE,
                       floor: float = FLOOR) -> torch.nn.Module:
    """Move the model's trainable parameters to the initial point of ``seed``, in place.

    Parameters
    ----------
    model : torch.nn.Module
        The initial model (e.g. :class:`sdn.SDN`), on any device and in any dtype.
    seed : int
        0 leaves the model as it is; k > 0 draws the perturbation of the module docstring from a
        CPU generator seeded with k.
    relative : float
        :math:`\\varepsilon`, the largest relative change (dimensionless).
    floor : float
        :math:`s`, the magnitude below which the change is ``relative * floor`` at most.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    ValueError
        For a negative seed.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if seed == 0:
        return model
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for _, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            value = parameter.detach().to(device="cpu", dtype=torch.float64)
            u = 2.0 * torch.rand(value.shape, generator=generator, dtype=torch.float64) - 1.0
            moved = value + relative * value.abs().clamp_min(floor) * u
            parameter.copy_(moved.to(device=parameter.device, dtype=parameter.dtype))
    return model
