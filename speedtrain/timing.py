"""Timing regions of GPU work correctly.

CUDA kernels run asynchronously: a host clock read right after a launch measures the launch,
not the work. On CUDA the :class:`Timer` records CUDA events on the current stream and
synchronises on the end event; on the CPU it reads ``time.perf_counter``.
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Times one region at a time: ``start()``, work, ``stop()`` -> seconds."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.clock = "cuda_events" if device.type == "cuda" else "perf_counter"
        self._t0 = 0.0
        if device.type == "cuda":
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.device.type == "cuda":
            self._start.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> float:
        """Seconds since ``start()``; waits for the device to finish the region's work."""
        if self.device.type == "cuda":
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) / 1000.0
        return time.perf_counter() - self._t0
