"""Every check of a :class:`~speedtrain.config.trainconfig.TrainConfig`, grouped by role as the
fields are. ``TrainConfig`` runs :func:`validate` when it is built, so an invalid value or
combination never reaches the trainer, and the CLI refuses exactly what the API refuses. Each
refusal is one :class:`ConfigError` line naming the field, what is allowed and what was given.

Machine-dependent limits (CPU count, memory, the GPU's capability) are not checked here: a saved
config must load anywhere (see :mod:`speedtrain.hw.resources` and :mod:`speedtrain.hw.device`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from speedtrain.common.errors import ConfigError
from speedtrain.config.dataset_shapes import DATASET_SHAPES
from speedtrain.config.fields import FieldSpec

# Fields that only the ResNet-9 builder reads: refused with another model unless left at default.
RESNET9_ONLY = ("residual", "layer_convs", "pool_before_bn")
# ResNet knobs the airbench network does not have (its GELU, max-pools, max-pool head, plain
# batch norm with scale 1 are fixed): refused unless left at their defaults.
NOT_AIRBENCH = ("activation", "celu_alpha", "downsample", "global_pool", "bn_scale_init", "ghost_bn_splits")
# A machine-independent ceiling (a typo like 1000 would fork a thousand processes); the CLI
# also warns above the machine's CPU count (speedtrain.hw.resources).
MAX_WORKERS = 256

_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
               tuple: "a list of whole numbers"}


def fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name} must be {allowed}; got {value!r}")


def validate(cfg: Any, specs: dict[str, FieldSpec]) -> None:
    """Types first, then each role's fields, then what the roles must agree on."""
    _check_types(cfg, specs)
    _data(cfg)
    _model(cfg)
    _augmentation(cfg)
    _optimisation(cfg)
    _loader_run_parallel(cfg)
    n_train = train_images(cfg)
    if n_train < 1:
        raise ConfigError(f"val_split {cfg.val_split} leaves no training image; it must be smaller than the "
                          f"{n_train + cfg.val_split} training images")
    if n_train < cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {n_train} training images (train_subset, "
                          "classes, per_class, val_split); every step uses a full batch")


def train_images(cfg: Any) -> int:
    """How many images train at most: the class subset's, per class, first N, less the held-out ones."""
    n_all, n_classes = DATASET_SHAPES[cfg.dataset][3], DATASET_SHAPES[cfg.dataset][5]
    n = n_all * len(cfg.classes) // n_classes if cfg.classes else n_all
    if cfg.per_class is not None:
        n = min(n, cfg.per_class * cfg.num_classes)
    if cfg.train_subset is not None:
        n = min(n, cfg.train_subset)
    return n - cfg.val_split


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_types(cfg: Any, specs: dict[str, FieldSpec]) -> None:
    """Each value against its annotation; NaN and inf are refused for every float field
    (``x <= 0`` is false for NaN, and inf passes checks that have no upper bound)."""
    for spec in specs.values():
        value = getattr(cfg, spec.name)
        if value is None:
            if not spec.optional:
                fail(spec.name, value, _TYPE_WORDS[spec.kind] + ", not none")
            continue
        if spec.choices:
            if not isinstance(value, str) or value not in spec.choices:
                fail(spec.name, value, "one of " + ", ".join(spec.choices) + (", or none" if spec.optional else ""))
            continue
        if spec.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _is_finite(value)
        elif spec.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, spec.kind)
        if not ok:
            fail(spec.name, value, _TYPE_WORDS[spec.kind] + (", or none" if spec.optional else ""))


def _whole_numbers(values: tuple) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _at_default(cfg: Any, name: str) -> bool:
    default = next(f.default for f in dataclasses.fields(cfg) if f.name == name)
    return getattr(cfg, name) == default


# --- data -------------------------------------------------------------------------------------


