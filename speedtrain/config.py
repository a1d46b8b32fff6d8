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
import math
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

from speedtrain.errors import ConfigError

if TYPE_CHECKING:  # torch is imported lazily: validating a config should not need it
    import torch

# (channels, height, width, train images, test images, classes) of each dataset.
DATASET_SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    "cifar10": (3, 32, 32, 50_000, 10_000, 10),
    "fashion-mnist": (1, 28, 28, 60_000, 10_000, 10),
}
# Time-to-accuracy targets: 94% is DAWNBench's CIFAR-10 target; 93% for Fashion-MNIST is what
# a ResNet reaches in a few epochs in the student reports (state of the art is about 96%).
DEFAULT_TARGETS = {"cifar10": 0.94, "fashion-mnist": 0.93}

# Fields that only the ResNet-9 builder reads: refused with resnet18 unless left at default.
RESNET9_ONLY = ("residual", "layer_convs", "pool_before_bn")
# A machine-independent ceiling (a typo like 1000 would fork a thousand processes); the CLI
# also warns above the machine's CPU count (speedtrain.resources).
MAX_WORKERS = 256


def _f(default: Any, help: str) -> Any:
    """A dataclass field whose help line (with its unit) feeds the CLI and the docs."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    # --- data -------------------------------------------------------------------------
    dataset: Literal["cifar10", "fashion-mnist"] = _f("cifar10", "dataset: cifar10 or fashion-mnist")
    data_dir: str = _f("data", "folder (or .tar/.tar.xz archive) holding the dataset")
    download: bool = _f(False, "let torchvision download the dataset into data-dir if missing (ignored with synthetic)")
    synthetic: bool = _f(False, "random data of the dataset's shape (throughput only: accuracy is meaningless)")
    train_subset: int | None = _f(None, "use only the first N training images (images; none = all)")
    test_subset: int | None = _f(None, "use only the first N test images (images; none = all)")
    # --- model ------------------------------------------------------------------------
    model: Literal["resnet9", "resnet18", "resnet20", "airbench"] = _f("resnet9", "resnet9 (myrtle.ai DAWNBench), resnet18 (student reports), resnet20 (He et al.'s CIFAR network, the optimiser-grid study) or airbench (airbench94: 2x2 whitening conv, three conv-pool blocks of 64/256/256 channels, no residual)")
    width: float = _f(1.0, "channel width multiplier (0.5 = 'channel halving')")
    stem: Literal["cifar", "imagenet"] = _f("cifar", "resnet18 stem: cifar (3x3 conv) or imagenet (7x7 stride-2 conv + max-pool)")
    downsample: Literal["maxpool", "strided", "strided1x1"] = _f("maxpool", "downsampling: maxpool (conv then 2x2 max-pool), strided (3x3 stride-2 conv), strided1x1 (1x1 stride-2 conv)")
    activation: Literal["relu", "celu", "gelu"] = _f("relu", "activation: relu, celu or gelu")
    celu_alpha: float = _f(0.075, "CELU alpha (myrtle.ai bag of tricks value)")
    residual: tuple[int, ...] = _f((1, 3), "resnet9: layers (1-3) followed by a residual branch, comma-separated; empty = none")
    layer_convs: int = _f(1, "resnet9: conv-BN-activation groups per layer (2 = the backbone's repeated BN-ReLU)")
    pool_before_bn: bool = _f(False, "resnet9: max-pool before batch norm and activation (bag of tricks)")
    global_pool: Literal["max", "avg"] | None = _f(None, "global pooling before the classifier: max or avg (none = max for resnet9, avg for resnet18)")
    output_scale: float | None = _f(None, "multiplier on the logits (none = 0.125 for resnet9 as myrtle.ai, 1 for resnet18)")
    bn_scale_init: float | None = _f(1.0, "initial batch-norm scale; none = uniform in [0, 1), old PyTorch's default")
    freeze_bn_scale: bool = _f(False, "keep batch-norm scales fixed at their initial value")
    ghost_bn_splits: int = _f(1, "ghost batch norm: statistics over batch-size/splits images (1 = plain BN)")
    # --- input ------------------------------------------------------------------------
    image_size: int | None = _f(None, "resize images once to this side (pixels; none = native 32 or 28)")
    # --- optimisation -----------------------------------------------------------------
    batch_size: int = _f(512, "training batch size (images)")
    epochs: float = _f(24, "training epochs (epochs; a fraction trains part of the last one: 9.9 = nine whole epochs and 90% of a tenth)")
    lr: float = _f(0.4, "peak learning rate (per mean-loss gradient)")
    schedule: Literal["piecewise", "onecycle", "constant", "step", "triangle"] = _f("piecewise", "LR schedule: piecewise (linear up, linear down to 0), onecycle (linear up, cosine down), constant (linear up, then flat), step (flat, times step-factor after each milestone; no warm-up), triangle (airbench94: linear from 0.2x peak up, then down to 0.07x peak)")
    warmup_frac: float = _f(5 / 24, "fraction of training at which the LR peaks")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(True, "Nesterov momentum")
    weight_decay: float = _f(5e-4, "L2 weight decay")
    label_smoothing: float = _f(0.0, "label smoothing (0 = off; myrtle.ai uses 0.2)")
    # --- augmentation -----------------------------------------------------------------
    crop_padding: int = _f(4, "random crop after reflect-padding by this many pixels (0 = no crop)")
    flip: bool = _f(True, "random horizontal flip")
    cutout: int = _f(8, "cutout square side (pixels; 0 = off)")
    tta_flip: bool = _f(False, "test-time augmentation: average the logits of the image and its mirror")
    # --- precision and memory ---------------------------------------------------------
    precision: Literal["fp32", "tf32", "fp16", "bf16", "half"] = _f("fp32", "fp32, tf32, fp16 (autocast + grad scaling), bf16 (autocast), half (fp16 weights, fp32 batch norm)")
    channels_last: bool = _f(False, "NHWC memory format for inputs and weights")
    compile: bool = _f(False, "torch.compile the model (compilation is excluded from the timer)")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = _f("default", "torch.compile mode when compile is on: default, reduce-overhead (CUDA graphs) or max-autotune (autotuned kernels, longest compile)")
    # --- data loader ------------------------------------------------------------------
    loader: Literal["gpu", "torch"] = _f("gpu", "gpu: dataset resident on the device, augmented in bulk there; torch: DataLoader augmenting on the CPU")
    workers: int = _f(0, "DataLoader worker processes (torch loader only)")
    # --- run --------------------------------------------------------------------------
    target_acc: float | None = _f(None, "test accuracy that counts as reached (fraction; none = 0.94 CIFAR-10, 0.93 Fashion-MNIST)")
    seed: int = _f(0, "random seed (model init, shuffling, augmentation)")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "auto (cuda if available), cpu or cuda")
    warmup_steps: int = _f(3, "untimed training steps run first for cuDNN autotuning and compilation, then undone")
    breakdown_steps: int = _f(3, "training steps profiled with torch.profiler after the timed run, off the clock, for the per-category breakdown of the step (steps; 0 = off)")
    # --- data-parallel training (speedtrain.distributed) --------------------------------
    nproc: int = _f(1, "processes training data-parallel (DDP through torchrun), one GPU each on CUDA; batch_size stays the global batch")
    # --- studies: optimiser grid (ResNet-20) and the 100-image regime (speedtrain.study) ---
    optimizer: Literal["sgd", "adam", "adamw"] = _f("sgd", "optimiser: sgd (momentum, nesterov, fused where the device has it), adam (L2 weight decay added to the gradient) or adamw (decoupled weight decay)")
    dropout: float = _f(0.0, "resnet20: dropout probability before the classifier (fraction)")
    milestones: tuple[int, ...] = _f((), "step schedule: epochs after which the LR is multiplied by step-factor, comma-separated")
    step_factor: float = _f(0.1, "step schedule: LR multiplier at each milestone")
    val_split: int = _f(0, "hold out the last N training images for validation (images; 0 = none); the best epoch by validation top-1 is recorded with its test accuracy")
    classes: tuple[int, ...] = _f((), "train and test on these classes only (dataset class indices, comma-separated; relabelled 0..K-1 in this order); empty = all")
    per_class: int | None = _f(None, "training images kept per class, the first ones in dataset order (images; none = all)")
    rotate90: bool = _f(False, "random rotation of each training image by a multiple of 90 degrees")
    patch_shuffle: int = _f(0, "patch shuffle: cut half the training images into a grid of this many patches per side and shuffle them (0 = off)")
    channel_isolation: bool = _f(False, "keep one random colour channel of half the training images, zeroing the others")
    mix_ratio: float = _f(0.0, "image mixing: blend each training image with a partner from its batch, this fraction of the partner, loss mixed alike (0 = off)")
    # --- the airbench-era ladder (speedtrain.airbench_train; issue 12) --------------------
    whiten: bool = _f(False, "airbench: fill the frozen 2x2 first conv from the training images' patch covariance before the clock starts (patch whitening; its seconds recorded as whiten_s)")
    whiten_images: int = _f(5000, "airbench: training images the whitening is computed from (images)")
    whiten_bias_epochs: int = _f(3, "airbench with whiten: epochs during which the whitening conv's bias learns before it is frozen (epochs)")
    dirac_init: bool = _f(False, "identity (dirac) initialisation of the first input-channel filters of every 3x3 conv (airbench; resnet9 too)")
    bn_bias_lr_scale: float = _f(1.0, "learning-rate multiplier of the batch-norm shifts, same absolute weight decay (airbench: 64 with freeze-bn-scale; sgd only)")
    lookahead_every: int = _f(0, "lookahead: every this many steps, move an EMA of the weights towards them and copy it back (steps; 0 = off, airbench 5)")
    alt_flip: bool = _f(False, "alternating flip: each image mirrored in alternate epochs from a random first choice, instead of at random each epoch (needs flip and loader gpu)")
    tta_translate: int = _f(0, "test-time augmentation: also average over the images shifted up-left and down-right by this many pixels, each with its mirror under tta-flip (pixels; 0 = off, airbench 1)")

    def __post_init__(self) -> None:
        for name in ("residual", "milestones", "classes"):
            if isinstance(getattr(self, name), list):  # accept lists from JSON
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _validate(self)

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


@dataclass(frozen=True)
class FieldSpec:
    """What a field's annotation allows, read once with ``typing`` (never by parsing text)."""

    name: str
    kind: type  # bool, int, float, str, or tuple (of whole numbers)
    optional: bool  # ``X | None``: none is allowed
    choices: tuple[str, ...]  # the values of a ``Literal[...]``; empty when any value of kind goes
    default: Any
    help: str
    group: str = "run"  # the --help group (OPTION_GROUPS)


