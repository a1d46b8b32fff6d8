"""A stand-in for pynvml (nvidia-ml-py 13) and torch's CUDA device list, for tests without a GPU.

:class:`FakeNvml` has the pynvml functions speedtrain calls, with pynvml's names, argument
order and return types (str UUIDs and names, objects with ``.gpu``/``.used``/``.busId``, ints
in mW, mJ and MHz, ``[current, pending]`` MIG modes, a ctypes ``c_uint`` from
``nvmlDeviceIsMigDeviceHandle``) and its error classes (``NVMLError(value)`` builds the
``NVMLError_*`` subclass for that value, each with ``.value``). Calls before ``nvmlInit`` or
after the last ``nvmlShutdown`` raise ``NVMLError_Uninitialized``, as the real library does.

A :class:`FakeBox` pairs the NVML view (GPUs in PCI order, MIG devices under their parent)
with torch's view (CUDA devices fastest-first, or only the visible ones) so a test can check
that CUDA device ``k`` is matched to the right NVML handle. It models what real machines do
that NVML index 0 gets wrong: several GPUs whose PCI and CUDA orders differ, MIG slices whose
utilisation, power, energy and clocks only the parent GPU reports, GPUs without an energy
counter, transient ``Unknown`` errors, and old drivers missing newer functions.
"""

from __future__ import annotations

import ctypes
import itertools
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional, Union

import pytest

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_SUCCESS = 0
NVML_FI_DEV_POWER_AVERAGE = 185  # pynvml.py:751-752 (nvidia-ml-py 13.615)
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0  # pynvml.py:7363
NVML_VALUE_TYPE_UNSIGNED_INT = 1  # pynvml.py:290


class c_nvmlValue_t(ctypes.Union):
    """pynvml's value union (pynvml.py:1514): reading the wrong member gives the wrong number."""

    _fields_ = [("dVal", ctypes.c_double), ("uiVal", ctypes.c_uint), ("ulVal", ctypes.c_ulong),
                ("ullVal", ctypes.c_ulonglong), ("sllVal", ctypes.c_longlong), ("siVal", ctypes.c_int),
                ("usVal", ctypes.c_ushort)]


class c_nvmlFieldValue_t(ctypes.Structure):
    """pynvml's field value (pynvml.py:1537); the enums are c_uint there too."""

    _fields_ = [("fieldId", ctypes.c_uint32), ("scopeId", ctypes.c_uint32), ("timestamp", ctypes.c_int64),
                ("latencyUsec", ctypes.c_int64), ("valueType", ctypes.c_uint), ("nvmlReturn", ctypes.c_uint),
                ("value", c_nvmlValue_t)]

_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """pynvml's error base: ``NVMLError(3)`` is an ``NVMLError_NotSupported`` with ``.value == 3``."""

    _by_value: dict[int, type] = {}
    value: int

    def __new__(cls, value: Optional[int] = None) -> "NVMLError":
        if cls is NVMLError:
            cls = NVMLError._by_value.get(value, NVMLError)  # type: ignore[arg-type]
        obj = Exception.__new__(cls)
        obj.value = value if value is not None else cls._code  # type: ignore[attr-defined]
        return obj

    def __init__(self, value: Optional[int] = None) -> None:
        super().__init__()

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML Error with code {self.value}")


