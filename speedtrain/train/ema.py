"""An exponential moving average of the weights, evaluated in place of the model (myrtle.ai
"How to train your ResNet 8: Bag of tricks", section "Exponential moving averages (33.5s)";
davidcpage/cifar10-fast bag_of_tricks.ipynb cell 78 and its ``update_ema``).

Why: averaging the last iterates lets training keep a higher learning rate to the end (the
notebook floors it at 0.1 x peak for the last 2 epochs) while the averaged network sits
closer to the bottom of the noisy directions: 94.3% at 14 epochs, so 13 epochs reach 94.1%.

How cifar10-fast does it, and so this module:

- the average starts as a copy of the model before training (``VALID_MODEL: copy.deepcopy(model)``);
- after an optimiser step, every ``update_freq`` = 5 steps counted from each epoch's first
  (the notebook builds ``update_ema`` anew for every epoch, so its counter restarts: steps 0,
  5, 10... of each epoch, 0-based), ``avg = rho * avg + (1 - rho) * model`` with
  ``rho = momentum ** update_freq`` = 0.99**5, over every floating-point tensor of the state
  dict (batch-norm running statistics included; integer ``num_batches_tracked`` left alone, as
  torch_backend.py's later version does);
- evaluation runs on the average; training continues from the model's own weights, which the
  average never touches.

The average is a plain copy of the network: under ``compile`` or DDP it is evaluated uncompiled
and unwrapped (evaluation is off the training clock).

Evaluating the average, never copying it back, is the difference from
:mod:`speedtrain.train.lookahead` (airbench), which copies its average into the model that goes on
training. One deliberate difference: cifar10-fast's
ghost batch norm keeps running statistics per split and, once its evaluation copy has been
switched to eval mode, evaluates with split 0's (an artefact of its lazy collation); speedtrain's
ghost batch norm keeps their mean, so the average here is of those means.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightEMA"]


class WeightEMA:
    """``start_epoch()`` before each epoch, ``step()`` after each optimiser step; evaluate ``average``."""

    def __init__(self, model: nn.Module, every: int = 5, momentum: float = 0.99) -> None:
        if every < 1 or not 0 < momentum < 1:
            raise ValueError(f"WeightEMA needs every >= 1 and momentum in (0, 1); got {every}, {momentum}")
        self.every, self.rho = every, momentum**every
        self.average = copy.deepcopy(model)
        self.average.requires_grad_(False)  # never trained: evaluation only
        # The state dicts' tensors share storage with the modules: updating them updates the average.
        self._live = [t for t in model.state_dict().values() if t.is_floating_point()]
        self._avg = [t for t in self.average.state_dict().values() if t.is_floating_point()]
        self._index = 0  # steps taken in this epoch

    def start_epoch(self) -> None:
        self._index = 0

    @torch.no_grad()
    def step(self) -> bool:
        """After an optimiser step: update the average if this is step 0, every, 2 every... of the
        epoch; return whether it was."""
        index, self._index = self._index, self._index + 1
        if index % self.every:
            return False
        torch._foreach_lerp_(self._avg, self._live, 1.0 - self.rho)  # rho * avg + (1 - rho) * model
        return True
