"""Measuring regions of GPU work correctly: their time, and their peak memory.

CUDA kernels run asynchronously: a host clock read right after a launch measures the launch,
not the work. On CUDA the :class:`Timer` records CUDA events on the current stream and
synchronises on the end event; on the CPU it reads ``time.perf_counter``.

Peak memory has the same trap across runs: PyTorch's caching allocator keeps the blocks of
earlier runs, so the reserved peak (and NVML's "used") never drops below the largest earlier
case. :func:`release_memory` gives the cache back and starts a new peak; a run calls it
before it starts and when it ends, even when it fails, so each case's peak is its own.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any, Optional

import torch

if TYPE_CHECKING:
    from speedtrain.config.trainconfig import TrainConfig


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


def timer_policy(cfg: "TrainConfig", clock: str, progress: bool = False) -> dict[str, Any]:
    """What the training clock includes and excludes, stored with every result. ``progress``:
    the run reported its steps to a progress hook (speedtrain.train.progress.EpochProgress)."""
    includes = ["forward, backward and optimiser steps"]
    if progress:
        includes.append("a progress call per step (a counter and a clock read; a redraw at most twice a second)")
    if cfg.loader == "gpu":
        includes.append("augmentation of each epoch on the device")
    else:
        includes += ["DataLoader augmentation on the CPU and waiting for batches", "host-to-device copies of batches"]
        if not cfg.warmup_steps:
            includes.append("DataLoader worker start-up (first epoch)")
    excludes = [
        "dataset decoding and upload to the device",
        "model construction",
    ]
    if cfg.lookahead_every:
        includes.append("lookahead's weight averaging (every few steps, and its copy into the model after the last)")
    if cfg.ema_every:  # cifar10-fast runs update_ema among its training steps
        includes.append("the weight EMA's updates (every few steps; the copy it starts from is made before the clock)")
    if cfg.whiten:  # airbench adds it to its run time; here it is a figure of its own
        excludes.append("patch whitening of the first conv from the training images (timed separately as whiten_s, "
                        "after an untimed run of the same steps on 8 images, so cuSOLVER/cuBLAS start-up is not in it; "
                        "airbench_time_s adds it and the final evaluation back, as airbench times its runs)")
    if cfg.warmup_steps:
        excludes.append(
            f"warm-up (one loader batch: kernel loading, buffers, worker start-up; {cfg.warmup_steps} steps on it: "
            "cuDNN autotuning, torch.compile compilation), undone before timing")
    excludes += [
        "evaluation (timed separately as eval_s" + (", TTA included)" if cfg.tta_flip or cfg.tta_translate else ")"),
    ]
    if cfg.breakdown_steps:  # speedtrain.train.breakdown: after the clock has stopped for good
        excludes.append(f"the step breakdown: {cfg.breakdown_steps} training steps profiled with torch.profiler "
                        "after the last epoch (after 1 settle step under the profiler's warm-up), off the clock")
    telemetry = "NVML samples and energy cover the timed training epochs only (paused for evaluation)"
    return {"clock": clock, "includes": includes, "excludes": excludes, "telemetry": telemetry}


def release_memory(device: torch.device) -> None:
    """Free what no live object holds (cycles included) and, on CUDA, return the allocator's
    cached blocks to the driver and restart the peak statistics from what is in use now."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak from now (after the warm-up: the training's own peak is measured)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[Optional[int], Optional[int]]:
    """(allocated, reserved) peak bytes since the last reset; (None, None) off CUDA."""
    if device.type != "cuda":
        return None, None
    return torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
