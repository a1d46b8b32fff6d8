"""GpuMonitor against a scripted fake NVML, and graceful degradation without a GPU."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any, Optional

import pytest

from speedtrain.gpumonitor import (
    SUMMARY_KEYS,
    GpuMonitor,
    decode_throttle_reasons,
    nvml_environment,
)

INTERVAL = 0.01


class FakeNVMLError(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(f"fake NVML error {value}")
        self.value = value


class FakeNotSupported(FakeNVMLError):
    def __init__(self) -> None:
        super().__init__(3)


class FakeNVML:
    """The nvml* calls GpuMonitor uses, returning scripted values.

    ``values`` maps a quantity to a constant or a list consumed one reading at a time (the
    last value repeats); ``unsupported`` lists quantities whose call raises NotSupported.
    """

    NVMLError = FakeNVMLError
    NVMLError_NotSupported = FakeNotSupported
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, values: Optional[dict[str, Any]] = None, unsupported: tuple[str, ...] = (),
                 count: int = 1, init_error: Optional[Exception] = None) -> None:
        self.values = {"util": 50, "mem": 1_000_000, "power_mw": 200_000, "clock": 1500,
                       "temp": 60, "throttle": 0, "energy_mj": [1_000_000, 1_250_000]}
        self.values.update(values or {})
        self.unsupported = set(unsupported)
        self.count = count
        self.init_error = init_error
        self.calls: dict[str, int] = {}
        self.initialised = False
        self.shutdowns = 0

    def _get(self, quantity: str) -> Any:
        self.calls[quantity] = self.calls.get(quantity, 0) + 1
        if quantity in self.unsupported:
            raise FakeNotSupported()
        value = self.values[quantity]
        if isinstance(value, list):
            return value.pop(0) if len(value) > 1 else value[0]
        return value

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"Fake GPU 80GB"  # old pynvml returns bytes

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._get("util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=self._get("mem"), total=80 * 2**30, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return self._get("power_mw")

    def nvmlDeviceGetClockInfo(self, handle: str, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_SM
        return self._get("clock")

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return self._get("temp")

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return self._get("throttle")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        return self._get("energy_mj")

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetNVMLVersion(self) -> str:
        return "12.550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


def run_monitor(fake: Any, seconds: float = 0.08, **kwargs: Any) -> dict[str, Any]:
    with GpuMonitor(interval_s=INTERVAL, nvml=fake, **kwargs) as mon:
        time.sleep(seconds)
    assert mon.summary is not None
    return mon.summary


def test_summary_means_and_maxima() -> None:
    fake = FakeNVML({"util": [20, 100, 60], "power_mw": [100_000, 300_000, 200_000],
                     "clock": [1800, 1200, 1500], "temp": [55, 71, 60],
                     "mem": [1_000, 5_000, 3_000]})
    s = run_monitor(fake)
    assert s["available"] is True and s["reason"] is None
    assert s["gpu_name"] == "Fake GPU 80GB"
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
    assert s["sm_clock_mean_mhz"] == pytest.approx((1800 + 1200 + 1500 * (n - 2)) / n, abs=0.1)
    assert s["interval_s"] == INTERVAL
    assert s["duration_s"] > 0
    assert fake.shutdowns == 1
    assert set(s) == set(SUMMARY_KEYS)
    json.dumps(s)  # plain JSON-able values only


def test_energy_from_counter_is_difference_in_joules() -> None:
    fake = FakeNVML({"energy_mj": [5_000_000, 5_750_500]})
    s = run_monitor(fake, seconds=0.03)
    assert s["energy_source"] == "counter"
    assert s["energy_j"] == pytest.approx(750.5)


def test_energy_integrated_from_power_when_counter_unsupported() -> None:
    fake = FakeNVML({"power_mw": 250_000}, unsupported=("energy_mj",))
    s = run_monitor(fake, seconds=0.1)
    assert s["energy_source"] == "integrated_power"
    # Constant 250 W: the trapezoid integral is 250 W times the sampled window, which spans
    # from the first to the closing reading, so it is a little under duration_s.
    assert s["energy_j"] == pytest.approx(250 * s["duration_s"], rel=0.2)
    assert s["energy_j"] <= 250 * (s["duration_s"] + 1e-4)  # duration_s is rounded to 0.1 ms


def test_paused_time_is_neither_sampled_nor_counted() -> None:
    """Evaluation is paused out: energy sums the windows, duration excludes the gap."""
    # counter reads: window 1 from 1000 J to 1100 J; the paused gap burns 500 J; window 2 to 1650 J
    fake = FakeNVML({"energy_mj": [1_000_000, 1_100_000, 1_600_000, 1_650_000]})
    mon = GpuMonitor(interval_s=INTERVAL, nvml=fake)
    mon.start()
    time.sleep(0.05)
    mon.pause()
    samples_at_pause = fake.calls["util"]
    time.sleep(0.15)  # the sampler wakes about 15 times here and must take no reading
    assert fake.calls["util"] == samples_at_pause
    mon.resume()
    time.sleep(0.05)
    s = mon.stop()
    assert s["energy_source"] == "counter"
    assert s["energy_j"] == pytest.approx(150.0)  # 100 J + 50 J, not the 500 J of the gap
    assert s["windows"] == 2
    assert 0.09 <= s["duration_s"] < 0.2  # the two 0.05 s windows, not the 0.25 s wall time


def test_power_integral_does_not_bridge_a_pause() -> None:
    fake = FakeNVML({"power_mw": 100_000}, unsupported=("energy_mj",))
    mon = GpuMonitor(interval_s=INTERVAL, nvml=fake)
    mon.start()
    time.sleep(0.05)
    mon.pause()
    time.sleep(0.3)
    mon.resume()
    time.sleep(0.05)
    s = mon.stop()
    assert s["energy_source"] == "integrated_power"
    assert s["energy_j"] <= 100 * (s["duration_s"] + 1e-4)  # ~10 J, not the 40 J of wall time
    assert s["energy_j"] == pytest.approx(100 * s["duration_s"], rel=0.3)


def test_pause_and_resume_are_no_ops_without_a_gpu() -> None:
    mon = GpuMonitor(interval_s=INTERVAL, nvml=FakeNVML(count=0))
    mon.start()
    mon.pause()
    mon.resume()
    _assert_unavailable(mon.stop(), "no GPU at index 0")
    mon.pause()  # after stop, too
    mon.resume()


def test_stop_while_paused_keeps_the_closed_windows() -> None:
    fake = FakeNVML({"energy_mj": [2_000_000, 2_040_000, 9_000_000]})
    mon = GpuMonitor(interval_s=INTERVAL, nvml=fake)
    mon.start()
    mon.pause()
    s = mon.stop()
    assert s["energy_j"] == pytest.approx(40.0) and s["windows"] == 1
    assert fake.shutdowns == 1


def test_throttle_bitmask_decoding() -> None:
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x4 | 0x8) == ["sw_power_cap", "hw_slowdown"]
    assert decode_throttle_reasons(0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x80) == [
        "gpu_idle", "applications_clocks", "sync_boost", "sw_thermal", "hw_thermal",
        "hw_power_brake"]
    assert decode_throttle_reasons(0x4 | 0x1000) == ["sw_power_cap", "other_0x1000"]


def test_throttle_reasons_seen_are_unioned_sorted_without_gpu_idle() -> None:
    fake = FakeNVML({"throttle": [0x1, 0x4 | 0x1, 0x40, 0x0]})
    s = run_monitor(fake)
    assert s["throttle_reasons"] == ["hw_thermal", "sw_power_cap"]


def test_throttle_falls_back_to_older_call() -> None:
    class OldDriver(FakeNVML):
        def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
            raise FakeNVMLError(13)  # NVML_ERROR_FUNCTION_NOT_FOUND

        def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: str) -> int:
            return 0x20

    s = run_monitor(OldDriver())
    assert s["throttle_reasons"] == ["sw_thermal"]


def test_one_unsupported_quantity_is_none_and_others_work() -> None:
    fake = FakeNVML(unsupported=("power_mw",))
    s = run_monitor(fake)
    assert s["power_mean_w"] is None and s["power_max_w"] is None
    assert s["util_mean_pct"] == 50 and s["temp_max_c"] == 60
    assert s["energy_source"] == "counter"  # the counter still works without power readings
    # Not asked again after the first NotSupported: no exception per interval.
    assert fake.calls["power_mw"] == 1
    assert fake.calls["util"] == s["samples"] > 2


def test_no_power_and_no_counter_gives_no_energy() -> None:
    s = run_monitor(FakeNVML(unsupported=("power_mw", "energy_mj")), seconds=0.03)
    assert s["energy_j"] is None and s["energy_source"] is None


def test_transient_error_loses_one_reading_not_the_thread() -> None:
    class Flaky(FakeNVML):
        def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
            self.calls["flaky"] = self.calls.get("flaky", 0) + 1
            if self.calls["flaky"] == 2:
                raise FakeNVMLError(15)  # GPU_IS_LOST-like: not "not supported"
            return super().nvmlDeviceGetUtilizationRates(handle)

    fake = Flaky()
    s = run_monitor(fake)
    assert s["util_mean_pct"] == 50
    assert fake.calls["util"] == s["samples"] - 1


def _assert_unavailable(s: dict[str, Any], reason_start: str) -> None:
    assert s["available"] is False
    assert s["reason"].startswith(reason_start), s["reason"]
    assert all(v is None for k, v in s.items() if k not in ("available", "reason"))
    assert set(s) == set(SUMMARY_KEYS)


def test_real_pynvml_without_driver_degrades() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except Exception:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present: this test is for machines without one")
    with GpuMonitor(interval_s=INTERVAL) as mon:
        pass
    _assert_unavailable(mon.summary, "NVML init failed: ")
    env = nvml_environment()
    assert env["available"] is False and env["reason"].startswith("NVML init failed")


def test_init_failure_in_fake_degrades() -> None:
    fake = FakeNVML(init_error=FakeNVMLError(9))
    mon = GpuMonitor(interval_s=INTERVAL, nvml=fake)
    mon.start()
    s = mon.stop()
    _assert_unavailable(s, "NVML init failed: fake NVML error 9")
    assert mon.stop() is s  # stop is idempotent


def test_no_gpu_at_index() -> None:
    fake = FakeNVML(count=1)
    s = run_monitor(fake, seconds=0, device_index=3)
    _assert_unavailable(s, "no GPU at index 3")
    assert fake.shutdowns == 1


def test_nvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import speedtrain.gpumonitor as gm

    monkeypatch.setattr(gm, "_import_nvml", lambda: None)
    s = run_monitor(None, seconds=0)
    _assert_unavailable(s, "nvidia-ml-py not installed")
    assert nvml_environment() == {"available": False, "reason": "nvidia-ml-py not installed"}


def test_stop_without_start() -> None:
    _assert_unavailable(GpuMonitor(nvml=FakeNVML()).stop(), "monitor was not started")


def test_nvml_environment_with_fake() -> None:
    env = nvml_environment(FakeNVML(count=2))
    assert env == {"available": True, "driver_version": "550.54.15",
                   "nvml_version": "12.550.54.15", "cuda_driver_version": "12.4",
                   "gpu_count": 2, "gpus": ["Fake GPU 80GB", "Fake GPU 80GB"]}


def _real_gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    finally:
        pynvml.nvmlShutdown()


@pytest.mark.skipif(not _real_gpu_present(), reason="no NVIDIA GPU/driver visible to NVML")
def test_real_gpu_short_sample() -> None:
    with GpuMonitor(interval_s=INTERVAL) as mon:
        time.sleep(0.2)
    s = mon.summary
    assert s["available"] is True, s["reason"]
    assert s["gpu_name"] and s["samples"] >= 2
    assert s["mem_used_max_bytes"] is None or s["mem_used_max_bytes"] > 0
    assert s["energy_source"] in ("counter", "integrated_power", None)
    json.dumps(s)
    env = nvml_environment()
    assert env["available"] is True and env["gpu_count"] >= 1