def _error_class(name: str, code: int) -> type:
    cls = type(f"NVMLError_{name}", (NVMLError,), {"_code": code})
    NVMLError._by_value[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NotFound = _error_class("NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _error_class("FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _error_class("Unknown", NVML_ERROR_UNKNOWN)

Scripted = Union[int, list]  # a constant, or readings consumed one per call (the last repeats)

_uuid_counter = itertools.count(1)


def make_uuid(tag: int) -> str:
    """A well-formed bare 128-bit label, distinct per ``tag``."""
    return f"{tag:08x}-1111-2222-3333-{next(_uuid_counter):012x}"


@dataclass
class FakeMigDevice:
    """A MIG device (GPU instance + compute instance): it reports its memory and little else."""

    name: str = "NVIDIA A100-SXM4-80GB MIG 3g.40gb"
    uuid: str = field(default_factory=lambda: "MIG-" + make_uuid(0xA1))
    mem_used: Scripted = 2_000_000_000
    mem_total: int = 40 * 2**30


@dataclass
class FakeGpu:
    """A whole GPU as NVML sees it. ``mig_devices`` non-empty means MIG mode is on."""

    name: str = "NVIDIA A100-SXM4-80GB"
    uuid: str = field(default_factory=lambda: "GPU-" + make_uuid(0x61))
    pci_bus_id: str = "00000000:07:00.0"
    energy_counter: bool = True  # False: Pascal and older, NotSupported
    mig_capable: bool = False
    mig_devices: list[FakeMigDevice] = field(default_factory=list)
    max_mig_devices: int = 7
    util: Scripted = 50
    mem_used: Scripted = 1_000_000_000
    mem_total: int = 80 * 2**30
    power_mw: Scripted = 200_000  # nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)
    # NVML_FI_DEV_POWER_INSTANT; None: this driver/GPU has no such field (its nvmlReturn is NotSupported)
    power_instant_mw: Optional[Scripted] = None
    # Scripted counter readings; None: a counter that advances at the GPU's current power
    # (the instant field's, else power_mw's, next value) over the wall time between reads.
    energy_mj: Optional[Scripted] = None
    sm_clock_mhz: Scripted = 1410
    max_sm_clock_mhz: int = 1410
    temp_c: Scripted = 60
    clocks_event_reasons: Scripted = 0
    power_limit_mw: int = 400_000
    default_power_limit_mw: int = 400_000
    _energy: Optional[tuple[float, float]] = field(default=None, repr=False)  # (time, mJ) of the last read

    def energy_reading(self) -> float:
        if self.energy_mj is not None:
            return _next(self.energy_mj)
        now = time.perf_counter()
        current = self.power_instant_mw if self.power_instant_mw is not None else self.power_mw
        watts = (current[0] if isinstance(current, list) else current) / 1000.0
        last_t, last_mj = self._energy if self._energy is not None else (now, 1_000_000.0)
        self._energy = (now, last_mj + watts * (now - last_t) * 1000.0)
        return self._energy[1]

    @property
    def pci_tuple(self) -> tuple[int, int, int]:
        return _parse_bus_id(self.pci_bus_id)


@dataclass(frozen=True)
class FakeHandle:
    """An opaque device handle, like pynvml's ``c_nvmlDevice_t`` pointer."""

    gpu: FakeGpu
    mig: Optional[FakeMigDevice] = None


def _parse_bus_id(bus_id: str) -> tuple[int, int, int]:
    # NVML accepts domain:bus:device.function, domain:bus:device and bus:device.function, in hex.
    parts = bus_id.split(".")[0].split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    if len(parts) != 3:
        raise NVMLError_InvalidArgument()
    domain, bus, device = (int(p, 16) for p in parts)
    return domain, bus, device


def _next(value: Scripted) -> Any:
    if isinstance(value, list):
        return value.pop(0) if len(value) > 1 else value[0]
    return value


class FakeNvml:
    """The pynvml functions speedtrain calls, over ``gpus`` in NVML (PCI) order.

    ``missing`` names functions this (old) driver lacks: calling them raises
    ``NVMLError_FunctionNotFound``, as pynvml does when libnvidia-ml has no such symbol.
    ``not_supported`` names functions this GPU cannot answer (``NVMLError_NotSupported``).
    ``fail_calls`` maps a function name to the 1-based call numbers that raise
    ``NVMLError_Unknown`` (transient errors). ``mig_uuid_lookup=False`` models drivers whose
    ``nvmlDeviceGetHandleByUUID`` does not accept MIG UUIDs. ``calls`` counts calls by name.
    """

    def __init__(self, gpus: Optional[list[FakeGpu]] = None, *, missing: tuple[str, ...] = (),
                 not_supported: tuple[str, ...] = (),
                 fail_calls: Optional[dict[str, set[int]]] = None, mig_uuid_lookup: bool = True,
                 init_error: Optional[Exception] = None, driver_version: str = "550.54.15",
                 cuda_driver_version: int = 12040) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        self.missing = set(missing)
        self.not_supported = set(not_supported)
        self.fail_calls = fail_calls or {}
        self.mig_uuid_lookup = mig_uuid_lookup
        self.init_error = init_error
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.calls: dict[str, int] = {}
        self.inits = 0
        self.shutdowns = 0
        self._refcount = 0

    # pynvml exposes its error classes and constants at module level.
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_Unknown = NVMLError_Unknown
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    @property
    def initialised(self) -> bool:
        """Whether NVML is still open (every nvmlInit not yet matched by an nvmlShutdown)."""
        return self._refcount > 0

    def _enter(self, fn_name: str, needs_init: bool = True) -> None:
        n = self.calls[fn_name] = self.calls.get(fn_name, 0) + 1
        if needs_init and self._refcount == 0:
            raise NVMLError_Uninitialized()
        if fn_name in self.missing:
            raise NVMLError_FunctionNotFound()
        if fn_name in self.not_supported:
            raise NVMLError_NotSupported()
        if n in self.fail_calls.get(fn_name, ()):
            raise NVMLError_Unknown()

    @staticmethod
    def _whole(handle: FakeHandle, *, mig_mode_ok: bool = True) -> FakeGpu:
        """Whole-GPU queries: NotSupported on a MIG device handle (and some on a MIG-enabled GPU)."""
        if handle.mig is not None or (not mig_mode_ok and handle.gpu.mig_devices):
            raise NVMLError_NotSupported()
        return handle.gpu

    # --- library --------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.shutdowns += 1
        self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion")
        return "12." + self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion_v2")
        return self.cuda_driver_version

    # --- finding devices ----------------------------------------------------------------------
    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        return FakeHandle(self.gpus[index])

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByUUID")
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return FakeHandle(gpu)
            for mig in gpu.mig_devices:
                if mig.uuid == uuid and self.mig_uuid_lookup:
                    return FakeHandle(gpu, mig)
        raise NVMLError_NotFound()

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByPciBusId")
        wanted = _parse_bus_id(bus_id)
        for gpu in self.gpus:
            if gpu.pci_tuple == wanted:
                return FakeHandle(gpu)
        raise NVMLError_NotFound()

    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetIndex")
        if handle.mig is not None:
            raise NVMLError_InvalidArgument()
        return self.gpus.index(handle.gpu)

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        self._enter("nvmlDeviceGetUUID")
        return handle.mig.uuid if handle.mig is not None else handle.gpu.uuid

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        self._enter("nvmlDeviceGetName")
        return handle.mig.name if handle.mig is not None else handle.gpu.name

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> SimpleNamespace:
        self._enter("nvmlDeviceGetPciInfo")
        domain, bus, device = handle.gpu.pci_tuple
        return SimpleNamespace(busId=handle.gpu.pci_bus_id, busIdLegacy=handle.gpu.pci_bus_id[4:],
                               domain=domain, bus=bus, device=device, pciDeviceId=0x20B210DE)

    # --- MIG ----------------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode")
        gpu = self._whole(handle)
        if not (gpu.mig_capable or gpu.mig_devices):
            raise NVMLError_NotSupported()
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig_devices else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceIsMigDeviceHandle(self, handle: FakeHandle) -> ctypes.c_uint:
        self._enter("nvmlDeviceIsMigDeviceHandle")
        return ctypes.c_uint(handle.mig is not None)  # pynvml returns the c_uint, not .value

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount")
        gpu = self._whole(handle)
        if not (gpu.mig_capable or gpu.mig_devices):
            raise NVMLError_NotSupported()
        return gpu.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu = self._whole(handle)
        if not 0 <= index < len(gpu.mig_devices):
            raise NVMLError_NotFound()
        return FakeHandle(gpu, gpu.mig_devices[index])

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeHandle) -> FakeHandle:
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        if handle.mig is None:
            raise NVMLError_InvalidArgument()
        return FakeHandle(handle.gpu)

    # --- readings -------------------------------------------------------------------------------
    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> SimpleNamespace:
        self._enter("nvmlDeviceGetUtilizationRates")
        # NVML does not report utilisation on a MIG-enabled GPU, whole or slice.
        gpu = self._whole(handle, mig_mode_ok=False)
        return SimpleNamespace(gpu=_next(gpu.util), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> SimpleNamespace:
        self._enter("nvmlDeviceGetMemoryInfo")
        owner: Union[FakeGpu, FakeMigDevice] = handle.mig if handle.mig is not None else handle.gpu
        used = _next(owner.mem_used)
        return SimpleNamespace(total=owner.mem_total, free=owner.mem_total - used, used=used)

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetPowerUsage")
        return _next(self._whole(handle).power_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetTotalEnergyConsumption")
        gpu = self._whole(handle)
        if not gpu.energy_counter:
            raise NVMLError_NotSupported()
        return gpu.energy_reading()

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        self._enter("nvmlDeviceGetClockInfo")
        if clock_type != NVML_CLOCK_SM:
            raise NVMLError_InvalidArgument()  # the fake only models the SM clock
        return _next(self._whole(handle).sm_clock_mhz)

    def nvmlDeviceGetMaxClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        self._enter("nvmlDeviceGetMaxClockInfo")
        if clock_type != NVML_CLOCK_SM:
            raise NVMLError_InvalidArgument()
        return self._whole(handle).max_sm_clock_mhz

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature")
        return _next(self._whole(handle).temp_c)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons")
        return _next(self._whole(handle).clocks_event_reasons)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetCurrentClocksThrottleReasons")
        return _next(self._whole(handle).clocks_event_reasons)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit")
        return self._whole(handle).power_limit_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetPowerManagementLimit")
        return self._whole(handle).power_limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeHandle) -> int:
        self._enter("nvmlDeviceGetPowerManagementDefaultLimit")
        return self._whole(handle).default_power_limit_mw

    def nvmlDeviceGetFieldValues(self, handle: FakeHandle, fieldIds: list) -> Any:
        """As pynvml.py:5004: ids or (id, scopeId) tuples in, a ctypes array of
        c_nvmlFieldValue_t out. Only a failed call raises; a field the device lacks comes back
        with its own nvmlReturn NotSupported. Models the two power fields (GPU scope)."""
        self._enter("nvmlDeviceGetFieldValues")
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        for value, requested in zip(values, fieldIds):
            field_id, scope = requested if isinstance(requested, tuple) else (requested, 0)
            value.fieldId, value.scopeId = field_id, scope
            value.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
            gpu = None if handle.mig is not None else handle.gpu  # no power fields on a MIG device
            if gpu is None or scope != NVML_POWER_SCOPE_GPU:
                continue
            reading = {NVML_FI_DEV_POWER_INSTANT: gpu.power_instant_mw, NVML_FI_DEV_POWER_AVERAGE: gpu.power_mw}.get(field_id)
            if reading is not None:
                value.nvmlReturn, value.valueType = NVML_SUCCESS, NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = _next(reading)
                value.timestamp = int(time.time() * 1e6)
        return values


# A driver from before clock "event" reasons (R535) and the v2 CUDA-version call.
OLD_DRIVER_MISSING = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlSystemGetCudaDriverVersion_v2",
                      "nvmlDeviceIsMigDeviceHandle", "nvmlDeviceGetMigMode",
                      "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", "nvmlDeviceGetMaxMigDeviceCount",
                      "nvmlDeviceGetMigDeviceHandleByIndex")


class _TorchUuid:
    """Like torch's ``_CUuuid``: str() is the bare 128-bit label, ``bytes`` the 16 octets."""

    def __init__(self, label: str) -> None:
        self._label = label

    def __str__(self) -> str:
        return self._label

    @property
    def bytes(self) -> list[int]:
        return list(bytes.fromhex(self._label.replace("-", "")))


def torch_props(device: Union[FakeGpu, FakeMigDevice], parent: Optional[FakeGpu] = None,
                major: int = 8, minor: int = 0) -> SimpleNamespace:
    """What ``torch.cuda.get_device_properties`` reports for this GPU or MIG slice (torch 2.14)."""
    gpu = parent if parent is not None else device
    assert isinstance(gpu, FakeGpu)
    domain, bus, dev = gpu.pci_tuple  # a MIG slice reports its parent's PCI location
    label = device.uuid.split("-", 1)[1]  # torch prints the UUID without GPU-/MIG-
    return SimpleNamespace(name=device.name, major=major, minor=minor, total_memory=device.mem_total,
                           multi_processor_count=108, uuid=_TorchUuid(label), pci_bus_id=bus,
                           pci_device_id=dev, pci_domain_id=domain)


@dataclass
class FakeBox:
    """A machine: NVML's view (``nvml``) and torch's CUDA devices in CUDA order (``cuda``)."""

    nvml: FakeNvml
    cuda: list[SimpleNamespace]
    current_device: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeBox":
        """Make ``torch.cuda`` describe this box's CUDA devices (nothing else of torch changes)."""
        import torch

        def get_device_properties(device: Any = None) -> SimpleNamespace:
            index = _cuda_index(device, self.current_device)
            if not 0 <= index < len(self.cuda):
                raise AssertionError("Invalid device id")  # what torch raises
            return self.cuda[index]

        monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(self.cuda))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.cuda))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current_device)
        monkeypatch.setattr(torch.cuda, "get_device_properties", get_device_properties)
        monkeypatch.setattr(torch.cuda, "get_device_name",
                            lambda device=None: get_device_properties(device).name)
        monkeypatch.setattr(torch.cuda, "get_device_capability",
                            lambda device=None: (get_device_properties(device).major,
                                                 get_device_properties(device).minor))
        return self


