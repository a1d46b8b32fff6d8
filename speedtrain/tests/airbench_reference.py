"""airbench94's optimiser in its own spelling (KellerJordan/cifar10-airbench ``legacy/airbench94.py``):
the reference the tests hold the trainer's units to. Test code only: the trainer builds its
SGD in ``speedtrain.train.optimizers``, from the mean-loss units ``recipes.airbench.trainer_units``
derives.

Airbench quotes ``lr`` 11.5 and ``weight_decay`` 0.0153 "per 1024 examples", momentum 0.85, for
a loss summed over the batch, and gives PyTorch's SGD::

    kilostep  = 1024 * (1 + 1 / (1 - momentum))   # Nesterov's step gain on a steady gradient
    torch_lr  = lr / kilostep
    decay     = weight_decay * batch_size / kilostep   # shrink per step at full LR
    group weight_decay = decay / group's torch_lr      # so torch's lr * wd == decay

with the batch-norm shifts at ``bias_scaler`` (64) times the rate and the same decay per step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from speedtrain.train.optimizers import split_bn_biases


def airbench_sgd(model: nn.Module, batch_size: int, *, lr: float = 11.5, weight_decay: float = 0.0153,
                 momentum: float = 0.85, bias_scaler: float = 64.0) -> torch.optim.SGD:
    """airbench's optimiser at its peak learning rate (schedule factor 1)."""
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    torch_lr = lr / kilostep
    decay = weight_decay * batch_size / kilostep
    shifts, others = split_bn_biases(model)
    groups: list[dict[str, Any]] = []
    for params, group_lr in ((shifts, torch_lr * bias_scaler), (others, torch_lr)):
        if params:
            groups.append({"params": params, "lr": group_lr, "weight_decay": decay / group_lr})
    return torch.optim.SGD(groups, lr=torch_lr, momentum=momentum, nesterov=True)
