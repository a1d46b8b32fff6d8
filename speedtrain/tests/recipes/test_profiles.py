"""The suite's base settings per device, with the CUDA capability faked."""

from __future__ import annotations

import pytest
import torch

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.recipes.profiles import base_choice, suite_base


@pytest.fixture
def capability(monkeypatch):
    def set_capability(cap):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return set_capability


@pytest.mark.parametrize("cap,precision", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_cuda_base_precision_follows_the_capability(capability, cap, precision):
    capability(cap)
    base = suite_base("cuda")
    assert base == {"precision": precision, "channels_last": True, "loader": "gpu"}
    assert base_choice("cuda").precision == precision
    TrainConfig(**base)  # a valid configuration


def test_pre_ampere_choice_says_why(capability):
    capability((7, 5))
    assert "no fast bf16 convolutions" in base_choice("cuda").reason


def test_cpu_base_is_fp32_nchw_without_asking_cuda(monkeypatch):
    def no_gpu(device=None):
        raise AssertionError("the CPU base must not query CUDA")
    monkeypatch.setattr(torch.cuda, "get_device_capability", no_gpu)
    assert suite_base("cpu") == {"precision": "fp32", "channels_last": False, "loader": "gpu"}
    assert base_choice("cpu").precision == "fp32"
