"""The doctor's power and bandwidth verdicts (issue 19): with made-up figures and the fake NVML."""

from __future__ import annotations

from speedtrain.doctor.diagnosis import FAIL, PASS, WARN, nvml_checks
from speedtrain.hw.gpumonitor import probe_nvml
from speedtrain.doctor.hwverdicts import bandwidth_verdict, power_cap
from speedtrain.tests.fake_nvml import single_gpu_box

A100 = "NVIDIA A100-SXM4-80GB"


def checks_of(box, monkeypatch):
    box.install(monkeypatch)
    return {c.name: c for c in nvml_checks(probe_nvml(0, nvml=box.nvml))}


def test_power_limit_below_the_default_is_said(monkeypatch):
    capped = checks_of(single_gpu_box(power_limit_mw=250_000, default_power_limit_mw=400_000), monkeypatch)
    check = capped["clocks and power"]
    assert check.status == WARN and "below the default 400 W" in check.reason and "power-capped" in check.reason
    assert check.data["default_power_limit_w"] == 400.0 and check.data["power_limit_w"] == 250.0
    healthy = checks_of(single_gpu_box(), monkeypatch)["clocks and power"]
    assert healthy.status == PASS and "below the default" not in healthy.reason


def test_power_cap_rule():
    assert power_cap(250.0, 400.0) is not None
    assert power_cap(400.0, 400.0) is None and power_cap(399.5, 400.0) is None  # rounding is no cap
    assert power_cap(450.0, 400.0) is None  # raised above the default: not slower
    assert power_cap(None, 400.0) is None and power_cap(250.0, None) is None


def test_power_readings_name_their_source(monkeypatch):
    instant = checks_of(single_gpu_box(power_instant_mw=300_000), monkeypatch)["power readings"]
    assert instant.status == PASS and "NVML_FI_DEV_POWER_INSTANT" in instant.reason
    assert "energy counter / time" in instant.reason and instant.data["power_sample_source"] == "instant"
    box = single_gpu_box(name="NVIDIA A40", energy_counter=False)
    box.cuda[0].major, box.cuda[0].minor = 8, 6  # GA102: nvmlDeviceGetPowerUsage is a 1 s average
    average = checks_of(box, monkeypatch)["power readings"]
    assert average.status == WARN and "1 s average" in average.reason and "no energy counter" in average.reason
    assert average.data["power_sample_source"] == "power_usage"
    ampere = single_gpu_box(name="NVIDIA A10")
    ampere.cuda[0].major, ampere.cuda[0].minor = 8, 6
    assert checks_of(ampere, monkeypatch)["power readings"].status == WARN
    volta = single_gpu_box(name="Tesla V100-SXM2-16GB")
    volta.cuda[0].major, volta.cuda[0].minor = 7, 0  # instantaneous before Ampere: nothing to warn about
    check = checks_of(volta, monkeypatch)["power readings"]
    assert check.status == PASS and "instantaneous on compute capability 7.0" in check.reason


def test_bandwidth_against_the_datasheet():
    good = bandwidth_verdict(1700e9, 1 << 30, A100)
    assert good[0] == PASS and "83% of the A100 80GB SXM datasheet's 2039 GB/s" in good[1]
    assert good[2]["source"].startswith("https://") and good[2]["fraction_of_peak"] == 0.834
    assert bandwidth_verdict(1000e9, 1 << 30, A100)[0] == WARN
    capped = bandwidth_verdict(600e9, 1 << 30, A100)
    assert capped[0] == FAIL and "far below" in capped[1]
    unknown = bandwidth_verdict(600e9, 1 << 30, "NVIDIA A100-SXM4-40GB")
    assert unknown[0] == PASS and "no sourced datasheet bandwidth" in unknown[1]
