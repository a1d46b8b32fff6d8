"""The doctor's decisions: pure functions from what was read or measured to a :class:`Check`.

Kept apart from the measuring (:mod:`speedtrain.doctor.command`, :mod:`speedtrain.doctor.microbench`) so that
every verdict the doctor can give on a GPU (a torch build without kernels for it, a driver too
old for the build, a timer that disagrees with the wall clock, NVML watching another GPU,
matmul far below the datasheet) is tested on a CPU with made-up inputs.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from speedtrain.hw import capability
from speedtrain.doctor.hwverdicts import power_cap, power_readings
from speedtrain.hw.peaks import lookup_peak

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
TIMER_TOLERANCE = 0.02  # the training clock may differ from a synchronised wall clock by 2%
MONITOR_GOAL = 0.01  # the NVML monitor should cost under 1% of training time
FAR_BELOW_PEAK = 0.3  # measured matmul under 30% of the datasheet peak is worth a warning
# Throttle reasons that slow a run down; idle and application clocks are normal at rest.
SLOWING_REASONS = {"sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"}
WHEEL_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS | WARN | FAIL | SKIP
    reason: str  # one line
    data: dict[str, Any] = field(default_factory=dict)  # what was read or measured, JSON-able

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- decisions: pure functions of what was read or measured ---------------------------------


def parse_cuda_version(value: Any) -> Optional[tuple[int, int]]:
    """``"13.0"``, ``"12.4.1"`` or NVML's integer ``12040`` as (major, minor); None if unreadable."""
    if value is None:
        return None
    if isinstance(value, int):
        return value // 1000, (value % 1000) // 10
    try:
        major, minor = str(value).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def wheel_builds() -> dict[str, set[int]]:
    """Compute capabilities (as 70, 86...) of each published torch CUDA build for this host,
    as torch itself lists them (``torch.cuda.PYTORCH_RELEASES_CODE_CC``); empty if absent."""
    table = getattr(torch.cuda, "PYTORCH_RELEASES_CODE_CC", None) or {}
    arch = "aarch64" if platform.machine().lower() == "aarch64" else "x86_64"
    return {cuda: set(by_arch.get(arch, ())) for cuda, by_arch in table.items()}


def _runs_on(code: int, kind: str, device_cc: int, exact: bool) -> bool:
    if kind == "compute":  # PTX: JIT-compiled for any newer GPU
        return code <= device_cc
    if exact:  # sm_90a and the like: arch-specific, that GPU only
        return code == device_cc
    return code // 10 == device_cc // 10 and code <= device_cc  # cubins: same major, lower minor


def kernel_support(cap: capability.Capability, arch_list: list[str], gpu_name: str,
                   torch_version: str, builds: dict[str, set[int]]) -> Check:
    """Does this torch build carry kernels for a GPU of capability ``cap``? (item 8 of issue 8)"""
    name = "kernels for this GPU"
    cc = cap[0] * 10 + cap[1]
    data = {"capability": f"{cap[0]}.{cap[1]}", "arch_list": arch_list}
    if not arch_list:
        return Check(name, WARN, "this torch reports no compiled CUDA architectures", data)
    cubins, ptx = [], []
    for arch in arch_list:
        kind, _, code = arch.partition("_")
        number = int(code.rstrip("af")) if code.rstrip("af").isdigit() else -1
        if _runs_on(number, kind, cc, exact=code.endswith("a")):
            (ptx if kind == "compute" else cubins).append(arch)
    if cubins:
        return Check(name, PASS, f"{', '.join(cubins)} kernels run on compute capability {cap[0]}.{cap[1]} ({gpu_name})", data)
    if ptx:
        return Check(name, WARN, f"no sm_ kernels for {cap[0]}.{cap[1]}: PTX {', '.join(ptx)} is JIT-compiled "
                                 "at start-up (slow first run) and may run slower", data)
    fits = sorted((c for c, ccs in builds.items() if any(_runs_on(b, "sm", cc, False) for b in ccs)),
                  key=lambda c: parse_cuda_version(c) or (0, 0))
    base = torch_version.split("+")[0]
    advice = (f"install a build that has them, e.g. pip install torch=={base} --index-url "
              f"{WHEEL_INDEX}/cu{fits[-1].replace('.', '')}" if fits else
              "no published build of this torch release supports it; see https://pytorch.org/get-started/previous-versions/")
    return Check(name, FAIL, f"torch {torch_version} has kernels for {' '.join(arch_list)}, none for compute "
                             f"capability {cap[0]}.{cap[1]} ({gpu_name}): {advice}", data)