def _data(cfg: Any) -> None:
    if not cfg.data_dir.strip():
        fail("data_dir", cfg.data_dir, "a folder or archive path")
    _, _, _, n_train_all, n_test_all, n_classes = DATASET_SHAPES[cfg.dataset]
    for name, n_all in (("train_subset", n_train_all), ("test_subset", n_test_all)):
        value = getattr(cfg, name)
        if value is not None and not 1 <= value <= n_all:
            fail(name, value, f"a whole number of images from 1 to {n_all} ({cfg.dataset}), or none for all")
    if cfg.image_size is not None and not 8 <= cfg.image_size <= 512:
        fail("image_size", cfg.image_size, "a side in pixels from 8 to 512, or none for the native size")
    if (not _whole_numbers(cfg.classes) or any(not 0 <= c < n_classes for c in cfg.classes)
            or len(set(cfg.classes)) != len(cfg.classes)):
        fail("classes", cfg.classes, f"distinct class indices from 0 to {n_classes - 1} (or empty for all)")
    if len(cfg.classes) == 1:
        fail("classes", cfg.classes, "at least two classes (or empty for all)")
    if cfg.per_class is not None and cfg.per_class < 1:
        fail("per_class", cfg.per_class, "a whole number of images of at least 1, or none for all")
    if cfg.val_split < 0:
        fail("val_split", cfg.val_split, "a whole number of images of at least 0")


# --- model ------------------------------------------------------------------------------------


def _model(cfg: Any) -> None:
    if not 0 < cfg.width <= 4:
        fail("width", cfg.width, "a number in (0, 4]")
    if cfg.celu_alpha <= 0:
        fail("celu_alpha", cfg.celu_alpha, "a number above 0")
    if (not _whole_numbers(cfg.residual) or any(r not in (1, 2, 3) for r in cfg.residual)
            or len(set(cfg.residual)) != len(cfg.residual)):
        fail("residual", cfg.residual, "distinct layer numbers from 1, 2, 3 (or empty)")
    if cfg.layer_convs not in (1, 2):
        fail("layer_convs", cfg.layer_convs, "1 or 2")
    if cfg.output_scale is not None and cfg.output_scale <= 0:
        fail("output_scale", cfg.output_scale, "a number above 0, or none for the model's default")
    if cfg.bn_scale_init is not None and cfg.bn_scale_init <= 0:
        fail("bn_scale_init", cfg.bn_scale_init, "a number above 0, or none for uniform random")
    if cfg.ghost_bn_splits < 1:
        fail("ghost_bn_splits", cfg.ghost_bn_splits, "a whole number of at least 1")
    if cfg.batch_size % cfg.ghost_bn_splits:
        raise ConfigError(f"ghost_bn_splits {cfg.ghost_bn_splits} must divide batch_size {cfg.batch_size}")
    if not 0 <= cfg.dropout < 1:
        fail("dropout", cfg.dropout, "a fraction in [0, 1)")
    if cfg.whiten_images < 1:
        fail("whiten_images", cfg.whiten_images, "a whole number of images of at least 1")
    if cfg.whiten_bias_epochs < 0:
        fail("whiten_bias_epochs", cfg.whiten_bias_epochs, "a whole number of epochs of at least 0")
    # which network reads which knob
    if cfg.stem == "imagenet" and cfg.model != "resnet18":
        raise ConfigError(f"stem 'imagenet' is for resnet18 only; model {cfg.model!r} takes stem 'cifar'")
    if cfg.model != "resnet9":
        for name in RESNET9_ONLY:
            if not _at_default(cfg, name):
                raise ConfigError(f"{name} applies to resnet9 only; got {name}={getattr(cfg, name)!r} with model {cfg.model!r}")
    if cfg.model == "resnet18" and cfg.downsample == "strided1x1":
        # ResNet-18's strided shortcut is already a 1x1 stride-2 conv; a 1x1 main path too is
        # a network neither the reports nor the myrtle.ai series used.
        raise ConfigError("downsample 'strided1x1' is for resnet9 only; resnet18 takes maxpool or strided")
    if cfg.pool_before_bn and cfg.downsample != "maxpool":
        raise ConfigError(f"pool_before_bn needs downsample 'maxpool'; got downsample {cfg.downsample!r}")
    if cfg.dropout and cfg.model != "resnet20":
        raise ConfigError(f"dropout applies to resnet20 only; got dropout={cfg.dropout} with model {cfg.model!r}")
    if cfg.model == "resnet20":
        for name in ("global_pool", "output_scale"):
            if getattr(cfg, name) is not None:
                raise ConfigError(f"{name} does not apply to resnet20 (average pooling, unscaled logits); got {name}={getattr(cfg, name)!r}")
        if cfg.downsample != "maxpool":
            raise ConfigError(f"downsample does not apply to resnet20 (stride-2 convolutions); got downsample={cfg.downsample!r}")
    if cfg.whiten and cfg.model not in ("airbench", "resnet9"):
        raise ConfigError(f"whiten applies to model airbench (its 2x2 first conv) or resnet9 (myrtle.ai's 3x3) only; got model {cfg.model!r}")
    if cfg.model == "airbench":
        for name in NOT_AIRBENCH:
            if not _at_default(cfg, name):
                raise ConfigError(f"{name} does not apply to model airbench; got {name}={getattr(cfg, name)!r}")


