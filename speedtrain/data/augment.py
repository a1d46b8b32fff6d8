"""Batch augmentations shared by both loaders (myrtle.ai "How to train your ResNet" style).

Every function takes a batch ``(N, C, H, W)`` and an explicit :class:`torch.Generator`, so a
seed fixes the output. The bulk GPU loader calls them once per epoch on the whole dataset; the
DataLoader path calls the very same functions per sample with ``N == 1``.

Random numbers are drawn on the generator's device and moved to the images' device, so a CPU
generator can drive augmentation of device-resident images and vice versa.

Cutout fills with 0 and is meant to run on *normalised* images, where 0 is the dataset mean
colour (as in myrtle.ai's code); on raw uint8 images it would paint black squares instead.

The augmentations of the 100-image study (90-degree rotations, patch shuffle, colour-channel
isolation, image mixing) follow the same rules; see :func:`mix_images` for the one that needs
a whole batch (and its labels) and so cannot run per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from speedtrain.common.errors import ConfigError
from speedtrain.config.trainconfig import TrainConfig


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``n`` integers in ``[0, high)`` drawn on the generator's device, returned on ``device``."""
    return torch.randint(high, (n,), generator=generator, device=generator.device).to(device)


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """Uniform floats in ``[0, 1)`` drawn on the generator's device, returned on ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _chosen(n: int, p: float, generator: torch.Generator, device: torch.device) -> Tensor:
    """Which of ``n`` images an augmentation applies to: each with probability ``p``."""
    return _rand((n,), generator, device) < p


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

    The square always lies whole inside the image: its top-left corner is uniform over the
    ``(H - size + 1) x (W - size + 1)`` positions, as cifar10-fast's ``Cutout.options``
    (``x0 in range(W + 1 - w)``, core.py), so every image loses exactly ``size**2`` pixels
    and a corner pixel is cut with probability ``1 / (H - size + 1)**2`` (1/625 at 32 px and 8).
    DeVries & Taylor's centred, border-clipped square cut 56 px on average instead.
    """
    top = _randint(height - size + 1, n, generator, device)
    left = _randint(width - size + 1, n, generator, device)
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


# --- the 100-image study's augmentations ------------------------------------------------------


