"""What a result was measured on: software versions, CPU, GPU and driver, git commit."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

import torch

from speedtrain.common.errors import exception_text
from speedtrain.hw.gpumonitor import nvml_environment
from speedtrain.hw.runconditions import cpu_device_name, cpu_model


def device_name(device: torch.device) -> str:
    """The name baselines are keyed by: the GPU model, or ``cpu: <model>``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_device_name()


@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The project's commit, with ``+dirty`` when the tree has changes; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cudnn_version() -> tuple[Optional[int], Optional[str]]:
    """(cuDNN version, None), or (None, why) when cuDNN cannot be used here.

    torch raises on the first ``cudnn.version()`` call when cuDNN >= 9.11 meets a GPU below
    compute capability 7.5 (torch/backends/cudnn/__init__.py): on a V100 or older GPU, merely
    recording the environment must not crash the run.
    """
    if not torch.backends.cudnn.is_available():
        return None, None
    try:
        return torch.backends.cudnn.version(), None
    except RuntimeError as exc:
        return None, exception_text(exc)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, JSON-able, for results and pytest-benchmark's machine_info."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn_version()[0],
        "device": device_name(device),
        "commit": git_commit(),
        "gpu": None,
    }
    if device.type == "cuda":
        nvml = nvml_environment(device=device)
        env["gpu"] = {
            "name": torch.cuda.get_device_name(device),
            "count": torch.cuda.device_count(),
            "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
            "memory_bytes": torch.cuda.get_device_properties(device).total_memory,
            "driver": nvml.get("driver_version"),
            # Which physical GPU (NVML UUID and index, MIG or not): NVML's index 0 is often another.
            "identity": nvml.pop("identity"),
            "nvml": nvml,
        }
    return env
