"""Validation of the study fields of :class:`~speedtrain.config.trainconfig.TrainConfig` (issue 14).

The optimiser-grid study (ResNet-20, optimiser, dropout, step schedule, validation split) and
the 100-image study (class subset, images per class, the extra augmentations) add fields
whose checks would push ``config.py`` past a readable length; ``config._validate`` calls
:func:`validate_study` after its own checks, with the same one-line :class:`ConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from speedtrain.common.errors import ConfigError

if TYPE_CHECKING:
    from speedtrain.config.trainconfig import TrainConfig


def fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name} must be {allowed}; got {value!r}")


def train_images(cfg: "TrainConfig") -> int:
    """How many images train at most: the class subset's, per class, first N, less the held-out ones."""
    from speedtrain.config.trainconfig import DATASET_SHAPES

    n_all, n_classes = DATASET_SHAPES[cfg.dataset][3], DATASET_SHAPES[cfg.dataset][5]
    n = n_all * len(cfg.classes) // n_classes if cfg.classes else n_all
    if cfg.per_class is not None:
        n = min(n, cfg.per_class * cfg.num_classes)
    if cfg.train_subset is not None:
        n = min(n, cfg.train_subset)
    return n - cfg.val_split


def validate_study(cfg: "TrainConfig") -> None:
    """The optimiser-grid and 100-image fields (speedtrain.train.study)."""
    from speedtrain.config.trainconfig import DATASET_SHAPES

    n_classes = DATASET_SHAPES[cfg.dataset][5]
    if not 0 <= cfg.dropout < 1:
        fail("dropout", cfg.dropout, "a fraction in [0, 1)")
    if cfg.dropout and cfg.model != "resnet20":
        raise ConfigError(f"dropout applies to resnet20 only; got dropout={cfg.dropout} with model {cfg.model!r}")
    if any(not isinstance(m, int) or isinstance(m, bool) or m < 1 for m in cfg.milestones) or list(cfg.milestones) != sorted(cfg.milestones):
        fail("milestones", cfg.milestones, "increasing whole numbers of epochs of at least 1 (or empty)")
    if cfg.step_factor <= 0:
        fail("step_factor", cfg.step_factor, "a number above 0")
    if cfg.schedule != "step" and cfg.milestones:
        raise ConfigError(f"milestones apply to schedule 'step' only; got schedule {cfg.schedule!r}")
    if cfg.val_split < 0:
        fail("val_split", cfg.val_split, "a whole number of images of at least 0")
    if any(not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < n_classes for c in cfg.classes) or len(set(cfg.classes)) != len(cfg.classes):
        fail("classes", cfg.classes, f"distinct class indices from 0 to {n_classes - 1} (or empty for all)")
    if len(cfg.classes) == 1:
        fail("classes", cfg.classes, "at least two classes (or empty for all)")
    if cfg.per_class is not None and cfg.per_class < 1:
        fail("per_class", cfg.per_class, "a whole number of images of at least 1, or none for all")
    if not 0 <= cfg.mix_ratio <= 1:
        fail("mix_ratio", cfg.mix_ratio, "a fraction in [0, 1]")
    _, side, _ = cfg.input_shape
    if cfg.patch_shuffle < 0 or (cfg.patch_shuffle and side % cfg.patch_shuffle):
        fail("patch_shuffle", cfg.patch_shuffle, f"0 (off) or a grid side that divides the image side {side}")
    if cfg.model == "resnet20":
        for name in ("global_pool", "output_scale"):
            if getattr(cfg, name) is not None:
                raise ConfigError(f"{name} does not apply to resnet20 (average pooling, unscaled logits); got {name}={getattr(cfg, name)!r}")
        if cfg.downsample != "maxpool":
            raise ConfigError(f"downsample does not apply to resnet20 (stride-2 convolutions); got downsample={cfg.downsample!r}")
    if train_images(cfg) < 1:
        raise ConfigError(f"val_split {cfg.val_split} leaves no training image; it must be smaller than the {train_images(cfg) + cfg.val_split} training images")
