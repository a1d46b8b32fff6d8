"""The building blocks every network here shares: batch norm (ghost batch norm included),
activation, conv-BN, the classifier head, the residual and BasicBlock units.

Every knob of :class:`~speedtrain.config.trainconfig.TrainConfig` that changes a block is read
here, through one ``conv_bn`` helper and one ``batch_norm`` helper, so a knob means the same
thing in every network (:mod:`speedtrain.models.resnets`, :mod:`speedtrain.models.airbench`).

Max-pools use ``ceil_mode=True``: on even sides (CIFAR's 32, and 24/48/96) this is exactly
myrtle.ai's floor-mode pool; on odd sides (Fashion-MNIST's 28 -> 7) it keeps the last row, so
'maxpool' and the strided variants give feature maps of the same size (a fair speed
comparison) and a 1x1 map never pools away to nothing (ResNet-18's ImageNet stem at side 8).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.config.trainconfig import TrainConfig

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


def widths(cfg: TrainConfig) -> list[int]:
    # Channel halving (student reports) and other multipliers: round, never below one channel.
    return [max(1, round(c * cfg.width)) for c in BASE_WIDTHS]


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


def dirac_init_(module: nn.Module, skip: Sequence[nn.Conv2d] = ()) -> int:
    """Set the first ``Cin`` filters of every ``nn.Conv2d`` in ``module`` to the identity.

    Works on any network (ResNet-9 too). ``skip`` lists convs to leave alone (the whitening
    conv, whose filters come from the data). A conv with fewer outputs than inputs gets the
    identity on its first ``Cout`` input channels. Returns how many convs were changed.
    """
    changed = 0
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d) and not any(conv is s for s in skip):
                w = conv.weight
                nn.init.dirac_(w[: w.shape[1]], groups=1)
                changed += 1
    return changed
