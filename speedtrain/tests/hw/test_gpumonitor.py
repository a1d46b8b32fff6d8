"""GpuMonitor against the fake NVML: the right GPU, labelled, and never a crash without one."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

import pytest
import torch

from speedtrain.hw.gpumonitor import SUMMARY_KEYS, GpuMonitor, decode_throttle_reasons, nvml_environment
from speedtrain.tests.fake_nvml import (
    OLD_DRIVER_MISSING,
    FakeBox,
    FakeGpu,
    FakeNvml,
    NVMLError,
    mig_box,
    reordered_box,
    single_gpu_box,
    torch_props,
    visible_devices_box,
)

INTERVAL = 0.01
UTIL = "nvmlDeviceGetUtilizationRates"
POWER = "nvmlDeviceGetPowerUsage"
# The fake's energy counter advances with wall time, and the monitor reads its own clock just
# after the counter. A busy machine can put milliseconds between the two reads: CI once saw
# 263 W for 250 W over 0.08 s. So a mean from the counter is checked to 20%, with the GPUs'
# powers chosen far enough apart that 20% still tells them apart.
COUNTER_REL = 0.2
# What NVML reports only for the whole GPU, in summary order, when each was measured.
WHOLE_GPU = ["power_mean_w", "power_max_w", "energy_j", "sm_clock_mean_mhz", "sm_clock_min_mhz",
             "temp_max_c", "throttle_reasons"]


def run_monitor(box: FakeBox, monkeypatch: pytest.MonkeyPatch, seconds: float = 0.08,
                device: Any = 0) -> dict[str, Any]:
    box.install(monkeypatch)
    with GpuMonitor(device, interval_s=INTERVAL, nvml=box.nvml) as mon:
        time.sleep(seconds)
    assert mon.summary is not None
    assert not box.nvml.initialised  # NVML shut down again, whatever happened
    assert set(mon.summary) == set(SUMMARY_KEYS)
    json.dumps(mon.summary)  # plain JSON-able values only
    return mon.summary


def test_summary_means_and_maxima(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box(util=[20, 100, 60], power_mw=[100_000, 300_000, 200_000],
                         sm_clock_mhz=[1800, 1200, 1500], temp_c=[55, 71, 60], mem_used=[1_000, 5_000, 3_000],
                         energy_counter=False)  # without the counter, the mean power is the samples'
    s = run_monitor(box, monkeypatch)
    gpu = box.nvml.gpus[0]
    assert s["available"] is True and s["reason"] is None
    assert s["gpu_name"] == gpu.name
    assert s["gpu"] == {"cuda_index": 0, "nvml_index": 0, "uuid": gpu.uuid, "name": gpu.name,
                        "pci_bus_id": gpu.pci_bus_id, "mig": False, "parent_uuid": None, "matched_by": "uuid"}
    assert s["whole_gpu"] == []  # the run had the whole GPU
    assert s["samples"] >= 3
    assert s["util_max_pct"] == 100
    assert s["mem_used_max_bytes"] == 5_000
    assert s["power_max_w"] == 300.0
    assert s["sm_clock_min_mhz"] == 1200
    assert s["temp_max_c"] == 71
    # After the scripted values run out the last one repeats, so the means are exact.
    n = s["samples"]
    assert s["util_mean_pct"] == pytest.approx((20 + 100 + 60 * (n - 2)) / n, abs=0.01)
    assert s["power_mean_w"] == pytest.approx((100 + 300 + 200 * (n - 2)) / n, abs=1e-3)
    assert s["power_mean_source"] == "samples" and s["power_sample_source"] == "power_usage"
    assert s["sm_clock_mean_mhz"] == pytest.approx((1800 + 1200 + 1500 * (n - 2)) / n, abs=0.1)
    assert s["interval_s"] == INTERVAL
    assert s["duration_s"] > 0
    assert box.nvml.shutdowns == box.nvml.inits == 1


@pytest.mark.parametrize("box_factory, device, nvml_index", [
    (reordered_box, 0, 2),  # CUDA's fastest GPU is last in PCI order
    (reordered_box, "cuda:1", 1),
    (reordered_box, torch.device("cuda", 2), 0),
    (lambda: visible_devices_box(1), 0, 1),  # CUDA_VISIBLE_DEVICES=1: CUDA 0 is NVML 1
])
def test_monitor_reads_the_gpu_torch_trains_on(monkeypatch: pytest.MonkeyPatch, box_factory: Any,
                                               device: Any, nvml_index: int) -> None:
    box = box_factory()
    for i, gpu in enumerate(box.nvml.gpus):
        gpu.power_mw = 100_000 * (i + 1)  # each GPU draws a different power: readings name their GPU
    s = run_monitor(box, monkeypatch, device=device)
    gpu = box.nvml.gpus[nvml_index]
    assert s["gpu"]["nvml_index"] == nvml_index and s["gpu"]["uuid"] == gpu.uuid
    assert s["gpu_name"] == gpu.name
    assert s["power_max_w"] == 100.0 * (nvml_index + 1)  # the samples: exact
    # energy over time from the counter (the fake's advances at the GPU's power)
    assert s["power_mean_w"] == pytest.approx(100.0 * (nvml_index + 1), rel=COUNTER_REL)
    assert s["power_mean_source"] == "energy_counter"


def test_no_device_means_torch_current_device(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box()
    box.current_device = 1
    s = run_monitor(box, monkeypatch, seconds=0, device=None)
    assert s["gpu"]["cuda_index"] == 1 and s["gpu"]["nvml_index"] == 1


@pytest.mark.parametrize("lookup", ["by_uuid", "by_walking_mig_devices"])
def test_mig_slice_memory_is_its_own_the_rest_whole_gpu(monkeypatch: pytest.MonkeyPatch, lookup: str) -> None:
    box = mig_box(slice_index=1, mig_uuid_lookup=lookup == "by_uuid")
    s = run_monitor(box, monkeypatch)
    parent = box.nvml.gpus[1]
    piece = parent.mig_devices[1]
    assert s["available"] is True
    assert s["gpu"] == {"cuda_index": 0, "nvml_index": 1, "uuid": piece.uuid, "name": piece.name,
                        "pci_bus_id": parent.pci_bus_id, "mig": True, "parent_uuid": parent.uuid,
                        "matched_by": "uuid"}
    assert s["gpu_name"] == piece.name
    assert s["mem_used_max_bytes"] == 2 * 10**9  # the slice's, not the GPU's 30 GB
    assert s["power_max_w"] == 250.0  # the parent's (NVML 0 draws 90 W)
    assert s["power_mean_w"] == pytest.approx(250.0, rel=COUNTER_REL)
    assert s["util_mean_pct"] is None  # NVML has no utilisation under MIG
    assert s["whole_gpu"] == WHOLE_GPU


def test_unidentified_mig_slice_found_by_pci_labels_memory_whole_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    box = mig_box()
    box.cuda[0].uuid = None  # torch could not give a UUID: only the PCI bus id is left
    s = run_monitor(box, monkeypatch, seconds=0.03)
    parent = box.nvml.gpus[1]
    assert s["gpu"]["matched_by"] == "pci_bus_id" and s["gpu"]["mig"] is True
    assert s["gpu"]["uuid"] is None and s["gpu"]["parent_uuid"] == parent.uuid
    assert s["mem_used_max_bytes"] == 30 * 10**9
    assert s["whole_gpu"] == ["mem_used_max_bytes"] + WHOLE_GPU


def test_old_driver_mig_slice_without_parent_measures_memory_only(monkeypatch: pytest.MonkeyPatch) -> None:
    s = run_monitor(mig_box(missing=OLD_DRIVER_MISSING), monkeypatch, seconds=0.03)
    assert s["available"] is True and s["gpu"]["mig"] is True and s["gpu"]["parent_uuid"] is None
    assert s["mem_used_max_bytes"] == 2 * 10**9
    assert s["power_mean_w"] is None and s["energy_j"] is None
    assert s["whole_gpu"] == []  # nothing of the whole GPU was measured


def test_old_driver_whole_gpus_still_matched(monkeypatch: pytest.MonkeyPatch) -> None:
    box = reordered_box(missing=OLD_DRIVER_MISSING)
    box.nvml.gpus[2].clocks_event_reasons = 0x20
    s = run_monitor(box, monkeypatch, seconds=0.03)
    assert s["gpu"]["nvml_index"] == 2 and s["gpu"]["mig"] is False
    assert s["throttle_reasons"] == ["sw_thermal"]  # from the older throttle-reasons call


def test_no_nvml_device_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    box = FakeBox(FakeNvml([FakeGpu(pci_bus_id="00000000:01:00.0")]),
                  [torch_props(FakeGpu(pci_bus_id="00000000:02:00.0"))])
    s = run_monitor(box, monkeypatch, seconds=0)
    _assert_unavailable(s, "no NVML device matches CUDA device 0")
    assert box.nvml.calls.get(UTIL) is None  # NVML index 0 was not read instead


def test_energy_from_counter_is_difference_in_joules(monkeypatch: pytest.MonkeyPatch) -> None:
    s = run_monitor(single_gpu_box(energy_mj=[5_000_000, 5_750_500]), monkeypatch, seconds=0.03)
    assert s["energy_source"] == "counter"
    assert s["energy_j"] == pytest.approx(750.5)


@pytest.mark.parametrize("why", ["pre_volta_gpu", "old_driver"])
def test_energy_integrated_from_power_without_counter(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    box = single_gpu_box(power_mw=250_000, energy_counter=why != "pre_volta_gpu")
    if why == "old_driver":
        box.nvml.missing.add("nvmlDeviceGetTotalEnergyConsumption")
    s = run_monitor(box, monkeypatch, seconds=0.1)
    assert s["energy_source"] == "integrated_power"
    # Constant 250 W: the trapezoid integral is 250 W times the sampled window, which spans
    # from the first to the closing reading, so it is a little under duration_s (how much
    # under depends on the machine's load, hence the loose lower bound).
    assert 0.5 * 250 * s["duration_s"] <= s["energy_j"] <= 250 * (s["duration_s"] + 1e-4)  # duration_s: 0.1 ms


def test_paused_time_is_neither_sampled_nor_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation is paused out: energy sums the windows, duration excludes the gap."""
    # counter reads: window 1 from 1000 J to 1100 J; the paused gap burns 500 J; window 2 to 1650 J
    box = single_gpu_box(energy_mj=[1_000_000, 1_100_000, 1_600_000, 1_650_000]).install(monkeypatch)
    mon = GpuMonitor(0, interval_s=INTERVAL, nvml=box.nvml)
    t0 = time.perf_counter()
    mon.start()
    time.sleep(0.05)
    mon.pause()
    t1 = time.perf_counter()
    samples_at_pause = box.nvml.calls[UTIL]
    time.sleep(0.15)  # the sampler wakes about 15 times here and must take no reading
    assert box.nvml.calls[UTIL] == samples_at_pause
    t2 = time.perf_counter()
    mon.resume()
    time.sleep(0.05)
    s = mon.stop()
    t3 = time.perf_counter()
    assert s["energy_source"] == "counter"
    assert s["energy_j"] == pytest.approx(150.0)  # 100 J + 50 J, not the 500 J of the gap
    assert s["windows"] == 2
    # Each window holds one 0.05 s sleep; the 0.15 s gap is outside both. Bounded by the test's
    # own clock rather than a fixed figure, so a stall on a busy machine cannot fail it.
    assert 0.0999 <= s["duration_s"] <= (t1 - t0) + (t3 - t2) + 1e-4  # duration_s is rounded to 0.1 ms


