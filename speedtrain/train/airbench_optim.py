"""How airbench steps the weights: Nesterov SGD in decoupled units, a scaled learning rate for
batch-norm shifts, and a step budget for a fractional number of epochs.

Decoupled hyperparameters (airbench94; myrtle.ai part 5). Airbench quotes ``lr`` 11.5 and
``weight_decay`` 0.0153 "per 1024 examples", momentum 0.85, for a loss *summed* over the batch
(as :mod:`speedtrain.train.loop` does). PyTorch's SGD gets::

    kilostep  = 1024 * (1 + 1 / (1 - momentum))   # Nesterov's step gain on a steady gradient
    torch_lr  = lr / kilostep                      # so lr alone sets the mean step size
    decay     = weight_decay * batch_size / kilostep   # shrink factor per step at full LR
    group weight_decay = decay / group's torch_lr      # so torch's lr * wd == decay

so ``momentum`` can change without retuning ``lr``, ``lr`` can change without changing the
decay, and (the loss being summed) the step per example and the decay per epoch do not depend
on the batch size. The decay is still L2 through the gradient and momentum, as in airbench
(not AdamW-style); "decoupled" is about the units. Scheduling multiplies every group's LR by
the same factor, which scales the decay with it, as airbench's ``LambdaLR`` does; the trainer
does that through each group's ``lr_scale`` (``optimizers.set_lr``), the one way it sets rates.

The update itself is plain Nesterov SGD, so the trainer's units (mean-loss ``lr``, torch LR
``lr / batch``, weight decay ``weight_decay * batch``) can express it (:func:`decoupled_sgd`
stays as airbench's own spelling, the reference the tests hold the trainer's units to): airbench94 at batch
1024 is ``lr = 11.5 * 1024 / kilostep = 1.50`` and ``weight_decay = 0.0153 / 11.5 = 0.00133``
there (:func:`trainer_units` derives both; the recipe takes them from it, unrounded). What
the decoupled units change is which knobs move together when one is tuned.

Batch-norm shifts learn ``bias_scaler`` (64) times faster than the other weights, with the
same absolute decay (:func:`param_groups`, usable in the trainer's units too): with frozen
BN scales the shifts are the only BN parameters, and they would otherwise move too slowly
to matter in ~10 epochs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["split_bn_biases", "param_groups", "decoupled_sgd", "epoch_steps"]


def split_bn_biases(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(batch-norm shifts, every other parameter) of ``model``, each parameter once.

    Frozen parameters are included: they get no gradient, so SGD skips them, and one frozen
    for a while (the whitening bias) can be unfrozen without rebuilding the optimiser.
    """
    shifts = [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None]
    ids = {id(p) for p in shifts}
    return shifts, [p for p in model.parameters() if id(p) not in ids]


def decoupled_sgd(
    model: nn.Module,
    batch_size: int,
    *,
    lr: float = 11.5,
    weight_decay: float = 0.0153,
    momentum: float = 0.85,
    bias_scaler: float = 64.0,
    nesterov: bool = True,
) -> torch.optim.SGD:
    """Airbench's optimiser for a summed loss, in the units of the module docstring, at its
    peak learning rate (schedule factor 1)."""
    if not (batch_size >= 1 and lr > 0 and weight_decay >= 0 and 0 <= momentum < 1 and bias_scaler > 0):
        raise ValueError("decoupled_sgd needs batch_size >= 1, lr > 0, weight_decay >= 0, "
                         f"momentum in [0, 1), bias_scaler > 0; got {batch_size}, {lr}, {weight_decay}, {momentum}, {bias_scaler}")
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    torch_lr = lr / kilostep
    groups = param_groups(model, torch_lr, weight_decay * batch_size / kilostep, bias_scaler)
    return torch.optim.SGD(groups, lr=torch_lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def param_groups(model: nn.Module, torch_lr: float, decay: float, bias_scaler: float = 1.0) -> list[dict[str, Any]]:
    """SGD param groups in PyTorch's units: batch-norm shifts at ``bias_scaler * torch_lr``,
    the rest at ``torch_lr``, each group's ``weight_decay`` set so that ``lr * weight_decay
    == decay`` (the same shrink per step for both).

    The trainer's own units (mean-loss ``lr``, summed loss) are
    ``param_groups(model, lr / batch_size, lr * weight_decay, bias_scaler)``.
    """
    shifts, others = split_bn_biases(model)
    groups = []
    for params, group_lr in ((shifts, torch_lr * bias_scaler), (others, torch_lr)):
        if params:
            groups.append({"params": params, "lr": group_lr, "weight_decay": decay / group_lr})
    return groups


def epoch_steps(epochs: float, steps_per_epoch: int) -> list[int]:
    """Optimiser steps in each epoch of a run of ``epochs`` (a float: airbench trains 9.9).

    The run takes ``ceil(epochs * steps_per_epoch)`` steps; every epoch is whole except the
    last, which stops early: 9.9 epochs of 48 steps is nine of 48 and one of 44.
    """
    if epochs <= 0 or steps_per_epoch < 1:
        raise ValueError(f"epoch_steps needs epochs > 0 and steps_per_epoch >= 1; got {epochs}, {steps_per_epoch}")
    # round() first so 0.1 * 30 = 3.0000000000000004 does not become 4 steps.
    total = math.ceil(round(epochs * steps_per_epoch, 9))
    whole, rest = divmod(total, steps_per_epoch)
    return [steps_per_epoch] * whole + ([rest] if rest else [])