def rotation_turns(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Quarter turns for ``n`` images: each uniform in 0..3 (0 leaves the image as it is)."""
    return _randint(4, n, generator, device)


def random_rotate90(images: Tensor, generator: torch.Generator) -> Tensor:
    """Rotate each image by its own random multiple of 90 degrees (as ``torch.rot90`` over H, W).

    A rotation by k quarter turns is a transpose when k is odd, then a flip of the rows for k in
    {1, 2} and of the columns for k in {2, 3}; three batched selections do the whole batch, with
    no per-image loop and no host sync. Only square images can be transposed in place.
    """
    n, _, h, w = images.shape
    if h != w:
        raise ConfigError(f"90-degree rotations need square images; got {h}x{w} (turn rotations off or resize)")
    k = rotation_turns(n, generator, images.device).view(n, 1, 1, 1)
    x = torch.where(k % 2 == 1, images.transpose(-2, -1), images)
    x = torch.where((k == 1) | (k == 2), x.flip(-2), x)
    return torch.where(k >= 2, x.flip(-1), x)


def patch_shuffle(images: Tensor, grid: int, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Cut each chosen image (probability ``p``) into ``grid`` x ``grid`` patches and put them
    back in a random order of its own; the other images are left as they are.

    The permutation of image i comes from sorting ``grid**2`` uniform draws (a uniform random
    permutation, which may happen to be the identity); one gather moves every patch of the batch.
    """
    n, c, h, w = images.shape
    if grid < 1 or h % grid or w % grid:
        raise ConfigError(f"patch shuffle grid must be at least 1 and divide the image sides; got {grid} for {h}x{w}")
    if grid == 1:
        return images
    g, ph, pw, dev = grid, h // grid, w // grid, images.device
    order = _rand((n, g * g), generator, dev).argsort(dim=1)
    keep = torch.arange(g * g, device=dev).expand(n, -1)
    order = torch.where(_chosen(n, p, generator, dev)[:, None], order, keep)
    patches = images.reshape(n, c, g, ph, g, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, c, ph, pw)
    patches = patches[torch.arange(n, device=dev)[:, None], order]  # slot j gets patch order[j]
    return patches.reshape(n, g, g, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def isolate_channel(images: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Keep one random colour channel of each chosen image (probability ``p``) and zero the others.

    Meant for raw uint8 images, before :func:`normalize`, so that the result is the image seen
    through a red, green or blue filter (0 = no light in the other channels); after normalising,
    0 would be the mean colour instead. A one-channel image (Fashion-MNIST) has no other
    channel to drop, so this is a no-op there.
    """
    n, c = images.shape[:2]
    if c == 1:
        return images
    dev = images.device
    kept = _randint(c, n, generator, dev)
    keep = (torch.arange(c, device=dev) == kept[:, None]) | ~_chosen(n, p, generator, dev)[:, None]  # (N, C)
    return images.masked_fill(~keep[:, :, None, None], 0)


@dataclass(frozen=True)
class MixedBatch:
    """Images blended with partners from their own batch, and what the loss needs to follow.

    ``images[i] = (1 - ratio) * x[i] + ratio * x[partner[i]]``. Labels are not mixed here: the
    trainer either uses :meth:`targets` (soft targets for ``F.cross_entropy``) or mixes two
    losses, ``(1 - ratio) * loss(y) + ratio * loss(y[partner])``; cross-entropy is linear in its
    target, so both give the same loss.
    """

    images: Tensor
    partner: Tensor  # (N,) long: index into the batch of each image's partner
    ratio: float

    def targets(self, labels: Tensor, num_classes: int) -> Tensor:
        """Soft targets ``(1 - ratio) * onehot(y) + ratio * onehot(y[partner])``, float32 (N, K)."""
        own = F.one_hot(labels, num_classes).float()
        return (1 - self.ratio) * own + self.ratio * own[self.partner]


def mix_images(images: Tensor, ratio: float, generator: torch.Generator) -> MixedBatch:
    """Blend every image with a partner drawn from the same batch, ``ratio`` of the partner.

    Partners are a random permutation of the batch (mixup's pairing; an image may draw itself).
    Run it per batch on floating-point (normalised) images: blending is linear, so mixing before
    or after normalising is the same. It needs a batch, so the DataLoader path runs it after
    collation, on the device; with a batch of one the image is its own partner and is unchanged.
    """
    if not 0 <= ratio <= 1:
        raise ConfigError(f"image mixing ratio must be in [0, 1]; got {ratio}")
    if not images.is_floating_point():
        raise ValueError(f"mix_images needs floating-point (normalised) images; got {images.dtype}")
    partner = torch.randperm(len(images), generator=generator, device=generator.device).to(images.device)
    return MixedBatch(torch.lerp(images, images[partner], ratio), partner, ratio)


STUDY_P = 0.5  # the 100-image study: the share of images patch shuffle and channel isolation change


@dataclass(frozen=True)
class ExtraAugment:
    """The 100-image study's uint8 augmentations, after crop and flip, in both loaders (bulk
    per epoch on the device; per sample on the DataLoader path). All off: returns its input."""

    rotate90: bool = False
    patch_grid: int = 0  # grid side; 0 = off
    isolate_channel: bool = False

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "ExtraAugment":
        return cls(cfg.rotate90, cfg.patch_shuffle, cfg.channel_isolation)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.rotate90:
            images = random_rotate90(images, generator)
        if self.patch_grid:
            images = patch_shuffle(images, self.patch_grid, generator, STUDY_P)
        if self.isolate_channel:
            images = isolate_channel(images, generator, STUDY_P)
        return images
