"""Learning-rate schedules as tiny value objects (after cifar10-fast's ``PiecewiseLinear``).

A schedule maps training progress, measured in epochs (a float: 2.5 = half-way through the
third epoch), to a learning rate. The trainer evaluates it once per step.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable

from speedtrain.config import TrainConfig

Schedule = Callable[[float], float]


@dataclass(frozen=True)
class PiecewiseLinear:
    """Linear interpolation between (knot, value) pairs; flat beyond the ends."""

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.knots) != len(self.values) or len(self.knots) < 2:
            raise ValueError("PiecewiseLinear needs as many values as knots, and at least two")
        if any(b < a for a, b in zip(self.knots, self.knots[1:])):
            raise ValueError("PiecewiseLinear knots must be non-decreasing")

    def __call__(self, t: float) -> float:
        if t <= self.knots[0]:
            return self.values[0]
        if t >= self.knots[-1]:
            return self.values[-1]
        i = bisect.bisect_right(self.knots, t) - 1
        k0, k1 = self.knots[i], self.knots[i + 1]
        v0, v1 = self.values[i], self.values[i + 1]
        return v0 + (v1 - v0) * (t - k0) / (k1 - k0) if k1 > k0 else v1


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


def lr_schedule(cfg: TrainConfig) -> Schedule:
    """The schedule the config asks for, in epochs."""
    total, warm, peak = float(cfg.epochs), cfg.warmup_frac * cfg.epochs, cfg.lr
    if cfg.schedule == "piecewise":  # myrtle.ai: 0 -> 0.4 at epoch 5 -> 0 at epoch 24
        return PiecewiseLinear((0.0, warm, total), (0.0, peak, 0.0))
    if cfg.schedule == "onecycle":
        return WarmupCosine(peak, warm, total)
    return PiecewiseLinear((0.0, warm, total), (0.0 if warm > 0 else peak, peak, peak))
