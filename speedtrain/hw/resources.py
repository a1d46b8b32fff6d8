"""Warnings for a configuration that is valid but too large for this machine.

TrainConfig's own bounds are machine-independent (a saved config must load anywhere), so what
depends on the machine -- worker processes against its CPUs, the dataset held in memory against
host and GPU memory -- is a warning printed before training, not a refusal: the estimate is
rough, and the run may still fit. Running out of GPU memory during training is reported by the
trainer as ``status='oom'``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from speedtrain.config.trainconfig import DATASET_SHAPES, TrainConfig

# Above these fractions of a memory, the dataset alone leaves too little for the rest of the
# run (the model, its activations, the framework).
_HOST_FRACTION = 0.8
_DEVICE_FRACTION = 0.5


@dataclass(frozen=True)
class MachineLimits:
    cpus: int
    host_memory_bytes: int | None  # None when the platform does not say
    device_memory_bytes: int | None  # None unless the run will hold the dataset on a GPU


def machine_limits(cfg: TrainConfig) -> MachineLimits:
    """This machine's CPUs and memory; GPU memory only when ``cfg`` keeps the data on a GPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        host = None
    device = None
    if cfg.loader == "gpu" and cfg.device != "cpu":
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    return MachineLimits(cpus, host, device)


def dataset_bytes(cfg: TrainConfig) -> tuple[int, int]:
    """(host, device) bytes the uint8 dataset takes at the configured size and subsets; the
    device figure counts the GPU loader's reflect-padded copy and its per-epoch crop."""
    c, side, _ = cfg.input_shape
    _, _, _, n_train, n_test, _ = DATASET_SHAPES[cfg.dataset]
    n_train, n_test = cfg.train_subset or n_train, cfg.test_subset or n_test
    host = (n_train + n_test) * c * side * side
    padded = side + 2 * cfg.crop_padding
    return host, n_train * c * (padded * padded + side * side) + n_test * c * side * side


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def resource_warnings(cfg: TrainConfig, limits: MachineLimits) -> list[str]:
    """One line per resource ``cfg`` is likely to exhaust on a machine with ``limits``."""
    out = []
    if cfg.workers > limits.cpus:
        out.append(f"workers {cfg.workers} is more than the {limits.cpus} CPUs this process may use; "
                   "the extra worker processes only compete for them (use at most that many)")
    host, device = dataset_bytes(cfg)
    if limits.host_memory_bytes and host > _HOST_FRACTION * limits.host_memory_bytes:
        out.append(f"the dataset at {cfg.input_shape[1]} px takes about {_gb(host)} of memory, more than "
                   f"{_HOST_FRACTION:.0%} of this machine's {_gb(limits.host_memory_bytes)}; "
                   "lower image_size or use train_subset/test_subset")
    if cfg.loader == "gpu" and limits.device_memory_bytes and device > _DEVICE_FRACTION * limits.device_memory_bytes:
        out.append(f"the gpu loader keeps about {_gb(device)} of images on the GPU, more than "
                   f"{_DEVICE_FRACTION:.0%} of its {_gb(limits.device_memory_bytes)}; expect status 'oom': "
                   "lower image_size, use train_subset, or loader torch")
    return out
