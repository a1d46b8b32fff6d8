"""Prove the GPU-resident loader augments as it should, on the device it will train on.

The loader's augmentation runs in bulk on the device with device-side random numbers, code
that no CPU test exercises on a GPU. So the doctor feeds the real loader
(:func:`speedtrain.train.loaders.make_train_loader`) position-coded images and reads back from every
batch what was done to each image: channel 0 holds the source row (1..H), channel 1 the source
column (1..W), channel 2 the image's id, and mean 0 with std 1/255 makes the normalised batch
equal the uint8 values. From that it checks that

* each crop is one window of the reflect-padded image at an offset in ``[0, 2 * padding]``,
  and offsets reach both ends of that range;
* about half the images are mirrored;
* cutout zeroes exactly one ``cutout x cutout`` square per image, whole inside the image
  (cifar10-fast's cutout, never clipped by a border);
* every image comes once per epoch with its own label, and epochs draw anew.

Zero never occurs in the coded images, so zeros are exactly the cutout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.data.datasets import Dataset
from speedtrain.train.loaders import make_train_loader


@dataclass
class AugmentationReport:
    device: str
    images: int
    epochs: int
    flipped_fraction: float  # of image-epochs
    top_offsets: list[int]  # distinct crop offsets seen
    left_offsets: list[int]
    full_cutouts: int  # image-epochs whose square lies away from every border
    same_draw_fraction: float  # images with the same crop and flip in both epochs
    problems: list[str] = field(default_factory=list)


@dataclass
class _Draws:
    """What one epoch did to each image, indexed by image id."""

    top: Tensor
    left: Tensor
    flipped: Tensor
    full_cutouts: int


def _coded_images(n: int, h: int, w: int) -> Tensor:
    rows = torch.arange(1, h + 1).view(1, h, 1).expand(n, h, w)
    cols = torch.arange(1, w + 1).view(1, 1, w).expand(n, h, w)
    ids = (torch.arange(n) % 250 + 1).view(n, 1, 1).expand(n, h, w)
    return torch.stack([rows, cols, ids], dim=1).to(torch.uint8)


def _windows(size: int, padding: int) -> Tensor:
    """(2p + 1, size): the coded values a crop at each offset shows, after reflect padding."""
    index = torch.arange(size + 2 * padding) - padding
    index = torch.where(index < 0, -index, index)
    index = torch.where(index > size - 1, 2 * (size - 1) - index, index)
    values = index + 1
    return torch.stack([values[t:t + size] for t in range(2 * padding + 1)])


def _epoch(loader: object) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for x, y in loader:  # type: ignore[attr-defined]
        xs.append(x.float().round().to(torch.int16).cpu())
        ys.append(y.cpu())
    return torch.cat(xs), torch.cat(ys)


def _analyse(values: Tensor, labels: Tensor, padding: int, cutout: int, problems: list[str]) -> _Draws:
    n, _, h, w = values.shape
    if not torch.equal(labels.sort().values, torch.arange(n)):
        problems.append("an epoch did not yield every image exactly once")
    order = labels.argsort()
    values, labels = values[order], labels[order]
    cut = (values == 0).all(dim=1)
    if ((values == 0).any(dim=1) & ~cut).any():
        problems.append("some pixels are zero in only some channels (cutout must zero all channels)")
    if ((values[:, 2] != (labels % 250 + 1).view(n, 1, 1)) & ~cut).any():
        problems.append("images and labels are out of step")
    row_seen = values[:, 0].amax(dim=2)  # cutout never spans a whole row, so the max is the row's value
    col_seen = values[:, 1].amax(dim=1)
    if ((values[:, 0] != row_seen[:, :, None]) & ~cut).any() or ((values[:, 1] != col_seen[:, None, :]) & ~cut).any():
        problems.append("pixels of an image do not come from one crop")
    rows, cols = _windows(h, padding), _windows(w, padding)
    top_match = (row_seen[:, None, :] == rows[None]).all(-1)
    plain = (col_seen[:, None, :] == cols[None]).all(-1)
    mirrored = (col_seen[:, None, :] == cols.flip(-1)[None]).all(-1)
    if not (top_match.any(1) & (plain | mirrored).any(1)).all():
        problems.append(f"a crop is not a window of the image padded by {padding} (out of bounds or misaligned)")
    full = _check_cutout(cut, cutout, problems)
    return _Draws(top_match.int().argmax(1), (plain | mirrored).int().argmax(1),
                  mirrored.any(1) & ~plain.any(1), full)


def _check_cutout(cut: Tensor, size: int, problems: list[str]) -> int:
    """Checks one square per image, size x size away from the borders; returns how many were."""
    n, h, w = cut.shape
    in_rows, in_cols = cut.any(2), cut.any(1)
    heights, widths = in_rows.sum(1), in_cols.sum(1)
    if not torch.equal(in_rows[:, :, None] & in_cols[:, None, :], cut):
        problems.append("a cutout is not one axis-aligned rectangle")
    if (heights == 0).any():
        problems.append("an image has no cutout")
    if (heights > size).any() or (widths > size).any():
        problems.append(f"a cutout is larger than {size}x{size}")
    first_row, last_row = in_rows.int().argmax(1), h - 1 - in_rows.flip(1).int().argmax(1)
    first_col, last_col = in_cols.int().argmax(1), w - 1 - in_cols.flip(1).int().argmax(1)
    interior = (first_row > 0) & (last_row < h - 1) & (first_col > 0) & (last_col < w - 1) & (heights > 0)
    if ((heights > 0) & ((heights != size) | (widths != size))).any():  # a border never clips it
        problems.append(f"a cutout is not a whole {size}x{size} square")
    if ((last_row - first_row + 1 != heights) & (heights > 0)).any():
        problems.append("a cutout is not contiguous")
    return int(interior.sum())


def check_gpu_loader(device: torch.device, images: int = 1024, batch_size: int = 256, padding: int = 4,
                     cutout: int = 8, seed: int = 0) -> AugmentationReport:
    """Two epochs of the GPU-resident loader on ``device`` over coded CIFAR-shaped images."""
    device = torch.device(device)
    train_x = _coded_images(images, 32, 32)
    data = Dataset("cifar10", train_x, torch.arange(images), train_x[:batch_size], torch.arange(batch_size),
                   mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3, synthetic=True, source="doctor: position-coded images")
    cfg = TrainConfig(batch_size=batch_size, crop_padding=padding, flip=True, cutout=cutout, loader="gpu",
                      seed=seed, channels_last=device.type == "cuda", synthetic=True)
    loader = make_train_loader(data, cfg, device, torch.float32)
    problems: list[str] = []
    draws = [_analyse(*_epoch(loader), padding, cutout, problems) for _ in range(2)]
    same = (draws[0].top == draws[1].top) & (draws[0].left == draws[1].left) & (draws[0].flipped == draws[1].flipped)
    flipped = float(torch.cat([d.flipped for d in draws]).float().mean())
    tops = sorted({int(t) for d in draws for t in d.top})
    lefts = sorted({int(t) for d in draws for t in d.left})
    tolerance = 4.5 * (0.25 / (2 * images)) ** 0.5  # 4.5 standard deviations of a fair coin's mean
    if abs(flipped - 0.5) > tolerance:
        problems.append(f"{flipped:.0%} of images mirrored, not about half")
    if tops[0] != 0 or tops[-1] != 2 * padding or lefts[0] != 0 or lefts[-1] != 2 * padding:
        problems.append(f"crop offsets do not span 0..{2 * padding}")
    if float(same.float().mean()) > 0.1:
        problems.append(f"{float(same.float().mean()):.0%} of images got the same crop and flip in both epochs")
    return AugmentationReport(str(device), images, 2, flipped, tops, lefts, sum(d.full_cutouts for d in draws),
                              float(same.float().mean()), problems)
