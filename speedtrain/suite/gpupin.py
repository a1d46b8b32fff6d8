"""Which ``CUDA_VISIBLE_DEVICES`` value pins an xdist worker to one GPU: its UUID (issue 19).

An index in ``CUDA_VISIBLE_DEVICES`` means "the k-th GPU in CUDA's order", which depends on
``CUDA_DEVICE_ORDER`` and on which GPUs (or MIG slices) exist when the worker starts; with MIG,
CUDA enumerates slices, not GPUs, so an index can land a worker on another slice. CUDA also
accepts UUIDs there: ``GPU-<uuid>`` for a whole GPU and ``MIG-<uuid>`` for a MIG slice
(drivers R470 and later), which name one device whatever the order. :func:`pin_gpus` therefore
gives each worker the UUID NVML reports for torch's device ``k`` (found by the UUID torch itself
reports, :func:`speedtrain.hw.nvmldevice.locate_nvml_device`, so the ``GPU-``/``MIG-`` prefix is
NVML's, never guessed), and labels each pin's kind: ``gpu_uuid``, ``mig_uuid`` or -- where the
UUID cannot be known (no NVML, or a MIG slice found only by its parent's PCI bus id) --
``index``, with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from speedtrain.hw.nvmldevice import error_message, import_nvml, locate_nvml_device, text

GPU_UUID, MIG_UUID, INDEX = "gpu_uuid", "mig_uuid", "index"


@dataclass(frozen=True)
class GpuPin:
    value: str  # what the worker's CUDA_VISIBLE_DEVICES is set to
    kind: str  # gpu_uuid | mig_uuid | index
    cuda_index: int  # the device as this (controller) process's torch numbers it
    reason: Optional[str] = None  # why an index rather than a UUID

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def kind_of(value: str) -> str:
    """``mig_uuid`` for ``MIG-...``, ``gpu_uuid`` for ``GPU-...``, else ``index``."""
    head = value.strip().upper()
    if head.startswith("MIG-"):
        return MIG_UUID
    if head.startswith("GPU-"):
        return GPU_UUID
    return INDEX


def pin_gpus(gpus: Sequence[int], parent_visible: Optional[str], nvml: Any = None) -> list[GpuPin]:
    """Each worker's pin for torch's GPUs ``gpus`` (indices as this process numbers them).

    A parent ``CUDA_VISIBLE_DEVICES`` entry that already is a UUID is kept as it is; any other
    GPU is looked up in NVML by the UUID torch reports. Never raises for want of NVML: the pin
    is then the index (the parent's entry, under a parent list), labelled ``index``."""
    entries = None if parent_visible is None else [e.strip() for e in parent_visible.split(",") if e.strip()]
    fallback = [entries[g] if entries is not None else str(g) for g in gpus]
    pins: list[Optional[GpuPin]] = [GpuPin(f, kind_of(f), g) if kind_of(f) != INDEX else None
                                    for g, f in zip(gpus, fallback)]
    if all(p is not None for p in pins):
        return [p for p in pins if p is not None]
    lib, reason = _open(nvml)
    try:
        out = []
        for g, f, pin in zip(gpus, fallback, pins):
            out.append(pin if pin is not None else _by_uuid(lib, g, f, reason))
        return out
    finally:
        if lib is not None:
            try:
                lib.nvmlShutdown()
            except Exception:
                pass  # nothing useful to do about a failed shutdown


def _open(nvml: Any) -> tuple[Any, Optional[str]]:
    lib = nvml if nvml is not None else import_nvml()
    if lib is None:
        return None, "nvidia-ml-py not installed"
    try:
        lib.nvmlInit()
    except Exception as exc:  # no driver, no library
        return None, f"NVML init failed: {error_message(exc)}"
    return lib, None


def _by_uuid(lib: Any, cuda_index: int, fallback: str, reason: Optional[str]) -> GpuPin:
    if lib is None:
        return GpuPin(fallback, INDEX, cuda_index, f"no UUID: {reason}")
    try:
        identity = locate_nvml_device(lib, cuda_index).identity
    except LookupError as exc:
        return GpuPin(fallback, INDEX, cuda_index, f"no UUID: {exc}")
    if identity.uuid is None:  # an unidentified MIG slice: its parent's UUID would pin the wrong device
        return GpuPin(fallback, INDEX, cuda_index, "no UUID: a MIG slice found only by its GPU's PCI bus id")
    uuid = text(identity.uuid)
    kind = kind_of(uuid)
    if kind == INDEX:  # an NVML UUID without a GPU-/MIG- prefix: not something CUDA takes
        return GpuPin(fallback, INDEX, cuda_index, f"NVML's UUID {uuid!r} has no GPU-/MIG- prefix")
    return GpuPin(uuid, kind, cuda_index)


def placement_label(visible: Optional[str]) -> dict[str, Any]:
    """What a worker's ``CUDA_VISIBLE_DEVICES`` says it ran on, for the case's placement."""
    if visible is None:
        return {}
    kind = kind_of(visible)
    return {"pin_kind": kind, **({"mig_uuid" if kind == MIG_UUID else "gpu_uuid": visible.strip()}
                                 if kind != INDEX else {})}