# --help groups of the CLI's options; a field not listed here is shown under "run".
OPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "data_dir", "download", "synthetic", "train_subset", "test_subset", "image_size",
             "crop_padding", "flip", "cutout", "tta_flip", "loader", "workers", "val_split", "classes", "per_class",
             "rotate90", "patch_shuffle", "channel_isolation", "mix_ratio"),
    "model": ("model", "width", "stem", "downsample", "activation", "celu_alpha", "residual", "layer_convs",
              "pool_before_bn", "global_pool", "output_scale", "bn_scale_init", "freeze_bn_scale", "ghost_bn_splits",
              "dropout"),
    "precision": ("precision", "channels_last", "compile", "compile_mode"),
    "schedule": ("batch_size", "epochs", "lr", "schedule", "warmup_frac", "momentum", "nesterov", "weight_decay",
                 "label_smoothing", "optimizer", "milestones", "step_factor"),
    "run": ("target_acc", "seed", "device", "warmup_steps"),
}


def _spec(f: dataclasses.Field, hint: Any) -> FieldSpec:
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"TrainConfig.{f.name}: only 'X | None' unions are supported")
        optional, hint = len(args) < len(typing.get_args(hint)), args[0]
    values: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        values, hint = typing.get_args(hint), str
    elif typing.get_origin(hint) is tuple and typing.get_args(hint) == (int, ...):
        hint = tuple
    if hint not in (bool, int, float, str, tuple) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"TrainConfig.{f.name}: unsupported annotation {f.type!r}")
    group = next((g for g, names in OPTION_GROUPS.items() if f.name in names), "run")
    return FieldSpec(f.name, hint, optional, values, f.default, f.metadata["help"], group)


