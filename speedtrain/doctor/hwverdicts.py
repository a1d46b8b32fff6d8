"""Doctor verdicts on the GPU's power and memory (issue 19): pure functions, tested on a CPU.

* :func:`power_readings` -- where the monitor's power figures will come from on this GPU: the
  instantaneous field or the 1-second average (see :mod:`speedtrain.hw.nvmlpower`), and whether
  mean power can be energy over time.
* :func:`power_cap` -- a power limit below the board's default: the GPU is capped and every
  time it gives is slower than the GPU's own (``nvmlDeviceGetPowerManagementLimit`` /
  ``nvmlDeviceGetEnforcedPowerLimit`` against ``nvmlDeviceGetPowerManagementDefaultLimit``).
* :func:`bandwidth_verdict` -- measured copy bandwidth against the datasheet's memory bandwidth
  (:mod:`speedtrain.hw.peaks`): a FAIL far below it, since a throttled or capped GPU passed the
  matmul check's 30% warning line.
"""

from __future__ import annotations

from typing import Any, Optional

from speedtrain.hw.peaks import lookup_bandwidth

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"  # as speedtrain.doctor.diagnosis
# A device-to-device copy (STREAM "copy") is bounded by DRAM efficiency, not the interface: it
# reaches most but not all of the datasheet figure on a healthy GPU, so the lines sit well below
# 100% and a FAIL needs less than half; not measured here (no GPU), the doctor's data keeps the share.
BANDWIDTH_WARN = 0.6
BANDWIDTH_FAIL = 0.4
CAP_TOLERANCE_W = 1.0  # limits are in mW; a watt of rounding is not a cap


def power_readings(probe: Any) -> tuple[str, str, dict[str, Any]]:
    """(status, reason, data) of the doctor's "power readings" check from an NvmlProbe."""
    source = getattr(probe, "power_sample_source", None)
    data = {"power_sample_source": source, "energy_counter": bool(probe.energy_counter)}
    mean = ("mean power = energy counter / time" if probe.energy_counter
            else "mean power = mean of the samples (no energy counter)")
    if source == "instant":
        return PASS, f"samples from NVML_FI_DEV_POWER_INSTANT (instantaneous); {mean}", data
    cap = getattr(probe, "capability", None)
    if source == "power_usage" and cap is not None and tuple(cap) <= (8, 0):
        # Before Ampere, and on GA100 (the only compute capability 8.0 chip), the call is instantaneous.
        return (PASS, f"samples from nvmlDeviceGetPowerUsage, instantaneous on compute capability "
                      f"{cap[0]}.{cap[1]} (before Ampere or GA100); {mean}", data)
    if source == "power_usage":
        return (WARN, "no instantaneous power field: samples are nvmlDeviceGetPowerUsage, a 1 s average on "
                      f"Ampere and newer (except GA100), so power_max_w understates peaks; {mean}", data)
    return WARN, f"no power reading: power_max_w will be empty; {mean}", data


def power_cap(limit_w: Optional[float], default_w: Optional[float]) -> Optional[str]:
    """Why the power limit matters, or None: a limit below the default caps the GPU."""
    if limit_w is None or default_w is None or limit_w >= default_w - CAP_TOLERANCE_W:
        return None
    return (f"power limit {limit_w:.0f} W is below the default {default_w:.0f} W: the GPU is power-capped "
            "and times here are slower than this GPU's own (nvidia-smi -pl to restore)")


def bandwidth_verdict(bytes_per_s: float, nbytes: int, gpu_name: str) -> tuple[str, str, dict[str, Any]]:
    """(status, reason, data) of the doctor's "memory bandwidth" check against the datasheet."""
    spec = lookup_bandwidth(gpu_name)
    rate = bytes_per_s / 1e9
    data: dict[str, Any] = {"gb_per_s": round(rate, 1), "bytes": nbytes,
                            "peak_gb_per_s": None if spec is None else spec.gb_per_s,
                            "source": None if spec is None else spec.source}
    text = f"{rate:.0f} GB/s copying {nbytes >> 20} MiB on the device (read + write)"
    if spec is None:
        return PASS, f"{text}; no sourced datasheet bandwidth for {gpu_name!r}", data
    share = rate / spec.gb_per_s
    data["fraction_of_peak"] = round(share, 3)
    text = f"{text} = {share:.0%} of the {spec.name} datasheet's {spec.gb_per_s:g} GB/s"
    if share < BANDWIDTH_FAIL:
        return FAIL, f"{text}: far below; memory clocks throttled, power-capped or shared", data
    if share < BANDWIDTH_WARN:
        return WARN, f"{text}: below what a healthy GPU copies; throttled or shared?", data
    return PASS, text, data