def driver_compatibility(driver_cuda: Any, build_cuda: Optional[str], driver_version: Optional[str],
                         builds: dict[str, set[int]]) -> Check:
    """Is the driver new enough for the CUDA this torch was built with? Within one CUDA major
    version a newer runtime runs on an older driver (minor-version compatibility); across
    majors it does not, and torch then sees no GPU at all."""
    name = "driver vs torch build"
    data = {"driver": driver_version, "driver_cuda": driver_cuda, "torch_cuda": build_cuda}
    if build_cuda is None:
        return Check(name, SKIP, "this torch is a CPU-only build", data)
    have, need = parse_cuda_version(driver_cuda), parse_cuda_version(build_cuda)
    if have is None or need is None:
        return Check(name, SKIP, "the driver's CUDA version is unknown (no NVML driver found)", data)
    driver = f"driver {driver_version or '?'} supports CUDA {have[0]}.{have[1]}"
    if have >= need:
        return Check(name, PASS, f"{driver}; torch is built for CUDA {build_cuda}", data)
    if have[0] == need[0]:
        return Check(name, WARN, f"{driver}, older than torch's CUDA {build_cuda}: it runs by minor-version "
                                 "compatibility, without PTX JIT; update the driver", data)
    same_major = sorted((c for c in builds if (parse_cuda_version(c) or (0, 0))[0] == have[0]),
                        key=lambda c: parse_cuda_version(c) or (0, 0))
    wheel = (f"pip install torch --index-url {WHEEL_INDEX}/cu{same_major[-1].replace('.', '')}" if same_major
             else f"a torch built for CUDA {have[0]}.x")
    return Check(name, FAIL, f"{driver}, but torch is built for CUDA {build_cuda}: torch cannot use the GPU; "
                             f"install {wheel}, or update the driver", data)


def timer_agreement(timer_s: float, wall_s: float, tolerance: float = TIMER_TOLERANCE) -> Check:
    """The training clock (CUDA events) against a synchronised wall clock for the same work."""
    name = "timer vs wall clock"
    gap = abs(timer_s - wall_s) / wall_s if wall_s > 0 else float("inf")
    data = {"timer_s": timer_s, "wall_s": wall_s, "relative_gap": gap}
    text = f"timer {timer_s * 1e3:.1f} ms, wall {wall_s * 1e3:.1f} ms: {gap:.2%} apart"
    if gap <= tolerance:
        return Check(name, PASS, f"{text} (within {tolerance:.0%})", data)
    return Check(name, FAIL, f"{text}, more than {tolerance:.0%}: epoch times would be wrong", data)


def matmul_verdict(precision: str, flops: float, gpu_name: str) -> Check:
    """Measured dense matmul FLOP/s against the datasheet peak, when the GPU is in the table."""
    name = f"matmul {precision}"
    spec = lookup_peak(gpu_name)
    peak = None if spec is None else getattr(spec, precision)
    data = {"tflops": round(flops / 1e12, 2), "peak_tflops": peak, "source": None if spec is None else spec.source}
    measured = f"{flops / 1e12:.1f} TFLOP/s"
    if spec is None:
        return Check(name, PASS, f"{measured}; no datasheet peak known for {gpu_name!r}", data)
    if peak is None:
        return Check(name, PASS, f"{measured}; the {spec.name} has no {precision} tensor cores", data)
    share = flops / (peak * 1e12)
    data["fraction_of_peak"] = round(share, 3)
    text = f"{measured} = {share:.0%} of the {spec.name} datasheet's {peak:g} (dense)"
    if share < FAR_BELOW_PEAK:
        return Check(name, WARN, f"{text}: far below; throttled, power-capped or shared?", data)
    return Check(name, PASS, text, data)


def monitor_overhead(off_s: list[float], on_s: list[float], goal: float = MONITOR_GOAL) -> Check:
    """The monitor's cost from interleaved runs off and on, judged by the suite's noise rule
    (:func:`speedtrain.doctor.overhead.judge_overhead`): FAIL only when above the goal beyond the noise."""
    from speedtrain.doctor.overhead import P_LEVEL, detectable_overhead, judge_overhead

    name = "monitor overhead"
    verdict = judge_overhead(off_s, on_s, goal)
    detectable = detectable_overhead(verdict.noise, len(on_s), len(off_s), goal)
    data = {"off_s": off_s, "on_s": on_s, "overhead": verdict.overhead, "noise": verdict.noise,
            "beyond_noise": verdict.beyond_noise, "p_level": P_LEVEL, "detectable_overhead": detectable}
    noise = "?" if verdict.noise is None else f"{verdict.noise:.2%}"
    can = "" if detectable is None else f", these runs detect {detectable:+.1%}"
    text = (f"{verdict.overhead:+.2%} training time with NVML sampling ({len(on_s)} interleaved pairs, "
            f"run-to-run noise {noise}{can})")
    if verdict.status == "pass":
        return Check(name, PASS, f"{text}; goal < {goal:.0%}", data)
    if verdict.status == "within_noise":
        return Check(name, WARN, f"{text}: above the {goal:.0%} goal but within run-to-run noise", data)
    return Check(name, FAIL, f"{text}: the monitor slows training beyond the {goal:.0%} goal and the noise "
                             f"(Mann-Whitney p < {P_LEVEL:g})", data)


