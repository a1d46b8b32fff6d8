"""Lookahead as airbench94 does it: an EMA of the weights, copied back into the model.

Why: averaging weights over the last part of training gives a better network than the last
iterate, and copying the average back (Lookahead, Zhang et al. 2019) lets the optimiser
continue from it rather than from a noisy point.

Schedule, in optimiser steps (1-based, counted over the whole run), as airbench94's
``LookaheadState`` (KellerJordan/cifar10-airbench, ``legacy/airbench94.py``; since its commit
74e145d of 2024-03-26, "only copy back with decay=1.0 at the very end of training rather than
after every epoch"; the release before started at epoch 3 and copied back at every epoch's
end, which is what speedtrain did until issue 21): the EMA starts
as a copy of the model when the :class:`Lookahead` is built (airbench: at step 0, before
the first step). Then every ``every`` steps (airbench: 5)::

    ema = rho * ema + (1 - rho) * model;  model = ema

with ``rho = decay_base ** every * (step / total_steps) ** decay_pow`` (airbench: 0.95 and 3):
near 0 at first, so the EMA follows the model, up to 0.95**5 = 0.77 at the last step, so
the end of training averages strongly. ``start_step`` > 0 (not airbench's) delays it: the
first scheduled step after it takes a fresh copy of the model and the updates start there.

:meth:`Lookahead.sync` copies the EMA into the model without updating it. airbench does so
once, after the last step of the run (its ``update(net, decay=1.0)``), so the steps since the
last scheduled update are dropped; between epochs it evaluates the live model. Every
floating-point tensor of the state dict is averaged, batch-norm running statistics
included, as airbench does; integer buffers (``num_batches_tracked``) are left alone.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["Lookahead"]


class Lookahead:
    """``step(n)`` after optimiser step ``n``; ``sync()`` after the run's last step."""

    def __init__(
        self,
        model: nn.Module,
        total_steps: int,
        *,
        start_step: int = 0,
        every: int = 5,
        decay_base: float = 0.95,
        decay_pow: float = 3.0,
    ) -> None:
        if total_steps < 1 or every < 1 or start_step < 0 or not 0 <= decay_base <= 1:
            raise ValueError(f"Lookahead needs total_steps >= 1, every >= 1, start_step >= 0, decay_base in [0, 1]; "
                             f"got {total_steps}, {every}, {start_step}, {decay_base}")
        self.total_steps, self.start_step, self.every = total_steps, start_step, every
        self.decay_base, self.decay_pow = decay_base, decay_pow
        # The state dict's tensors share storage with the model: copying into them updates it.
        self._live = [t for t in model.state_dict().values() if t.is_floating_point()]
        # airbench copies the model when it builds its LookaheadState, before the first step.
        self.ema: Optional[list[torch.Tensor]] = None if start_step else [t.detach().clone() for t in self._live]

    def decay(self, step: int) -> float:
        """``rho`` at optimiser step ``step``: the EMA's weight on its old value."""
        return self.decay_base**self.every * (step / self.total_steps) ** self.decay_pow

    @torch.no_grad()
    def step(self, step: int) -> bool:
        """Update the EMA and copy it into the model if ``step`` is one of the schedule's steps;
        return whether it was."""
        if step <= self.start_step or step % self.every:
            return False
        if self.ema is None:
            self.ema = [t.detach().clone() for t in self._live]
            return True
        weight = 1.0 - self.decay(step)
        torch._foreach_lerp_(self.ema, self._live, weight)
        torch._foreach_copy_(self._live, self.ema)
        return True

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the EMA into the model (nothing before the first update)."""
        if self.ema is not None:
            torch._foreach_copy_(self._live, self.ema)
