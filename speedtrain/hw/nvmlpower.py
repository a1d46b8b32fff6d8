"""Which NVML power reading the monitor samples, and where each power figure comes from.

``nvmlDeviceGetPowerUsage`` is, on Ampere and newer GPUs except GA100, a **1-second average**
(nvml.h; the same figure as field ``NVML_FI_DEV_POWER_AVERAGE``): its maximum understates
peaks, and a short window's mean carries the previous second (an evaluation, or idle). So
(issue 19, item 7):

* **samples** (``power_max_w``, and the integral when there is no energy counter) come from the
  instantaneous field ``NVML_FI_DEV_POWER_INSTANT`` read with ``nvmlDeviceGetFieldValues``
  where the driver has it, else from ``nvmlDeviceGetPowerUsage``: ``power_sample_source`` is
  ``"instant"`` or ``"power_usage"``;
* **mean power** (``power_mean_w``) is energy over time where the energy counter exists
  (``power_mean_source`` ``"energy_counter"``), else the mean of the samples (``"samples"``).

nvidia-ml-py 13.615 (``pynvml.py``): ``NVML_FI_DEV_POWER_INSTANT = 186`` (line 752),
``NVML_POWER_SCOPE_GPU = 0`` (line 7363), the value types ``NVML_VALUE_TYPE_*`` (lines 289-295),
``c_nvmlFieldValue_t`` with ``nvmlReturn``/``valueType``/``value`` (line 1537) and
``nvmlDeviceGetFieldValues(handle, fieldIds)`` (line 5004), which takes ``(fieldId, scopeId)``
tuples and raises only when the whole call fails: a field the device lacks comes back with
its own ``nvmlReturn`` (``NVML_ERROR_NOT_SUPPORTED``), not as an exception.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_FI_DEV_POWER_INSTANT = 186  # pynvml.py:752; mW
NVML_POWER_SCOPE_GPU = 0  # pynvml.py:7363: the GPU itself, not the module or its memory
# nvmlValueType_t -> the member of the c_nvmlValue_t union holding the value (pynvml.py:289-295).
VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}

INSTANT = "instant"  # NVML_FI_DEV_POWER_INSTANT
POWER_USAGE = "power_usage"  # nvmlDeviceGetPowerUsage: a 1 s average on Ampere+ (not GA100)
ENERGY_COUNTER = "energy_counter"
SAMPLES = "samples"


class FieldUnavailable(Exception):
    """A field value came back with an error of its own (``nvmlReturn`` is not success)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"NVML field error {code}")
        self.code = code


def field_number(field: Any) -> float:
    """The number in one ``c_nvmlFieldValue_t``, read from the union member its ``valueType``
    names; FieldUnavailable when the field has an error of its own."""
    code = int(field.nvmlReturn)
    if code != NVML_SUCCESS:
        raise FieldUnavailable(code)
    member = VALUE_MEMBERS.get(int(field.valueType))
    if member is None:
        raise FieldUnavailable(NVML_ERROR_NOT_SUPPORTED)  # a type this code cannot read
    return float(getattr(field.value, member))


class PowerReader:
    """Reads one GPU's power in mW for the monitor: the instantaneous field when the driver
    answers it on the first read, else ``nvmlDeviceGetPowerUsage`` for the rest of the run
    (one source per run, so a maximum never mixes an average with instants).

    A transient failure of the chosen source loses that one reading (None); an exception from
    ``nvmlDeviceGetPowerUsage`` propagates, so the monitor's own handling (stop asking after
    NotSupported) applies to it unchanged."""

    def __init__(self, nvml: Any, handle: Any, not_supported: Callable[[BaseException], bool]) -> None:
        self._nvml = nvml
        self._handle = handle
        self._not_supported = not_supported
        self._instant: Optional[bool] = None  # None until the first read settles it
        self.read_any = False

    @property
    def source(self) -> Optional[str]:
        """``"instant"`` or ``"power_usage"``; None before any reading succeeded."""
        if not self.read_any:
            return None
        return INSTANT if self._instant else POWER_USAGE

    def read_mw(self) -> Optional[float]:
        if self._instant is not False:
            try:
                mw = self._read_instant()
            except Exception as exc:
                if self._instant is None or self._gone(exc):
                    self._instant = False  # no such field or function here: the average it is
                else:
                    return None  # a transient error of the instant field: skip this reading
            else:
                self._instant = True
                self.read_any = True
                return mw
        mw = float(self._nvml.nvmlDeviceGetPowerUsage(self._handle))
        self.read_any = True
        return mw

    def _read_instant(self) -> float:
        fn = getattr(self._nvml, "nvmlDeviceGetFieldValues", None)
        if fn is None:
            raise FieldUnavailable(NVML_ERROR_NOT_SUPPORTED)
        values = fn(self._handle, [(NVML_FI_DEV_POWER_INSTANT, NVML_POWER_SCOPE_GPU)])
        return field_number(values[0])

    def _gone(self, exc: BaseException) -> bool:
        if isinstance(exc, FieldUnavailable):
            return exc.code == NVML_ERROR_NOT_SUPPORTED
        return self._not_supported(exc)


def mean_power(energy_j: Optional[float], energy_source: Optional[str], span_s: float,
               sample_mean_w: Optional[float]) -> tuple[Optional[float], Optional[str]]:
    """``(power_mean_w, power_mean_source)``: energy over the time the counter spanned where the
    hardware counter measured it, else the mean of the power samples."""
    if energy_source == "counter" and energy_j is not None and span_s > 0:
        return energy_j / span_s, ENERGY_COUNTER
    if sample_mean_w is not None:
        return sample_mean_w, SAMPLES
    return None, None
