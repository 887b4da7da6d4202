r"""One SDN per room: room parameters shared by several source/microphone positions.

An SDN is built from the geometry of a room and one source/microphone pair; what it learns (wall
filters ``H_k``, junction admittances ``y_k``, pressure-extraction weights ``w_k``) describes the
room, not the pair. :func:`fit_positions` fits one such set of parameters to the RIRs of P
positions at once: the model is one batched :class:`sdn.SDN` over P rooms of the same size, whose
closed form returns all P impulse responses in one call, and each epoch takes one full-batch Adam
step (:func:`sdn.optimisation.train_step`) on the loss averaged over positions,

.. math:: L = \frac{1}{P} \sum_{p=1}^{P} \left[0.5\, L_\mathrm{EDC}(h_p, t_p) + L_\mathrm{EDR}(h_p, t_p)
          + L_\mathrm{EDP}(h_p, t_p)\right],

with prediction :math:`h_p` and target :math:`t_p` each normalised to unit norm (as in :mod:`sdn.train`).
There is no Python loop over positions. :func:`transfer` moves the fitted parameters to other
positions of the same room (the generalisation experiment of ``notebooks/06_generalisation``).

Not done here: distance corrections are per position (a bounded offset on each geometric
distance), so they neither transfer nor make sense to share; :func:`transfer` refuses models that
have them. No run folders or checkpoints: see :mod:`sdn.train` for single-target runs.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from .geometry import Room
from .losses import SDNLoss
from .model import SDN
from .optimisation import Diverged, progress_bar, train_step, unit_norm_render, unit_norm_targets

log = logging.getLogger(__name__)
SHARED_PARAMETERS = ("wall_logit", "wall_taps", "log_admittance", "log_extraction_weights")


def _rooms(rooms) -> list[Room]:
    rooms = [rooms] if isinstance(rooms, Room) else list(rooms)
    if not rooms or not all(isinstance(r, Room) for r in rooms):
        raise TypeError("rooms must be an sdn.Room or a non-empty sequence of them")
    return rooms


def fit_positions(
    rooms: Room | Sequence[Room],
    targets,
    model_kwargs: dict | None = None,
    epochs: int = 300,
    lr: float = 0.01,
    seed: int = 42,
    loss_weights: tuple[float, float, float] = (0.5, 1.0, 1.0),
    progress: bool = True,
) -> tuple[SDN, list[dict]]:
    """Fit one set of room parameters to the RIRs of several positions in the same room.

    Parameters
    ----------
    rooms : sdn.Room or sequence of sdn.Room
        P source/microphone pairs in rooms of one size; a single :class:`sdn.Room` gives an
        unbatched model (renders of shape (T,)), like :func:`sdn.train.fit`.
    targets : array_like or torch.Tensor
        The measured RIRs in the order of ``rooms``, (P, T), or (T,) for a single room; any scale
        (each is normalised to unit norm), converted to the model's dtype.
    model_kwargs : dict, optional
        Keyword arguments of :class:`sdn.SDN` (``sample_rate``, ``fir_order``, ``alpha``, ...,
        ``dtype``, ``device``). The loss uses the model's sample rate.
    epochs : int
        Number of full-batch steps (the paper: 300).
    lr : float
        Adam learning rate (the paper: 0.01).
    seed : int
        Seed of torch's random generator, set before the model is built.
    loss_weights : tuple of float
        (EDC, EDR, EDP) weights of :class:`sdn.losses.SDNLoss`.
    progress : bool
        Show a progress bar.

    Returns
    -------
    model : sdn.SDN
        The batched SDN (P positions; unbatched for a single Room) with the fitted parameters.
    history : list of dict
        One dict per completed epoch: ``epoch``, ``edc``, ``edr``, ``edp``, ``total`` (means over
        positions, evaluated before that epoch's step) and ``seconds``.

    Notes
    -----
    If the model becomes unstable or the loss non-finite, training stops, the weights of the last
    finite loss are restored and a warning is logged; ``len(history) < epochs`` then tells.

    Examples
    --------
    >>> model, history = fit_positions(rooms, rirs, {"fir_order": 6}, epochs=300)  # doctest: +SKIP
    >>> held_out = transfer(model, other_rooms)  # doctest: +SKIP
    """
    single = isinstance(rooms, Room)
    rooms = _rooms(rooms)
    if not (isinstance(epochs, int) and epochs >= 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    torch.manual_seed(seed)
    model = SDN(rooms[0] if single else rooms, **(model_kwargs or {}))
    y = unit_norm_targets(targets, model)
    loss_fn = SDNLoss(model.sample_rate, weights=loss_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict] = []
    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in progress_bar(range(epochs), progress, f"{len(rooms)} positions"):
        try:
            row, last_good = train_step(model, y, loss_fn, optimizer, epoch)
        except Diverged as err:
            log.warning("fit_positions stopped at %s", err)
            model.load_state_dict(last_good)  # weights of the last finite loss
            break
        history.append(row)
    return model, history


def transfer(model: SDN, rooms) -> SDN:
    """A new SDN at other positions of the same room with ``model``'s room parameters.

    The wall filters, admittances and extraction weights are copied (detached); the geometry comes
    from ``rooms``.

    Parameters
    ----------
    model : sdn.SDN
        A fitted model without distance correction (its corrections belong to the positions it
        was fitted at).
    rooms : sdn.Room or sequence of sdn.Room
        The new positions, in a room of the model's size.

    Returns
    -------
    sdn.SDN
        Unbatched for one Room, batched otherwise; the model's dtype and device.

    Raises
    ------
    ValueError
        For a model with distance correction, or rooms of another size.
    """
    if model.config["distance_correction"]:
        raise ValueError("cannot transfer a model with distance correction: its corrections are per "
                         "position; fit with distance_correction=False to generalise")
    rooms = _rooms(rooms)
    config = {k: v for k, v in model.config.items() if k != "room"}
    size = (model.room if isinstance(model.room, Room) else model.room[0]).size
    if any(r.size != size for r in rooms):
        raise ValueError("transfer needs positions in a room of the model's size")
    new = SDN(rooms if len(rooms) > 1 else rooms[0], **config, dtype=model.dtype, device=model.device)
    with torch.no_grad():
        for name in SHARED_PARAMETERS:
            if hasattr(new, name):
                getattr(new, name).copy_(getattr(model, name))
    return new


def position_losses(model: SDN, targets, loss_weights: tuple[float, float, float] = (0.5, 1.0, 1.0)) -> dict:
    """Loss terms per position: the model's unit-norm renders against unit-norm ``targets``.

    Parameters
    ----------
    model : sdn.SDN
        P positions (or one, unbatched).
    targets : array_like or torch.Tensor
        (P, T), or (T,) for an unbatched model.
    loss_weights : tuple of float
        (EDC, EDR, EDP) weights of :class:`sdn.losses.SDNLoss`.

    Returns
    -------
    dict
        ``edc``, ``edr``, ``edp`` and ``total``, each a tensor (P,) (P = 1 for an unbatched model).
    """
    p = model.batch_shape[0] if model.batch_shape else 1
    y = unit_norm_targets(targets, model).reshape(p, -1)
    with torch.no_grad():
        h = unit_norm_render(model, y.shape[-1]).reshape(p, -1)
        return SDNLoss(model.sample_rate, weights=loss_weights, reduction="none")(h, y)