def test_power_integral_does_not_bridge_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box(power_mw=100_000, energy_counter=False).install(monkeypatch)
    mon = GpuMonitor(0, interval_s=INTERVAL, nvml=box.nvml)
    mon.start()
    time.sleep(0.05)
    mon.pause()
    time.sleep(0.3)
    mon.resume()
    time.sleep(0.05)
    s = mon.stop()
    assert s["energy_source"] == "integrated_power"
    # ~10 J over the two windows, not the 40 J of wall time (the lower bound is loose for load)
    assert 0.5 * 100 * s["duration_s"] <= s["energy_j"] <= 100 * (s["duration_s"] + 1e-4)


def test_pause_and_resume_are_no_ops_without_a_gpu() -> None:
    mon = GpuMonitor("cpu", interval_s=INTERVAL, nvml=FakeNvml())
    mon.start()
    mon.pause()
    mon.resume()
    _assert_unavailable(mon.stop(), "device cpu is not a CUDA GPU")
    mon.pause()  # after stop, too
    mon.resume()


def test_stop_while_paused_keeps_the_closed_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box(energy_mj=[2_000_000, 2_040_000, 9_000_000]).install(monkeypatch)
    mon = GpuMonitor(0, interval_s=INTERVAL, nvml=box.nvml)
    mon.start()
    mon.pause()
    s = mon.stop()
    assert s["energy_j"] == pytest.approx(40.0) and s["windows"] == 1
    assert box.nvml.shutdowns == 1


