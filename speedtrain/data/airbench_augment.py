"""Airbench's augmentation and test-time augmentation.

**Alternating flip** (arXiv 2404.00498): instead of mirroring each image with
probability 1/2 every epoch, each image gets one random bit for the whole run and is mirrored
in epoch ``e`` when ``bit XOR (e is odd)``. Every image is then seen both ways within any
two consecutive epochs, where independent flips repeat the same view half the time; the
paper finds it at least as good as random flipping wherever flipping helps.

**Translation** is :func:`speedtrain.data.augment.random_crop` of images reflect-padded by ``p``
(``crop_padding``): a shift uniform in ``[-p, p]`` on each axis, exactly airbench's
``batch_crop`` (airbench94 uses p = 2). Airbench flips before padding and myrtle.ai's
pipeline crops before flipping; with reflect padding the two orders give the same
distribution of images, so the existing crop is reused as is.

**Multi-crop TTA** (:func:`multicrop_logits`): the logits averaged over the image and its
mirror, and over one-pixel translations up-left and down-right (reflect padded): 6 views,
weighted 1/2 untranslated, 1/4 each translation (airbench's ``tta_level`` 2).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speedtrain.data import augment

__all__ = ["flip_bits", "alternating_flip_mask", "alternating_flip", "multicrop_logits"]


def flip_bits(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """One random bit per training image, drawn once per run (the flip in even epochs)."""
    return augment.flip_mask(n, generator, device)


def alternating_flip_mask(epoch: int, bits: Tensor) -> Tensor:
    """Which images to mirror in ``epoch`` (0-based): ``bits`` in even epochs, their
    complement in odd ones."""
    return bits ^ bool(epoch % 2)


def alternating_flip(images: Tensor, epoch: int, bits: Tensor) -> Tensor:
    """Mirror (left-right) the images of ``images`` that :func:`alternating_flip_mask` picks;
    ``bits[i]`` belongs to ``images[i]``."""
    mirror = alternating_flip_mask(epoch, bits).to(images.device)
    return torch.where(mirror[:, None, None, None], images.flip(-1), images)


def _owned(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``model`` whose every output is cloned before the next call: under ``compile_mode``
    reduce-overhead (CUDA-graph trees) a call's output lives in the graph's memory pool and the
    next call overwrites it ("accessing tensor output of CUDAGraphs that has been overwritten";
    issue 19). A clone of the logits, (N, classes), costs next to nothing beside a forward pass."""
    return lambda x: model(x).clone()


def _mirror_mean(model: Callable[[Tensor], Tensor], x: Tensor, flip: bool) -> Tensor:
    if not flip:
        return model(x)
    return 0.5 * (model(x) + model(x.flip(-1)))


def multicrop_logits(model: nn.Module, images: Tensor, *, flip: bool = True, translate: int = 1) -> Tensor:
    """Logits of ``images`` averaged over test-time views (call under ``torch.no_grad()``,
    model in eval mode).

    ``flip`` adds the mirror images; ``translate`` > 0 adds the images shifted by that many
    pixels up-left and down-right, each with its mirror when ``flip``. With neither it is
    ``model(images)``.
    """
    # more than one call whose outputs are combined: each output owned before the next call
    call: Callable[[Tensor], Tensor] = _owned(model) if flip or translate else model
    logits = _mirror_mean(call, images, flip)
    if translate == 0:
        return logits
    h, w = images.shape[-2:]
    t = translate
    padded = F.pad(images, (t, t, t, t), mode="reflect")
    shifted = (padded[..., :h, :w], padded[..., 2 * t:2 * t + h, 2 * t:2 * t + w])
    translated = sum(_mirror_mean(call, x, flip) for x in shifted) / 2
    return 0.5 * logits + 0.5 * translated
