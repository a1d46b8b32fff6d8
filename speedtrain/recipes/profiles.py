"""Benchmark profiles: how much training one case gets.

A case describes what it varies (``precision="fp16"``); the profile decides how long it trains
and on what data. Order of application: ``TrainConfig`` defaults, then :func:`suite_base`, then
the session's options (dataset, data directory, device), then the case, then the profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from speedtrain.hw.capability import PrecisionChoice, base_precision, device_capability
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.recipes.ladder import cumulative  # noqa: F401 (benchmark files import it from here)


def base_choice(device_type: str) -> PrecisionChoice:
    """The base precision of the suite on ``device_type`` ("cuda": the current CUDA device) and
    the reason for it, for the session's records and ``speedtrain doctor``."""
    cap = device_capability(device_type) if device_type == "cuda" else None
    return base_precision(cap)


def suite_base(device_type: str) -> dict[str, Any]:
    """What every case shares unless it varies it: the myrtle.ai ResNet-9 recipe with the
    device's usual fast settings. On CUDA: NHWC, data resident on the GPU, and the precision
    :func:`base_choice` picks by compute capability (bf16 autocast from Ampere on, fp16
    autocast before, where cuDNN has no bf16 convolutions). On a CPU bf16 and NHWC
    convolutions are emulated on most chips (3x slower here), so fp32 NCHW."""
    precision = base_choice(device_type).precision
    return {"precision": precision, "channels_last": device_type == "cuda", "loader": "gpu"}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    seeds: int  # training runs per case (pytest-benchmark rounds)
    epochs: Optional[int]  # None keeps the case's own (24 for the myrtle.ai recipe)
    synthetic: bool  # random data of the dataset's shape
    metric: str  # the figure verdicts compare: train_time_s or time_to_target_s
    width_scale: float = 1.0  # multiplies the case's width (smoke only: cheap models)
    batch_scale: float = 1.0  # multiplies the case's batch, kept a multiple of its ghost BN splits
    min_batch: int = 1  # ... and at least this many images (a batch of 1 holds one class)
    steps_per_epoch: Optional[int] = None  # smoke only: train on this many batches per epoch
    test_images: Optional[int] = None
    warmup_steps: Optional[int] = None
    breakdown_steps: Optional[int] = None  # steps the breakdown profiles (None: TrainConfig's default)

    def scales(self) -> dict[str, Any]:
        """How the profile shrinks every case, as a saved run keeps it (``RunMeta.profile_scales``):
        a report then describes the run by what ran, not by the current profile."""
        return {"epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch, "width_scale": self.width_scale,
                "batch_scale": self.batch_scale, "min_batch": self.min_batch, "test_images": self.test_images}

    def apply(self, cfg: TrainConfig, seed: int) -> TrainConfig:
        changes: dict[str, Any] = {"seed": seed}
        if self.epochs is not None:  # a fractional case keeps its part epoch: 9.9 -> 3.9 in quick
            changes["epochs"] = self.epochs - round(math.ceil(cfg.epochs) - cfg.epochs, 9)
        if self.synthetic:
            changes["synthetic"] = True
        if self.width_scale != 1.0:
            changes["width"] = cfg.width * self.width_scale
        batch = cfg.batch_size
        if self.batch_scale != 1.0:
            splits = cfg.ghost_bn_splits
            batch = max(splits, round(max(self.min_batch, cfg.batch_size * self.batch_scale) / splits) * splits)
            changes["batch_size"] = batch
        if self.steps_per_epoch is not None:
            changes["train_subset"] = self.steps_per_epoch * batch + cfg.val_split  # held-out images are not steps
        if self.test_images is not None:
            changes["test_subset"] = self.test_images
        if self.warmup_steps is not None:
            changes["warmup_steps"] = self.warmup_steps
        return cfg.replace(**changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="plumbing check anywhere, CPU included: synthetic data, 2 epochs of 1 batch, "
                    "widths x1/8, batches x1/16 (8 images at least), 16 test images; its times are not measurements",
        seeds=1, epochs=2, synthetic=True, metric="train_time_s",
        width_scale=0.125, batch_scale=0.0625, min_batch=8, steps_per_epoch=1, test_images=16, warmup_steps=1, breakdown_steps=1,
    ),
    "quick": Profile(
        name="quick",
        description="fixed short training on real data (4 epochs, 2 seeds): epoch time and throughput",
        seeds=2, epochs=4, synthetic=False, metric="train_time_s",
    ),
    "full": Profile(
        name="full",
        description="the case's whole training on real data, several seeds: time to target accuracy",
        seeds=3, epochs=None, synthetic=False, metric="time_to_target_s",
    ),
}


def default_profile(cuda_available: bool) -> str:
    """No option given: a GPU machine measures (quick), any other machine checks plumbing (smoke)."""
    return "quick" if cuda_available else "smoke"
