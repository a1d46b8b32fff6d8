"""NVML telemetry sampled beside a training run: utilisation, memory, power, clocks, energy.

:class:`GpuMonitor` starts a daemon thread that reads the GPU every ``interval_s`` seconds
while a benchmark case trains, and :meth:`GpuMonitor.stop` returns a plain, JSON-able
summary (means, maxima, energy, the clock-throttle reasons seen) to store in the case's
``extra_info``. The sampler must not perturb what it measures (goal: < 1% overhead), so it
sleeps once per interval and keeps running sums, maxima and minima instead of sample lists.

Power: instantaneous samples where the driver has them, mean power as energy over time where
the counter exists; ``power_sample_source``/``power_mean_source`` say which (:mod:`speedtrain.hw.nvmlpower`).

Energy comes from the GPU's own counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
driver load, Volta and later) read at the start and end of each sampling window. Where the counter is unsupported the
power samples are integrated over time with the trapezoid rule; ``energy_source`` says which
('counter' or 'integrated_power'), because the integral misses what happens between samples.

The GPU watched is the one the run trains on: the torch device is found in NVML by its UUID
(see :mod:`speedtrain.hw.nvmldevice`; NVML's own index 0 is another GPU on many machines), and
the summary's ``gpu`` says which (UUID, NVML and CUDA index, MIG or not). On a MIG slice NVML
reports utilisation, power, energy, clocks and temperature only for the whole GPU: those are
read from the parent and listed in ``whole_gpu``; memory is the slice's own.

Nothing here raises for want of a GPU: on a CPU device, without nvidia-ml-py, without a
driver, or with no NVML device matching the torch device, the summary has ``available:
False``, a ``reason`` and every figure None.
One quantity the GPU does not report (``NVMLError_NotSupported``) stays None; the others go on.
``nvml`` is injectable so the tests drive the monitor with a fake module.

:meth:`GpuMonitor.pause` and :meth:`GpuMonitor.resume` bracket what should not count: the
trainer pauses the monitor for each evaluation, so the telemetry, like the training clock,
covers the timed training epochs only. ``duration_s`` is the summed length of the windows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

from speedtrain.hw.nvmldevice import (  # noqa: F401  (GpuIdentity, find_nvml_device: public here too)
    THROTTLE_FUNCTIONS,
    Device,
    GpuIdentity,
    NvmlDevice,
    decode_throttle_reasons,
    error_message,
    find_nvml_device,
    import_nvml,
    is_not_supported,
    locate_nvml_device,
    resolve_cuda_index,
)
from speedtrain.hw.nvmlpower import PowerReader, mean_power
from speedtrain.hw.nvmlprobe import NvmlProbe, nvml_environment, probe_nvml  # noqa: F401  (public here too)
from speedtrain.records.telemetry import (  # noqa: F401  (SUMMARY_KEYS: public here too)
    SUMMARY_KEYS, WHOLE_GPU_KEYS, GpuSummary, unavailable_summary,
)

NVML_CLOCK_SM = 1  # nvml.h enum values, so a fake module need not define them
NVML_TEMPERATURE_GPU = 0

class _Stat:
    """Running count, sum, maximum and minimum: constant memory however long the run."""

    __slots__ = ("n", "total", "max", "min")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.max: Optional[float] = None
        self.min: Optional[float] = None

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        if self.max is None or value > self.max:
            self.max = value
        if self.min is None or value < self.min:
            self.min = value

    def mean(self) -> Optional[float]:
        return self.total / self.n if self.n else None


def _rounded(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(float(value), digits)


class GpuMonitor:
    """Sample one GPU in a background thread between :meth:`start` and :meth:`stop`.

    ``device`` is the torch device the run trains on (a ``torch.device``, ``"cuda:1"`` or a
    CUDA index; None: torch's current CUDA device), found in NVML by its UUID. Use as
    ``with GpuMonitor(device) as mon: train()`` then read ``mon.summary``, or call
    ``start()`` and ``summary = stop()``. Never raises for a missing GPU or driver.
    """

    def __init__(self, device: Device = None, interval_s: float = 0.1,
                 nvml: Optional[ModuleType] = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.device = device
        self.interval_s = float(interval_s)
        self._nvml: Any = nvml
        self._handle: Any = None  # the whole GPU: utilisation, power, energy, clocks, temperature
        self._mem_handle: Any = None  # the MIG slice when the run has one, else the GPU
        self.identity: Optional[GpuIdentity] = None
        self._cuda_index: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._stop_event = threading.Event()
        # The sampler thread and pause()/resume()/stop() all touch the running statistics.
        self._lock = threading.Lock()
        self._lock_timeout_s = max(2.0, 10 * self.interval_s)
        self._started = False
        self._stopped = False
        self.summary: Optional[GpuSummary] = None
        self._reset()

    # --- lifecycle ----------------------------------------------------------------------
    def _reset(self) -> None:
        self._unsupported: set[str] = set()
        self._samples = 0
        self._util = _Stat()
        self._mem = _Stat()
        self._power = _Stat()
        self._clock = _Stat()
        self._temp = _Stat()
        self._throttle_mask = 0
        self._throttle_reads = 0
        self._energy_integral_j = 0.0
        self._last_power: Optional[tuple[float, float]] = None  # (time, watts)
        self._energy_start_mj: Optional[float] = None
        self._energy_counter_j: Optional[float] = 0.0  # summed over closed windows; None once a read fails
        self._t0 = 0.0  # start of the current window
        self._active_s = 0.0  # summed length of the closed windows
        self._windows = 0
        self._paused = False
        self._throttle_fns: list[Callable[[Any], int]] = []
        self._power_reader: Optional[PowerReader] = None

    def start(self) -> "GpuMonitor":
        """Open NVML and start sampling; on any failure record why and sample nothing."""
        if self._started:
            raise RuntimeError("GpuMonitor.start() called twice")
        self._started = True
        self._reset()
        reason = self._open()
        if reason is not None:
            self.summary = unavailable_summary(reason, self._cuda_index)
            return self
        nvml = self._nvml
        self._power_reader = PowerReader(nvml, self._handle, lambda exc: is_not_supported(nvml, exc))
        for fn_name in THROTTLE_FUNCTIONS:
            fn = getattr(nvml, fn_name, None)
            if fn is not None:
                self._throttle_fns.append(fn)
        self._open_window()
        self._thread = threading.Thread(target=self._run, name="speedtrain-gpumonitor",
                                        daemon=True)
        self._thread.start()
        return self

    def _open(self) -> Optional[str]:
        """Initialise NVML and find the torch device's handles; return why not, or None on success."""
        try:
            self._cuda_index = resolve_cuda_index(self.device)
        except LookupError as exc:
            return str(exc)
        if self._nvml is None:
            self._nvml = import_nvml()
            if self._nvml is None:
                return "nvidia-ml-py not installed"
        try:
            self._nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, OSError...
            return f"NVML init failed: {error_message(exc)}"
        try:
            device: NvmlDevice = locate_nvml_device(self._nvml, self._cuda_index)
        except LookupError as exc:
            self._shutdown()
            return str(exc)
        self.identity = device.identity
        self._handle = device.handle
        self._mem_handle = device.slice_handle if device.slice_handle is not None else device.handle
        return None

    def stop(self) -> GpuSummary:
        """Stop sampling, shut NVML down and return the summary (also kept in ``summary``)."""
        if self._stopped and self.summary is not None:
            return self.summary
        self._stopped = True
        if not self._started:
            self.summary = unavailable_summary("monitor was not started")
            return self.summary
        if self._thread is None:  # start() found no GPU: summary already says why
            assert self.summary is not None
            return self.summary
        self._stop_event.set()
        # A hung NVML call must not hang the benchmark: wait a bounded time for the thread.
        self._thread.join(timeout=self._lock_timeout_s)
        # A thread still alive is stuck in an NVML call, holding the lock: summarise without it.
        with self._locked(wait=not self._thread.is_alive()) as locked:
            if not self._paused:
                self._close_window(closing_sample=locked)
            self._shutdown()
            self.summary = self._summarise()
        return self.summary

    def pause(self) -> None:
        """Stop counting until :meth:`resume` (e.g. during evaluation); a no-op when not sampling."""
        if self._thread is None or self._stopped:
            return
        # Without the lock the sampler is stuck in NVML: telemetry must never hang the training.
        with self._locked() as locked:
            if locked and not self._paused:
                self._close_window(closing_sample=True)
                self._paused = True

    def resume(self) -> None:
        """Open a new sampling window after :meth:`pause`; a no-op when not paused."""
        if self._thread is None or self._stopped:
            return
        with self._locked() as locked:
            if locked and self._paused:
                self._paused = False
                self._open_window()

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the sampler's lock for a bounded time; yields whether it was taken."""
        locked = wait and self._lock.acquire(timeout=self._lock_timeout_s)
        try:
            yield locked
        finally:
            if locked:
                self._lock.release()

    def _open_window(self) -> None:
        self._windows += 1
        self._last_power = None  # the power integral must not bridge the paused gap
        self._energy_start_mj = self._read_energy_mj()
        self._t0 = time.perf_counter()  # right after the counter read: energy / duration_s is the mean power
        self._sample()  # one reading at once, so even a short window has data

    def _close_window(self, closing_sample: bool) -> None:
        if closing_sample:
            self._sample()  # the power integral then reaches the end of the window
        end_mj = self._read_energy_mj()
        self._active_s += time.perf_counter() - self._t0
        if self._energy_counter_j is not None:
            if self._energy_start_mj is None or end_mj is None:
                self._energy_counter_j = None  # a counter read at only one end is useless
            else:
                self._energy_counter_j += (end_mj - self._energy_start_mj) / 1000.0

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass  # nothing useful to do about a failed shutdown

    def __enter__(self) -> "GpuMonitor":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- sampling -----------------------------------------------------------------------
    def _run(self) -> None:
        # Event.wait is the one sleep per interval, and it wakes at once when stop() is called.
        while not self._stop_event.wait(self.interval_s):
            with self._lock:
                if not self._paused:
                    self._sample()

    def _call(self, quantity: str, fn: Callable[[], Any]) -> Any:
        """Read one quantity; None if it fails. Unsupported ones are not asked again."""
        if quantity in self._unsupported:
            return None
        try:
            return fn()
        except Exception as exc:
            # Not supported: stop asking (saves an exception per interval). Anything else
            # (a transient error) only loses this one reading; the thread must live on.
            if is_not_supported(self._nvml, exc):
                self._unsupported.add(quantity)
            return None

    def _sample(self) -> None:
        nvml, h = self._nvml, self._handle
        now = time.perf_counter()
        self._samples += 1
        util = self._call("util", lambda: nvml.nvmlDeviceGetUtilizationRates(h).gpu)
        if util is not None:
            self._util.add(float(util))
        mem = self._call("mem", lambda: nvml.nvmlDeviceGetMemoryInfo(self._mem_handle).used)
        if mem is not None:
            self._mem.add(float(mem))
        reader = self._power_reader
        power_mw = None if reader is None else self._call("power", reader.read_mw)
        if power_mw is not None:
            watts = power_mw / 1000.0
            self._power.add(watts)
            if self._last_power is not None:
                t_prev, w_prev = self._last_power
                self._energy_integral_j += 0.5 * (watts + w_prev) * (now - t_prev)
            self._last_power = (now, watts)
        clock = self._call("clock", lambda: nvml.nvmlDeviceGetClockInfo(
            h, getattr(nvml, "NVML_CLOCK_SM", NVML_CLOCK_SM)))
        if clock is not None:
            self._clock.add(float(clock))
        temp = self._call("temp", lambda: nvml.nvmlDeviceGetTemperature(
            h, getattr(nvml, "NVML_TEMPERATURE_GPU", NVML_TEMPERATURE_GPU)))
        if temp is not None:
            self._temp.add(float(temp))
        mask = self._read_throttle(h)
        if mask is not None:
            self._throttle_mask |= int(mask)
            self._throttle_reads += 1

    def _read_throttle(self, h: Any) -> Optional[int]:
        # Try the event-reasons call first; if this driver lacks it, fall back to the older
        # throttle-reasons call for good, so later samples make one call, not two.
        while self._throttle_fns:
            try:
                return self._throttle_fns[0](h)
            except Exception as exc:
                if not is_not_supported(self._nvml, exc) and len(self._throttle_fns) == 1:
                    return None  # transient error on the last candidate: skip this sample
                self._throttle_fns.pop(0)
        return None

    def _read_energy_mj(self) -> Optional[float]:
        if "energy" in self._unsupported:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:
            # Any failure (NotSupported before Volta, FunctionNotFound on old drivers)
            # sends us to the power integral; a counter read at only one end is useless.
            self._unsupported.add("energy")
            return None

    def _summarise(self) -> GpuSummary:
        if self._energy_counter_j is not None:
            energy_j: Optional[float] = self._energy_counter_j
            source: Optional[str] = "counter"
        elif self._power.n >= 2:
            energy_j, source = self._energy_integral_j, "integrated_power"
        else:
            energy_j, source = None, None
        power_mean_w, power_mean_source = mean_power(energy_j, source, self._active_s, self._power.mean())
        mem_max = self._mem.max
        identity = self.identity
        assert identity is not None
        summary: GpuSummary = {
            "available": True,
            "reason": None,
            "gpu_name": identity.name,
            "gpu": identity.to_dict(),
            "samples": self._samples,
            "duration_s": _rounded(self._active_s, 4),
            "util_mean_pct": _rounded(self._util.mean(), 2),
            "util_max_pct": _rounded(self._util.max, 2),
            "mem_used_max_bytes": None if mem_max is None else int(mem_max),
            "power_mean_w": _rounded(power_mean_w),
            "power_max_w": _rounded(self._power.max),
            "energy_j": _rounded(energy_j),
            "energy_source": source,
            "power_sample_source": None if self._power_reader is None else self._power_reader.source,
            "power_mean_source": power_mean_source,
            "sm_clock_mean_mhz": _rounded(self._clock.mean(), 1),
            "sm_clock_min_mhz": _rounded(self._clock.min, 1),
            "temp_max_c": _rounded(self._temp.max, 1),
            "throttle_reasons": sorted(n for n in decode_throttle_reasons(self._throttle_mask)
                                       if n != "gpu_idle"),
            "interval_s": self.interval_s,
            "windows": self._windows,
            "whole_gpu": None,
        }
        summary["whole_gpu"] = self._whole_gpu_keys(summary)
        return summary

    def _whole_gpu_keys(self, summary: GpuSummary) -> list[str]:
        """The figures that cover the whole GPU although the run used only a MIG slice of it."""
        if self.identity is None or not self.identity.mig:
            return []
        keys = list(WHOLE_GPU_KEYS)
        if self._mem_handle is self._handle and self.identity.uuid is None:
            # The slice was not identified (found by PCI bus id): memory is the GPU's too.
            keys.append("mem_used_max_bytes")
        if not self._throttle_reads:
            keys.remove("throttle_reasons")  # an empty list here would mean "none seen", not "not read"
        return [k for k in SUMMARY_KEYS if k in keys and summary[k] is not None]  # type: ignore[literal-required]
