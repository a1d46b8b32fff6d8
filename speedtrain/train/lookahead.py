"""Lookahead as airbench94 does it: an EMA of the weights, copied back into the model.

Why: averaging weights over the last part of training gives a better network than the last
iterate, and copying the average back (Lookahead, Zhang et al. 2019) lets the optimiser
continue from it rather than from a noisy point.

Schedule, in optimiser steps (1-based, counted over the whole run): nothing happens until
``start_step`` (airbench: the end of epoch 3). Then every ``every`` steps (airbench: 5):

- the first time, the EMA is a copy of the model;
- afterwards ``ema = rho * ema + (1 - rho) * model`` and then ``model = ema``, with
  ``rho = decay_base ** every * (step / total_steps) ** decay_pow`` (airbench: 0.95 and 3):
  near 0 at first, so the EMA follows the model, up to 0.95**5 = 0.77 at the last step,
  so the end of training averages strongly.

:meth:`Lookahead.sync` copies the EMA into the model without updating it (airbench does so
at the end of every epoch, before evaluation). Every floating-point tensor of the state dict
is averaged, batch-norm running statistics included, as airbench does; integer buffers
(``num_batches_tracked``) are left alone.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["Lookahead"]


class Lookahead:
    """``step(n)`` after optimiser step ``n``; ``sync()`` at the end of each epoch."""

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
        self.ema: Optional[list[torch.Tensor]] = None

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
