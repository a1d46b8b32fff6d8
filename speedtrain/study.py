"""What the two accuracy studies add to the shared trainer (issue 14), called from a few lines
of ``data.py`` and ``train.py``:

- the 100-image regime: a class subset with at most N training images per class
  (:func:`select_classes`), the extra uint8 augmentations run by both loaders' pipeline
  (:class:`ExtraAugment`: 90-degree rotations, patch shuffle, colour-channel isolation) and
  image mixing, which needs a whole batch and its labels and so runs in the training step
  (:class:`ImageMix`, :func:`cross_entropy`);
- the optimiser grid: the optimiser switch (:func:`make_optimizer`: the trainer's fused SGD
  unchanged, or Adam / AdamW from :mod:`speedtrain.optimizers`) and the held-out validation
  images (:func:`holdout`).

Kept out of the trainer and the loaders so that the speed path reads as before: with the
fields at their defaults every function here is a no-op or returns the old object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from speedtrain import augment
from speedtrain.errors import DataError

if TYPE_CHECKING:
    from speedtrain.config import TrainConfig
    from speedtrain.data import Dataset

# The randomised augmentations of the study apply to half the images (the other half stay as
# they are), as flip does; rotations draw 0..3 quarter turns, so a quarter stay unrotated.
STUDY_P = 0.5


def select_classes(images: Tensor, labels: Tensor, classes: tuple[int, ...],
                   per_class: Optional[int]) -> tuple[Tensor, Tensor]:
    """The images of ``classes`` (all classes when empty), at most the first ``per_class`` of
    each in dataset order, labels renumbered ``0..K-1`` in the order ``classes`` names them.

    The dataset order is kept (classes stay interleaved), so a later "first N images" subset
    still mixes classes."""
    wanted = classes or tuple(range(int(labels.max()) + 1))
    lookup = torch.full((max(wanted) + 1,), -1, dtype=torch.long)
    lookup[list(wanted)] = torch.arange(len(wanted))
    new = torch.where(labels <= max(wanted), lookup[labels.clamp(max=max(wanted))], -1)
    keep = new >= 0
    if per_class is not None:
        # rank of each image within its class, in dataset order: kept while below per_class
        onehot = F.one_hot(new.clamp(min=0), len(wanted)) * keep[:, None]
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep &= rank < per_class
    index = keep.nonzero().squeeze(1)
    missing = [c for i, c in enumerate(wanted) if not bool((new[index] == i).any())]
    if missing:
        raise DataError(f"no images of class {missing[0]} in the data (classes {list(wanted)})")
    return images[index], new[index]


def holdout(data: "Dataset", n: int) -> tuple["Dataset", Optional["Dataset"]]:
    """``data`` without its last ``n`` training images, and a dataset whose *test* split is
    those images (so the trainer's test-batch code evaluates it); ``(data, None)`` for n = 0."""
    if n == 0:
        return data, None
    if n >= len(data.train_labels):
        raise DataError(f"val_split {n} leaves no training image out of {len(data.train_labels)}")
    keep = len(data.train_labels) - n
    train = dataclasses.replace(data, train_images=data.train_images[:keep], train_labels=data.train_labels[:keep])
    val = dataclasses.replace(data, test_images=data.train_images[keep:], test_labels=data.train_labels[keep:])
    return train, val


@dataclass(frozen=True)
class ExtraAugment:
    """The 100-image study's uint8 augmentations, after crop and flip, in both loaders (bulk
    per epoch on the device; per sample on the DataLoader path). All off: returns its input."""

    rotate90: bool = False
    patch_grid: int = 0  # grid side; 0 = off
    isolate_channel: bool = False

    @classmethod
    def from_config(cls, cfg: "TrainConfig") -> "ExtraAugment":
        return cls(cfg.rotate90, cfg.patch_shuffle, cfg.channel_isolation)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.rotate90:
            images = augment.random_rotate90(images, generator)
        if self.patch_grid:
            images = augment.patch_shuffle(images, self.patch_grid, generator, STUDY_P)
        if self.isolate_channel:
            images = augment.isolate_channel(images, generator, STUDY_P)
        return images


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
    trainer's own :func:`speedtrain.train.make_sgd` (fused where the device has the kernel), so
    the default path is unchanged; ``airbench_train.scale_groups`` gives its groups the
    ``lr_scale`` of ``lr / batch``. Adam and AdamW set their own (see :mod:`speedtrain.optimizers`)."""
    if cfg.optimizer == "sgd":
        from speedtrain.train import make_sgd  # the trainer imports this module

        return make_sgd(params, cfg, device)
    from speedtrain.optimizers import FUSED_ADAM_DEVICES, make_optimizer as textbook

    # fused where the device has it, as SGD: with fp16's GradScaler no overflow read-back per step
    return textbook(cfg.optimizer, params, cfg.lr, cfg.weight_decay, summed_over=cfg.batch_size,
                    fused=device.type in FUSED_ADAM_DEVICES)
