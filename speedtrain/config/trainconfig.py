"""The one configuration object: every knob the benchmark reports vary lives here.

A :class:`TrainConfig` is frozen and validated when it is built, so an invalid value or
combination never reaches the trainer. Each field carries its unit and a help line in its
metadata; the CLI turns the fields into ``--kebab-case`` options, so the two cannot drift.

Defaults are the myrtle.ai ResNet-9 DAWNBench recipe (24 epochs, batch 512, peak LR 0.4 at
epoch 5, SGD + Nesterov, weight decay 5e-4, crop + flip + 8x8 cutout) in fp32 with no
hardware-specific option switched on; benchmark cases change what they measure.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

from speedtrain.common.errors import ConfigError
from speedtrain.config.dataset_shapes import DATASET_SHAPES, DEFAULT_TARGETS
from speedtrain.config.fields import FieldSpec, config_field, specs_of
from speedtrain.config.validate import validate

__all__ = ["TrainConfig", "FieldSpec", "DATASET_SHAPES", "DEFAULT_TARGETS", "field_names", "field_specs", "choices",
           "PRECISIONS"]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob, grouped by role (the ``group`` of each field: ``speedtrain.config.fields.GROUPS``)."""

    # --- data --------------------------------------------------------------------------------
    dataset: Literal["cifar10", "fashion-mnist"] = config_field("cifar10", "dataset: cifar10 or fashion-mnist", "data")
    data_dir: str = config_field("data", "folder (or .tar/.tar.xz archive) holding the dataset", "data")
    download: bool = config_field(False, "let torchvision download the dataset into data-dir if missing (ignored with synthetic)", "data")
    synthetic: bool = config_field(False, "random data of the dataset's shape (throughput only: accuracy is meaningless)", "data")
    train_subset: int | None = config_field(None, "use only the first N training images (images; none = all)", "data")
    test_subset: int | None = config_field(None, "use only the first N test images (images; none = all)", "data")
    image_size: int | None = config_field(None, "resize images once to this side (pixels; none = native 32 or 28)", "data")
    classes: tuple[int, ...] = config_field((), "train and test on these classes only (dataset class indices, comma-separated; relabelled 0..K-1 in this order); empty = all", "data")
    per_class: int | None = config_field(None, "training images kept per class, the first ones in dataset order (images; none = all)", "data")
    val_split: int = config_field(0, "hold out the last N training images for validation (images; 0 = none); the best epoch by validation top-1 is recorded with its test accuracy", "data")
    # --- model -------------------------------------------------------------------------------
    model: Literal["resnet9", "resnet18", "resnet20", "airbench"] = config_field("resnet9", "resnet9 (myrtle.ai DAWNBench), resnet18 (student reports), resnet20 (He et al.'s CIFAR network, the optimiser-grid study) or airbench (airbench94: 2x2 whitening conv, three conv-pool blocks of 64/256/256 channels, no residual)", "model")
    width: float = config_field(1.0, "channel width multiplier (0.5 = 'channel halving')", "model")
    stem: Literal["cifar", "imagenet"] = config_field("cifar", "resnet18 stem: cifar (3x3 conv) or imagenet (7x7 stride-2 conv + max-pool)", "model")
    downsample: Literal["maxpool", "strided", "strided1x1"] = config_field("maxpool", "downsampling: maxpool (conv then 2x2 max-pool), strided (3x3 stride-2 conv), strided1x1 (1x1 stride-2 conv)", "model")
    activation: Literal["relu", "celu", "gelu"] = config_field("relu", "activation: relu, celu or gelu", "model")
    celu_alpha: float = config_field(0.075, "CELU alpha (myrtle.ai bag of tricks value)", "model")
    residual: tuple[int, ...] = config_field((1, 3), "resnet9: layers (1-3) followed by a residual branch, comma-separated; empty = none", "model")
    layer_convs: int = config_field(1, "resnet9: conv-BN-activation groups per layer (2 = the backbone's repeated BN-ReLU)", "model")
    pool_before_bn: bool = config_field(False, "resnet9: max-pool before batch norm and activation (bag of tricks)", "model")
    global_pool: Literal["max", "avg"] | None = config_field(None, "global pooling before the classifier: max or avg (none = max for resnet9, avg for resnet18)", "model")
    output_scale: float | None = config_field(None, "multiplier on the logits (none = 0.125 for resnet9 as myrtle.ai, 1 for resnet18)", "model")
    bn_scale_init: float | None = config_field(1.0, "initial batch-norm scale; none = uniform in [0, 1), old PyTorch's default", "model")
    freeze_bn_scale: bool = config_field(False, "keep batch-norm scales fixed at their initial value", "model")
    ghost_bn_splits: int = config_field(1, "ghost batch norm: statistics over batch-size/splits images (1 = plain BN)", "model")
    dropout: float = config_field(0.0, "resnet20: dropout probability before the classifier (fraction)", "model")
    dirac_init: bool = config_field(False, "identity (dirac) initialisation of the first input-channel filters of every 3x3 conv (airbench; resnet9 too)", "model")
    whiten: bool = config_field(False, "patch whitening, filled from the training images' patch covariance before the clock starts (its seconds recorded as whiten_s): airbench's frozen 2x2 first conv, or for resnet9 myrtle.ai's frozen 3x3 conv of 27 filters followed by a learnt 1x1 conv", "model")
    whiten_images: int = config_field(5000, "training images the whitening is computed from (images; airbench 5000, myrtle.ai 10000)", "model")
    whiten_bias_epochs: int = config_field(3, "airbench with whiten: epochs during which the whitening conv's bias learns before it is frozen (epochs)", "model")
    # --- augmentation ------------------------------------------------------------------------
    crop_padding: int = config_field(4, "random crop after reflect-padding by this many pixels (0 = no crop)", "augmentation")
    flip: bool = config_field(True, "random horizontal flip", "augmentation")
    alt_flip: bool = config_field(False, "alternating flip: each image mirrored in alternate epochs from a random first choice, instead of at random each epoch (needs flip and loader gpu)", "augmentation")
    cutout: int = config_field(8, "cutout square side (pixels; 0 = off)", "augmentation")
    rotate90: bool = config_field(False, "random rotation of each training image by a multiple of 90 degrees", "augmentation")
    patch_shuffle: int = config_field(0, "patch shuffle: cut half the training images into a grid of this many patches per side and shuffle them (0 = off)", "augmentation")
    channel_isolation: bool = config_field(False, "keep one random colour channel of half the training images, zeroing the others", "augmentation")
    mix_ratio: float = config_field(0.0, "image mixing: blend each training image with a partner from its batch, this fraction of the partner, loss mixed alike (0 = off)", "augmentation")
    tta_flip: bool = config_field(False, "test-time augmentation: average the logits of the image and its mirror", "augmentation")
    tta_translate: int = config_field(0, "test-time augmentation: also average over the images shifted up-left and down-right by this many pixels, each with its mirror under tta-flip (pixels; 0 = off, airbench 1)", "augmentation")
    # --- optimisation ------------------------------------------------------------------------
    optimizer: Literal["sgd", "adam", "adamw"] = config_field("sgd", "optimiser, each fused where the device has the kernel: sgd (momentum, nesterov), adam (L2 weight decay added to the gradient) or adamw (decoupled weight decay)", "optimisation")
    batch_size: int = config_field(512, "training batch size (images)", "optimisation")
    epochs: float = config_field(24, "training epochs (epochs; a fraction trains part of the last one: 9.9 = nine whole epochs and 90% of a tenth)", "optimisation")
    lr: float = config_field(0.4, "peak learning rate (per mean-loss gradient)", "optimisation")
    schedule: Literal["piecewise", "onecycle", "constant", "step", "triangle"] = config_field("piecewise", "LR schedule: piecewise (linear up, linear down to 0), onecycle (linear up, cosine down), constant (linear up, then flat), step (flat, times step-factor after each milestone; no warm-up), triangle (airbench94: linear from 0.2x peak up, then down to 0.07x peak)", "optimisation")
    warmup_frac: float = config_field(5 / 24, "fraction of training at which the LR peaks", "optimisation")
    lr_floor: float = config_field(0.0, "piecewise schedule: the LR decays to this fraction of the peak instead of 0 and stays there (fraction; cifar10-fast's EMA runs 0.1)", "optimisation")
    lr_floor_epochs: float = config_field(0.0, "piecewise schedule: the last epochs, held at lr-floor x peak (epochs; cifar10-fast's EMA runs 2)", "optimisation")
    milestones: tuple[int, ...] = config_field((), "step schedule: epochs after which the LR is multiplied by step-factor, comma-separated", "optimisation")
    step_factor: float = config_field(0.1, "step schedule: LR multiplier at each milestone", "optimisation")
    momentum: float = config_field(0.9, "SGD momentum", "optimisation")
    nesterov: bool = config_field(True, "Nesterov momentum", "optimisation")
    weight_decay: float = config_field(5e-4, "L2 weight decay", "optimisation")
    bn_bias_lr_scale: float = config_field(1.0, "learning-rate multiplier of the batch-norm shifts, same absolute weight decay (airbench: 64 with freeze-bn-scale; sgd only)", "optimisation")
    label_smoothing: float = config_field(0.0, "label smoothing (0 = off; myrtle.ai uses 0.2)", "optimisation")
    lookahead_every: int = config_field(0, "lookahead: every this many steps, move an EMA of the weights towards them and copy it back (steps; 0 = off, airbench 5)", "optimisation")
    ema_every: int = config_field(0, "EMA of the weights, for evaluation only: update it after every this many steps of each epoch, from the epoch's first (steps; 0 = off, cifar10-fast 5); training goes on from the model's own weights", "optimisation")
    ema_momentum: float = config_field(0.99, "EMA momentum per step: each update keeps momentum**ema-every of the average (cifar10-fast 0.99)", "optimisation")
    sgd_form: Literal["torch", "cifar10-fast"] = config_field("torch", "where SGD's learning rate enters: torch (a momentum buffer of gradients, stepped by the current LR) or cifar10-fast (the LR inside the buffer, v = m v - lr g, as its nesterov_update); they differ while the LR changes", "optimisation")
    # --- precision ---------------------------------------------------------------------------
    precision: Literal["fp32", "tf32", "fp16", "bf16", "half"] = config_field("fp32", "fp32, tf32, fp16 (autocast + grad scaling), bf16 (autocast), half (fp16 weights, fp32 batch norm)", "precision")
    channels_last: bool = config_field(False, "NHWC memory format for inputs and weights", "precision")
    compile: bool = config_field(False, "torch.compile the model (compilation is excluded from the timer)", "precision")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = config_field("default", "torch.compile mode when compile is on: default, reduce-overhead (CUDA graphs) or max-autotune (autotuned kernels, longest compile)", "precision")
    # --- loader ------------------------------------------------------------------------------
    loader: Literal["gpu", "torch"] = config_field("gpu", "gpu: dataset resident on the device, augmented in bulk there; torch: DataLoader augmenting on the CPU", "loader")
    workers: int = config_field(0, "DataLoader worker processes (torch loader only)", "loader")
    # --- run ---------------------------------------------------------------------------------
    target_acc: float | None = config_field(None, "test accuracy that counts as reached (fraction; none = 0.94 CIFAR-10, 0.93 Fashion-MNIST)", "run")
    seed: int = config_field(0, "random seed (model init, shuffling, augmentation)", "run")
    device: Literal["auto", "cpu", "cuda"] = config_field("auto", "auto (cuda if available), cpu or cuda", "run")
    warmup_steps: int = config_field(3, "untimed training steps run first for cuDNN autotuning and compilation, then undone", "run")
    breakdown_steps: int = config_field(3, "training steps profiled with torch.profiler after the timed run, off the clock, for the per-category breakdown of the step (steps; 0 = off)", "run")
    # --- parallel ----------------------------------------------------------------------------
    nproc: int = config_field(1, "processes training data-parallel (DDP through torchrun), one GPU each on CUDA; batch_size stays the global batch", "parallel")
    launch_timeout_s: float = config_field(3600.0, "data-parallel runs (nproc > 1): seconds the whole torchrun launch may take before it and its ranks are stopped with an error (seconds)", "parallel")

    def __post_init__(self) -> None:
        for name in ("residual", "milestones", "classes"):
            if isinstance(getattr(self, name), list):  # accept lists from JSON
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validate(self, field_specs())

    # --- derived values ---------------------------------------------------------------
    @property
    def target(self) -> float:
        """The target test accuracy (fraction), the dataset's default when not set."""
        return self.target_acc if self.target_acc is not None else DEFAULT_TARGETS[self.dataset]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of a model input after the one-time resize."""
        c, h, w = DATASET_SHAPES[self.dataset][:3]
        if self.image_size is not None:
            h = w = self.image_size
        return c, h, w

    @property
    def pool(self) -> str:
        """The global pooling in effect: the field, or the model's own default."""
        return self.global_pool or ("max" if self.model in ("resnet9", "airbench") else "avg")

    @property
    def logit_scale(self) -> float:
        """The logit multiplier in effect: the field, or the model's own default."""
        if self.output_scale is not None:
            return float(self.output_scale)
        return 0.125 if self.model == "resnet9" else 1 / 9 if self.model == "airbench" else 1.0

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else DATASET_SHAPES[self.dataset][5]

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed, validated again."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}; allowed: {', '.join(field_names())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("residual", "milestones", "classes"):  # JSON has lists
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}; allowed: {', '.join(field_names())}")
        return cls(**data)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


@functools.cache
def field_specs() -> dict[str, FieldSpec]:
    """Every field's spec, in declaration order: the validator and the CLI both read these."""
    return specs_of(TrainConfig)


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of a choice field (``dataset``, ``device``...), for CLIs to offer."""
    spec = field_specs().get(name)
    if spec is None or not spec.choices:
        raise ValueError(f"{name!r} is not a choice field of TrainConfig")
    return spec.choices


# Read by the models' registry; the list itself is the field's Literal.
PRECISIONS = choices("precision")