# --- augmentation -----------------------------------------------------------------------------


def _augmentation(cfg: Any) -> None:
    _, side, _ = cfg.input_shape
    if cfg.crop_padding < 0:
        fail("crop_padding", cfg.crop_padding, "a whole number of pixels of at least 0")
    if cfg.crop_padding >= side:
        raise ConfigError(f"crop_padding {cfg.crop_padding} must be smaller than the image side {side}")
    if cfg.cutout < 0:
        fail("cutout", cfg.cutout, "a whole number of pixels of at least 0")
    if cfg.cutout > side:
        raise ConfigError(f"cutout {cfg.cutout} must be at most the image side {side}")
    if cfg.alt_flip and not cfg.flip:
        raise ConfigError("alt_flip needs flip on: it decides which epochs mirror an image")
    if cfg.alt_flip and cfg.loader != "gpu":
        raise ConfigError(f"alt_flip needs loader 'gpu' (the torch loader's workers do not know the epoch); got loader {cfg.loader!r}")
    if cfg.patch_shuffle < 0 or (cfg.patch_shuffle and side % cfg.patch_shuffle):
        fail("patch_shuffle", cfg.patch_shuffle, f"0 (off) or a grid side that divides the image side {side}")
    if not 0 <= cfg.mix_ratio <= 1:
        fail("mix_ratio", cfg.mix_ratio, "a fraction in [0, 1]")
    if not 0 <= cfg.tta_translate < side // 2:
        fail("tta_translate", cfg.tta_translate, f"a whole number of pixels from 0 to {side // 2 - 1}")


# --- optimiser and schedule -------------------------------------------------------------------


