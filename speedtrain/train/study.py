"""What the two accuracy studies add to the shared trainer (issue 14), called from a few lines
of ``data.py`` and ``train.py``:

- the 100-image regime: a class subset with at most N training images per class
  (:func:`select_classes`), the extra uint8 augmentations run by both loaders' pipeline
  (:class:`ExtraAugment`: 90-degree rotations, patch shuffle, colour-channel isolation) and
  image mixing, which needs a whole batch and its labels and so runs in the training step
  (:class:`ImageMix`, :func:`cross_entropy`);
- the optimiser grid: the optimiser switch (:func:`make_optimizer`: the trainer's fused SGD
  unchanged, or Adam / AdamW from :mod:`speedtrain.train.optimizers`) and the held-out validation
  images (:func:`holdout`).

Kept out of the trainer and the loaders so that the speed path reads as before: with the
fields at their defaults every function here is a no-op or returns the old object.
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


def make_optimizer(params: list[torch.Tensor], cfg: "TrainConfig", device: torch.device) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names, in the trainer's summed-loss convention. SGD is the
    trainer's own :func:`speedtrain.train.loop.make_sgd` (fused where the device has the kernel), so
    the default path is unchanged; ``airbench_train.scale_groups`` gives its groups the
    ``lr_scale`` of ``lr / batch``. Adam and AdamW set their own (see :mod:`speedtrain.train.optimizers`)."""
    if cfg.optimizer == "sgd":
        from speedtrain.train.loop import make_sgd  # the trainer imports this module

        return make_sgd(params, cfg, device)
    from speedtrain.train.optimizers import FUSED_ADAM_DEVICES, make_optimizer as textbook

    # fused where the device has it, as SGD: with fp16's GradScaler no overflow read-back per step
    return textbook(cfg.optimizer, params, cfg.lr, cfg.weight_decay, summed_over=cfg.batch_size,
                    fused=device.type in FUSED_ADAM_DEVICES)