@functools.cache
def field_specs() -> dict[str, FieldSpec]:
    """Every field's spec, in declaration order: the validator and the CLI both read these."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: _spec(f, hints[f.name]) for f in dataclasses.fields(TrainConfig)}


def choices(name: str) -> tuple[str, ...]:
    """The allowed values of a choice field (``dataset``, ``device``...), for CLIs to offer."""
    spec = field_specs().get(name)
    if spec is None or not spec.choices:
        raise ValueError(f"{name!r} is not a choice field of TrainConfig")
    return spec.choices


# Read by models.py; the list itself is the field's Literal.
PRECISIONS = choices("precision")


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name} must be {allowed}; got {value!r}")


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
               tuple: "a list of whole numbers"}


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_type(cfg: TrainConfig) -> None:
    """Check each value against its annotation; NaN and inf are refused for every float field
    (``x <= 0`` is false for NaN, and inf passes checks that have no upper bound)."""
    for spec in field_specs().values():
        value = getattr(cfg, spec.name)
        if value is None:
            if not spec.optional:
                _fail(spec.name, value, _TYPE_WORDS[spec.kind] + ", not none")
            continue
        if spec.choices:
            if not isinstance(value, str) or value not in spec.choices:
                _fail(spec.name, value, "one of " + ", ".join(spec.choices) + (", or none" if spec.optional else ""))
            continue
        if spec.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and _is_finite(value)
        elif spec.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, spec.kind)
        if not ok:
            _fail(spec.name, value, _TYPE_WORDS[spec.kind] + (", or none" if spec.optional else ""))


def _validate(cfg: TrainConfig) -> None:
    _check_type(cfg)
    if not 0 < cfg.width <= 4:
        _fail("width", cfg.width, "a number in (0, 4]")
    if cfg.celu_alpha <= 0:
        _fail("celu_alpha", cfg.celu_alpha, "a number above 0")
    if any(not isinstance(r, int) or isinstance(r, bool) or r not in (1, 2, 3) for r in cfg.residual) or len(set(cfg.residual)) != len(cfg.residual):
        _fail("residual", cfg.residual, "distinct layer numbers from 1, 2, 3 (or empty)")
    if cfg.layer_convs not in (1, 2):
        _fail("layer_convs", cfg.layer_convs, "1 or 2")
    if cfg.output_scale is not None and cfg.output_scale <= 0:
        _fail("output_scale", cfg.output_scale, "a number above 0, or none for the model's default")
    if cfg.bn_scale_init is not None and cfg.bn_scale_init <= 0:
        _fail("bn_scale_init", cfg.bn_scale_init, "a number above 0, or none for uniform random")
    if cfg.ghost_bn_splits < 1:
        _fail("ghost_bn_splits", cfg.ghost_bn_splits, "a whole number of at least 1")
    if cfg.image_size is not None and not 8 <= cfg.image_size <= 512:
        _fail("image_size", cfg.image_size, "a side in pixels from 8 to 512, or none for the native size")
    if cfg.batch_size < 1:
        _fail("batch_size", cfg.batch_size, "a whole number of at least 1")
    if cfg.epochs <= 0:
        _fail("epochs", cfg.epochs, "a number of epochs above 0 (9.9 trains nine whole epochs and 90% of a tenth)")
    if cfg.lr <= 0:
        _fail("lr", cfg.lr, "a number above 0")
    if not 0 <= cfg.warmup_frac < 1:
        _fail("warmup_frac", cfg.warmup_frac, "a fraction in [0, 1)")
    if not 0 <= cfg.momentum < 1:
        _fail("momentum", cfg.momentum, "a number in [0, 1)")
    if cfg.nesterov and cfg.momentum == 0:
        raise ConfigError("nesterov needs momentum above 0; got momentum 0 (set --no-nesterov or a momentum)")
    if cfg.weight_decay < 0:
        _fail("weight_decay", cfg.weight_decay, "a number of at least 0")
    if not 0 <= cfg.label_smoothing < 1:
        _fail("label_smoothing", cfg.label_smoothing, "a fraction in [0, 1)")
    if cfg.crop_padding < 0:
        _fail("crop_padding", cfg.crop_padding, "a whole number of pixels of at least 0")
    if cfg.cutout < 0:
        _fail("cutout", cfg.cutout, "a whole number of pixels of at least 0")
    if not 0 <= cfg.workers <= MAX_WORKERS:
        _fail("workers", cfg.workers, f"a whole number from 0 to {MAX_WORKERS}")
    if cfg.target_acc is not None and not 0 < cfg.target_acc <= 1:
        _fail("target_acc", cfg.target_acc, "a fraction in (0, 1]")
    if cfg.warmup_steps < 0:
        _fail("warmup_steps", cfg.warmup_steps, "a whole number of at least 0")
    if not 0 <= cfg.breakdown_steps <= 100:
        _fail("breakdown_steps", cfg.breakdown_steps, "a whole number of steps from 0 (off) to 100")
    if cfg.nproc < 1 or cfg.batch_size % cfg.nproc:
        _fail("nproc", cfg.nproc, f"a whole number of at least 1 that divides batch_size {cfg.batch_size}")
    if not 0 <= cfg.seed < 2**63:
        _fail("seed", cfg.seed, "a whole number from 0 to 2**63-1")
    if not cfg.data_dir.strip():
        _fail("data_dir", cfg.data_dir, "a folder or archive path")
    _, _, _, n_train_all, n_test_all, _ = DATASET_SHAPES[cfg.dataset]
    for name, n_all in (("train_subset", n_train_all), ("test_subset", n_test_all)):
        value = getattr(cfg, name)
        if value is not None and not 1 <= value <= n_all:
            _fail(name, value, f"a whole number of images from 1 to {n_all} ({cfg.dataset}), or none for all")

    # --- combinations -----------------------------------------------------------------
    _, side, _ = cfg.input_shape
    if cfg.crop_padding >= side:
        raise ConfigError(f"crop_padding {cfg.crop_padding} must be smaller than the image side {side}")
    if cfg.cutout > side:
        raise ConfigError(f"cutout {cfg.cutout} must be at most the image side {side}")
    if cfg.stem == "imagenet" and cfg.model != "resnet18":
        raise ConfigError(f"stem 'imagenet' is for resnet18 only; model {cfg.model!r} takes stem 'cifar'")
    if cfg.model != "resnet9":
        defaults = TrainConfig.__dataclass_fields__
        for name in RESNET9_ONLY:
            if getattr(cfg, name) != defaults[name].default:
                raise ConfigError(f"{name} applies to resnet9 only; got {name}={getattr(cfg, name)!r} with model {cfg.model!r}")
    if cfg.model == "resnet18" and cfg.downsample == "strided1x1":
        # ResNet-18's strided shortcut is already a 1x1 stride-2 conv; a 1x1 main path too is
        # a network neither the reports nor the myrtle.ai series used.
        raise ConfigError("downsample 'strided1x1' is for resnet9 only; resnet18 takes maxpool or strided")
    if cfg.pool_before_bn and cfg.downsample != "maxpool":
        raise ConfigError(f"pool_before_bn needs downsample 'maxpool'; got downsample {cfg.downsample!r}")
    if cfg.batch_size % cfg.ghost_bn_splits:
        raise ConfigError(f"ghost_bn_splits {cfg.ghost_bn_splits} must divide batch_size {cfg.batch_size}")
    if cfg.workers and cfg.loader != "torch":
        raise ConfigError(f"workers applies to loader 'torch' only; got workers={cfg.workers} with loader {cfg.loader!r}")
    from speedtrain.studyconfig import train_images, validate_study  # its own module: config.py is long

    validate_study(cfg)
    from speedtrain.airbench_config import validate_airbench  # issue 12's fields

    validate_airbench(cfg)
    n_train = train_images(cfg)
    if n_train < cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {n_train} training images (train_subset, classes, per_class, val_split); every step uses a full batch")


def check_device(cfg: TrainConfig, device_type: str) -> None:
    """Refuse the options that the resolved device cannot run.

    On ``"cuda"`` the current CUDA device's compute capability decides: ``tf32`` before Ampere
    would silently run as fp32, so it is refused with the reason (the benchmark plugin turns
    this error into a skip).
    """
    if cfg.precision != "tf32":
        return
    from speedtrain.capability import device_capability, tf32_refusal

    reason = tf32_refusal(device_capability(device_type) if device_type == "cuda" else None)
    if reason is not None:
        on = "" if device_type == "cuda" else f" (device {device_type})"
        raise ConfigError(f"{reason}{on}; use fp32, fp16, bf16 or half")


def resolve_device(cfg: TrainConfig) -> torch.device:
    """The torch device the config asks for; a clear error if CUDA is asked for but absent."""
    import torch

    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use device cpu or auto")
    else:
        device = torch.device(cfg.device)
    check_device(cfg, device.type)
    return device
