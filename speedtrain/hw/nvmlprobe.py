"""One-off NVML questions about the machine: driver versions, and the state of the run's GPU now.

:func:`nvml_environment` records the driver and the GPUs NVML sees, for a result's
environment. :func:`probe_nvml` answers what ``speedtrain doctor`` checks before the numbers
are trusted: is the NVML handle found for the torch device that same device (same UUID), does
it have an energy counter (or will energy be integrated from power samples), what are its
clocks, throttle reasons and power limit now, is MIG on. Both open and shut NVML themselves
and never raise: what cannot be known is None, with a ``reason`` when nothing could be.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Optional

from speedtrain.hw.nvmldevice import (
    NVML_DEVICE_MIG_ENABLE,
    THROTTLE_FUNCTIONS,
    Device,
    GpuIdentity,
    ask,
    bare_uuid,
    decode_throttle_reasons,
    error_message,
    import_nvml,
    is_not_supported,
    locate_nvml_device,
    resolve_cuda_index,
    text,
    torch_device_ids,
)
from speedtrain.hw.nvmlpower import PowerReader

NVML_CLOCK_SM = 1  # nvml.h enum values, so a fake module need not define them


@dataclass
class NvmlProbe:
    """What NVML says about the torch device's GPU; ``available`` False with a ``reason`` if nothing."""

    available: bool
    reason: Optional[str] = None
    identity: Optional[GpuIdentity] = None
    torch_uuid: Optional[str] = None  # bare label, as torch reports it
    matches_torch: bool = False
    energy_counter: bool = False  # False: energy will be integrated from power samples
    sm_clock_mhz: Optional[float] = None
    max_sm_clock_mhz: Optional[float] = None
    throttle_reasons: list[str] = field(default_factory=list)
    power_limit_w: Optional[float] = None
    default_power_limit_w: Optional[float] = None  # nvmlDeviceGetPowerManagementDefaultLimit
    power_sample_source: Optional[str] = None  # nvmlpower: "instant" or "power_usage" (1 s average)
    capability: Optional[tuple[int, int]] = None  # torch's compute capability of the device
    mig_mode: Optional[bool] = None
    driver_version: Optional[str] = None
    cuda_driver_version: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cuda_version_text(value: Any) -> str:
    """nvmlSystemGetCudaDriverVersion's integer (12040) as ``12.4``."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        return text(value)
    return f"{v // 1000}.{(v % 1000) // 10}"


def _open(nvml: Optional[ModuleType]) -> tuple[Any, Optional[str]]:
    """The initialised module, or the reason it cannot be used."""
    if nvml is None:
        nvml = import_nvml()
        if nvml is None:
            return None, "nvidia-ml-py not installed"
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, OSError...
        return None, f"NVML init failed: {error_message(exc)}"
    return nvml, None


def _close(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass  # nothing useful to do about a failed shutdown


def _driver_versions(nvml: Any) -> tuple[Optional[str], Optional[str]]:
    driver = ask(nvml, "nvmlSystemGetDriverVersion")
    cuda = ask(nvml, "nvmlSystemGetCudaDriverVersion_v2")
    if cuda is None:
        cuda = ask(nvml, "nvmlSystemGetCudaDriverVersion")
    return (None if driver is None else text(driver), None if cuda is None else cuda_version_text(cuda))


def nvml_environment(nvml: Optional[ModuleType] = None, *, device: Device = None) -> dict[str, Any]:
    """Driver, NVML and CUDA-driver versions and the GPUs NVML sees (PCI order); never raises.

    Returns ``{'available': True, 'driver_version', 'nvml_version', 'cuda_driver_version',
    'gpu_count', 'gpus': [names]}`` or ``{'available': False, 'reason': ...}``. Given a torch
    CUDA ``device``, also ``'identity'``: its :class:`GpuIdentity` as a dict, or
    ``{'cuda_index', 'reason'}`` when it cannot be found (one NVML session for both).
    """
    nvml, reason = _open(nvml)
    if reason is not None:
        env: dict[str, Any] = {"available": False, "reason": reason}
        if device is not None:
            env["identity"] = _identity(None, reason, device)
        return env
    try:
        driver, cuda = _driver_versions(nvml)
        nvml_version = ask(nvml, "nvmlSystemGetNVMLVersion")
        count = ask(nvml, "nvmlDeviceGetCount")
        gpus: list[Optional[str]] = []
        for i in range(int(count or 0)):
            handle = ask(nvml, "nvmlDeviceGetHandleByIndex", i)
            name = None if handle is None else ask(nvml, "nvmlDeviceGetName", handle)
            gpus.append(None if name is None else text(name))
        identity = None if device is None else _identity(nvml, None, device)
    finally:
        _close(nvml)
    env = {
        "available": True,
        "driver_version": driver,
        "nvml_version": None if nvml_version is None else text(nvml_version),
        "cuda_driver_version": cuda,
        "gpu_count": None if count is None else int(count),
        "gpus": gpus,
    }
    if identity is not None:
        env["identity"] = identity
    return env


def _identity(nvml: Any, reason: Optional[str], device: Device) -> dict[str, Any]:
    try:
        cuda_index = resolve_cuda_index(device)
    except LookupError as exc:
        return {"cuda_index": None, "reason": str(exc)}
    if reason is not None:
        return {"cuda_index": cuda_index, "reason": reason}
    try:
        return locate_nvml_device(nvml, cuda_index).identity.to_dict()
    except LookupError as exc:
        return {"cuda_index": cuda_index, "reason": str(exc)}


def _capability(cuda_index: int) -> Optional[tuple[int, int]]:
    import torch

    try:
        major, minor = torch.cuda.get_device_capability(cuda_index)
    except Exception:  # no CUDA here: only the power-reading verdict uses it
        return None
    return int(major), int(minor)


def probe_nvml(cuda_index: int = 0, nvml: Optional[ModuleType] = None) -> NvmlProbe:
    """The NVML state of torch's CUDA device ``cuda_index`` now; never raises."""
    nvml, reason = _open(nvml)
    if reason is not None:
        return NvmlProbe(available=False, reason=reason)
    try:
        driver, cuda = _driver_versions(nvml)
        try:
            torch_uuid = torch_device_ids(cuda_index).uuid
            device = locate_nvml_device(nvml, cuda_index)
        except LookupError as exc:
            return NvmlProbe(available=False, reason=str(exc), driver_version=driver,
                             cuda_driver_version=cuda)
        h = device.handle
        mode = ask(nvml, "nvmlDeviceGetMigMode", h)
        limit_mw = ask(nvml, "nvmlDeviceGetEnforcedPowerLimit", h)
        if limit_mw is None:
            limit_mw = ask(nvml, "nvmlDeviceGetPowerManagementLimit", h)
        mask = None
        for fn_name in THROTTLE_FUNCTIONS:
            mask = ask(nvml, fn_name, h)
            if mask is not None:
                break
        default_mw = ask(nvml, "nvmlDeviceGetPowerManagementDefaultLimit", h)
        reader = PowerReader(nvml, h, lambda exc: is_not_supported(nvml, exc))
        ask(reader, "read_mw")  # the same choice of source the monitor makes
        clock = ask(nvml, "nvmlDeviceGetClockInfo", h, NVML_CLOCK_SM)
        max_clock = ask(nvml, "nvmlDeviceGetMaxClockInfo", h, NVML_CLOCK_SM)
        identity = device.identity
        return NvmlProbe(
            available=True,
            identity=identity,
            torch_uuid=torch_uuid,
            matches_torch=torch_uuid is not None and bare_uuid(identity.uuid) == torch_uuid,
            energy_counter=ask(nvml, "nvmlDeviceGetTotalEnergyConsumption", h) is not None,
            sm_clock_mhz=None if clock is None else float(clock),
            max_sm_clock_mhz=None if max_clock is None else float(max_clock),
            throttle_reasons=[] if mask is None else decode_throttle_reasons(int(mask)),
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            default_power_limit_w=None if default_mw is None else default_mw / 1000.0,
            power_sample_source=reader.source,
            capability=_capability(cuda_index),
            mig_mode=None if mode is None else int(mode[0]) == NVML_DEVICE_MIG_ENABLE,
            driver_version=driver,
            cuda_driver_version=cuda,
        )
    finally:
        _close(nvml)
