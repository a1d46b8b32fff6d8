"""The hardware: compute capability, datasheet peaks, timing, NVML devices and telemetry, machine conditions."""
