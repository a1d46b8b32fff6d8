"""Power figures and their sources (issue 19, item 7), against the fake NVML's field-values API."""

from __future__ import annotations

import time

import pytest

from speedtrain.hw.gpumonitor import GpuMonitor
from speedtrain.hw.nvmlpower import (NVML_FI_DEV_POWER_INSTANT, FieldUnavailable, PowerReader, field_number,
                                  mean_power)
from speedtrain.hw.nvmldevice import is_not_supported
from speedtrain.tests.fake_nvml import (NVML_ERROR_NOT_SUPPORTED, FakeHandle, c_nvmlFieldValue_t,
                                        mig_box, single_gpu_box)

FIELDS = "nvmlDeviceGetFieldValues"
POWER = "nvmlDeviceGetPowerUsage"


def monitor(box, monkeypatch, seconds: float = 0.06) -> dict:
    box.install(monkeypatch)
    with GpuMonitor(0, interval_s=0.01, nvml=box.nvml) as mon:
        time.sleep(seconds)
    assert not box.nvml.initialised
    return mon.summary


def test_the_fake_answers_like_pynvml():
    box = single_gpu_box(power_instant_mw=321_000, power_mw=200_000)
    nvml = box.nvml
    nvml.nvmlInit()
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        values = nvml.nvmlDeviceGetFieldValues(handle, [(NVML_FI_DEV_POWER_INSTANT, 0), 185, (186, 1)])
        assert isinstance(values[0], c_nvmlFieldValue_t) and len(values) == 3
        assert values[0].nvmlReturn == 0 and values[0].valueType == 1 and values[0].value.uiVal == 321_000
        assert values[1].fieldId == 185 and values[1].value.uiVal == 200_000
        assert values[2].nvmlReturn == NVML_ERROR_NOT_SUPPORTED  # module scope: not modelled, as on most GPUs
        assert values[0].value.dVal != 321_000  # a union: the wrong member is another number
        none = single_gpu_box().nvml
        none.nvmlInit()
        lacking = none.nvmlDeviceGetFieldValues(none.nvmlDeviceGetHandleByIndex(0), [186])
        assert lacking[0].nvmlReturn == NVML_ERROR_NOT_SUPPORTED  # per field, not raised
    finally:
        nvml.nvmlShutdown()


def test_field_number_reads_the_member_its_type_names():
    field = c_nvmlFieldValue_t()
    field.valueType, field.value.uiVal = 1, 250_000
    assert field_number(field) == 250_000.0
    field.valueType, field.value.dVal = 0, 12.5
    assert field_number(field) == 12.5
    field.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
    with pytest.raises(FieldUnavailable):
        field_number(field)


def test_instant_samples_catch_the_peak_the_one_second_average_hides(monkeypatch):
    box = single_gpu_box(power_mw=200_000, power_instant_mw=[150_000, 420_000, 210_000], energy_counter=False)
    s = monitor(box, monkeypatch)
    assert s["power_sample_source"] == "instant" and s["power_max_w"] == 420.0
    assert POWER not in box.nvml.calls  # one source for the whole run
    assert s["power_mean_source"] == "samples" and s["energy_source"] == "integrated_power"


def test_mean_power_is_energy_over_time_where_the_counter_exists(monkeypatch):
    # the 1 s average would say 200 W; the counter says 100 J over the window
    box = single_gpu_box(power_mw=200_000, energy_mj=[1_000_000, 1_100_000])
    s = monitor(box, monkeypatch)
    assert s["energy_source"] == "counter" and s["energy_j"] == pytest.approx(100.0)
    assert s["power_mean_source"] == "energy_counter"
    assert s["power_mean_w"] == pytest.approx(100.0 / s["duration_s"], rel=1e-2)
    assert s["power_sample_source"] == "power_usage"  # this driver has no instant field
    assert box.nvml.calls[FIELDS] == 1  # asked once, then the average for the rest of the run


def test_old_driver_without_field_values_uses_power_usage(monkeypatch):
    box = single_gpu_box(power_instant_mw=300_000)
    box.nvml.missing.add(FIELDS)  # FunctionNotFound, as pynvml raises for a missing symbol
    s = monitor(box, monkeypatch)
    assert s["power_sample_source"] == "power_usage" and s["power_max_w"] == 200.0


def test_mig_slice_reads_the_parents_instant_power(monkeypatch):
    box = mig_box()
    box.nvml.gpus[1].power_instant_mw = 275_000
    s = monitor(box, monkeypatch)
    assert s["power_sample_source"] == "instant" and s["power_max_w"] == 275.0
    assert "power_max_w" in s["whole_gpu"]


def test_reader_keeps_the_instant_source_through_a_transient_error():
    box = single_gpu_box(power_instant_mw=300_000)
    nvml = box.nvml
    nvml.fail_calls = {FIELDS: {2}}
    nvml.nvmlInit()
    reader = PowerReader(nvml, FakeHandle(nvml.gpus[0]), lambda exc: is_not_supported(nvml, exc))
    assert reader.source is None
    assert reader.read_mw() == 300_000.0 and reader.source == "instant"
    assert reader.read_mw() is None  # NVMLError_Unknown: this reading is lost
    assert reader.read_mw() == 300_000.0 and reader.source == "instant" and POWER not in nvml.calls
    nvml.nvmlShutdown()


def test_mean_power_choice():
    assert mean_power(50.0, "counter", 0.5, 80.0) == (100.0, "energy_counter")
    assert mean_power(50.0, "integrated_power", 0.5, 80.0) == (80.0, "samples")
    assert mean_power(None, None, 0.0, None) == (None, None)
    assert mean_power(0.0, "counter", 0.0, 80.0) == (80.0, "samples")  # no time spanned
