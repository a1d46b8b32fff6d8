"""The shape of a case's GPU telemetry (``RunResult.gpu``, ``CaseRecord.gpu``): what
:class:`speedtrain.hw.gpumonitor.GpuMonitor` summarises and a saved run keeps. Torch-free, so
readers of saved runs know the keys without the monitor."""

from __future__ import annotations

from typing import Any, Optional, TypedDict


class GpuSummary(TypedDict):
    """One monitored run; every figure None when ``available`` is False (CPU, no NVML, no match)."""

    available: bool
    reason: Optional[str]  # why there are no figures
    gpu_name: Optional[str]
    gpu: Optional[dict[str, Any]]  # hw.nvmldevice.GpuIdentity.to_dict(): CUDA and NVML index, UUID, MIG
    samples: Optional[int]
    duration_s: Optional[float]  # the summed length of the sampled windows (timed epochs only)
    util_mean_pct: Optional[float]
    util_max_pct: Optional[float]
    mem_used_max_bytes: Optional[int]
    power_mean_w: Optional[float]
    power_max_w: Optional[float]
    energy_j: Optional[float]
    energy_source: Optional[str]  # counter | integrated_power
    power_sample_source: Optional[str]  # hw.nvmlpower: instant | power_usage
    power_mean_source: Optional[str]  # energy_counter | samples
    sm_clock_mean_mhz: Optional[float]
    sm_clock_min_mhz: Optional[float]
    temp_max_c: Optional[float]
    throttle_reasons: Optional[list[str]]
    interval_s: Optional[float]
    windows: Optional[int]
    whole_gpu: Optional[list[str]]  # figures that cover the whole GPU while the run used a MIG slice


SUMMARY_KEYS: tuple[str, ...] = tuple(GpuSummary.__annotations__)
# What NVML reports only for a whole GPU: read from the parent while the run used a MIG slice.
WHOLE_GPU_KEYS = (
    "util_mean_pct", "util_max_pct", "power_mean_w", "power_max_w", "energy_j",
    "sm_clock_mean_mhz", "sm_clock_min_mhz", "temp_max_c", "throttle_reasons",
)


def unavailable_summary(reason: str, cuda_index: Optional[int] = None) -> GpuSummary:
    """The summary of a monitor that could not watch a GPU: every figure None.

    ``gpu`` still names the CUDA device that was asked for, when there was one.
    """
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary["available"] = False
    summary["reason"] = reason
    if cuda_index is not None:
        summary["gpu"] = {"cuda_index": cuda_index}
    return summary  # type: ignore[return-value]
