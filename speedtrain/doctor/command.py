"""``speedtrain doctor``: check, on the user's GPU, every assumption the harness makes.

No machine this project is built on has a GPU, so the CUDA paths are right by construction
and tested with fakes; the doctor is where they meet a real GPU, in about a minute. It prints
one table of checks, each PASS / WARN / FAIL / SKIP with a one-line reason:

* versions; the torch build has kernels for this GPU; the driver is new enough for the build;
* which precisions are fast here and which one the suite will use;
* NVML watches this very GPU (same UUID), with an energy counter or not; clocks, throttle
  reasons and power limit now; MIG;
* the training clock against a synchronised wall clock (2%);
* dense matmul TFLOP/s per precision against the datasheet, and memory bandwidth;
* the GPU-resident loader's augmentation, on the device;
* the NVML monitor's own cost on a short training (goal < 1%).

On a CPU the checks that apply run (in seconds) and the others are SKIP with the reason. Any
FAIL means benchmark numbers cannot be trusted here: the command exits 1. The decisions are in
:mod:`speedtrain.doctor.diagnosis`, the measurements in :mod:`speedtrain.doctor.microbench` and
:mod:`speedtrain.doctor.augcheck`; this module runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from speedtrain.hw import capability
from speedtrain.doctor import microbench
from speedtrain.doctor.augcheck import check_gpu_loader
from speedtrain.hw.env import cudnn_version
from speedtrain.doctor.hwverdicts import bandwidth_verdict
from speedtrain.doctor.matmulpeak import plateau_matmul, with_size
from speedtrain.doctor.diagnosis import (
    FAIL, PASS, SKIP, WARN, Check, cuda_unavailable_reason, driver_compatibility, kernel_support,
    matmul_verdict, monitor_overhead, nvml_checks, precision_check, timer_agreement, wheel_builds,
)
from speedtrain.hw.gpumonitor import nvml_environment, probe_nvml
from speedtrain.hw.runconditions import cpu_model

Log = Callable[[str], None]

NVML_NAMES = ("NVML device", "energy", "power readings", "clocks and power", "MIG")
MEASURED_NAMES = ("timer vs wall clock", "matmul fp32", "matmul tf32", "matmul fp16", "matmul bf16",
                  "memory bandwidth", "loader augmentation", "monitor overhead")


@dataclass
class DoctorReport:
    device: str
    seconds: float
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, WARN, FAIL, SKIP)}

    def summary_line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items())
        verdict = "FAIL: do not trust benchmark numbers here" if self.failed else "ok"
        return f"doctor on {self.device}: {counts} in {self.seconds:.1f} s; {verdict}"

    def matmul_peaks(self) -> dict[str, float]:
        """Dense matmul FLOP/s measured per format (``fp32``, ``tf32``, ``fp16``, ``bf16``): the
        rate this GPU showed it reaches, which the report sets beside the datasheet's MFU."""
        return {c.name.removeprefix("matmul "): c.data["tflops"] * 1e12 for c in self.checks
                if c.name.startswith("matmul ") and c.status in (PASS, WARN) and c.data.get("tflops")}

    def matmul_sizes(self) -> dict[str, int]:
        """The square size each of :meth:`matmul_peaks` was measured at (``matmulpeak``)."""
        return {c.name.removeprefix("matmul "): int(c.data["n"]) for c in self.checks
                if c.name.startswith("matmul ") and c.status in (PASS, WARN) and c.data.get("n")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: what ``--json`` writes and the benchmark session stores in machine_info."""
        return {"device": self.device, "seconds": round(self.seconds, 2), "ok": not self.failed,
                "counts": self.counts(), "checks": [c.to_dict() for c in self.checks]}


def format_table(checks: list[Check]) -> str:
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'check':<{width}}  status  reason", f"{'-' * width}  ------  {'-' * 40}"]
    lines += [f"{c.name:<{width}}  {c.status:<6}  {c.reason}" for c in checks]
    return "\n".join(lines)


def resolve(option: str) -> torch.device:
    """``auto`` is CUDA when torch sees a GPU; ``cuda`` stays CUDA even without one (a FAIL)."""
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(option)


def run_doctor(device: torch.device, *, quick: bool = False, nvml: Any = None, log: Optional[Log] = None) -> DoctorReport:
    start = time.perf_counter()
    checks = run_checks(device, quick=quick, nvml=nvml, log=log)
    return DoctorReport(str(device), time.perf_counter() - start, checks)


def run_checks(device: torch.device, *, quick: bool = False, nvml: Any = None, log: Optional[Log] = None) -> list[Check]:
    """Every check for ``device``, in table order. ``quick`` uses smaller matmuls and skips the
    monitor-overhead training (for a benchmark session's start); ``nvml`` is injectable for tests."""

    device = torch.device(device)
    log = log or (lambda line: None)
    env = nvml_environment(nvml)
    driver = driver_compatibility(env.get("cuda_driver_version"), torch.version.cuda, env.get("driver_version"),
                                  wheel_builds())
    checks = [_versions(env), driver]
    if device.type == "cuda" and not torch.cuda.is_available():
        why = cuda_unavailable_reason(torch.version.cuda, env.get("reason"), driver)
        checks.append(Check("device", FAIL, f"CUDA was asked for but torch sees no GPU: {why}"))
        skipped = ("kernels for this GPU", "precisions") + NVML_NAMES + MEASURED_NAMES
        return checks + [Check(name, SKIP, "no usable CUDA device") for name in skipped]
    if device.type != "cuda":
        return checks + _cpu_checks(device, log)
    return checks + _cuda_checks(device, quick, nvml, log)


def _versions(env: dict[str, Any]) -> Check:
    cudnn, error = cudnn_version()  # cuDNN >= 9.11 refuses GPUs below compute capability 7.5
    cudnn_text = f"unusable: {error}" if error else "none" if cudnn is None else _cudnn_text(cudnn)
    driver = env.get("driver_version") or "not found"
    text = (f"torch {torch.__version__}, CUDA runtime {torch.version.cuda or 'none (CPU build)'}, "
            f"driver {driver}, cuDNN {cudnn_text}")
    return Check("versions", FAIL if error else PASS, text, {"torch": torch.__version__, "cuda": torch.version.cuda,
                                                            "cudnn": cudnn, "driver": env.get("driver_version")})


def _cudnn_text(version: int) -> str:
    # cuDNN 9 encodes 9.1.0 as 90100; cuDNN 8 encoded 8.9.7 as 8907.
    if version >= 90000:
        return f"{version // 10000}.{version % 10000 // 100}.{version % 100}"
    return f"{version // 1000}.{version % 1000 // 100}.{version % 100}"


def _cpu_checks(device: torch.device, log: Log) -> list[Check]:
    no_gpu = "needs a CUDA GPU"
    reasons = {
        "kernels for this GPU": no_gpu, **{name: no_gpu for name in NVML_NAMES},
        "timer vs wall clock": "the CPU clock is perf_counter, the wall clock itself; CUDA events are checked on a GPU",
        "memory bandwidth": no_gpu, "monitor overhead": "the NVML monitor samples GPUs only",
        **{f"matmul {p}": "no datasheet peak for a CPU; measured on a GPU" for p in microbench.MATMUL_DTYPES},
    }
    checks = [Check("device", PASS, f"cpu: {cpu_model()} (no CUDA GPU; GPU checks are skipped)"),
              Check("kernels for this GPU", SKIP, reasons["kernels for this GPU"]), precision_check(None)]
    checks += [Check(name, SKIP, reasons[name]) for name in NVML_NAMES]
    for name in MEASURED_NAMES:
        checks.append(_guarded(name, lambda: _loader_check(device, log)) if name == "loader augmentation"
                      else Check(name, SKIP, reasons[name]))
    return checks


def _cuda_checks(device: torch.device, quick: bool, nvml: Any, log: Log) -> list[Check]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    device = torch.device("cuda", index)
    cap = capability.device_capability(device)
    assert cap is not None  # a CUDA device always has one
    props = torch.cuda.get_device_properties(device)
    name = props.name
    kernels = kernel_support(cap, torch.cuda.get_arch_list(), name, torch.__version__, wheel_builds())
    checks = [Check("device", PASS, f"{device} {name}, compute capability {cap[0]}.{cap[1]}, "
                                    f"{props.total_memory / 2**30:.0f} GiB", {"name": name}),
              kernels, precision_check(cap)]
    log("doctor: asking NVML about the GPU")
    checks += nvml_checks(probe_nvml(index, nvml=nvml))
    if kernels.status == FAIL:  # every kernel launch would fail with "no kernel image"
        return checks + [Check(n, SKIP, "no kernels for this GPU in this torch build") for n in MEASURED_NAMES]
    checks += _measurements(device, cap, name, quick, log)
    torch.cuda.empty_cache()
    return checks


def _measurements(device: torch.device, cap: capability.Capability, gpu_name: str, quick: bool, log: Log) -> list[Check]:
    # Both sizes of doctor find the plateau size (matmulpeak): the measured-peak MFU divides by it.
    target_s, budget_s = (0.2, 4.0) if quick else (0.5, 10.0)

    def timer() -> Check:
        return timer_agreement(*microbench.timer_against_wall(device, microbench.fixed_matmul_work(device)))

    def matmul(precision: str) -> Callable[[], Check]:
        def step() -> Check:
            peak = plateau_matmul(device, precision, target_s=target_s, budget_s=budget_s)
            return with_size(matmul_verdict(precision, peak.flops, gpu_name), peak)
        return step

    def bandwidth() -> Check:
        nbytes = microbench.copy_size(device)
        rate = microbench.copy_bandwidth(device, nbytes)
        return Check("memory bandwidth", *bandwidth_verdict(rate, nbytes, gpu_name))

    def overhead() -> Check:
        off, on = microbench.monitor_overhead_runs(device, capability.base_precision(cap).precision)
        return monitor_overhead(off, on)

    steps: list[tuple[str, Optional[str], Callable[[], Check]]] = [
        ("timer vs wall clock", None, timer),
        ("matmul fp32", None, matmul("fp32")),
        ("matmul tf32", None if capability.fast_tf32(cap) else "no TF32 before compute capability 8.0", matmul("tf32")),
        ("matmul fp16", None, matmul("fp16")),
        ("matmul bf16", None if capability.fast_bf16(cap) else
         "no bf16 tensor cores before compute capability 8.0 (the suite uses fp16 here)", matmul("bf16")),
        ("memory bandwidth", None, bandwidth),
        ("loader augmentation", None, lambda: _loader_check(device, log)),
        ("monitor overhead", "skipped with --quick" if quick else None, overhead),
    ]
    checks = []
    for name, skip, step in steps:
        if skip is not None:
            checks.append(Check(name, SKIP, skip))
            continue
        log(f"doctor: {name}")
        checks.append(_guarded(name, step))
    return checks


def _guarded(name: str, step: Callable[[], Check]) -> Check:
    """A measurement that raises is a FAIL with the error, not a crashed doctor."""
    try:
        return step()
    except torch.OutOfMemoryError as exc:
        return Check(name, WARN, f"out of memory ({_first_line(exc)}): too little free GPU memory to measure")
    except Exception as exc:  # noqa: BLE001 - any error here is the finding
        return Check(name, FAIL, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _loader_check(device: torch.device, log: Log) -> Check:
    log("doctor: loader augmentation")
    report = check_gpu_loader(device)
    data = {"flipped_fraction": round(report.flipped_fraction, 3), "top_offsets": report.top_offsets,
            "left_offsets": report.left_offsets, "full_cutouts": report.full_cutouts,
            "same_draw_fraction": round(report.same_draw_fraction, 4), "problems": report.problems}
    if report.problems:
        return Check("loader augmentation", FAIL, "; ".join(report.problems), data)
    return Check("loader augmentation", PASS,
                 f"on {report.device}: crops within the padding (offsets {report.top_offsets[0]}..{report.top_offsets[-1]}), "
                 f"{report.flipped_fraction:.0%} flipped, one cutout square per image, "
                 f"{report.same_draw_fraction:.1%} same draw in the next epoch", data)