def _optimisation(cfg: Any) -> None:
    if cfg.batch_size < 1:
        fail("batch_size", cfg.batch_size, "a whole number of at least 1")
    if cfg.epochs <= 0:
        fail("epochs", cfg.epochs, "a number of epochs above 0 (9.9 trains nine whole epochs and 90% of a tenth)")
    if cfg.lr <= 0:
        fail("lr", cfg.lr, "a number above 0")
    if not 0 <= cfg.warmup_frac < 1:
        fail("warmup_frac", cfg.warmup_frac, "a fraction in [0, 1)")
    if not _whole_numbers(cfg.milestones) or any(m < 1 for m in cfg.milestones) or list(cfg.milestones) != sorted(cfg.milestones):
        fail("milestones", cfg.milestones, "increasing whole numbers of epochs of at least 1 (or empty)")
    if cfg.step_factor <= 0:
        fail("step_factor", cfg.step_factor, "a number above 0")
    if cfg.schedule != "step" and cfg.milestones:
        raise ConfigError(f"milestones apply to schedule 'step' only; got schedule {cfg.schedule!r}")
    if not 0 <= cfg.momentum < 1:
        fail("momentum", cfg.momentum, "a number in [0, 1)")
    if cfg.nesterov and cfg.momentum == 0:
        raise ConfigError("nesterov needs momentum above 0; got momentum 0 (set --no-nesterov or a momentum)")
    if cfg.weight_decay < 0:
        fail("weight_decay", cfg.weight_decay, "a number of at least 0")
    if cfg.bn_bias_lr_scale <= 0:
        fail("bn_bias_lr_scale", cfg.bn_bias_lr_scale, "a number above 0")
    if cfg.bn_bias_lr_scale != 1 and cfg.optimizer != "sgd":
        raise ConfigError(f"bn_bias_lr_scale applies to optimizer sgd only; got optimizer {cfg.optimizer!r}")
    if not 0 <= cfg.label_smoothing < 1:
        fail("label_smoothing", cfg.label_smoothing, "a fraction in [0, 1)")
    if cfg.lookahead_every < 0:
        fail("lookahead_every", cfg.lookahead_every, "a whole number of steps of at least 0 (0 = off)")
    if cfg.ema_every < 0:
        fail("ema_every", cfg.ema_every, "a whole number of steps of at least 0 (0 = off)")
    if not 0 < cfg.ema_momentum < 1:
        fail("ema_momentum", cfg.ema_momentum, "a number in (0, 1)")
    if cfg.ema_every and cfg.lookahead_every:
        # Two averages of the weights: which one is evaluated, and which one training continues
        # from, would be a third recipe that neither peer ran.
        raise ConfigError(f"ema_every and lookahead_every are two weight averages; use one "
                          f"(got ema_every={cfg.ema_every}, lookahead_every={cfg.lookahead_every})")
    if not 0 <= cfg.lr_floor < 1:
        fail("lr_floor", cfg.lr_floor, "a fraction of the peak LR in [0, 1)")
    if cfg.lr_floor_epochs < 0:
        fail("lr_floor_epochs", cfg.lr_floor_epochs, "a number of epochs of at least 0")
    if (cfg.lr_floor or cfg.lr_floor_epochs) and cfg.schedule != "piecewise":
        raise ConfigError(f"lr_floor and lr_floor_epochs apply to schedule 'piecewise' only; got schedule {cfg.schedule!r}")
    # lr_floor_epochs reaching back past the peak is allowed (a profile shortens a recipe's epochs
    # and keeps its fields): the decay is then empty and the LR drops to the floor at the peak.
    if cfg.sgd_form != "torch" and cfg.optimizer != "sgd":
        raise ConfigError(f"sgd_form applies to optimizer sgd only; got optimizer {cfg.optimizer!r}")


# --- loader, run, data-parallel ---------------------------------------------------------------


def _loader_run_parallel(cfg: Any) -> None:
    if not 0 <= cfg.workers <= MAX_WORKERS:
        fail("workers", cfg.workers, f"a whole number from 0 to {MAX_WORKERS}")
    if cfg.workers and cfg.loader != "torch":
        raise ConfigError(f"workers applies to loader 'torch' only; got workers={cfg.workers} with loader {cfg.loader!r}")
    if cfg.target_acc is not None and not 0 < cfg.target_acc <= 1:
        fail("target_acc", cfg.target_acc, "a fraction in (0, 1]")
    if not 0 <= cfg.seed < 2**63:
        fail("seed", cfg.seed, "a whole number from 0 to 2**63-1")
    if cfg.warmup_steps < 0:
        fail("warmup_steps", cfg.warmup_steps, "a whole number of at least 0")
    if not 0 <= cfg.breakdown_steps <= 100:
        fail("breakdown_steps", cfg.breakdown_steps, "a whole number of steps from 0 (off) to 100")
    if cfg.compile and cfg.warmup_steps == 0:  # compilation would run inside the first timed epoch
        raise ConfigError("compile needs warmup_steps of at least 1: compilation happens in the untimed warm-up; "
                          "got warmup_steps 0")
    if cfg.nproc < 1 or cfg.batch_size % cfg.nproc:
        fail("nproc", cfg.nproc, f"a whole number of at least 1 that divides batch_size {cfg.batch_size}")
    if not cfg.launch_timeout_s > 0:  # finite: the type check refuses inf and NaN
        fail("launch_timeout_s", cfg.launch_timeout_s, "a number of seconds above 0")
