"""Finding torch's CUDA device in NVML, and the doctor's NVML probe, against the fake NVML."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch

from speedtrain.hw.gpumonitor import GpuIdentity, NvmlProbe, find_nvml_device, probe_nvml
from speedtrain.hw.nvmldevice import TorchDeviceIds, bare_uuid, resolve_cuda_index, torch_device_ids
from speedtrain.tests.fake_nvml import (
    OLD_DRIVER_MISSING,
    FakeBox,
    mig_box,
    reordered_box,
    single_gpu_box,
    visible_devices_box,
)

LABEL = "5f3c1a2b-0d4e-4f6a-8b9c-0123456789ab"


@pytest.mark.parametrize("value, expected", [
    (LABEL, LABEL),  # torch's _CUuuid prints the bare label
    ("GPU-" + LABEL.upper(), LABEL),
    ("MIG-" + LABEL, LABEL),
    (("GPU-" + LABEL).encode(), LABEL),  # old pynvml returns bytes
    ("MIG-GPU-" + LABEL + "/1/0", None),  # R450 MIG form names the parent, not the slice
    ("00000000-0000-0000-0000-000000000000", None),
    ("", None),
    (None, None),
])
def test_bare_uuid(value: Any, expected: Any) -> None:
    assert bare_uuid(value) == expected


def test_torch_device_ids_in_nvml_format(monkeypatch: pytest.MonkeyPatch) -> None:
    props = SimpleNamespace(uuid=LABEL, pci_domain_id=1, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    assert torch_device_ids(0) == TorchDeviceIds(uuid=LABEL, pci_bus_id="00000001:3B:00.0")


def test_torch_device_ids_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(LookupError, match="torch cannot describe CUDA device 0"):
        torch_device_ids(0)


@pytest.mark.parametrize("device, expected", [(2, 2), ("cuda:1", 1), (torch.device("cuda", 3), 3)])
def test_resolve_cuda_index(device: Any, expected: int) -> None:
    assert resolve_cuda_index(device) == expected


@pytest.mark.parametrize("box_factory, cuda_index, nvml_index, mig", [
    (reordered_box, 0, 2, False),
    (reordered_box, 2, 0, False),
    (lambda: reordered_box(missing=OLD_DRIVER_MISSING), 1, 1, False),
    (lambda: visible_devices_box(1), 0, 1, False),
    (mig_box, 0, 1, True),
    (lambda: mig_box(slice_index=0, mig_uuid_lookup=False), 0, 1, True),
], ids=["fastest_first", "slowest_last", "old_driver", "visible_devices", "mig", "mig_walk"])
def test_find_nvml_device(monkeypatch: pytest.MonkeyPatch, box_factory: Callable[[], FakeBox],
                          cuda_index: int, nvml_index: int, mig: bool) -> None:
    box = box_factory().install(monkeypatch)
    box.nvml.nvmlInit()
    handle, identity = find_nvml_device(box.nvml, cuda_index)
    parent = box.nvml.gpus[nvml_index]
    assert handle.gpu is parent and handle.mig is None  # sampled on the whole GPU
    assert isinstance(identity, GpuIdentity)
    assert (identity.cuda_index, identity.nvml_index, identity.mig) == (cuda_index, nvml_index, mig)
    assert bare_uuid(identity.uuid) == str(box.cuda[cuda_index].uuid)
    assert identity.parent_uuid == (parent.uuid if mig else None)
    assert identity.to_dict()["pci_bus_id"] == parent.pci_bus_id


def test_find_by_pci_bus_id_when_torch_gives_no_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box().install(monkeypatch)
    box.cuda[0].uuid = None
    box.nvml.nvmlInit()
    handle, identity = find_nvml_device(box.nvml, 0)
    assert handle.gpu is box.nvml.gpus[2] and identity.matched_by == "pci_bus_id"
    assert identity.uuid == box.nvml.gpus[2].uuid


def test_no_match_is_a_lookup_error_not_nvml_index_0(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box().install(monkeypatch)
    box.cuda[0].uuid = None
    box.cuda[0].pci_bus_id = 0x99
    box.nvml.nvmlInit()
    with pytest.raises(LookupError, match="no NVML device matches CUDA device 0"):
        find_nvml_device(box.nvml, 0)


def test_probe_whole_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box().install(monkeypatch)
    fast = box.nvml.gpus[2]
    fast.clocks_event_reasons = 0x4
    fast.sm_clock_mhz = 2520
    fast.max_sm_clock_mhz = 2640
    fast.power_limit_mw = 450_000
    p = probe_nvml(0, box.nvml)
    assert isinstance(p, NvmlProbe) and p.available and p.reason is None
    assert p.identity is not None and p.identity.nvml_index == 2
    assert p.matches_torch and p.torch_uuid == str(box.cuda[0].uuid)
    assert p.energy_counter is True
    assert (p.sm_clock_mhz, p.max_sm_clock_mhz, p.power_limit_w) == (2520, 2640, 450.0)
    assert p.throttle_reasons == ["sw_power_cap"]
    assert p.mig_mode is None  # a GPU without MIG support cannot say
    assert (p.driver_version, p.cuda_driver_version) == ("550.54.15", "12.4")
    assert p.to_dict()["identity"]["uuid"] == fast.uuid
    assert not box.nvml.initialised


def test_probe_mig_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    box = mig_box().install(monkeypatch)
    p = probe_nvml(0, box.nvml)
    assert p.available and p.matches_torch and p.mig_mode is True
    assert p.identity is not None and p.identity.mig and p.energy_counter  # the parent's counter


def test_probe_unidentified_slice_does_not_match_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    box = mig_box().install(monkeypatch)
    box.cuda[0].uuid = None
    p = probe_nvml(0, box.nvml)
    assert p.available and not p.matches_torch and p.identity is not None and p.identity.uuid is None


def test_probe_old_gpu_and_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box(name="Tesla P100-PCIE-16GB", energy_counter=False, clocks_event_reasons=0x40,
                         mig_capable=False).install(monkeypatch)
    box.nvml.missing.update(OLD_DRIVER_MISSING)
    box.nvml.missing.add("nvmlDeviceGetEnforcedPowerLimit")
    p = probe_nvml(0, box.nvml)
    assert p.available and p.matches_torch
    assert p.energy_counter is False  # the monitor will integrate power samples
    assert p.throttle_reasons == ["hw_thermal"]  # from the older throttle-reasons call
    assert p.power_limit_w == 400.0  # from the management limit
    assert p.cuda_driver_version == "12.4" and p.mig_mode is None


def test_probe_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box().install(monkeypatch)
    p = probe_nvml(5, box.nvml)
    assert not p.available and p.reason.startswith("torch cannot describe CUDA device 5")
    assert p.driver_version == "550.54.15"
    box.nvml.init_error = box.nvml.NVMLError_Uninitialized()
    assert probe_nvml(0, box.nvml).reason == "NVML init failed: Uninitialized"
