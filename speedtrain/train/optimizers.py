"""The optimisers of the optimiser-grid study: SGD with momentum, Adam (L2) and AdamW.

The trainer sums the loss over the batch (myrtle.ai's convention, see ``speedtrain.train.loop``),
so its gradient is ``batch`` times the mean-loss gradient. ``make_optimizer(...,
summed_over=batch)`` sets each optimiser up so that one step with the summed loss is the
same update as the textbook optimiser with the mean loss, ``lr`` and ``weight_decay``:

- SGD: lr / batch and weight decay * batch (exactly the trainer's SGD set-up before this
  module existed, so the default path is unchanged);
- Adam, L2 added to the gradient (coupled): weight decay * batch, so the L2 term keeps its
  share of the scaled gradient, and eps * batch; Adam divides the scale out, so lr stays;
- AdamW, decay applied to the weights (decoupled, ``p -= lr * wd * p``): lr and weight decay
  unchanged, eps * batch.

The learning rate changes every step, so each parameter group carries its own ``lr_scale``
and the trainer sets rates with :func:`set_lr` rather than writing ``group["lr"]`` itself.
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch

from speedtrain.common.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
# Devices with fused Adam/AdamW kernels that this project runs on (torch.utils._foreach_utils
# lists more). Fused, a GradScaler hands the scale and the overflow flag to the kernel on the
# device; otherwise GradScaler._maybe_opt_step reads the flag back to the host every step.
FUSED_ADAM_DEVICES = ("cuda", "cpu")
OptimizerName = Literal["sgd", "adam", "adamw"]


def make_optimizer(
    name: OptimizerName,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    summed_over: int = 1,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` at learning rate ``lr`` (per mean-loss gradient).

    ``summed_over`` is the number of images the loss is summed over (1 for a mean loss);
    ``momentum`` and ``nesterov`` are SGD's, ``betas`` and ``eps`` Adam's and AdamW's.
    ``fused`` asks for Adam's and AdamW's fused kernels (see :data:`FUSED_ADAM_DEVICES`).
    """
    b = summed_over
    if name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr / b, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay * b)
        scale = 1.0 / b
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps * b, weight_decay=weight_decay * b,
                               fused=fused or None)
        scale = 1.0
    elif name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps * b, weight_decay=weight_decay,
                                fused=fused or None)
        scale = 1.0
    else:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
    for group in opt.param_groups:
        group["lr_scale"] = scale
    return opt


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate (per mean-loss gradient, as the schedule gives it) for the next step."""
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_scale"]
