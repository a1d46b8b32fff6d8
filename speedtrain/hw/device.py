"""The torch device a config runs on, and the options that device cannot run.

Kept out of :mod:`speedtrain.config`, which validates a config anywhere (a saved config must
load on any machine): what this machine's device allows is decided here, when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speedtrain.common.errors import ConfigError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.capability import device_capability, tf32_refusal

if TYPE_CHECKING:  # torch loads when a device is resolved, not when the suite's plugin loads
    import torch


def check_device(cfg: TrainConfig, device_type: str) -> None:
    """Refuse the options that the resolved device cannot run.

    On ``"cuda"`` the current CUDA device's compute capability decides: ``tf32`` before Ampere
    would silently run as fp32, so it is refused with the reason (the benchmark plugin turns
    this error into a skip).
    """
    if cfg.precision != "tf32":
        return
    reason = tf32_refusal(device_capability(device_type) if device_type == "cuda" else None)
    if reason is not None:
        on = "" if device_type == "cuda" else f" (device {device_type})"
        raise ConfigError(f"{reason}{on}; use fp32, fp16, bf16 or half")


def resolve_device(cfg: TrainConfig) -> torch.device:
    """The torch device the config asks for; a clear error if CUDA is asked for but absent."""
    import torch

    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use device cpu or auto")
    else:
        device = torch.device(cfg.device)
    check_device(cfg, device.type)
    return device


def visible_gpu_count() -> int:
    """CUDA GPUs this process can see (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
