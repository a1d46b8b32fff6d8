"""The machine's state around a case: torch threads, load average, GPU clocks and throttling.

On a CPU the same case timed with torch's default thread count swung from 0.2 s to 2.9 s
between seeds, and with one thread stayed within 10%: oversubscribed threads (more threads
than physical cores, or other processes on the cores) are the main source of CPU noise. So
the suite pins torch to the physical cores (or ``--st-threads``) and records, per case, what
it ran with and how loaded the machine was before and after; a case during which the load
exceeded the cores is marked "noisy machine" in its verdict. On a GPU the monitor's clocks
and throttle reasons of the case are kept beside them (a throttled GPU is a noisy machine too).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional


def usable_cpus() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_device_name() -> str:
    """A CPU's name as baselines are keyed by it (``hw.env.device_name`` of a CPU device),
    without torch: a CPU session's header and its refusals never import it."""
    return f"cpu: {cpu_model()}"


def physical_cores(sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Physical cores among the usable CPUs (SMT siblings counted once); the usable CPU count
    where the topology cannot be read."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return usable_cpus()
    cores = set()
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def pin_threads(device_type: str, requested: Optional[int]) -> int:
    """Set torch's intra-op thread count: ``requested`` if given, else the physical cores on a
    CPU (a GPU run keeps torch's default: its host threads only feed the GPU). Returns it."""
    import torch

    if requested is not None:
        torch.set_num_threads(requested)
    elif device_type == "cpu":
        torch.set_num_threads(physical_cores())
    return torch.get_num_threads()


def load_average() -> Optional[list[float]]:
    """The 1, 5 and 15 minute load averages, or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


@dataclass
class Conditions:
    """What a case ran with; saved in its record as ``conditions``."""

    torch_threads: int
    cpus: int  # logical CPUs usable
    physical_cores: int
    load_before: Optional[list[float]] = None
    load_after: Optional[list[float]] = None
    gpu_clocks: dict[str, Any] = field(default_factory=dict)  # from the monitor, on a GPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Throttling that slows a case against its baseline; sw_power_cap is a GPU at its power limit,
# the normal state of a busy GPU, and would flag every case.
NOISY_THROTTLE = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
GPU_KEYS = ("sm_clock_mean_mhz", "sm_clock_min_mhz", "throttle_reasons", "temp_max_c")


def gpu_clocks(telemetry: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The clocks and throttle state of a case's GPU telemetry (empty without telemetry)."""
    if not telemetry or not telemetry.get("available"):
        return {}
    return {k: telemetry.get(k) for k in GPU_KEYS}


def noisy_reason(cond: Any) -> Optional[str]:
    """Why a case's times are suspect ("noisy machine"), or None. ``cond`` is a
    :class:`Conditions` or its saved dict. The 1-minute load counts runnable threads, this
    run's included: above the usable CPUs, something competed with the case for them."""
    data = cond.to_dict() if isinstance(cond, Conditions) else dict(cond or {})
    loads = [x[0] for x in (data.get("load_before"), data.get("load_after")) if x]
    cpus = data.get("cpus")
    reasons = []
    if loads and cpus and max(loads) > cpus:
        reasons.append(f"load {max(loads):.1f} > {cpus} CPUs")
    throttled = [r for r in (data.get("gpu_clocks") or {}).get("throttle_reasons") or []
                 if r in NOISY_THROTTLE]
    if throttled:
        reasons.append(f"GPU throttled ({', '.join(throttled)})")
    return "; ".join(reasons) or None