def _cuda_index(device: Any, current: int) -> int:
    if device is None:
        return current
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)
    if index is None and isinstance(device, str):
        index = int(device.split(":")[1]) if ":" in device else None
    return current if index is None else int(index)


def single_gpu_box(**gpu_fields: Any) -> FakeBox:
    """One GPU, NVML index 0 and CUDA device 0."""
    gpu = FakeGpu(**gpu_fields)
    return FakeBox(FakeNvml([gpu]), [torch_props(gpu)])


def reordered_box(**nvml_kwargs: Any) -> FakeBox:
    """Three GPUs: NVML in PCI order, CUDA fastest-first (CUDA 0 is NVML 2, CUDA 2 is NVML 0)."""
    slow = FakeGpu(name="NVIDIA GeForce RTX 3060", pci_bus_id="00000000:01:00.0", power_mw=100_000)
    mid = FakeGpu(name="NVIDIA RTX A5000", pci_bus_id="00000000:21:00.0", power_mw=150_000)
    fast = FakeGpu(name="NVIDIA GeForce RTX 4090", pci_bus_id="00000000:41:00.0", power_mw=300_000)
    return FakeBox(FakeNvml([slow, mid, fast], **nvml_kwargs),
                   [torch_props(fast, major=8, minor=9), torch_props(mid, major=8, minor=6),
                    torch_props(slow, major=8, minor=6)])


