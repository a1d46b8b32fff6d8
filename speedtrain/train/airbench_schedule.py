"""airbench94's triangular learning-rate schedule, step for step (issue 21).

airbench94 (KellerJordan/cifar10-airbench, ``legacy/airbench94.py``) wraps its optimiser in
``torch.optim.lr_scheduler.LambdaLR(optimizer, get_lr)`` and calls ``scheduler.step()`` after
each ``optimizer.step()``. ``LambdaLR`` sets the rate to ``get_lr(0)`` when it is built, so
the optimiser step with 0-based index ``k`` runs at ``peak * get_lr(k)``, where::

    total   = ceil(steps_per_epoch * epochs)        # 476 for 9.9 epochs of 48 batches
    warmup  = int(total * 0.23)                     # 109: int() truncates
    get_lr(k) = 0.2 + 0.8 * k / warmup              for k < warmup
              = 1.0 - 0.93 * (k - warmup) / (total - warmup)   otherwise

so the first step runs at 0.2 x peak and the last at 0.0725 x peak: the schedule never
reaches 0.07 (that would be step ``total``, which is not taken). The trainer reads its
schedule at the end of each step, in epochs (``epoch - 1 + (i + 1) / steps_per_epoch``);
:class:`StepTriangle` turns that back into ``k`` so it gives airbench's rate for each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TRIANGLE_START", "TRIANGLE_END", "StepTriangle", "airbench_factor"]

# airbench94's triangle: the LR starts at, and heads for, these fractions of the peak.
TRIANGLE_START, TRIANGLE_END = 0.2, 0.07


def airbench_factor(k: int, total: int, warmup_frac: float = 0.23,
                    start: float = TRIANGLE_START, end: float = TRIANGLE_END) -> float:
    """``get_lr(k)`` of airbench94: the fraction of the peak at 0-based step ``k`` of ``total``."""
    warmup = int(total * warmup_frac)
    if k < warmup:
        frac = k / warmup
        return start * (1 - frac) + 1.0 * frac
    frac = (k - warmup) / (total - warmup)
    return 1.0 * (1 - frac) + end * frac


@dataclass(frozen=True)
class StepTriangle:
    """``peak * airbench_factor(k)`` for the step ending at progress ``t`` (epochs).

    ``steps_per_epoch`` is the loader's batches per epoch; the run takes
    ``ceil(steps_per_epoch * epochs)`` steps, as airbench's ``total_train_steps``.
    """

    peak: float
    warmup_frac: float
    epochs: float
    steps_per_epoch: int

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1 or self.epochs <= 0 or not 0 <= self.warmup_frac <= 1:
            raise ValueError(f"StepTriangle needs steps_per_epoch >= 1, epochs > 0, warmup_frac in [0, 1]; "
                             f"got {self.steps_per_epoch}, {self.epochs}, {self.warmup_frac}")

    @property
    def total_steps(self) -> int:
        # round() first so 0.1 * 30 = 3.0000000000000004 does not become 4 steps (as epoch_steps)
        return math.ceil(round(self.epochs * self.steps_per_epoch, 9))

    def step_index(self, t: float) -> int:
        """The 0-based step that ends at progress ``t``, clamped to the run's steps."""
        return min(max(round(t * self.steps_per_epoch) - 1, 0), self.total_steps - 1)

    def __call__(self, t: float) -> float:
        return self.peak * airbench_factor(self.step_index(t), self.total_steps, self.warmup_frac)
