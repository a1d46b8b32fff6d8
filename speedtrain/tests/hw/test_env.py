"""environment(): the GPU it records is the torch device's own, found in NVML by UUID."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from speedtrain.hw.env import environment
from speedtrain.tests.fake_nvml import FakeBox, mig_box, reordered_box


def _install(box: FakeBox, monkeypatch: pytest.MonkeyPatch) -> None:
    box.install(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", box.nvml)  # what `import pynvml` returns


def test_cpu_environment_has_no_gpu() -> None:
    env = environment(torch.device("cpu"))
    assert env["gpu"] is None and env["device"].startswith("cpu: ")
    json.dumps(env)


@pytest.mark.parametrize("cuda_index, nvml_index", [(0, 2), (1, 1), (2, 0)])
def test_gpu_identity_is_the_torch_device(monkeypatch: pytest.MonkeyPatch, cuda_index: int,
                                          nvml_index: int) -> None:
    box = reordered_box()
    _install(box, monkeypatch)
    env = environment(torch.device("cuda", cuda_index))
    gpu = env["gpu"]
    nvml_gpu = box.nvml.gpus[nvml_index]
    assert gpu["name"] == env["device"] == nvml_gpu.name
    assert gpu["identity"]["nvml_index"] == nvml_index and gpu["identity"]["cuda_index"] == cuda_index
    assert gpu["identity"]["uuid"] == nvml_gpu.uuid and gpu["identity"]["mig"] is False
    assert gpu["driver"] == "550.54.15" and gpu["nvml"]["gpu_count"] == 3
    assert not box.nvml.initialised
    json.dumps(env)


def test_current_cuda_device_and_mig(monkeypatch: pytest.MonkeyPatch) -> None:
    box = mig_box()
    _install(box, monkeypatch)
    identity = environment(torch.device("cuda"))["gpu"]["identity"]
    parent = box.nvml.gpus[1]
    assert identity["mig"] is True and identity["uuid"] == parent.mig_devices[1].uuid
    assert identity["parent_uuid"] == parent.uuid and identity["nvml_index"] == 1


def test_unmatched_gpu_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box()
    _install(box, monkeypatch)
    box.cuda[0].uuid = None
    box.cuda[0].pci_bus_id = 0x99
    identity = environment(torch.device("cuda", 0))["gpu"]["identity"]
    assert identity["cuda_index"] == 0 and identity["reason"].startswith("no NVML device matches")


def test_gpu_without_nvml_records_why(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box()
    _install(box, monkeypatch)
    box.nvml.init_error = box.nvml.NVMLError(9)
    gpu = environment(torch.device("cuda", 1))["gpu"]
    assert gpu["identity"] == {"cuda_index": 1, "reason": "NVML init failed: Driver Not Loaded"}
    assert gpu["driver"] is None and gpu["nvml"]["available"] is False


def test_cudnn_refusing_an_old_gpu_does_not_crash_the_environment(monkeypatch):
    """cuDNN >= 9.11 raises on its first version() call with a GPU below 7.5 (a V100)."""
    import torch

    from speedtrain.hw.env import cudnn_version, environment

    def refuse() -> int:
        raise RuntimeError("cuDNN version incompatibility:\n PyTorch was compiled against 91100 ... sm_70")

    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", refuse)
    version, why = cudnn_version()
    assert version is None and why.startswith("cuDNN version incompatibility: PyTorch") and "\n" not in why
    assert environment(torch.device("cpu"))["cudnn"] is None
