"""Validation of the airbench-era fields of :class:`~speedtrain.config.TrainConfig` (issue 12).

The airbench ladder (patch whitening, dirac init, scaled batch-norm shift rate, lookahead,
alternating flip, translation TTA, the ``airbench`` network) adds fields whose checks would
push ``config.py`` past a readable length; ``config._validate`` calls
:func:`validate_airbench` after its own checks, with the same one-line :class:`ConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speedtrain.errors import ConfigError
from speedtrain.studyconfig import fail

if TYPE_CHECKING:
    from speedtrain.config import TrainConfig

# ResNet knobs the airbench network does not have (its GELU, max-pools, max-pool head, plain
# batch norm with scale 1 are fixed): refused unless left at their defaults.
NOT_AIRBENCH = ("activation", "celu_alpha", "downsample", "global_pool", "bn_scale_init", "ghost_bn_splits")


def validate_airbench(cfg: "TrainConfig") -> None:
    """The airbench fields, and the ResNet fields the airbench network does not read."""
    if cfg.whiten and cfg.model not in ("airbench", "resnet9"):
        raise ConfigError(f"whiten applies to model airbench (its 2x2 first conv) or resnet9 (myrtle.ai's 3x3) only; got model {cfg.model!r}")
    if cfg.whiten_images < 1:
        fail("whiten_images", cfg.whiten_images, "a whole number of images of at least 1")
    if cfg.whiten_bias_epochs < 0:
        fail("whiten_bias_epochs", cfg.whiten_bias_epochs, "a whole number of epochs of at least 0")
    if cfg.bn_bias_lr_scale <= 0:
        fail("bn_bias_lr_scale", cfg.bn_bias_lr_scale, "a number above 0")
    if cfg.bn_bias_lr_scale != 1 and cfg.optimizer != "sgd":
        raise ConfigError(f"bn_bias_lr_scale applies to optimizer sgd only; got optimizer {cfg.optimizer!r}")
    if cfg.lookahead_every < 0:
        fail("lookahead_every", cfg.lookahead_every, "a whole number of steps of at least 0 (0 = off)")
    if cfg.alt_flip and not cfg.flip:
        raise ConfigError("alt_flip needs flip on: it decides which epochs mirror an image")
    if cfg.alt_flip and cfg.loader != "gpu":
        raise ConfigError(f"alt_flip needs loader 'gpu' (the torch loader's workers do not know the epoch); got loader {cfg.loader!r}")
    _, side, _ = cfg.input_shape
    if not 0 <= cfg.tta_translate < side // 2:
        fail("tta_translate", cfg.tta_translate, f"a whole number of pixels from 0 to {side // 2 - 1}")
    if cfg.model == "airbench":
        from speedtrain.config import TrainConfig

        for name in NOT_AIRBENCH:
            if getattr(cfg, name) != TrainConfig.__dataclass_fields__[name].default:
                raise ConfigError(f"{name} does not apply to model airbench; got {name}={getattr(cfg, name)!r}")
