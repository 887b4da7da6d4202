r"""The training step shared by :mod:`sdn.train` (one target) and :mod:`sdn.multi` (several positions).

Full-batch gradient descent on unit-norm impulse responses, as in the paper: each epoch renders the
SDN's impulse response(s) :math:`h_\theta` in closed form at the targets' length :math:`T`, and
takes one optimiser step on

.. math:: L(\theta) = \mathcal{L}\left(\frac{h_\theta}{\lVert h_\theta \rVert},
          \frac{t}{\lVert t \rVert}\right),

with :math:`\mathcal{L}` the weighted loss of :class:`sdn.losses.SDNLoss` (averaged over
positions for a batch). A step whose render grows within the targets' length, or whose loss is
not finite, raises :class:`Diverged` instead of stepping, so the caller still holds the last
weights with a finite loss.

Dtype rule: the model's dtype (torch's default dtype when it was built, or the ``dtype`` it was
given) drives everything; targets are converted to it, so a float64 model trains against float64
targets and a float32 model against float32 ones.
"""
from __future__ import annotations

import time

import torch

from .model import SDN
from .stability import UnstableSDNError, growth_ratio

HISTORY_FIELDS = ("epoch", "edc", "edr", "edp", "total", "seconds")


class Diverged(RuntimeError):
    """Training met an unstable model or a non-finite loss; no step was taken.

    Parameters
    ----------
    epoch : int
        The epoch (counted from 0) whose loss could not be used.
    reason : str
        What happened: the instability report or the loss terms.
    """

    def __init__(self, epoch: int, reason: str):
        super().__init__(f"epoch {epoch}: {reason}")
        self.epoch = epoch
        self.reason = reason


def unit_norm_render(model: SDN, n_samples: int) -> torch.Tensor:
    """Impulse response(s) of ``model``, each scaled to unit Euclidean norm.

    Parameters
    ----------
    model : sdn.SDN
        One position or a batch of P positions.
    n_samples : int
        Length of the render, in samples.

    Returns
    -------
    torch.Tensor
        (n_samples,) or (P, n_samples), in the model's dtype and device; differentiable.

    Raises
    ------
    sdn.UnstableSDNError
        When the response is not finite. A network that grows beyond the render is rendered as
        it is (see :func:`train_step`).
    """
    h = model.impulse_response(n_samples, check_growth=False)
    return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)