def visible_devices_box(visible: int) -> FakeBox:
    """``CUDA_VISIBLE_DEVICES=<visible>`` on a two-GPU box: CUDA 0 is NVML ``visible``."""
    gpus = [FakeGpu(name="NVIDIA H100 80GB HBM3", pci_bus_id=f"00000000:{0x18 + 0x20 * i:02X}:00.0")
            for i in range(2)]
    return FakeBox(FakeNvml(gpus), [torch_props(gpus[visible], major=9, minor=0)])


def mig_box(slice_index: int = 1, **nvml_kwargs: Any) -> FakeBox:
    """An A100 in MIG mode with two slices, beside a plain GPU at NVML 0; CUDA sees one slice.

    As under ``CUDA_VISIBLE_DEVICES=MIG-<uuid>``: CUDA device 0 is MIG slice ``slice_index``.
    """
    plain = FakeGpu(name="NVIDIA A100-SXM4-80GB", pci_bus_id="00000000:07:00.0", power_mw=90_000)
    slices = [FakeMigDevice(name=f"NVIDIA A100-SXM4-80GB MIG 3g.40gb #{i}", mem_used=(i + 1) * 10**9)
              for i in range(2)]
    migged = FakeGpu(name="NVIDIA A100-SXM4-80GB", pci_bus_id="00000000:0F:00.0", mig_capable=True,
                     mig_devices=slices, power_mw=250_000, mem_used=30 * 10**9)
    return FakeBox(FakeNvml([plain, migged], **nvml_kwargs),
                   [torch_props(slices[slice_index], parent=migged)])
