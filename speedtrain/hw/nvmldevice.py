"""Which physical GPU a torch CUDA device is, in NVML's terms.

NVML numbers GPUs in PCI bus order and ignores ``CUDA_VISIBLE_DEVICES``; CUDA numbers them
fastest-first by default and only counts the visible ones. So NVML index ``k`` is CUDA device
``k`` only by luck: on a multi-GPU box, under ``CUDA_VISIBLE_DEVICES`` or with MIG, reading
index 0 measures another GPU. :func:`find_nvml_device` matches the torch device to NVML by the
UUID both report (torch prints the bare 128-bit label, NVML prefixes ``GPU-`` or ``MIG-``),
falling back to the PCI bus id.

A MIG slice is matched to its MIG device handle, but NVML reports utilisation, power, energy,
clocks and temperature only for the whole (parent) GPU; :class:`NvmlDevice` therefore carries
both handles so the monitor can read memory from the slice and the rest from the parent, and
label the latter as whole-GPU figures. Nothing here trusts the NVML index: no match is a
:class:`LookupError` with the reason, never a guess.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    import torch

NVML_ERROR_NOT_SUPPORTED = 3  # nvml.h return codes; pynvml maps them to NVMLError_* classes
NVML_DEVICE_MIG_ENABLE = 1

# Clock event ("throttle") reason bits, as in nvml.h. Hard-coded rather than read from the
# module: the values are part of NVML's stable ABI, and a fake module need not define them.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal"),
    (0x040, "hw_thermal"),
    (0x080, "hw_power_brake"),
    (0x100, "display_clocks"),
)
_KNOWN_BITS = 0
for _bit, _ in THROTTLE_REASONS:
    _KNOWN_BITS |= _bit

# Newer drivers call them clock *event* reasons; older ones only have the throttle name.
THROTTLE_FUNCTIONS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")

Device = Union["torch.device", int, str, None]  # what a monitor is told to watch

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_NULL_UUID = "00000000-0000-0000-0000-000000000000"


def decode_throttle_reasons(mask: int) -> list[str]:
    """Names of the reason bits set in an NVML clocks-event mask, in bit order."""
    names = [name for bit, name in THROTTLE_REASONS if mask & bit]
    unknown = mask & ~_KNOWN_BITS
    if unknown:
        # Newer drivers add bits; name them by value rather than drop them silently.
        names.append(f"other_{unknown:#x}")
    return names


def import_nvml() -> Optional[ModuleType]:
    """The pynvml module (nvidia-ml-py), or None when it is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def text(value: Any) -> str:
    """NVML strings as str: old pynvml versions return bytes for names, UUIDs and versions."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def error_message(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def is_not_supported(nvml: Any, exc: BaseException) -> bool:
    """Whether an NVML call failed because the device cannot report that quantity at all."""
    cls = getattr(nvml, "NVMLError_NotSupported", None)
    if isinstance(cls, type) and isinstance(exc, cls):
        return True
    return getattr(exc, "value", None) == NVML_ERROR_NOT_SUPPORTED


def ask(nvml: Any, fn_name: str, *args: Any) -> Any:
    """Call an NVML function; None when this pynvml lacks it or the call fails for any reason."""
    fn = getattr(nvml, fn_name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # NVMLError_*: NotSupported, FunctionNotFound (old driver), Unknown...
        return None


def bare_uuid(value: Any) -> Optional[str]:
    """The 128-bit label of a torch or NVML UUID, lower case, without ``GPU-``/``MIG-``; None if none.

    torch's ``_CUuuid`` prints ``xxxxxxxx-xxxx-...``; NVML returns ``GPU-xxxxxxxx-...`` for a
    GPU and ``MIG-xxxxxxxx-...`` for a MIG device (drivers >= R470). The older MIG form
    ``MIG-GPU-<uuid>/<gi>/<ci>`` names the parent, not the slice, so it is no match.
    """
    if value is None:
        return None
    label = text(value).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if label.startswith(prefix):
            label = label[len(prefix):]
            break
    if not _UUID_RE.match(label) or label == _NULL_UUID:
        return None
    return label


@dataclass(frozen=True)
class GpuIdentity:
    """Which GPU a figure was measured on, as recorded in every telemetry summary.

    ``uuid`` is NVML's (``GPU-...`` or ``MIG-...``); for a MIG slice ``parent_uuid`` and
    ``nvml_index`` name the whole GPU that the slice is part of. ``uuid`` is None when the
    run used an unidentified slice of a MIG-enabled GPU (found by PCI bus id on an old driver).
    ``matched_by`` says how the torch device was found: ``"uuid"`` or ``"pci_bus_id"``.
    """

    cuda_index: int
    nvml_index: Optional[int]
    uuid: Optional[str]
    name: Optional[str]
    pci_bus_id: Optional[str]
    mig: bool
    parent_uuid: Optional[str]
    matched_by: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TorchDeviceIds:
    """What torch says identifies a CUDA device: its bare UUID and NVML-form PCI bus id."""

    uuid: Optional[str]
    pci_bus_id: Optional[str]


@dataclass(frozen=True)
class NvmlDevice:
    """A torch device located in NVML: ``handle`` reads the whole GPU (utilisation, power,
    energy, clocks, temperature); ``slice_handle`` is the MIG device (memory), None otherwise."""

    handle: Any
    slice_handle: Optional[Any]
    identity: GpuIdentity


def resolve_cuda_index(device: Device) -> int:
    """The CUDA device index a monitor should watch; LookupError(reason) if it is not a GPU.

    None and a bare ``cuda`` mean torch's current CUDA device.
    """
    import torch

    if isinstance(device, int) and not isinstance(device, bool):
        return device
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        raise LookupError(f"device {dev} is not a CUDA GPU")
    if dev.index is not None:
        return dev.index
    if not torch.cuda.is_available():
        raise LookupError("no CUDA GPU: torch.cuda.is_available() is False")
    return torch.cuda.current_device()


def torch_device_ids(cuda_index: int) -> TorchDeviceIds:
    """The UUID and PCI bus id torch reports for CUDA device ``cuda_index``; LookupError if none."""
    import torch

    try:
        props = torch.cuda.get_device_properties(cuda_index)
    except Exception as exc:  # CPU-only build, no driver, index out of range...
        raise LookupError(f"torch cannot describe CUDA device {cuda_index}: {error_message(exc)}") from exc
    # torch 2.14: ``uuid`` is a _CUuuid whose str() is the bare label; pci_* are ints.
    pci = [getattr(props, f"pci_{part}_id", None) for part in ("domain", "bus", "device")]
    pci_bus_id = None
    if all(isinstance(p, int) for p in pci):
        pci_bus_id = "{:08X}:{:02X}:{:02X}.0".format(*pci)  # NVML's own busId format
    return TorchDeviceIds(uuid=bare_uuid(getattr(props, "uuid", None)), pci_bus_id=pci_bus_id)


def find_nvml_device(nvml: Any, cuda_index: int) -> tuple[Any, GpuIdentity]:
    """The NVML handle to sample for torch's CUDA device ``cuda_index``, and which GPU it is.

    ``nvml`` must be initialised. For a MIG slice the handle is the parent GPU's (the only one
    that reports utilisation, power, energy and clocks). Raises LookupError(reason) when torch
    cannot describe the device or no NVML device matches it.
    """
    device = locate_nvml_device(nvml, cuda_index)
    return device.handle, device.identity


def locate_nvml_device(nvml: Any, cuda_index: int) -> NvmlDevice:
    """Like :func:`find_nvml_device`, with the MIG slice's own handle as well."""
    ids = torch_device_ids(cuda_index)
    if ids.uuid is not None:
        handle, is_slice = _handle_by_uuid(nvml, ids.uuid)
        if handle is not None:
            return _describe(nvml, handle, cuda_index, "uuid", is_slice)
    if ids.pci_bus_id is not None:
        handle = ask(nvml, "nvmlDeviceGetHandleByPciBusId", ids.pci_bus_id)
        if handle is not None:
            return _describe(nvml, handle, cuda_index, "pci_bus_id", False)
    raise LookupError(f"no NVML device matches CUDA device {cuda_index} "
                      f"(uuid {ids.uuid}, PCI bus id {ids.pci_bus_id})")


