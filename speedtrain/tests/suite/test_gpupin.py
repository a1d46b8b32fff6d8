"""xdist workers pinned by UUID (issue 19): the pins against the fake NVML and torch device list."""

from __future__ import annotations

import pytest

from speedtrain.suite.gpupin import GPU_UUID, INDEX, MIG_UUID, kind_of, pin_gpus, placement_label
from speedtrain.tests.fake_nvml import mig_box, reordered_box, visible_devices_box


def test_each_gpu_is_pinned_by_its_nvml_uuid_in_cuda_order(monkeypatch):
    box = reordered_box().install(monkeypatch)  # CUDA 0 is NVML 2 (fastest first)
    pins = pin_gpus([0, 2], None, nvml=box.nvml)
    assert [p.value for p in pins] == [box.nvml.gpus[2].uuid, box.nvml.gpus[0].uuid]
    assert all(p.kind == GPU_UUID and p.value.startswith("GPU-") for p in pins)
    assert [p.cuda_index for p in pins] == [0, 2]
    assert not box.nvml.initialised  # NVML shut again


def test_a_parent_index_list_is_turned_into_uuids(monkeypatch):
    box = visible_devices_box(1).install(monkeypatch)  # CUDA_VISIBLE_DEVICES=1: CUDA 0 is NVML 1
    pin = pin_gpus([0], "1", nvml=box.nvml)[0]
    assert pin.value == box.nvml.gpus[1].uuid and pin.kind == GPU_UUID


def test_a_mig_slice_is_pinned_and_labelled_as_one(monkeypatch):
    box = mig_box(slice_index=1).install(monkeypatch)
    pin = pin_gpus([0], None, nvml=box.nvml)[0]
    piece = box.nvml.gpus[1].mig_devices[1]
    assert pin.value == piece.uuid and pin.value.startswith("MIG-") and pin.kind == MIG_UUID


def test_an_unidentified_slice_keeps_its_index_and_says_why(monkeypatch):
    box = mig_box().install(monkeypatch)
    box.cuda[0].uuid = None  # found only by PCI bus id: the parent's UUID would pin the whole GPU
    pin = pin_gpus([0], None, nvml=box.nvml)[0]
    assert pin.value == "0" and pin.kind == INDEX and "PCI bus id" in (pin.reason or "")


def test_uuids_in_the_parents_list_are_kept_without_asking_nvml():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"NVML asked for {name}")
    pins = pin_gpus([1, 0], "GPU-aaa,MIG-bbb", nvml=Untouchable())
    assert [(p.value, p.kind) for p in pins] == [("MIG-bbb", MIG_UUID), ("GPU-aaa", GPU_UUID)]


@pytest.mark.parametrize("value, kind", [("GPU-1234", GPU_UUID), ("mig-5678", MIG_UUID), ("3", INDEX),
                                         (" MIG-GPU-abc/1/0", MIG_UUID)])
def test_kind_of(value, kind):
    assert kind_of(value) == kind


def test_placement_labels_mig_uuids_as_such():
    assert placement_label("MIG-abc") == {"pin_kind": MIG_UUID, "mig_uuid": "MIG-abc"}
    assert placement_label("GPU-abc") == {"pin_kind": GPU_UUID, "gpu_uuid": "GPU-abc"}
    assert placement_label("2") == {"pin_kind": INDEX}
    assert placement_label(None) == {}
