"""What ``speedtrain train`` says before its slow set-up: what it will train, and whether the
recipe is one for a GPU running on a CPU.

Reading a dataset, building the model and the warm-up can take minutes on a CPU before the
first epoch line, so :func:`header` is printed first, and :func:`slow_device_warnings` says
when the run will take hours there. A run is **GPU-scale** when its training work (forward and
backward FLOPs per image, counted as the report counts them, times the images trained) passes
``GPU_SCALE_FLOPS``, 10^14 FLOP: the myrtle.ai recipe (ResNet-9, 24 epochs of CIFAR-10) is
2.71 PFLOP. Low precision (fp16, bf16, half) and channels_last are GPU recipes too: a CPU
emulates them (the suite's CPU base is fp32 NCHW for that reason).
"""

from __future__ import annotations

import math
from typing import Optional

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.config.validate import train_images
from speedtrain.train import flops

GPU_SCALE_FLOPS = 1e14  # training FLOPs of a run (forward + backward): past this a CPU run takes hours
LOW_PRECISION = ("fp16", "bf16", "half")


def plural(n: float, word: str) -> str:
    """``1 step``, ``2 steps``, ``9.9 epochs``."""
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


def header(cfg: TrainConfig, device: str) -> str:
    """The first line of a run, before any data is read."""
    data = "synthetic data" if cfg.synthetic else f"{cfg.dataset} from {cfg.data_dir}"
    layout = ", channels_last" if cfg.channels_last else ""
    return (f"speedtrain train: {cfg.model} width {cfg.width:g}, {plural(cfg.epochs, 'epoch')}, batch {cfg.batch_size}, "
            f"{cfg.precision}{layout}, on {device}, {data}; reading the data and building the model first")


def training_flops(cfg: TrainConfig) -> Optional[float]:
    """Forward + backward FLOPs of the whole run (speedtrain.train.flops), or None where they cannot be counted."""
    try:
        return flops.train_flops_per_image(cfg) * train_images(cfg) * math.ceil(cfg.epochs)
    except Exception:  # noqa: BLE001 - a warning's estimate must never stop a run
        return None


def slow_device_warnings(cfg: TrainConfig, device_type: str) -> list[str]:
    """Why this configuration is a GPU recipe, when it runs on a CPU (empty elsewhere)."""
    if device_type != "cpu":
        return []
    out = []
    work = training_flops(cfg)
    if work is not None and work > GPU_SCALE_FLOPS:
        out.append(f"a GPU-scale run on a CPU: {work / 1e12:,.0f} TFLOP of training (over "
                   f"{GPU_SCALE_FLOPS / 1e12:.0f} TFLOP counts as GPU-scale): "
                   "expect hours; try --width 0.25 --train-subset 5000 --epochs 2 first")
    if cfg.precision in LOW_PRECISION:
        out.append(f"--precision {cfg.precision} is a GPU setting: a CPU emulates fp16 and bf16 and runs them "
                   "slower than fp32")
    if cfg.channels_last:
        out.append("--channels-last is a GPU setting: a CPU runs NHWC convolutions slower than NCHW")
    return out
