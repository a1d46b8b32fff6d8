"""The moments of a run outside the training step: the few calls ``loop.py`` makes.

Recipes switch these on through ``TrainConfig`` fields (airbench94's whitening and
lookahead, myrtle.ai's 3x3 whitening and weight EMA); the blocks live in
:mod:`speedtrain.models.airbench`, :mod:`speedtrain.models.whitening`,
:mod:`speedtrain.train.lookahead` and :mod:`speedtrain.train.ema`, and this module turns the
fields into them, so the shared trainer gains one call per moment of a run:

- :func:`whiten_first_layer` fills the whitening conv before the warm-up and the clock (the
  paper counts its seconds in the run; here they are ``RunResult.whiten_s``, apart from
  ``train_time_s``, like the warm-up);
- :class:`RunHooks` is called at each epoch's start and end and after each optimiser step:
  the whitening bias is frozen after ``whiten_bias_epochs`` (by its group's learning rate, never
  by ``requires_grad``: DDP and torch.compile both fix the set of parameters that need a
  gradient when they are built, issue 19), and lookahead updates its EMA
  every ``lookahead_every`` steps and, as airbench does, copies it into the model once,
  after the run's last step (inside the timed epoch: it is training work). Epochs before
  the last evaluate the live model, as airbench's per-epoch ``val_acc`` does.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from speedtrain.data import augment
from speedtrain.models.airbench import init_whitening, whitening_filters
from speedtrain.models.whitening import init_patch_whitening, myrtle_whitening_filters
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.ema import WeightEMA
from speedtrain.train.lookahead import Lookahead
from speedtrain.train.schedule import epoch_steps

__all__ = ["whiten_first_layer", "epoch_plan", "RunHooks"]


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
    normalized = augment.normalize(images, m, s, torch.float32)
    # Off the clock, the same steps on a few images (the eigenproblem is the same C*k*k square
    # whatever the image count): the first eigh in a process starts cuSOLVER (handle, library
    # load) and the first matmul cuBLAS, which are not the whitening's work (issue 19).
    if cfg.model == "resnet9":  # myrtle.ai's 3x3 whitening (speedtrain.models.whitening)
        myrtle_whitening_filters(normalized[:WHITEN_WARM_UP_IMAGES])
        return init_patch_whitening(net.prep.whiten, normalized)
    whitening_filters(normalized[:WHITEN_WARM_UP_IMAGES], net.whiten.conv.kernel_size[0])
    return init_whitening(net.whiten.conv, normalized)


WHITEN_WARM_UP_IMAGES = 8


def epoch_plan(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """Optimiser steps of each epoch: ``cfg.epochs`` may be a float (airbench trains 9.9), and
    then the last epoch stops after its share of the loader's batches."""
    return epoch_steps(cfg.epochs, steps_per_epoch)


class RunHooks:
    """The per-epoch and per-step moments of the airbench steps and of myrtle.ai's weight EMA
    (no-ops when they are off).

    ``total_steps`` is the run's optimiser steps (``schedule.epoch_steps`` summed), the
    horizon of lookahead's decay schedule. Build it after the warm-up: lookahead's EMA must
    start from the weights the timed run starts from. ``opt`` is the timed run's optimiser,
    whose ``whiten_bias`` group (``optimizers.param_groups``) :meth:`start_epoch` freezes. (airbench builds
    its EMA before it fills the whitening conv, so at its first update, step 5 with
    rho = 0.95**5 * (5/476)**3 = 9e-7, its frozen whitening filters take in 9e-7 of their random
    init; here they stay exact.)
    """

    def __init__(self, cfg: TrainConfig, net: nn.Module, total_steps: int,
                 opt: Optional[torch.optim.Optimizer] = None) -> None:
        self.cfg, self.net, self.steps, self.total_steps = cfg, net, 0, total_steps
        self.lookahead = Lookahead(net, total_steps, every=cfg.lookahead_every) if cfg.lookahead_every else None
        self.whiten_groups = [g for g in opt.param_groups if g.get("whiten_bias")] if opt is not None else []
        for group in self.whiten_groups:  # the learning rate and decay it has while it learns
            group["learning_lr_scale"], group["learning_weight_decay"] = group["lr_scale"], group["weight_decay"]
        # myrtle.ai's EMA (speedtrain.train.ema): evaluated instead of the model, never copied back.
        self.ema = WeightEMA(net, cfg.ema_every, cfg.ema_momentum) if cfg.ema_every else None

    def start_epoch(self, epoch: int) -> None:
        """Before 0-based ``epoch``: the whitening bias learns only in the first epochs. It is
        frozen by a zero learning rate and no weight decay, so every optimiser leaves it as it is
        (SGD's and Adam's steps and AdamW's decay are all multiplied by the rate), while its
        ``requires_grad``, which DDP's reducer and Dynamo's guards were built with, stays on.
        (resnet9's whitening conv has no bias: no such group.)"""
        if self.ema is not None:
            self.ema.start_epoch()
        learning = epoch < self.cfg.whiten_bias_epochs
        for group in self.whiten_groups:
            group["lr_scale"] = group["learning_lr_scale"] if learning else 0.0
            group["weight_decay"] = group["learning_weight_decay"] if learning else 0.0

    def after_step(self) -> None:
        self.steps += 1
        if self.lookahead is not None:
            self.lookahead.step(self.steps)
            if self.steps == self.total_steps:  # airbench: update(net, decay=1.0) after the last step
                self.lookahead.sync()
        if self.ema is not None:
            self.ema.step()

    def evaluated(self, model: nn.Module) -> nn.Module:
        """The network to evaluate: the weight EMA when there is one, else ``model`` itself."""
        return self.ema.average if self.ema is not None else model

    def end_epoch(self) -> None:
        """After an epoch's last step (nothing now: lookahead copies back after the run's last)."""
