"""Training batches on the device: the GPU-resident loader and the DataLoader path.

Both loaders share one augmentation pipeline (:class:`_Pipeline`), so a case that switches
loaders changes where the work runs, never what it computes. Split from ``data.py``, which
reads and caches datasets: this module turns a :class:`speedtrain.data.datasets.Dataset` into batches.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Optional

import torch
from torch import Tensor

from speedtrain.data import augment
from speedtrain.train import ddp
from speedtrain.data.airbench_augment import alternating_flip, flip_bits
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.data.datasets import Dataset
from speedtrain.common.errors import DataError


# --- loaders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    """The training augmentation, the same code for both loaders.

    ``crop_flip`` works on uint8 images that are already reflect-padded; ``finish``
    normalises and applies cutout, which fills with 0, the mean, in normalised space.
    """

    size: tuple[int, int]
    flip: bool
    cutout: int
    mean: Tensor
    std: Tensor
    extra: augment.ExtraAugment = augment.ExtraAugment()  # the 100-image study's rotations, patches, channels
    flip_bits: Optional[Tensor] = None  # alternating flip (airbench_augment): one bit per training image

    @classmethod
    def build(cls, data: Dataset, cfg: TrainConfig, device: torch.device) -> "_Pipeline":
        mean = torch.tensor(data.mean, dtype=torch.float32, device=device)
        std = torch.tensor(data.std, dtype=torch.float32, device=device)
        return cls(tuple(data.train_images.shape[-2:]), cfg.flip, cfg.cutout, mean, std,  # type: ignore[arg-type]
                   augment.ExtraAugment.from_config(cfg))

    def crop_flip(self, padded: Tensor, generator: torch.Generator, epoch: int = 0) -> Tensor:
        x = augment.random_crop(padded, self.size, generator)
        return self.extra(self._flip(x, generator, epoch) if self.flip else x, generator)

    def _flip(self, x: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        """Random mirroring, or with ``flip_bits`` the alternating flip of 0-based ``epoch``."""
        if self.flip_bits is None:
            return augment.random_flip(x, generator)
        return alternating_flip(x, epoch, self.flip_bits)

    def finish(self, images: Tensor, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        return augment.cutout(augment.normalize(images, self.mean, self.std, dtype), self.cutout, generator)


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """The layout of model inputs (and weights): NHWC with ``channels_last``, else NCHW."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def _first_batch_without_trace(loader: Iterable[tuple[Tensor, Tensor]],
                               *generators: torch.Generator) -> tuple[Tensor, Tensor]:
    """The loader's first batch, after which ``generators`` are back in the state they were in."""
    states = [g.get_state() for g in generators]
    batches = iter(loader)
    try:
        return next(batches)
    finally:
        batches.close()  # type: ignore[attr-defined]
        for generator, state in zip(generators, states):
            generator.set_state(state)


def _check_batch(data: Dataset, cfg: TrainConfig) -> None:
    if len(data.train_labels) < cfg.batch_size:
        raise DataError(f"{data.source!r} has {len(data.train_labels)} training images, fewer than "
                        f"batch_size {cfg.batch_size}; every step needs a full batch")


class GpuLoader:
    """The dataset resident on the device, cropped and flipped in bulk once per epoch."""

    def __init__(self, data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> None:
        _check_batch(data, cfg)
        # Padded once, on the CPU where uint8 reflect padding is known to work, then moved.
        self.images = augment.reflect_pad(data.train_images, cfg.crop_padding).to(device)
        self.labels = data.train_labels.to(device)
        self.pipeline = _Pipeline.build(data, cfg, device)
        # Random numbers drawn on the device: no host round trip per epoch.
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        # Cutout is drawn per rank's share of a batch: from a rank's own stream when there are
        # several (the shuffle and crops above must agree across ranks; issue 19), else this one.
        seed = ddp.rank_seed(cfg.seed)
        self.share_generator = self.generator if seed == cfg.seed else torch.Generator(device=device).manual_seed(seed)
        self.batch_size, self.dtype, self.memory_format = cfg.batch_size, dtype, memory_format(cfg)
        if cfg.alt_flip:  # each image's flip bit, drawn once for the whole run
            self.pipeline = replace(self.pipeline, flip_bits=flip_bits(len(self.labels), self.generator, device))
        self.epoch = 0  # epochs begun (0-based index of the next): the alternating flip's parity

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def warm_up(self) -> tuple[Tensor, Tensor]:
        """One batch drawn off the clock: the epoch's augmentation kernels load and its
        dataset-sized buffer is allocated (then cached). The generator is restored, so the
        epochs draw exactly what they would have drawn without it."""
        epoch = self.epoch
        try:
            return _first_batch_without_trace(self, *{id(g): g for g in (self.generator, self.share_generator)}.values())
        finally:
            self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        images = self.pipeline.crop_flip(self.images, self.generator, self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.labels), device=self.labels.device, generator=self.generator)
        for step in range(len(self)):
            index = ddp.share(order[step * self.batch_size:(step + 1) * self.batch_size])  # nproc > 1
            x = self.pipeline.finish(images[index], self.share_generator, self.dtype)
            yield x.contiguous(memory_format=self.memory_format), self.labels[index]


