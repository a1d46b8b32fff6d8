"""Image mixing in the training step (the 100-image study): every image blended with a partner
from its batch (:class:`ImageMix`), and the summed loss that blends the two labels' losses
alike (:func:`cross_entropy`). With ``mix_ratio`` 0 nothing is mixed and the loss is the plain
summed cross-entropy. The study's other parts live by concern: the class subset in
:mod:`speedtrain.data.selection`, its augmentations in :mod:`speedtrain.data.augment`, the
validation hold-out in :mod:`speedtrain.data.datasets`, the optimiser switch in
:mod:`speedtrain.train.optimizers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from speedtrain.data import augment

if TYPE_CHECKING:
    from speedtrain.config.trainconfig import TrainConfig

# The randomised augmentations of the study apply to half the images (the other half stay as
# they are), as flip does; rotations draw 0..3 quarter turns, so a quarter stay unrotated.
class ImageMix:
    """Image mixing in the training step: every image blended with a partner from its batch.

    Its own generator on the device (seeded from the run's seed), restarted by :meth:`reset`
    after the warm-up, so the timed run draws what it would have drawn without one."""

    def __init__(self, ratio: float, seed: int, device: torch.device) -> None:
        self.ratio, self.seed = ratio, seed
        self.generator = torch.Generator(device=device)
        self.reset()

    @classmethod
    def build(cls, cfg: "TrainConfig", device: torch.device) -> Optional["ImageMix"]:
        return cls(cfg.mix_ratio, cfg.seed, device) if cfg.mix_ratio > 0 else None

    def reset(self) -> None:
        self.generator.manual_seed(self.seed + 1)  # not the loader's stream (seeded with seed)

    def __call__(self, images: Tensor) -> augment.MixedBatch:
        return augment.mix_images(images, self.ratio, self.generator)


def cross_entropy(logits: Tensor, labels: Tensor, mixed: Optional[augment.MixedBatch],
                  label_smoothing: float) -> Tensor:
    """The summed training loss; with mixing, the two labels' losses blended as the images were
    (cross-entropy is linear in its target, so this equals the soft-target loss)."""
    loss = F.cross_entropy(logits, labels, reduction="sum", label_smoothing=label_smoothing)
    if mixed is None:
        return loss
    other = F.cross_entropy(logits, labels[mixed.partner], reduction="sum", label_smoothing=label_smoothing)
    return torch.lerp(loss, other, mixed.ratio)
