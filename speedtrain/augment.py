"""Batch augmentations shared by both loaders (myrtle.ai "How to train your ResNet" style).

Every function takes a batch ``(N, C, H, W)`` and an explicit :class:`torch.Generator`, so a
seed fixes the output. The bulk GPU loader calls them once per epoch on the whole dataset; the
DataLoader path calls the very same functions per sample with ``N == 1``.

Random numbers are drawn on the generator's device and moved to the images' device, so a CPU
generator can drive augmentation of device-resident images and vice versa.

Cutout fills with 0 and is meant to run on *normalised* images, where 0 is the dataset mean
colour (as in myrtle.ai's code); on raw uint8 images it would paint black squares instead.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``n`` integers in ``[0, high)`` drawn on the generator's device, returned on ``device``."""
    return torch.randint(high, (n,), generator=generator, device=generator.device).to(device)


def reflect_pad(images: Tensor, padding: int) -> Tensor:
    """Pad height and width by ``padding`` pixels with reflection (done once, before cropping)."""
    if padding == 0:
        return images
    return F.pad(images, (padding,) * 4, mode="reflect")


def random_crop(images: Tensor, size: Sequence[int], generator: torch.Generator) -> Tensor:
    """Crop each image to ``size`` (H, W) at its own random offset.

    With images reflect-padded by ``p`` this is a random translation in ``[0, 2p]`` on each axis.
    One advanced-indexing gather does the whole batch, so there is no loop over images.
    """
    n, c, hp, wp = images.shape
    h, w = size
    if (h, w) == (hp, wp):
        return images
    dev = images.device
    top = _randint(hp - h + 1, n, generator, dev)
    left = _randint(wp - w + 1, n, generator, dev)
    rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (N, 1, h, 1)
    cols = (left[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (N, 1, 1, w)
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chans = torch.arange(c, device=dev)[None, :, None, None]
    return images[batch, chans, rows, cols]


def flip_mask(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Which of ``n`` images to mirror: each with probability 0.5."""
    return _randint(2, n, generator, device).bool()


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror (left-right) each image with probability 0.5."""
    mirror = flip_mask(images.shape[0], generator, images.device)
    return torch.where(mirror[:, None, None, None], images.flip(-1), images)


def cutout_mask(n: int, height: int, width: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Boolean ``(N, H, W)`` masks of one ``size`` x ``size`` square per image.

    The centre is uniform over the whole image and the square is clipped at the borders
    (DeVries & Taylor 2017), so squares near an edge cover fewer than ``size**2`` pixels.
    """
    top = _randint(height, n, generator, device) - size // 2
    left = _randint(width, n, generator, device) - size // 2
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size)  # (N, H)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size)  # (N, W)
    return in_rows[:, :, None] & in_cols[:, None, :]


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zero one random ``size`` x ``size`` square per image, in all channels (0 = off)."""
    if size == 0:
        return images
    n, _, h, w = images.shape
    mask = cutout_mask(n, h, w, size, generator, images.device)
    return images.masked_fill(mask[:, None], 0)


def normalize(images: Tensor, mean: Tensor, std: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images to ``(x / 255 - mean) / std`` in ``dtype``.

    ``mean`` and ``std`` are per-channel float32 tensors on the images' device. The arithmetic
    runs in float32 and is cast at the end, so fp16/bf16 batches are rounded only once.
    """
    shape = (1, -1, 1, 1)
    x = images.float().div_(255).sub_(mean.view(shape)).div_(std.view(shape))
    return x.to(dtype)
