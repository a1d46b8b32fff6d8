"""The airbench94 network and its initialisations (Keller Jordan, "94% on CIFAR-10 in 3.29
seconds on a single GPU", arXiv 2404.00498; reference code KellerJordan/cifar10-airbench).

Why a second network: airbench reaches 94% with about a third of ResNet-9's work per image
(0.71 against 2.27 GFLOP forward + backward) by trading the residual branches for a VGG-like
stack that is easy to optimise thanks to two initialisations:

- **Patch whitening** (:func:`init_whitening`): the first layer is a frozen 2x2 convolution,
  no padding, whose filters are the eigenvectors of the covariance of 2x2 patches of the
  training images, scaled by ``1 / sqrt(eigenvalue + eps)``, each once with each sign (so a
  GELU after it keeps both halves): ``2 * C * 2 * 2 = 24`` channels for RGB. Its output
  patches are decorrelated with unit variance. Computing it is work done before training;
  the paper adds its seconds to the run time, so :func:`init_whitening` returns them.
- **Identity (dirac) init** (:func:`dirac_init_`): each 3x3 conv with ``Cout >= Cin`` gets its
  first ``Cin`` filters set to the identity (``torch.nn.init.dirac_``), the rest left at
  PyTorch's default: an implicit residual connection without the residual's cost.

The network (:func:`airbench_net`; :func:`build_airbench` from a config, registered as ``airbench``): whitening conv (+ bias) -> GELU -> three blocks of
``conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU`` at widths 64/256/256, no
residual -> global max-pool -> linear (no bias) -> logits times 1/9. Convs have no bias (the
batch norm's shift makes it redundant). Batch norm (:func:`frozen_scale_batch_norm`) keeps
its scale frozen at 1 and learns only its shift, with PyTorch momentum 0.4 (airbench's "0.6"
is ``1 - momentum``) and eps 1e-12. The max-pools floor, as airbench's do: a 32 px image
gives maps of 31 -> 15 -> 7 -> 3.

The whitening conv's weight is always frozen; its bias learns for the first few epochs
(airbench: 3) and is then frozen; the trainer freezes it by its optimiser group's learning
rate (``hooks.RunHooks``), since DDP and torch.compile are built with the set of
parameters that need a gradient; :func:`set_whitening_bias_trainable` is for eager use. Like
:mod:`speedtrain.models.resnets`, the network is an ``nn.Sequential`` of named stages ending in
``head``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.models.blocks import Scale, dirac_init_
from speedtrain.models.registry import register
from speedtrain.models.whitening import fill_timed

__all__ = [
    "AIRBENCH_WIDTHS",
    "airbench_net",
    "frozen_scale_batch_norm",
    "dirac_init_",
    "whitening_filters",
    "init_whitening",
    "set_whitening_bias_trainable",
]

AIRBENCH_WIDTHS = (64, 256, 256)  # airbench94's three blocks at its base width 64


def frozen_scale_batch_norm(channels: int, momentum: float = 0.4, eps: float = 1e-12) -> nn.BatchNorm2d:
    """Batch norm whose scale stays 1 (no gradient) and whose shift learns.

    ``momentum`` is PyTorch's (weight of the new batch in the running statistics).
    """
    bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    bn.weight.requires_grad_(False)  # initialised to 1 by PyTorch
    return bn


def _block(c_in: int, c_out: int, bn_momentum: float, bn_eps: float) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        pool=nn.MaxPool2d(2),
        norm1=frozen_scale_batch_norm(c_out, bn_momentum, bn_eps),
        act1=nn.GELU(),
        conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        norm2=frozen_scale_batch_norm(c_out, bn_momentum, bn_eps),
        act2=nn.GELU(),
    ))


def airbench_net(
    widths: Sequence[int] = AIRBENCH_WIDTHS,
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    whiten_kernel: int = 2,
    dirac: bool = True,
    freeze_whiten: bool = True,
    bn_momentum: float = 0.4,
    bn_eps: float = 1e-12,
    logit_scale: float = 1 / 9,
) -> nn.Sequential:
    """The airbench94 network, in fp32 on the current default device, in training mode.

    The whitening layer is ``net.whiten.conv`` with ``2 * in_channels * whiten_kernel**2``
    filters; until :func:`init_whitening` fills it from training images it holds PyTorch's
    random init. ``freeze_whiten`` keeps its weight out of training (set it False for a run
    without whitening, where the layer learns like the others). ``dirac`` identity-initialises
    the 3x3 convs.
    """
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"airbench_net needs three block widths of at least 1; got {tuple(widths)}")
    whiten_width = 2 * in_channels * whiten_kernel**2
    whiten = nn.Conv2d(in_channels, whiten_width, whiten_kernel, padding=0, bias=True)
    whiten.weight.requires_grad_(not freeze_whiten)
    with torch.no_grad():
        whiten.bias.zero_()
    stages: OrderedDict[str, nn.Module] = OrderedDict(whiten=nn.Sequential(OrderedDict(conv=whiten, act=nn.GELU())))
    c_in = whiten_width
    for i, c_out in enumerate(widths, start=1):
        stages[f"block{i}"] = _block(c_in, c_out, bn_momentum, bn_eps)
        c_in = c_out
    stages["head"] = nn.Sequential(OrderedDict(
        pool=nn.AdaptiveMaxPool2d(1),  # airbench's MaxPool2d(3) on the 3x3 map, for any input side
        flatten=nn.Flatten(),
        linear=nn.Linear(c_in, num_classes, bias=False),
        scale=Scale(logit_scale),
    ))
    net = nn.Sequential(stages)
    if dirac:
        dirac_init_(net, skip=[whiten])
    return net


def _patches(images: Tensor, kernel: int) -> Tensor:
    """Every ``kernel`` x ``kernel`` patch (stride 1) of ``images`` as rows of a float32 matrix."""
    n, c, _, _ = images.shape
    p = images.float().unfold(2, kernel, 1).unfold(3, kernel, 1)  # (N, C, H', W', k, k)
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)


def whitening_filters(images: Tensor, kernel: int = 2, eps: float = 5e-4) -> Tensor:
    """``(C*k*k, C, k, k)`` filters mapping a patch to decorrelated, unit-variance coordinates.

    From the eigendecomposition ``S = V diag(l) V^T`` of the patches' second-moment matrix
    (the images are normalised, so this is their covariance up to the small mean), filter i
    is ``v_i / sqrt(l_i + eps)``, largest eigenvalue first. ``eps`` keeps the noise-level
    directions from being amplified without bound.
    """
    c = images.shape[1]
    x = _patches(images, kernel)
    second_moment = x.T @ x / x.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending
    filters = eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]
    return filters.flip(0).reshape(c * kernel * kernel, c, kernel, kernel)


def init_whitening(conv: nn.Conv2d, images: Tensor, eps: float = 5e-4) -> float:
    """Fill ``conv`` (the whitening layer) from normalised training ``images``; return the
    seconds it took, timed on the images' device (airbench uses the first 5000 images).

    The first half of the filters are :func:`whitening_filters`, the second half their
    negatives.
    """
    k = conv.kernel_size[0]
    if conv.out_channels != 2 * images.shape[1] * k * k:
        raise ValueError(f"a whitening conv for {images.shape[1]}-channel images and kernel {k} needs "
                         f"{2 * images.shape[1] * k * k} filters; got {conv.out_channels}")
    def both_signs(x: Tensor) -> Tensor:
        filters = whitening_filters(x, k, eps)
        return torch.cat((filters, -filters))

    return fill_timed(conv, images, both_signs)


def set_whitening_bias_trainable(net: nn.Module, trainable: bool) -> None:
    """Let the whitening conv's bias learn (airbench: the first 3 epochs) or freeze it.

    A frozen parameter gets no gradient, so SGD skips it (its momentum buffer waits unused).
    """
    net.whiten.conv.bias.requires_grad_(trainable)


@register("airbench")
def build_airbench(cfg: TrainConfig) -> nn.Sequential:
    """The airbench94 network at ``cfg.width`` times 64/256/256 channels.

    Its first conv is frozen (a whitening layer) only with ``cfg.whiten``; without it the
    2x2 conv learns like the others. Batch-norm scales are frozen at 1 with
    ``cfg.freeze_bn_scale`` (airbench), else they learn.
    """
    widths = [max(1, round(c * cfg.width)) for c in AIRBENCH_WIDTHS]
    net = airbench_net(widths, cfg.num_classes, in_channels=cfg.input_shape[0], dirac=cfg.dirac_init,
                       freeze_whiten=cfg.whiten, logit_scale=cfg.logit_scale)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(not cfg.freeze_bn_scale)
    return net
