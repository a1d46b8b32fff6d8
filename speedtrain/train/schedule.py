"""Learning-rate schedules as tiny value objects (after cifar10-fast's ``PiecewiseLinear``).

A schedule maps training progress, measured in epochs (a float: 2.5 = half-way through the
third epoch), to a learning rate. The trainer evaluates it once per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.airbench_schedule import TRIANGLE_END, TRIANGLE_START, StepTriangle  # noqa: F401 (re-exported)

Schedule = Callable[[float], float]


@dataclass(frozen=True)
class PiecewiseLinear:
    """Linear interpolation between (knot, value) pairs, flat beyond the ends (``numpy.interp``).

    At a repeated knot the later value holds, so a zero-length warm-up starts at the peak.
    """

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        # numpy.interp does not check its knots: a decreasing one would give a wrong schedule.
        if len(self.knots) != len(self.values) or len(self.knots) < 2:
            raise ValueError("PiecewiseLinear needs as many values as knots, and at least two")
        if any(b < a for a, b in zip(self.knots, self.knots[1:])):
            raise ValueError("PiecewiseLinear knots must be non-decreasing")

    def __call__(self, t: float) -> float:
        return float(np.interp(t, self.knots, self.values))


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up to ``peak`` at ``warmup`` epochs, then cosine decay to 0 at ``total``."""

    peak: float
    warmup: float
    total: float

    def __call__(self, t: float) -> float:
        if t < self.warmup:
            return self.peak * t / self.warmup
        progress = min(1.0, (t - self.warmup) / max(self.total - self.warmup, 1e-12))
        return self.peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_schedule(cfg: TrainConfig, steps_per_epoch: Optional[int] = None) -> Schedule:
    """The schedule the config asks for, in epochs. ``triangle`` is airbench94's per-step
    schedule (speedtrain.train.airbench_schedule) and needs the loader's ``steps_per_epoch``."""
    total, warm, peak = float(cfg.epochs), cfg.warmup_frac * cfg.epochs, cfg.lr
    if cfg.schedule == "piecewise" and (cfg.lr_floor or cfg.lr_floor_epochs):
        # cifar10-fast's EMA runs (bag_of_tricks.ipynb): knots [0, epochs/5, epochs - 2], values
        # [0, peak, 0.1 peak], and numpy.interp holds the last value to the end.
        # A floor reaching back past the peak (a profile's shortened run) drops to it at the peak.
        floor, end = cfg.lr_floor * peak, max(warm, total - cfg.lr_floor_epochs)
        return PiecewiseLinear((0.0, warm, end, total), (0.0, peak, floor, floor))
    if cfg.schedule == "piecewise":  # myrtle.ai: 0 -> 0.4 at epoch 5 -> 0 at epoch 24
        return PiecewiseLinear((0.0, warm, total), (0.0, peak, 0.0))
    if cfg.schedule == "onecycle":
        return WarmupCosine(peak, warm, total)
    if cfg.schedule == "step":  # the optimiser-grid study: flat, x step_factor at each milestone
        return StepSchedule(peak, tuple(float(m) for m in cfg.milestones), cfg.step_factor)
    if cfg.schedule == "triangle":  # airbench94: 0.2x peak -> peak at warmup_frac (0.23) -> 0.07x peak
        if steps_per_epoch is None:
            raise ValueError("the triangle schedule is airbench's per optimiser step: pass steps_per_epoch")
        return StepTriangle(peak, cfg.warmup_frac, total, steps_per_epoch)
    return PiecewiseLinear((0.0, warm, total), (0.0, peak, peak))


@dataclass(frozen=True)
class StepSchedule:
    """``lr``, multiplied by ``factor`` at each milestone (epochs): the classic x0.1 step decay.

    A milestone m applies once m epochs are complete: the trainer asks for the rate at the
    end of each step, ``epoch - 1 + (i + 1) / steps``, so the last step of epoch m gets progress
    exactly m and still the old rate, and epoch m + 1 starts decayed (as ``MultiStepLR``
    stepped once per epoch). A repeated milestone applies the factor twice, as there.
    """

    lr: float
    milestones: tuple[float, ...]
    factor: float = 0.1

    def __post_init__(self) -> None:
        if any(m < 0 for m in self.milestones) or any(b < a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError("StepSchedule milestones must be non-negative and non-decreasing")
        if self.factor <= 0:
            raise ValueError("StepSchedule factor must be positive")

    def __call__(self, t: float) -> float:
        return self.lr * self.factor ** sum(m < t for m in self.milestones)


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
