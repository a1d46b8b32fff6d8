"""The ResNets, registered by name: myrtle.ai's ResNet-9, the student reports' ResNet-18 and He
et al.'s ResNet-20 (the optimiser-grid study), all on :mod:`speedtrain.models.blocks`.

ResNet-9 is the DAWNBench network of myrtle.ai's "How to train your ResNet" series as in their
``cifar10-fast`` code (part 4, "Architecture"): a prep conv, three conv-BN-act layers each
followed by a 2x2 max-pool, residual branches after layers 1 and 3, global max-pool and a
bias-free linear classifier whose logits are scaled by 0.125. ResNet-18 is the standard
BasicBlock [2, 2, 2, 2] network with a CIFAR (3x3) or ImageNet (7x7 + max-pool) stem. Each is
an ``nn.Sequential`` of named stages ending in ``head``, so ``model[:-1]`` gives the feature
extractor.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from torch import nn

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.models.blocks import BasicBlock, Residual, activation, batch_norm, conv_bn, dirac_init_, head, widths
from speedtrain.models.registry import register
from speedtrain.models.whitening import whitening_prep


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


@register("resnet9")
def resnet9(cfg: TrainConfig) -> nn.Sequential:
    w = widths(cfg)
    stages: OrderedDict[str, nn.Module] = OrderedDict(prep=conv_bn(cfg.input_shape[0], w[0], cfg))
    if cfg.whiten:  # myrtle.ai part 8: frozen 3x3 patch whitening, then a learnt 1x1 conv
        stages["prep"] = whitening_prep(cfg.input_shape[0], w[0], batch_norm(w[0], cfg), activation(cfg))
    for i in (1, 2, 3):
        stages[f"layer{i}"] = _resnet9_layer(w[i - 1], w[i], cfg, residual=i in cfg.residual)
    stages["head"] = head(w[3], cfg, bias=False)  # cifar10-fast's classifier has no bias
    return _dirac(nn.Sequential(stages), cfg)


# --- ResNet-18 --------------------------------------------------------------------------------


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


@register("resnet18")
def resnet18(cfg: TrainConfig) -> nn.Sequential:
    # TrainConfig refuses downsample 'strided1x1' here: ResNet-18's shortcut is already one.
    w = widths(cfg)
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
    return _dirac(nn.Sequential(stages), cfg)


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


@register("resnet20")
def _resnet20_from_config(cfg: TrainConfig) -> nn.Sequential:
    return _dirac(resnet20(cfg.input_shape[0], cfg.num_classes, cfg.width, cfg.dropout, cfg), cfg)


def _dirac(net: nn.Sequential, cfg: TrainConfig) -> nn.Sequential:
    if cfg.dirac_init:  # airbench's identity init, on a ResNet alone
        dirac_init_(net)
    return net
