"""Decisions by CUDA compute capability: which precisions have fast kernels on this GPU.

Why a module of its own: the suite's base precision (``profiles.suite_base``), the refusal of
``tf32`` on GPUs without it (``hw.device.check_device``) and ``speedtrain doctor`` must agree on
the same thresholds, and every one of them must be testable without a GPU (tests pass a
capability tuple, or monkeypatch ``torch.cuda.get_device_capability``).

Thresholds (NVIDIA's architecture guides, cuDNN support matrix):
- 7.0 (Volta) and later: fp16 tensor cores.
- 8.0 (Ampere) and later: TF32 and bf16 tensor cores. Below 8.0 cuDNN has no bf16
  convolutions, so bf16 autocast measures a slow fallback, and TF32 does not exist (the
  ``allow_tf32`` flags are silently ignored: a "tf32" run would be an fp32 run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:  # torch is imported when a device is queried: the thresholds need no torch
    import torch

Capability = tuple[int, int]

AMPERE: Capability = (8, 0)
VOLTA: Capability = (7, 0)


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a suite uses by default on a device, and why."""

    precision: str  # a TrainConfig precision
    reason: str


def device_capability(device: Union["torch.device", str]) -> Optional[Capability]:
    """(major, minor) of a CUDA device (``"cuda"`` is the current one); None for any other
    device, and when torch sees no CUDA GPU (the callers then explain that a GPU is needed)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def _name(cap: Capability) -> str:
    return f"compute capability {cap[0]}.{cap[1]}"


def fast_bf16(cap: Optional[Capability]) -> bool:
    """cuDNN bf16 convolutions on tensor cores (Ampere and later)."""
    return cap is not None and tuple(cap) >= AMPERE


def fast_tf32(cap: Optional[Capability]) -> bool:
    """TF32 tensor-core matmuls and convolutions (Ampere and later)."""
    return cap is not None and tuple(cap) >= AMPERE


def fp16_tensor_cores(cap: Optional[Capability]) -> bool:
    """fp16 tensor cores (Volta and later)."""
    return cap is not None and tuple(cap) >= VOLTA


def base_precision(cap: Optional[Capability]) -> PrecisionChoice:
    """The suite's base precision: bf16 autocast where bf16 convolutions are fast, fp16 autocast
    (with gradient scaling) on older GPUs, fp32 without a GPU (CPUs emulate bf16 on most chips)."""
    if cap is None:
        return PrecisionChoice("fp32", "no CUDA GPU: CPUs run bf16 and fp16 convolutions emulated, so fp32")
    if fast_bf16(cap):
        return PrecisionChoice("bf16", f"{_name(cap)} >= 8.0: cuDNN runs bf16 convolutions on tensor cores")
    cores = "fp16 tensor cores" if fp16_tensor_cores(cap) else "no tensor cores, fp16 still halves memory traffic"
    return PrecisionChoice(
        "fp16", f"{_name(cap)} < 8.0: no fast bf16 convolutions in cuDNN, so fp16 autocast ({cores})"
    )


def tf32_refusal(cap: Optional[Capability]) -> Optional[str]:
    """Why ``precision='tf32'`` cannot run on a device of capability ``cap``; None when it can."""
    if cap is None:
        return "precision 'tf32' needs a CUDA GPU (it is a tensor-core mode)"
    if not fast_tf32(cap):
        return (f"precision 'tf32' needs compute capability 8.0 or later (Ampere); this GPU has "
                f"{cap[0]}.{cap[1]}, where it would silently run as fp32")
    return None
