"""FLOPs per training image, achieved FLOP/s and model FLOPs utilisation (MFU).

Why: an optimisation can make a run faster by doing less work (a smaller network, fewer
epochs, strided convolutions) or by doing the same work faster (precision, layout,
compilation). The FLOPs of a configuration tell the two apart, and MFU says how close a run
came to what its GPU can do.

What is counted: ``torch.utils.flop_counter.FlopCounterMode`` counts matrix multiplies and
convolutions only (``mm``/``addmm``/``bmm``, ``convolution`` and ``convolution_backward``,
attention kernels), at 2 FLOPs per multiply-accumulate, and for a convolution every output
position times the full kernel (zero padding is not discounted): ``2 * Cin * Cout * k * k *
Hout * Wout`` per image. Batch norm, activations, pooling, the loss and the optimiser step are
not counted; they are memory-bound and a few percent of the arithmetic. The count is what
MFU papers call "model FLOPs": the same figure whatever the precision or hardware.

Backward is about twice the forward: each convolution and linear layer computes the gradient
of its input and of its weight, each as costly as its forward. Autograd skips what nothing
needs, and the counter only sees what runs: the first convolution's input gradient is not
computed (the images need no gradient), nor is the weight gradient of a frozen layer (the
airbench whitening conv), nor the input gradient of a layer below which nothing trains. So
ResNet-9's backward is ``2 * forward - first conv`` (1.514 GFLOP, not 1.517).

The count runs once per network shape on the ``meta`` device (shapes only, no arithmetic, no
memory) with a batch of ``2 * ghost_bn_splits`` images in training mode, and is cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.models.registry import build_model
from speedtrain.hw.peaks import peak_flops

__all__ = [
    "FlopCount",
    "MfuFigure",
    "count_flops",
    "flop_count",
    "forward_flops_per_image",
    "train_flops_per_image",
    "achieved_flops_per_s",
    "mfu",
    "mfu_figure",
    "record_flops",
]

# Fields that cannot change the network's arithmetic; every other field (model, width,
# image_size, downsample, residual, layer_convs... and any field added later) is part of the
# cache key. Listing the non-shaping fields errs on the safe side: a new field costs at worst
# one more count, never a stale one.
NOT_SHAPING = frozenset({
    "data_dir", "download", "synthetic", "train_subset", "test_subset", "batch_size", "epochs",
    "lr", "schedule", "warmup_frac", "momentum", "nesterov", "weight_decay", "label_smoothing",
    "crop_padding", "flip", "cutout", "precision", "channels_last", "compile", "loader",
    "workers", "target_acc", "seed", "device", "warmup_steps",
    # issue 12's fields that change values, not shapes (whiten does: a frozen conv has no weight gradient)
    "whiten_images", "whiten_bias_epochs", "dirac_init", "freeze_bn_scale", "bn_bias_lr_scale",
    "lookahead_every", "alt_flip", "tta_translate",
})


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one image through a network (convolutions and matmuls, 2 per MAC)."""

    forward: float
    backward: float

    @property
    def train(self) -> float:
        """Forward + backward: one training step's work per image (the optimiser not counted)."""
        return self.forward + self.backward


@dataclass(frozen=True)
class MfuFigure:
    """An MFU (fraction of the datasheet peak) or, when there is none, why not."""

    value: Optional[float]
    reason: Optional[str] = None  # set exactly when value is None
    peak_flops_per_s: Optional[float] = None


def count_flops(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> FlopCount:
    """Count one forward and one backward of ``model`` on ``batch`` inputs, per image.

    ``model`` may live on any device; the inputs are made on the device of its first
    parameter (use ``meta`` to count without arithmetic). The model is left in training mode
    with gradients set; count on a throw-away copy.
    """
    device = next(model.parameters()).device
    x = torch.zeros(batch, *input_shape, device=device)
    model.train()
    with FlopCounterMode(display=False) as fwd:
        out = model(x)
    with FlopCounterMode(display=False) as bwd:
        out.float().sum().backward()
    return FlopCount(fwd.get_total_flops() / batch, bwd.get_total_flops() / batch)


def _shape_key(cfg: TrainConfig) -> tuple[tuple[str, Any], ...]:
    return tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in NOT_SHAPING)