class _AugmentedSamples(torch.utils.data.Dataset):
    """Per-sample CPU augmentation. Keys are (index, seed): the seed comes from the sampler,
    so a sample's augmentation does not depend on which worker process draws it."""

    def __init__(self, padded: Tensor, labels: Tensor, pipeline: _Pipeline) -> None:
        self.padded, self.labels, self.pipeline = padded, labels, pipeline

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = key
        generator = torch.Generator().manual_seed(seed)
        x = self.pipeline.crop_flip(self.padded[index:index + 1], generator)
        return self.pipeline.finish(x, generator, torch.float32)[0], self.labels[index]


class _SeededShuffle(torch.utils.data.Sampler):
    """A new permutation every epoch from a seeded generator, each index paired with a seed."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)
        self.limit: Optional[int] = None  # the warm-up's: stop after this many indices


    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.n, generator=self.generator)
        seeds = torch.randint(2**62, (self.n,), generator=self.generator)
        return itertools.islice(zip(order.tolist(), seeds.tolist()), self.limit)


class TorchLoader:
    """A DataLoader augmenting on the CPU (``cfg.workers`` processes), batches moved to the device."""

    def __init__(self, data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> None:
        _check_batch(data, cfg)
        samples = _AugmentedSamples(augment.reflect_pad(data.train_images, cfg.crop_padding), data.train_labels,
                                    _Pipeline.build(data, cfg, torch.device("cpu")))
        self.shuffle, self.batch_size = _SeededShuffle(len(samples), cfg.seed), cfg.batch_size
        self.loader = torch.utils.data.DataLoader(
            # with nproc > 1, this rank's share of each global batch (speedtrain.train.ddp)
            samples, batch_size=ddp.local_batch(cfg.batch_size),
            sampler=ddp.shard_sampler(self.shuffle, cfg.batch_size), drop_last=True,
            num_workers=cfg.workers, pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),  # seeds the workers' own RNGs
        )
        self.device, self.dtype, self.memory_format = device, dtype, memory_format(cfg)

    def __len__(self) -> int:
        return len(self.loader)

    def warm_up(self) -> tuple[Tensor, Tensor]:
        """One batch drawn off the clock: the worker processes start (persistent, so the epochs
        reuse them) and the device copy path runs once. The sampler's generator (order and
        per-sample augmentation seeds) and the DataLoader's (worker seeds) are restored.

        The sampler stops after one global batch and the iteration runs to its end, so no
        worker is left holding prefetched batches (about two per worker) that the first epoch's
        restart would drain on the clock: epoch 1 starts as every later epoch does, from an
        iteration run out (issue 19)."""
        generators = (self.shuffle.generator, self.loader.generator)
        states = [g.get_state() for g in generators]
        self.shuffle.limit = self.batch_size
        try:
            first, *rest = list(self)
        finally:
            self.shuffle.limit = None
            for generator, state in zip(generators, states):
                generator.set_state(state)
        assert not rest, "the warm-up's sampler yields one batch"
        return first

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True).to(self.dtype).contiguous(memory_format=self.memory_format)
            yield x, y.to(self.device, non_blocking=True)


def make_train_loader(data: Dataset, cfg: TrainConfig, device: torch.device,
                      dtype: torch.dtype = torch.float32) -> GpuLoader | TorchLoader:
    """Training batches ``(x, y)`` on ``device``: ``len()`` full batches per epoch, reshuffled each epoch."""
    loader = GpuLoader if cfg.loader == "gpu" else TorchLoader
    return loader(data, cfg, torch.device(device), dtype)


def make_test_batches(data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype = torch.float32,
                      batch_size: int = 1024) -> list[tuple[Tensor, Tensor]]:
    """The whole test set, normalised, on ``device``, in batches (the last may be partial)."""
    device = torch.device(device)
    pipeline = _Pipeline.build(data, cfg, device)
    batches = []
    for i in range(0, len(data.test_labels), batch_size):
        x = augment.normalize(data.test_images[i:i + batch_size].to(device), pipeline.mean, pipeline.std, dtype)
        batches.append((x.contiguous(memory_format=memory_format(cfg)), data.test_labels[i:i + batch_size].to(device)))
    return batches
