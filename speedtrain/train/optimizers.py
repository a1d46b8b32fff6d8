"""The one optimiser builder: SGD with momentum, Adam (L2) and AdamW, their parameter groups
(batch-norm shifts, the whitening bias) and each group's ``lr_scale``.

The trainer sums the loss over the batch (myrtle.ai's convention, see ``speedtrain.train.loop``),
so its gradient is ``batch`` times the mean-loss gradient. :func:`build_optimizer` sets each
optimiser up so that one step with the summed loss is the same update as the textbook
optimiser with the mean loss, ``lr`` and ``weight_decay``:

- SGD: lr / batch and weight decay * batch;
- Adam, L2 added to the gradient (coupled): weight decay * batch, so the L2 term keeps its
  share of the scaled gradient, and eps * batch; Adam divides the scale out, so lr stays;
- AdamW, decay applied to the weights (decoupled, ``p -= lr * wd * p``): lr and weight decay
  unchanged, eps * batch.

The learning rate changes every step, so each parameter group carries its own ``lr_scale``
and the trainer sets rates with :func:`set_lr` rather than writing ``group["lr"]`` itself.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

import torch

from torch import nn

from speedtrain.common.errors import ConfigError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.sgd_forms import LrInBufferSGD

OPTIMIZERS = ("sgd", "adam", "adamw")
# Devices with fused SGD, Adam and AdamW kernels that this project runs on (torch >= 2.5;
# torch.utils._foreach_utils lists more). Fused, a GradScaler hands the scale and the overflow
# flag to the kernel on the device; otherwise GradScaler._maybe_opt_step reads the flag back to
# the host every step.
FUSED_DEVICES = ("cuda", "cpu")
AdamName = Literal["adam", "adamw"]


def make_adam(
    name: AdamName,
    params: Iterable[Any],
    lr: float,
    weight_decay: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    summed_over: int = 1,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """Adam (L2 through the gradient) or AdamW (decay on the weights) at learning rate ``lr``
    (per mean-loss gradient), for a loss summed over ``summed_over`` images (1: a mean loss).
    ``fused`` asks for the fused kernels (see :data:`FUSED_DEVICES`)."""
    b = summed_over
    if name == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps * b,
                                                      weight_decay=weight_decay * b, fused=fused or None)
    elif name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps * b, weight_decay=weight_decay,
                                fused=fused or None)
    else:
        raise ConfigError(f"make_adam builds adam or adamw; got {name!r}")
    for group in opt.param_groups:
        group["lr_scale"] = 1.0  # Adam divides the gradient's scale out
    return opt


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate (per mean-loss gradient, as the schedule gives it) for the next step."""
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_scale"]


def build_optimizer(net: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The one optimiser the trainer steps, for ``cfg.optimizer``, in its summed-loss convention,
    on :func:`param_groups` of ``net``. SGD is :func:`make_sgd` (fused where the device has the
    kernel, or cifar10-fast's form); Adam and AdamW are :func:`make_adam`'s, fused where the
    device has it (with fp16's GradScaler no overflow read-back per step). Every group then gets
    the ``lr_scale`` :func:`set_lr` reads (:func:`scale_groups`)."""
    params = param_groups(net, cfg)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = make_sgd(params, cfg, device)
    else:
        opt = make_adam(cfg.optimizer, params, cfg.lr, cfg.weight_decay, summed_over=cfg.batch_size,
                        fused=device.type in FUSED_DEVICES)
    return scale_groups(opt, cfg)


def make_sgd(params: list[torch.Tensor], cfg: TrainConfig, device: torch.device) -> torch.optim.SGD:
    """The trainer's SGD (summed-loss convention: the lr is set per step), fused where the device
    has the kernel, else torch's own default (foreach on CUDA, a for-loop elsewhere)."""
    if cfg.sgd_form == "cifar10-fast":  # the LR inside the momentum buffer (speedtrain.train.sgd_forms)
        return LrInBufferSGD(params, momentum=cfg.momentum, weight_decay=cfg.weight_decay * cfg.batch_size,
                             nesterov=cfg.nesterov)  # type: ignore[return-value]
    fused = device.type in FUSED_DEVICES
    return torch.optim.SGD(params, lr=0.0, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay * cfg.batch_size,
                           fused=fused, foreach=None if fused else device.type == "cuda")


def optimizer_impl(opt: torch.optim.Optimizer) -> str:
    """Which step implementation ``opt`` runs: fused, foreach or for-loop."""
    group = opt.param_groups[0]
    return "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"


def param_groups(net: nn.Module, cfg: TrainConfig) -> list[Any]:
    """What the trainer's optimiser steps: the trainable parameters, or groups of them: with a
    ``bn_bias_lr_scale`` other than 1 the batch-norm shifts (marked ``bn_shift``), and with
    ``whiten`` the whitening conv's bias on its own (marked ``whiten_bias``), so that
    :class:`RunHooks` can freeze it by its learning rate."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    whiten_bias = cfg.whiten and cfg.model == "airbench"  # resnet9's whitening conv has no bias
    if cfg.bn_bias_lr_scale == 1 and not whiten_bias:
        return trainable
    shifts, _ = split_bn_biases(net)
    shift_ids = {id(p) for p in shifts} if cfg.bn_bias_lr_scale != 1 else set()
    bias = net.whiten.conv.bias if whiten_bias else None
    groups: list[dict[str, Any]] = []
    if bias is not None:
        groups.append({"params": [bias], "whiten_bias": True})
    if shift_ids:
        groups.append({"params": [p for p in trainable if id(p) in shift_ids], "bn_shift": True})
    groups.append({"params": [p for p in trainable if id(p) not in shift_ids and p is not bias]})
    return groups


def scale_groups(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Give every group the ``lr_scale`` that ``optimizers.set_lr`` reads (the summed-loss SGD's
    ``1 / batch`` where the optimiser did not set one), and the ``bn_shift`` group
    ``bn_bias_lr_scale`` times its rate and ``1 / bn_bias_lr_scale`` times its weight decay:
    SGD's decay per step is ``lr * weight_decay``, so the shifts decay as much as before
    (airbench's 64x bias rate, "scales up learning rate but not weight decay")."""
    for group in opt.param_groups:
        group.setdefault("lr_scale", 1.0 / cfg.batch_size)
        if group.get("bn_shift"):
            group["lr_scale"] *= cfg.bn_bias_lr_scale
            group["weight_decay"] /= cfg.bn_bias_lr_scale
    return opt


def split_bn_biases(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(batch-norm shifts, every other parameter) of ``model``, each parameter once.

    Frozen parameters are included: they get no gradient, so SGD skips them, and one frozen
    for a while (the whitening bias) can be unfrozen without rebuilding the optimiser.
    """
    shifts = [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None]
    ids = {id(p) for p in shifts}
    return shifts, [p for p in model.parameters() if id(p) not in ids]