def _handle_by_uuid(nvml: Any, uuid: str) -> tuple[Any, bool]:
    """The handle whose NVML UUID is ``uuid`` (None if none), and whether it is a MIG device."""
    for prefix in ("GPU-", "MIG-"):
        handle = ask(nvml, "nvmlDeviceGetHandleByUUID", prefix + uuid)
        if handle is not None:
            return handle, prefix == "MIG-"
    # Some drivers do not look MIG UUIDs up: walk the GPUs and their MIG devices instead.
    for index in range(int(ask(nvml, "nvmlDeviceGetCount") or 0)):
        gpu = ask(nvml, "nvmlDeviceGetHandleByIndex", index)
        if gpu is None:
            continue
        if bare_uuid(ask(nvml, "nvmlDeviceGetUUID", gpu)) == uuid:
            return gpu, False
        if not _mig_enabled(nvml, gpu):
            continue
        for slot in range(int(ask(nvml, "nvmlDeviceGetMaxMigDeviceCount", gpu) or 0)):
            mig = ask(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", gpu, slot)  # NotFound: empty slot
            if mig is not None and bare_uuid(ask(nvml, "nvmlDeviceGetUUID", mig)) == uuid:
                return mig, True
    return None, False


def _mig_enabled(nvml: Any, gpu: Any) -> Optional[bool]:
    """Whether MIG mode is on for a whole-GPU handle; None where the GPU or driver cannot say."""
    mode = ask(nvml, "nvmlDeviceGetMigMode", gpu)  # [current, pending]
    if mode is None:
        return None
    return int(mode[0]) == NVML_DEVICE_MIG_ENABLE


def _is_mig_handle(nvml: Any, handle: Any) -> bool:
    flag = ask(nvml, "nvmlDeviceIsMigDeviceHandle", handle)
    # pynvml returns the ctypes c_uint itself here, not its value.
    return bool(getattr(flag, "value", flag) or 0)


def _describe(nvml: Any, handle: Any, cuda_index: int, matched_by: str, is_slice: bool) -> NvmlDevice:
    slice_handle = None
    parent = handle
    mig = is_slice or _is_mig_handle(nvml, handle)
    if mig:
        slice_handle = handle
        # Without the parent (old driver) sample the slice itself: its unsupported figures stay None.
        parent = ask(nvml, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        if parent is None:
            parent = handle
    elif _mig_enabled(nvml, handle):
        # CUDA cannot run on a MIG-enabled GPU as a whole, so the torch device is one of its
        # slices; found by PCI bus id (or by the parent's UUID) we cannot tell which.
        mig = True
    own = slice_handle if slice_handle is not None else parent
    has_parent = parent is not slice_handle
    uuid = None if mig and slice_handle is None else ask(nvml, "nvmlDeviceGetUUID", own)
    parent_uuid = ask(nvml, "nvmlDeviceGetUUID", parent) if mig and has_parent else None
    index = ask(nvml, "nvmlDeviceGetIndex", parent) if has_parent else None
    pci = ask(nvml, "nvmlDeviceGetPciInfo", parent)
    name = ask(nvml, "nvmlDeviceGetName", own)
    identity = GpuIdentity(
        cuda_index=cuda_index,
        nvml_index=None if index is None else int(index),
        uuid=None if uuid is None else text(uuid),
        name=None if name is None else text(name),
        pci_bus_id=None if pci is None else text(getattr(pci, "busId", "")) or None,
        mig=mig,
        parent_uuid=None if parent_uuid is None else text(parent_uuid),
        matched_by=matched_by,
    )
    return NvmlDevice(handle=parent, slice_handle=slice_handle, identity=identity)