def unit_norm_targets(targets, model: SDN) -> torch.Tensor:
    """Targets as a tensor in the model's dtype and device, each scaled to unit Euclidean norm.

    Parameters
    ----------
    targets : array_like or torch.Tensor
        (T,) for an unbatched model, (P, T) for a batch of P positions (a model of one position
        also accepts (T,)); real samples, any scale.
    model : sdn.SDN
        Gives the batch shape, dtype and device.

    Returns
    -------
    torch.Tensor
        (T,) or (P, T), in the model's dtype.

    Raises
    ------
    TypeError
        For complex targets.
    ValueError
        For another shape, or a target that is not finite or silent.
    """
    y = torch.as_tensor(targets)
    if y.is_complex():
        raise TypeError("targets must be real, got a complex array")
    if y.ndim == 1 and model.batch_shape == (1,):
        y = y[None]
    if y.ndim != len(model.batch_shape) + 1 or tuple(y.shape[:-1]) != model.batch_shape or y.shape[-1] == 0:
        expected = "(T,)" if not model.batch_shape else f"(P, T) with P = {model.batch_shape[0]} positions"
        raise ValueError(f"targets must have shape {expected}, got {tuple(y.shape)}")
    # Normalised in the finer of the two precisions, then rounded once to the model's dtype.
    y = y.to(device=model.device, dtype=torch.promote_types(y.dtype, model.dtype))
    norm = torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    if not torch.all(torch.isfinite(y)) or torch.any(norm == 0):
        raise ValueError("every target must be finite and not silent")
    return (y / norm).to(model.dtype)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` reports exhausted memory, whatever its type.

    Parameters
    ----------
    err : BaseException
        Any exception.

    Returns
    -------
    bool
        True for a MemoryError (Python) or a RuntimeError of torch's that says so
        (``torch.cuda.OutOfMemoryError`` on CUDA, "DefaultCPUAllocator: can't allocate memory" on
        the CPU).
    """
    text = str(err).lower()
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text))


def train_step(model: SDN, targets: torch.Tensor, loss_fn, optimizer: torch.optim.Optimizer,
               epoch: int) -> tuple[dict, dict]:
    """One full-batch step on unit-norm renders against unit-norm targets.

    Parameters
    ----------
    model : sdn.SDN
        The model being trained.
    targets : torch.Tensor
        (T,) or (P, T), from :func:`unit_norm_targets`.
    loss_fn : sdn.losses.SDNLoss
        Returns the terms ``edc``, ``edr``, ``edp`` and ``total`` (mean over positions).
    optimizer : torch.optim.Optimizer
        Over the model's parameters.
    epoch : int
        Number of this epoch (counted from 0), for the history and messages.

    Returns
    -------
    row : dict
        The history row: ``epoch``, the loss terms before the step, and ``seconds`` (wall clock
        of the step).
    state : dict
        A copy of the model's state_dict before the step: the weights that gave this loss.

    Raises
    ------
    Diverged
        Instead of stepping, when the render is not finite, when it grows within the targets'
        length (:func:`sdn.stability.growth_ratio` of the render above 1), when the loss is not
        finite, or when rendering, the loss or the step fails (torch raises RuntimeError when a
        step overflows float32) or the step leaves a weight that is not finite. The model then
        holds the weights it had before the step. Exhausted memory (:func:`is_out_of_memory`)
        is raised as it is.

    Notes
    -----
    A network whose response grows only beyond the targets' length is trained on: the loss sees
    the start of the growth and pulls the parameters back. The study's FIR-6 fits on the HOMULA
    target pass through such networks for a few epochs early on and then decay again; stopping
    there would end them. The evaluation render (:func:`sdn.train.evaluation_render`) checks the
    trained network with the full stability test.
    """
    started = time.perf_counter()
    optimizer.zero_grad()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        h = unit_norm_render(model, targets.shape[-1])
        ratio = growth_ratio(h)
        if ratio > 1.0:
            raise Diverged(epoch, f"the SDN is unstable: its impulse response grows within the target's length "
                                  f"(last-eighth/earlier energy ratio {ratio:.3g} > 1)")
        terms = loss_fn(h, targets)
        if not torch.isfinite(terms["total"]):
            raise Diverged(epoch, f"non-finite loss {({k: v.item() for k, v in terms.items()})}")
        terms["total"].backward()
        optimizer.step()
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise Diverged(epoch, "the optimiser step made a weight non-finite")
    except (RuntimeError, ValueError, ArithmeticError) as err:  # Diverged and UnstableSDNError included
        if is_out_of_memory(err):
            raise
        model.load_state_dict(state)  # a failed step may have changed some of the weights
        if isinstance(err, Diverged):
            raise
        reason = " ".join(str(err).split()) or type(err).__name__
        if not isinstance(err, UnstableSDNError):
            reason = f"the step failed ({type(err).__name__}: {reason[:300]})"
        raise Diverged(epoch, reason) from err
    row = {"epoch": epoch, **{k: terms[k].item() for k in ("edc", "edr", "edp", "total")},
           "seconds": time.perf_counter() - started}
    return row, state


class PlateauStop:
    r"""The convergence criterion of the converged fits: stop once the loss has stopped falling.

    The reference :math:`L^\ast` is the loss of the last epoch that improved on the previous
    reference by more than the relative amount :math:`\delta` (the first epoch always does):
    epoch :math:`t` improves when :math:`L_t < (1 - \delta) L^\ast`. Training stops after
    ``patience`` consecutive epochs without improvement. In other words it runs while the lowest
    loss still falls by at least a fraction :math:`\delta` every ``patience`` epochs. A relative
    threshold makes the rule independent of the loss's scale (the total loss of the study ranges
    from about 4 at the start to below 0.1), and the patience spans the oscillations of Adam's
    full-batch steps, which a per-epoch test would take for a plateau. No stop comes before
    ``min_epochs`` epochs: the converged fits run at least the paper's budget, so that they extend
    the paper-budget fits instead of replacing them with shorter ones. The rule depends on the loss
    history only, so a resumed run stops where an uninterrupted one does.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping, >= 1.
    min_delta : float
        :math:`\delta`, relative, in [0, 1).
    min_epochs : int
        Epochs before which it never stops, >= 0.

    Examples
    --------
    >>> stop = PlateauStop(patience=2, min_delta=0.1)
    >>> [stop.update(loss) for loss in (1.0, 0.5, 0.48, 0.47, 0.30)]
    [False, False, False, True, False]
    >>> stop = PlateauStop(patience=2, min_delta=0.1, min_epochs=5)
    >>> [stop.update(loss) for loss in (1.0, 0.5, 0.48, 0.47, 0.46)]
    [False, False, False, False, True]
    """

    def __init__(self, patience: int, min_delta: float, min_epochs: int = 0):
        if not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"patience must be a whole number of epochs >= 1, got {patience!r}")
        if not 0.0 <= min_delta < 1.0:
            raise ValueError(f"min_delta must lie in [0, 1), got {min_delta!r}")
        if not (isinstance(min_epochs, int) and min_epochs >= 0):
            raise ValueError(f"min_epochs must be a whole number of epochs >= 0, got {min_epochs!r}")
        self.patience, self.min_delta, self.min_epochs = patience, float(min_delta), min_epochs
        self.epochs = 0  # epochs seen
        self.reference = float("inf")
        self.waited = 0  # epochs since the last improvement

    def update(self, loss: float) -> bool:
        """Account for one epoch's loss; True when training should stop after it."""
        if loss < (1.0 - self.min_delta) * self.reference:
            self.reference, self.waited = float(loss), 0
        else:
            self.waited += 1
        self.epochs += 1
        return self.waited >= self.patience and self.epochs >= self.min_epochs


def progress_bar(epochs: range, enabled: bool, description: str):
    """``epochs`` wrapped in a progress bar (tqdm) when ``enabled``, else unchanged.

    Parameters
    ----------
    epochs : range
        The epochs to run.
    enabled : bool
        Show the bar.
    description : str
        Its label, e.g. the experiment's name.
    """
    if not enabled:
        return epochs
    from tqdm.auto import tqdm

    return tqdm(epochs, desc=description, unit="epoch", leave=False)