_CACHE: dict[tuple[tuple[str, Any], ...], FlopCount] = {}


def flop_count(cfg: TrainConfig) -> FlopCount:
    """Forward and backward FLOPs per image of the network ``cfg`` builds (cached by shape)."""
    key = _shape_key(cfg)
    if key not in _CACHE:
        with torch.device("meta"):
            net = build_model(cfg)
        _CACHE[key] = count_flops(net, cfg.input_shape, batch=2 * cfg.ghost_bn_splits)
    return _CACHE[key]


def forward_flops_per_image(cfg: TrainConfig) -> float:
    return flop_count(cfg).forward


def train_flops_per_image(cfg: TrainConfig) -> float:
    """Forward + backward FLOPs per training image (a run does ``images seen`` times this)."""
    return flop_count(cfg).train


def achieved_flops_per_s(total_flops: float, seconds: float) -> Optional[float]:
    """FLOPs divided by the seconds they took; None when no time was measured."""
    return total_flops / seconds if seconds > 0 else None


def mfu(flops_per_s: Optional[float], peak_flops_per_s: Optional[float]) -> Optional[float]:
    """Achieved over peak FLOP/s (a fraction), or None when either is unknown."""
    if flops_per_s is None or not peak_flops_per_s:
        return None
    return flops_per_s / peak_flops_per_s


PeakLookup = Callable[[str, str], Optional[float]]


def _datasheet_peak(gpu_name: str, precision: str) -> Optional[float]:
    return peak_flops(gpu_name, precision)


def mfu_figure(
    flops_per_s: Optional[float],
    device_type: str,
    gpu_name: Optional[str],
    precision: str,
    peak_lookup: PeakLookup = _datasheet_peak,
    gpus: int = 1,
) -> MfuFigure:
    """MFU against the datasheet dense peak of ``gpus`` x ``gpu_name`` at ``precision`` (a
    data-parallel run's FLOP/s are those of all its GPUs), with the reason when there is none
    (CPU run, unnamed or unknown GPU, no time measured)."""
    if device_type != "cuda":
        return MfuFigure(None, f"no MFU on {device_type}: peaks are tabulated for NVIDIA GPUs only")
    if not gpu_name:
        return MfuFigure(None, "no MFU: the GPU's name is unknown")
    one = peak_lookup(gpu_name, precision)
    if one is None:
        return MfuFigure(None, f"no MFU: no datasheet {precision} peak for {gpu_name!r}")
    peak = one * gpus
    value = mfu(flops_per_s, peak)
    if value is None:
        return MfuFigure(None, "no MFU: no training time was measured", peak)
    return MfuFigure(value, None, peak)


def record_flops(result: Any, cfg: TrainConfig, images: int, device_type: str) -> None:
    """Fill a :class:`~speedtrain.records.result.RunResult`'s FLOP figures for ``images`` trained in its
    ``train_time_s``: FLOPs per image, total, achieved FLOP/s and MFU (or the reason there is
    none). On CUDA the GPU is ``result.device``, the name torch gives it; a data-parallel run
    (``cfg.nproc``) is measured against the peak of all its GPUs."""
    result.flops_per_image = train_flops_per_image(cfg)
    result.train_flops = result.flops_per_image * images
    result.achieved_flops_per_s = achieved_flops_per_s(result.train_flops, result.train_time_s or 0.0)
    figure = mfu_figure(result.achieved_flops_per_s, device_type, result.device if device_type == "cuda" else None,
                        cfg.precision, gpus=cfg.nproc)  # nproc > 1: the global batch's FLOPs on nproc GPUs
    result.mfu, result.mfu_reason, result.peak_flops_per_s = figure.value, figure.reason, figure.peak_flops_per_s
