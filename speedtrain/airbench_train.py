"""How the trainer runs the airbench-era steps (issue 12): the few calls ``train.py`` makes.

The blocks live in :mod:`speedtrain.airbench` (network, whitening, dirac init),
:mod:`speedtrain.airbench_optim` (batch-norm shift groups, fractional epochs),
:mod:`speedtrain.lookahead` and :mod:`speedtrain.airbench_augment`; this module turns
``TrainConfig`` fields into them, so the shared trainer only gains one call per moment of
a run:

- :func:`build_airbench` is ``models.build_model``'s ``airbench`` branch;
- :func:`whiten_first_layer` fills the whitening conv before the warm-up and the clock (the
  paper counts its seconds in the run; here they are ``RunResult.whiten_s``, apart from
  ``train_time_s``, like the warm-up);
- :func:`param_groups` and :func:`scale_groups` give the batch-norm shifts
  ``bn_bias_lr_scale`` times the learning rate with the same absolute weight decay;
- :class:`RunHooks` is called at each epoch's start and end and after each optimiser step:
  the whitening bias is frozen after ``whiten_bias_epochs``, and lookahead updates its EMA
  every ``lookahead_every`` steps and, as airbench does, copies it into the model once,
  after the run's last step (inside the timed epoch: it is training work). Epochs before
  the last evaluate the live model, as airbench's per-epoch ``val_acc`` does.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from speedtrain import augment
from speedtrain.airbench import AIRBENCH_WIDTHS, airbench_net, init_whitening, set_whitening_bias_trainable
from speedtrain.airbench_optim import epoch_steps, split_bn_biases
from speedtrain.config import TrainConfig
from speedtrain.lookahead import Lookahead

__all__ = ["build_airbench", "whiten_first_layer", "param_groups", "scale_groups", "epoch_plan", "RunHooks"]


def build_airbench(cfg: TrainConfig) -> nn.Sequential:
    """The airbench94 network at ``cfg.width`` times 64/256/256 channels.

    Its first conv is frozen (a whitening layer) only with ``cfg.whiten``; without it the
    2x2 conv learns like the others. Batch-norm scales are frozen at 1 with
    ``cfg.freeze_bn_scale`` (airbench), else they learn.
    """
    widths = [max(1, round(c * cfg.width)) for c in AIRBENCH_WIDTHS]
    net = airbench_net(widths, cfg.num_classes, in_channels=cfg.input_shape[0], dirac=cfg.dirac_init,
                       freeze_whiten=cfg.whiten, logit_scale=cfg.logit_scale)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(not cfg.freeze_bn_scale)
    return net


def whiten_first_layer(net: nn.Module, cfg: TrainConfig, train_images: torch.Tensor, mean: tuple[float, ...],
                       std: tuple[float, ...], device: torch.device) -> Optional[float]:
    """With ``cfg.whiten``: fill ``net``'s whitening conv from the first ``cfg.whiten_images``
    training images (uint8, un-augmented), normalised as the loader does; return the seconds
    it took. None when the config does not whiten."""
    if not cfg.whiten:
        return None
    images = train_images[: cfg.whiten_images].to(device)
    m = torch.tensor(mean, dtype=torch.float32, device=device)
    s = torch.tensor(std, dtype=torch.float32, device=device)
    return init_whitening(net.whiten.conv, augment.normalize(images, m, s, torch.float32))


def param_groups(net: nn.Module, cfg: TrainConfig) -> list[Any]:
    """What the trainer's optimiser steps: the trainable parameters, or with a
    ``bn_bias_lr_scale`` other than 1 two groups, the batch-norm shifts marked ``bn_shift``."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    if cfg.bn_bias_lr_scale == 1:
        return trainable
    shifts, _ = split_bn_biases(net)
    ids = {id(p) for p in shifts}
    return [{"params": [p for p in trainable if id(p) in ids], "bn_shift": True},
            {"params": [p for p in trainable if id(p) not in ids]}]


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


def epoch_plan(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """Optimiser steps of each epoch: ``cfg.epochs`` may be a float (airbench trains 9.9), and
    then the last epoch stops after its share of the loader's batches."""
    return epoch_steps(cfg.epochs, steps_per_epoch)


class RunHooks:
    """The per-epoch and per-step moments of the airbench steps (no-ops when they are off).

    ``total_steps`` is the run's optimiser steps (``airbench_optim.epoch_steps`` summed), the
    horizon of lookahead's decay schedule. Build it after the warm-up: lookahead's EMA must
    start from the weights the timed run starts from. (airbench builds its EMA before it fills
    the whitening conv, so at its first update, step 5 with rho = 0.95**5 * (5/476)**3 = 9e-7,
    its frozen whitening filters take in 9e-7 of their random init; here they stay exact.)
    """

    def __init__(self, cfg: TrainConfig, net: nn.Module, total_steps: int) -> None:
        self.cfg, self.net, self.steps, self.total_steps = cfg, net, 0, total_steps
        self.lookahead = Lookahead(net, total_steps, every=cfg.lookahead_every) if cfg.lookahead_every else None

    def start_epoch(self, epoch: int) -> None:
        """Before 0-based ``epoch``: the whitening bias learns only in the first epochs."""
        if self.cfg.whiten:
            set_whitening_bias_trainable(self.net, epoch < self.cfg.whiten_bias_epochs)

    def after_step(self) -> None:
        self.steps += 1
        if self.lookahead is not None:
            self.lookahead.step(self.steps)
            if self.steps == self.total_steps:  # airbench: update(net, decay=1.0) after the last step
                self.lookahead.sync()

    def end_epoch(self) -> None:
        """After an epoch's last step (nothing now: lookahead copies back after the run's last)."""