def test_throttle_bitmask_decoding() -> None:
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x4 | 0x8) == ["sw_power_cap", "hw_slowdown"]
    assert decode_throttle_reasons(0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x80) == [
        "gpu_idle", "applications_clocks", "sync_boost", "sw_thermal", "hw_thermal",
        "hw_power_brake"]
    assert decode_throttle_reasons(0x4 | 0x1000) == ["sw_power_cap", "other_0x1000"]


def test_throttle_reasons_seen_are_unioned_sorted_without_gpu_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    s = run_monitor(single_gpu_box(clocks_event_reasons=[0x1, 0x4 | 0x1, 0x40, 0x0]), monkeypatch)
    assert s["throttle_reasons"] == ["hw_thermal", "sw_power_cap"]


def test_one_unsupported_quantity_is_none_and_others_work(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box()
    box.nvml.not_supported.add(POWER)
    s = run_monitor(box, monkeypatch)
    assert s["power_max_w"] is None and s["power_sample_source"] is None
    # the mean power is energy over time: the counter still works without power readings
    assert s["power_mean_w"] == pytest.approx(200.0, rel=COUNTER_REL) and s["power_mean_source"] == "energy_counter"
    assert s["util_mean_pct"] == 50 and s["temp_max_c"] == 60
    assert s["energy_source"] == "counter"  # the counter still works without power readings
    # Not asked again after the first NotSupported: no exception per interval.
    assert box.nvml.calls[POWER] == 1
    assert box.nvml.calls[UTIL] == s["samples"] > 2


def test_no_power_and_no_counter_gives_no_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box(energy_counter=False)
    box.nvml.not_supported.add(POWER)
    s = run_monitor(box, monkeypatch, seconds=0.03)
    assert s["energy_j"] is None and s["energy_source"] is None


def test_transient_errors_lose_readings_not_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box()
    box.nvml.fail_calls = {UTIL: {2}, POWER: {1, 3}, "nvmlDeviceGetClockInfo": {2},
                           "nvmlDeviceGetHandleByUUID": {1}}  # even the lookup stumbles once
    s = run_monitor(box, monkeypatch)
    assert s["available"] is True and s["gpu"]["nvml_index"] == 0
    assert s["util_mean_pct"] == 50 and s["power_max_w"] == 200.0
    assert box.nvml.calls[UTIL] == s["samples"]  # transient: asked again after the error


def test_gpu_lost_mid_run_keeps_what_was_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box()
    lost = set(range(3, 10_000))  # every call from the third on fails
    box.nvml.fail_calls = {name: lost for name in (UTIL, POWER, "nvmlDeviceGetMemoryInfo")}
    box.nvml.fail_calls["nvmlDeviceGetTotalEnergyConsumption"] = {2}  # the closing read
    s = run_monitor(box, monkeypatch)
    assert s["available"] is True and s["util_max_pct"] == 50 and s["samples"] > 3
    # A counter read at only one end is useless: energy comes from the two power readings taken.
    assert s["energy_source"] == "integrated_power" and s["energy_j"] > 0


def _assert_unavailable(s: dict[str, Any], reason_start: str, cuda_index: Optional[int] = None) -> None:
    assert s["available"] is False
    assert s["reason"].startswith(reason_start), s["reason"]
    assert all(v is None for k, v in s.items() if k not in ("available", "reason", "gpu"))
    assert s["gpu"] in (None, {"cuda_index": cuda_index if cuda_index is not None else 0})
    assert set(s) == set(SUMMARY_KEYS)


def test_real_torch_and_pynvml_without_gpu_degrade() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: this test is for machines without one")
    with GpuMonitor(interval_s=INTERVAL) as mon:
        pass
    _assert_unavailable(mon.summary, "no CUDA GPU: torch.cuda.is_available() is False")
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except Exception:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present")
    with GpuMonitor(0, interval_s=INTERVAL) as mon:
        pass
    _assert_unavailable(mon.summary, "NVML init failed: ", cuda_index=0)
    env = nvml_environment()
    assert env["available"] is False and env["reason"].startswith("NVML init failed")


def test_init_failure_in_fake_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box().install(monkeypatch)
    box.nvml.init_error = NVMLError(9)
    mon = GpuMonitor(0, interval_s=INTERVAL, nvml=box.nvml)
    mon.start()
    s = mon.stop()
    _assert_unavailable(s, "NVML init failed: Driver Not Loaded", cuda_index=0)
    assert mon.stop() is s  # stop is idempotent


def test_no_cuda_device_at_index(monkeypatch: pytest.MonkeyPatch) -> None:
    box = single_gpu_box()
    s = run_monitor(box, monkeypatch, seconds=0, device=3)
    _assert_unavailable(s, "torch cannot describe CUDA device 3", cuda_index=3)
    assert box.nvml.shutdowns == 1


def test_nvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    single_gpu_box().install(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with GpuMonitor(0, interval_s=INTERVAL) as mon:
        pass
    _assert_unavailable(mon.summary, "nvidia-ml-py not installed", cuda_index=0)
    assert nvml_environment() == {"available": False, "reason": "nvidia-ml-py not installed"}


def test_stop_without_start() -> None:
    _assert_unavailable(GpuMonitor(nvml=FakeNvml()).stop(), "monitor was not started")


def test_nvml_environment_with_fake() -> None:
    box = reordered_box()
    env = nvml_environment(box.nvml)
    assert env == {"available": True, "driver_version": "550.54.15",
                   "nvml_version": "12.550.54.15", "cuda_driver_version": "12.4",
                   "gpu_count": 3, "gpus": [g.name for g in box.nvml.gpus]}
    assert not box.nvml.initialised


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_real_gpu_short_sample() -> None:
    with GpuMonitor(torch.device("cuda"), interval_s=INTERVAL) as mon:
        time.sleep(0.2)
    s = mon.summary
    assert s["available"] is True, s["reason"]
    assert s["gpu"]["cuda_index"] == torch.cuda.current_device()
    assert s["gpu_name"] and s["samples"] >= 2
    assert s["mem_used_max_bytes"] is None or s["mem_used_max_bytes"] > 0
    assert s["energy_source"] in ("counter", "integrated_power", None)
    json.dumps(s)
    env = nvml_environment()
    assert env["available"] is True and env["gpu_count"] >= 1
