"""Precision decisions by CUDA compute capability, with the capability faked (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from speedtrain.hw import capability
from speedtrain.hw.capability import (
    PrecisionChoice,
    base_precision,
    device_capability,
    fast_bf16,
    fast_tf32,
    fp16_tensor_cores,
)
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.device import check_device
from speedtrain.common.errors import ConfigError

# (capability, fp16 tensor cores, bf16 and tf32) of GPUs users have: P100, V100, T4, A100, L4, H100.
GPUS = [((6, 0), False, False), ((7, 0), True, False), ((7, 5), True, False),
        ((8, 0), True, True), ((8, 9), True, True), ((9, 0), True, True)]


@pytest.fixture
def gpu(monkeypatch):
    """Pretend the current CUDA device has a given capability; records the devices asked about."""
    asked = []

    def set_capability(cap):
        def fake(device=None):
            asked.append(device)
            return cap
        monkeypatch.setattr(torch.cuda, "get_device_capability", fake)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        return asked
    return set_capability


@pytest.mark.parametrize("cap,fp16_cores,ampere", GPUS)
def test_thresholds(cap, fp16_cores, ampere):
    assert fp16_tensor_cores(cap) is fp16_cores
    assert fast_bf16(cap) is ampere and fast_tf32(cap) is ampere


def test_no_gpu_has_no_fast_mode():
    assert not (fast_bf16(None) or fast_tf32(None) or fp16_tensor_cores(None))


@pytest.mark.parametrize("cap,fp16_cores,ampere", GPUS)
def test_base_precision_is_bf16_from_ampere_and_fp16_before(cap, fp16_cores, ampere):
    choice = base_precision(cap)
    assert isinstance(choice, PrecisionChoice)
    assert choice.precision == ("bf16" if ampere else "fp16")
    assert f"{cap[0]}.{cap[1]}" in choice.reason
    assert ("no fast bf16" in choice.reason) is not ampere


def test_base_precision_without_gpu_is_fp32():
    choice = base_precision(None)
    assert choice.precision == "fp32" and "no CUDA GPU" in choice.reason


def test_device_capability_asks_torch_for_cuda_devices_only(gpu):
    asked = gpu((7, 5))
    assert device_capability("cpu") is None and asked == []
    assert device_capability("cuda") == (7, 5)
    assert device_capability(torch.device("cuda", 1)) == (7, 5)
    assert [torch.device(d) for d in asked] == [torch.device("cuda"), torch.device("cuda", 1)]


@pytest.mark.parametrize("cap,fp16_cores,ampere", GPUS)
def test_tf32_is_refused_before_ampere_with_the_reason(gpu, cap, fp16_cores, ampere):
    gpu(cap)
    cfg = TrainConfig(precision="tf32")
    if ampere:
        check_device(cfg, "cuda")
    else:
        with pytest.raises(ConfigError, match=rf"8\.0 or later.*{cap[0]}\.{cap[1]}.*silently run as fp32"):
            check_device(cfg, "cuda")


def test_tf32_is_refused_on_the_cpu():
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*device cpu"):
        check_device(TrainConfig(precision="tf32"), "cpu")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "half"])
def test_other_precisions_do_not_query_the_gpu(gpu, precision):
    asked = gpu((6, 0))
    check_device(TrainConfig(precision=precision), "cuda")
    assert asked == []


def test_refusal_text_names_what_is_allowed():
    assert capability.tf32_refusal((8, 0)) is None
    assert "7.5" in capability.tf32_refusal((7, 5))


def test_cuda_without_a_gpu_has_no_capability_and_refuses_tf32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_capability("cuda") is None
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        check_device(TrainConfig(precision="tf32"), "cuda")
