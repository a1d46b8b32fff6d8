"""The two networks the benchmarks train: myrtle.ai's ResNet-9 and the student reports' ResNet-18.

ResNet-9 is the DAWNBench network of myrtle.ai's "How to train your ResNet" series as in their
``cifar10-fast`` code (part 4, "Architecture"): a prep conv, three conv-BN-act layers each
followed by a 2x2 max-pool, residual branches after layers 1 and 3, global max-pool and a
bias-free linear classifier whose logits are scaled by 0.125. ResNet-18 is the standard
BasicBlock [2, 2, 2, 2] network with a CIFAR (3x3) or ImageNet (7x7 + max-pool) stem.

Every knob of :class:`~speedtrain.config.TrainConfig` that changes the network is read here,
through one ``conv_bn`` helper and one ``batch_norm`` helper, so a knob means the same thing
in both networks. Both models are ``nn.Sequential`` of named stages ending in ``head``, so
``model[:-1]`` gives the feature extractor.

Max-pools use ``ceil_mode=True``: on even sides (CIFAR's 32, and 24/48/96) this is exactly
myrtle.ai's floor-mode pool; on odd sides (Fashion-MNIST's 28 -> 7) it keeps the last row, so
'maxpool' and the strided variants give feature maps of the same size (a fair speed
comparison) and a 1x1 map never pools away to nothing (ResNet-18's ImageNet stem at side 8).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.config import PRECISIONS, TrainConfig
from speedtrain.errors import ConfigError

__all__ = [
    "GhostBatchNorm2d",
    "Residual",
    "Scale",
    "BasicBlock",
    "build_model",
    "resnet20",
    "prepare_for_precision",
    "count_parameters",
]

# Channel widths of the four stages of both networks before the width multiplier.
BASE_WIDTHS = (64, 128, 256, 512)


class _GroupedBatchNorm(torch.autograd.Function):
    """Batch norm of a (B, S, C, H, W) view with statistics per (s, c) over (B, H, W), computed in
    the view's own memory format: every op is a reduction or an element-wise op, whose output
    keeps the input's strides, so an NHWC batch is never permuted to NCHW and back.

    Statistics and arithmetic are in fp32 (as cuDNN's batch norm) whatever the input dtype; the
    output and input gradient are written in the input's dtype. Saved for backward: the input
    (not an fp32 copy) and the per-group statistics.
    """

    @staticmethod
    def forward(ctx: Any, x5: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        var, mean = torch.var_mean(x5.float(), dim=_GROUP_DIMS, correction=0, keepdim=True)
        invstd = torch.rsqrt(var + eps)
        scale = _per_channel(weight) * invstd
        shift = _per_channel(bias) - mean * scale
        y = torch.addcmul(shift, x5, scale, out=torch.empty_like(x5))  # fp32 math, one write in x's dtype
        ctx.save_for_backward(x5, weight, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor, *_: Any) -> tuple[Optional[torch.Tensor], ...]:
        x5, weight, mean, invstd = ctx.saved_tensors
        m = x5.numel() // mean.numel()  # values per statistic
        xhat = (x5.float() - mean) * invstd
        g = grad_y.float()
        sum_g = g.sum(_GROUP_DIMS, keepdim=True)
        sum_gx = (g * xhat).sum(_GROUP_DIMS, keepdim=True)
        a = _per_channel(weight) * invstd
        grad_x = (g - sum_g / m - xhat * (sum_gx / m)) * a
        grad_w = sum_gx.sum((0, 1)).flatten().to(weight.dtype)
        grad_b = sum_g.sum((0, 1)).flatten().to(weight.dtype)
        return grad_x.to(x5.dtype), grad_w, grad_b, None


_GROUP_DIMS = (0, 3, 4)  # (B, S, C, H, W): one statistic per (S, C)


def _per_channel(param: torch.Tensor) -> torch.Tensor:
    return param.float().view(1, 1, -1, 1, 1)


class GhostBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics come from ``splits`` sub-batches (myrtle.ai part 8,
    "Bag of tricks": ghost batch norm over 32 images regularises at batch size 512).

    Sub-batch s holds images s, s+S, s+2S... (batches are shuffled, so this interleaved split
    is as good as contiguous chunks). For NCHW input the batch (N, C, H, W) is viewed, without
    a copy, as (N/S, C*S, H, W) and runs one fused batch norm: "channel" s*C + c is channel c
    of sub-batch s. That view does not exist for an NHWC (channels_last) batch, so there the
    statistics are computed on the (N/S, S, C, H, W) view in the batch's own layout
    (:class:`_GroupedBatchNorm`) instead of copying to NCHW and back. The running statistics
    are kept per channel (size C, as in ``nn.BatchNorm2d``): each step updates S copies of
    them and stores their mean, which is the same linear update as keeping S sets and
    averaging them at eval time. Evaluation is therefore plain batch norm, and the state dict
    has the same shapes as ``nn.BatchNorm2d``.
    """

    def __init__(self, num_features: int, splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if splits < 1:
            raise ValueError(f"splits must be at least 1; got {splits}")
        self.splits = splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.splits
        if s == 1 or not self.training or not self.track_running_stats:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % s:
            raise ValueError(f"ghost batch norm with {s} splits needs a batch divisible by {s}; got {n} images")
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        if x.is_contiguous():
            return self._forward_nchw(x, s, momentum)
        weight = self.weight if self.weight is not None else torch.ones_like(self.running_mean)
        bias = self.bias if self.bias is not None else torch.zeros_like(self.running_mean)
        y, mean, var = _GroupedBatchNorm.apply(x.view(n // s, s, c, h, w), weight, bias, self.eps)
        with torch.no_grad():  # the unbiased variance, as F.batch_norm's running update
            m = (n // s) * h * w
            unbiased = var * (m / max(m - 1, 1))
            self.running_mean.lerp_(mean.view(s, c).mean(0), momentum)
            self.running_var.lerp_(unbiased.view(s, c).mean(0), momentum)
        return y.view(n, c, h, w)

    def _forward_nchw(self, x: torch.Tensor, s: int, momentum: float) -> torch.Tensor:
        n, c, h, w = x.shape
        mean, var = self.running_mean.repeat(s), self.running_var.repeat(s)
        weight = self.weight.repeat(s) if self.weight is not None else None
        bias = self.bias.repeat(s) if self.bias is not None else None
        y = F.batch_norm(x.view(n // s, c * s, h, w), mean, var, weight, bias, True, momentum, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(mean.view(s, c).mean(0))
            self.running_var.copy_(var.view(s, c).mean(0))
        return y.view(n, c, h, w)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", splits={self.splits}"


class Residual(nn.Module):
    """``x + branch(x)``, with no activation after the sum (cifar10-fast's Residual)."""

    def __init__(self, *branch: nn.Module) -> None:
        super().__init__()
        self.branch = nn.Sequential(*branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Scale(nn.Module):
    """Multiply by a constant: ResNet-9's 0.125 on the logits (myrtle.ai part 4)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


def batch_norm(channels: int, cfg: TrainConfig) -> nn.BatchNorm2d:
    """The one batch norm of both networks, honouring the config's batch-norm knobs."""
    if cfg.ghost_bn_splits > 1:
        bn: nn.BatchNorm2d = GhostBatchNorm2d(channels, cfg.ghost_bn_splits)
    else:
        bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        if cfg.bn_scale_init is None:
            bn.weight.uniform_(0.0, 1.0)  # PyTorch's default before 1.2, which myrtle.ai's baseline had
        else:
            bn.weight.fill_(cfg.bn_scale_init)
    # Frozen scales (myrtle.ai part 8, "Bag of tricks"): no gradient, so the optimizer skips them.
    bn.weight.requires_grad_(not cfg.freeze_bn_scale)
    return bn


def activation(cfg: TrainConfig) -> nn.Module:
    if cfg.activation == "celu":
        return nn.CELU(cfg.celu_alpha, inplace=True)  # myrtle.ai part 8: smoothed ReLU, alpha 0.075
    if cfg.activation == "gelu":
        return nn.GELU()
    return nn.ReLU(inplace=True)


def conv_bn(
    c_in: int,
    c_out: int,
    cfg: TrainConfig,
    *,
    kernel: int = 3,
    stride: int = 1,
    pool: bool = False,
    act: bool = True,
) -> nn.Sequential:
    """conv -> BN [-> activation], optionally with a 2x2 max-pool.

    The conv has no bias: the batch norm's shift that follows makes one redundant. The pool
    goes after the activation, or between conv and BN with ``cfg.pool_before_bn`` (myrtle.ai
    part 8: BN and activation then run on a quarter of the pixels).
    """
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    post = [("bn", batch_norm(c_out, cfg))] + ([("act", activation(cfg))] if act else [])
    layers = [("conv", conv)]
    if pool:
        pooling = [("pool", nn.MaxPool2d(2, ceil_mode=True))]
        layers += pooling + post if cfg.pool_before_bn else post + pooling
    else:
        layers += post
    return nn.Sequential(OrderedDict(layers))


def head(c_in: int, cfg: TrainConfig, *, bias: bool) -> nn.Sequential:
    """Global pool (adaptive, so any input side works) -> flatten -> linear -> logit scale."""
    pool = nn.AdaptiveMaxPool2d(1) if cfg.pool == "max" else nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(
        OrderedDict(
            pool=pool,
            flatten=nn.Flatten(),
            linear=nn.Linear(c_in, cfg.num_classes, bias=bias),
            scale=Scale(cfg.logit_scale),
        )
    )


def _widths(cfg: TrainConfig) -> list[int]:
    # Channel halving (student reports) and other multipliers: round, never below one channel.
    return [max(1, round(c * cfg.width)) for c in BASE_WIDTHS]


# --- ResNet-9 ---------------------------------------------------------------------------------

# How a ResNet-9 layer's conv downsamples: (kernel, stride, max-pool after it).
_RESNET9_DOWNSAMPLE = {
    "maxpool": (3, 1, True),  # myrtle.ai: conv at full resolution, then 2x2 max-pool
    "strided": (3, 2, False),  # the same conv at stride 2: a quarter of the conv FLOPs
    "strided1x1": (1, 2, False),  # 1x1 stride-2 conv: cheaper still, sees a quarter of the pixels
}


def _resnet9_layer(c_in: int, c_out: int, cfg: TrainConfig, residual: bool) -> nn.Sequential:
    kernel, stride, pool = _RESNET9_DOWNSAMPLE[cfg.downsample]
    blocks = [conv_bn(c_in, c_out, cfg, kernel=kernel, stride=stride, pool=pool)]
    if cfg.layer_convs == 2:
        # myrtle.ai part 4's backbone variant: a second conv-BN-act after the downsampling.
        blocks.append(conv_bn(c_out, c_out, cfg))
    if residual:
        blocks.append(Residual(conv_bn(c_out, c_out, cfg), conv_bn(c_out, c_out, cfg)))
    return nn.Sequential(*blocks)


def _resnet9(cfg: TrainConfig) -> nn.Sequential:
    w = _widths(cfg)
    stages: OrderedDict[str, nn.Module] = OrderedDict(prep=conv_bn(cfg.input_shape[0], w[0], cfg))
    if cfg.whiten:  # myrtle.ai part 8: frozen 3x3 patch whitening, then a learnt 1x1 conv
        from speedtrain.whitening import whitening_prep  # it imports this module

        stages["prep"] = whitening_prep(cfg.input_shape[0], w[0], batch_norm(w[0], cfg), activation(cfg))
    for i in (1, 2, 3):
        stages[f"layer{i}"] = _resnet9_layer(w[i - 1], w[i], cfg, residual=i in cfg.residual)
    stages["head"] = head(w[3], cfg, bias=False)  # cifar10-fast's classifier has no bias
    return nn.Sequential(stages)


# --- ResNet-18 --------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv-BNs with an identity shortcut, or a 1x1 conv-BN one when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: TrainConfig) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, cfg, stride=stride)
        self.conv2 = conv_bn(c_out, c_out, cfg, act=False)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = conv_bn(c_in, c_out, cfg, kernel=1, stride=stride, act=False)
        self.act = activation(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


def _resnet18_stage(c_in: int, c_out: int, cfg: TrainConfig, downsample: bool) -> nn.Sequential:
    blocks: list[nn.Module] = []
    stride = 1
    if downsample and cfg.downsample == "maxpool":
        # Pool at the stage entry so both the main path and the shortcut see the pooled map.
        blocks.append(nn.MaxPool2d(2, ceil_mode=True))
    elif downsample:
        stride = 2  # the standard ResNet: first conv and 1x1 shortcut at stride 2
    blocks += [BasicBlock(c_in, c_out, stride, cfg), BasicBlock(c_out, c_out, 1, cfg)]
    return nn.Sequential(*blocks)


def _resnet18(cfg: TrainConfig) -> nn.Sequential:
    # TrainConfig refuses downsample 'strided1x1' here: ResNet-18's shortcut is already one.
    w = _widths(cfg)
    c_in = cfg.input_shape[0]
    if cfg.stem == "imagenet":
        stem = nn.Sequential(
            conv_bn(c_in, w[0], cfg, kernel=7, stride=2), nn.MaxPool2d(3, stride=2, padding=1)
        )
    else:
        stem = conv_bn(c_in, w[0], cfg)
    stages: OrderedDict[str, nn.Module] = OrderedDict(stem=stem)
    for i in range(4):
        stages[f"layer{i + 1}"] = _resnet18_stage(w[max(i - 1, 0)], w[i], cfg, downsample=i > 0)
    stages["head"] = head(w[3], cfg, bias=True)
    return nn.Sequential(stages)


# --- public API -------------------------------------------------------------------------------


def build_model(cfg: TrainConfig) -> nn.Module:
    """The network ``cfg`` describes, in fp32 on the CPU, in training mode."""
    if cfg.model == "airbench":  # its own module (issue 12); imported here: it imports this one
        from speedtrain.airbench_train import build_airbench

        return build_airbench(cfg)
    if cfg.model == "resnet9":
        net = _resnet9(cfg)
    elif cfg.model == "resnet18":
        net = _resnet18(cfg)
    elif cfg.model == "resnet20":
        net = resnet20(cfg.input_shape[0], cfg.num_classes, cfg.width, cfg.dropout, cfg)
    else:
        raise ConfigError(f"model must be one of resnet9, resnet18, resnet20, airbench; got {cfg.model!r}")
    if cfg.dirac_init:  # airbench's identity init, on a ResNet alone
        from speedtrain.airbench import dirac_init_

        dirac_init_(net)
    return net


def prepare_for_precision(model: nn.Module, precision: str) -> nn.Module:
    """Convert ``model`` in place for ``precision`` and return it.

    'half' is myrtle.ai's mixed precision (part 1, cifar10-fast): every weight in fp16 except
    the batch norms (ghost ones included), which stay fp32 for stable statistics. Batch norm
    takes an fp16 input with fp32 parameters natively (cuDNN; and the CPU in torch 2.14) and
    returns fp16, so no casts are inserted. The caller feeds fp16 inputs. Every other
    precision (fp32, tf32, and the autocast modes fp16/bf16) keeps the fp32 model unchanged.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "half":
        model.half()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.float()
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements: all of them by default (the network's size, the number the
    reports quote), or only those with ``requires_grad`` (frozen BN scales excluded).

    Buffers (batch-norm running statistics) are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --- ResNet-20 (the optimiser-grid study) ----------------------------------------------------

RESNET20_WIDTHS = (16, 32, 64)  # He et al. 2016, section 4.2: the CIFAR ResNets' three stages


def resnet20(in_channels: int, num_classes: int, width: float = 1.0, dropout: float = 0.0,
             cfg: Optional[TrainConfig] = None) -> nn.Sequential:
    """He et al.'s CIFAR ResNet-20 (about 0.27M parameters), with dropout before the classifier.

    A 3x3 conv-BN-act stem, three stages of three :class:`BasicBlock` (16, 32, 64 channels,
    times ``width``), stride-2 downsampling in the first conv of stages 2 and 3, global average
    pooling, dropout, a linear classifier with bias. The shortcut that changes shape is
    ``BasicBlock``'s 1x1 stride-2 conv-BN projection (He et al.'s option B; their CIFAR
    network used option A, zero-padding), so the blocks are those of ResNet-18 and every
    batch-norm and activation knob means the same here; it adds 2,752 parameters, which keeps
    the network at the published 0.27M. ``cfg`` supplies those knobs (none = plain batch norm
    with unit scales, ReLU); its model, width, pooling and logit-scale fields are not read.
    """
    knobs = cfg if cfg is not None else TrainConfig()
    w = [max(1, round(c * width)) for c in RESNET20_WIDTHS]
    stages: OrderedDict[str, nn.Module] = OrderedDict(stem=conv_bn(in_channels, w[0], knobs))
    c_in = w[0]
    for i, c_out in enumerate(w):
        stride = 1 if i == 0 else 2
        blocks = [BasicBlock(c_in, c_out, stride, knobs)] + [BasicBlock(c_out, c_out, 1, knobs) for _ in range(2)]
        stages[f"layer{i + 1}"] = nn.Sequential(*blocks)
        c_in = c_out
    stages["head"] = nn.Sequential(OrderedDict(
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), dropout=nn.Dropout(dropout),
        linear=nn.Linear(c_in, num_classes),
    ))
    return nn.Sequential(stages)