def precision_check(cap: Optional[capability.Capability]) -> Check:
    """Which precisions have fast kernels here, and the base precision the suite will use."""
    choice = capability.base_precision(cap)
    data = {"capability": None if cap is None else f"{cap[0]}.{cap[1]}", "base_precision": choice.precision,
            "fast_bf16": capability.fast_bf16(cap), "fast_tf32": capability.fast_tf32(cap),
            "fp16_tensor_cores": capability.fp16_tensor_cores(cap)}
    if cap is None:
        return Check("precisions", PASS, f"suite base {choice.precision}: {choice.reason}", data)
    def yes(flag: bool) -> str:
        return "yes" if flag else "no"
    fast = (f"bf16 convolutions {yes(data['fast_bf16'])}, TF32 {yes(data['fast_tf32'])}, "
            f"fp16 tensor cores {yes(data['fp16_tensor_cores'])}")
    status = PASS if data["fp16_tensor_cores"] else WARN
    return Check("precisions", status, f"{fast}; suite base {choice.precision}: {choice.reason}", data)


def nvml_checks(probe: Any) -> list[Check]:
    """The monitor's view of the GPU, from :func:`speedtrain.hw.gpumonitor.probe_nvml`'s result."""
    names = ("NVML device", "energy", "power readings", "clocks and power", "MIG")
    if not probe.available:
        first = Check(names[0], WARN, f"NVML unavailable ({probe.reason}): results will have no GPU telemetry")
        return [first] + [Check(n, SKIP, "NVML unavailable") for n in names[1:]]
    ident = probe.identity
    where = f"NVML index {ident.nvml_index}, UUID {ident.uuid}" if ident is not None else "no identity"
    if probe.matches_torch:
        device = Check(names[0], PASS, f"telemetry reads this GPU ({where})", {"identity": _as_dict(ident)})
    else:
        device = Check(names[0], FAIL, f"NVML's handle ({where}) is not torch's GPU (UUID {probe.torch_uuid}): "
                                       "telemetry would come from another GPU", {"identity": _as_dict(ident)})
    energy = (Check(names[1], PASS, "hardware energy counter") if probe.energy_counter else
              Check(names[1], WARN, "no energy counter: energy is integrated from power samples, "
                                    "which misses what happens between them"))
    readings = Check(names[2], *power_readings(probe))
    slowing = sorted(set(probe.throttle_reasons) & SLOWING_REASONS)
    capped = power_cap(probe.power_limit_w, getattr(probe, "default_power_limit_w", None))
    clocks = (f"SM clock {_num(probe.sm_clock_mhz)} of {_num(probe.max_sm_clock_mhz)} MHz, power limit "
              f"{_num(probe.power_limit_w)} W, throttle reasons: {', '.join(probe.throttle_reasons) or 'none'}")
    power_data = {"sm_clock_mhz": probe.sm_clock_mhz, "max_sm_clock_mhz": probe.max_sm_clock_mhz,
                  "power_limit_w": probe.power_limit_w, "throttle_reasons": list(probe.throttle_reasons),
                  "default_power_limit_w": getattr(probe, "default_power_limit_w", None)}
    problems = ([capped] if capped else []) + (["slowed down before any work; results will be too"] if slowing else [])
    power = Check(names[3], WARN if problems else PASS, "; ".join([clocks, *problems]), power_data)
    mig_slice = probe.mig_mode or (ident is not None and ident.mig)
    if mig_slice:
        mig = Check(names[4], WARN, "MIG on: the run gets a slice; utilisation, power, energy and clocks cover the "
                                    "whole GPU, and the datasheet peaks do not apply")
    else:
        mig = Check(names[4], PASS, "MIG off" if probe.mig_mode is False else "MIG not supported here")
    return [device, energy, readings, power, mig]


def _num(value: Optional[float]) -> str:
    return "?" if value is None else f"{value:.0f}"


def _as_dict(identity: Any) -> Optional[dict[str, Any]]:
    return None if identity is None else identity.to_dict()


def cuda_unavailable_reason(build_cuda: Optional[str], nvml_reason: Optional[str], driver: Check) -> str:
    """Why torch sees no CUDA GPU, as far as can be told without one."""
    if build_cuda is None:
        return "this torch is a CPU-only build; install a CUDA build (README: Set-up)"
    if driver.status == FAIL:
        return "the driver is too old for this torch build (see 'driver vs torch build')"
    if nvml_reason is not None:
        return f"no NVIDIA driver found ({nvml_reason})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return f"CUDA_VISIBLE_DEVICES={visible!r} may hide the GPUs"
    return "torch.cuda.is_available() is False"
