"""Small measurements ``speedtrain doctor`` makes on the device: matmul FLOP/s, copy bandwidth,
the training timer against a wall clock, and the NVML monitor's own cost on a short training.

They use the trainer's own :class:`speedtrain.hw.timing.Timer` (CUDA events on a GPU), so a doctor
that passes vouches for the clock every benchmark uses. Every function also runs on a CPU,
where the tests exercise it on tiny sizes; the doctor only calls them on CUDA, because a CPU
has no datasheet peak to compare with and its timer is the wall clock itself.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Iterator, Optional

import torch

from speedtrain.hw.timing import Timer, synchronize
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.doctor.overhead import PAIRS, interleaved_order
from speedtrain.hw.gpumonitor import GpuMonitor

MATMUL_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls on or off for the block; the previous setting is restored."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def seconds_per_call(fn: Callable[[], object], device: torch.device, target_s: float = 0.5,
                     max_calls: int = 1000) -> float:
    """Mean seconds of one ``fn()`` on ``device``: two warm-up calls (kernel selection, lazy
    allocation), one call to size the run, then enough calls for about ``target_s``."""
    timer = Timer(device)
    fn()
    fn()
    synchronize(device)
    timer.start()
    fn()
    one = max(timer.stop(), 1e-6)
    calls = max(3, min(max_calls, int(target_s / one)))
    timer.start()
    for _ in range(calls):
        fn()
    return timer.stop() / calls


def matmul_flops(device: torch.device, precision: str, n: int = 8192, target_s: float = 0.5) -> float:
    """Dense ``n x n`` matmul FLOP/s (2 n^3 per product) in a TrainConfig precision."""
    dtype = MATMUL_DTYPES[precision]
    with _tf32(precision == "tf32"):
        generator = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        out = torch.empty(n, n, device=device, dtype=dtype)
        seconds = seconds_per_call(lambda: torch.mm(a, b, out=out), device, target_s)
    return 2.0 * n ** 3 / seconds


def copy_bandwidth(device: torch.device, nbytes: int, target_s: float = 0.3) -> float:
    """Device memory bandwidth in bytes/s: a device-to-device copy reads and writes ``nbytes``."""
    src = torch.ones(nbytes // 4, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = seconds_per_call(lambda: dst.copy_(src), device, target_s)
    return 2.0 * src.numel() * 4 / seconds


def copy_size(device: torch.device, limit: int = 1 << 30) -> int:
    """Bytes to copy: far larger than any L2 cache (tens of MiB), at most an eighth of free memory."""
    if device.type != "cuda":
        return min(limit, 64 << 20)
    free, _ = torch.cuda.mem_get_info(device)
    return max(64 << 20, min(limit, free // 8))


def timer_against_wall(device: torch.device, work: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    """Median (timer seconds, wall seconds) of ``work`` timed by the trainer's Timer and by a
    host clock read after synchronising before the start and once the work has finished."""
    timer = Timer(device)
    work()  # warm-up: kernel selection and allocation must not sit inside one clock only
    pairs = []
    for _ in range(repeats):
        synchronize(device)
        wall0 = time.perf_counter()
        timer.start()
        work()
        timed = timer.stop()  # waits for the work to finish (the end event, on CUDA)
        pairs.append((timed, time.perf_counter() - wall0))
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def fixed_matmul_work(device: torch.device, n: int = 4096, calls: int = 20) -> Callable[[], None]:
    """A fixed fp32 workload for the timer check: ``calls`` products of ``n x n`` matrices."""
    a = torch.randn(n, n, device=device)
    out = torch.empty_like(a)

    def work() -> None:
        for _ in range(calls):
            torch.mm(a, a, out=out)
    return work


def monitor_overhead_runs(device: torch.device, precision: str, pairs: Optional[int] = None,
                          train_images: int = 8192) -> tuple[list[float], list[float]]:
    """Training seconds of the same short training with the NVML monitor off and on, in
    interleaved pairs whose order alternates (off-on, on-off...: ``overhead.interleaved_order``)
    so a drift in clocks affects both alike; ``overhead.PAIRS`` pairs unless told."""
    from speedtrain.train.loop import train

    index = device.index if device.index is not None else torch.cuda.current_device()
    cfg = TrainConfig(synthetic=True, train_subset=train_images, test_subset=512, epochs=2,
                      precision=precision, channels_last=True, loader="gpu", device="cuda", warmup_steps=2)
    times: dict[bool, list[float]] = {False: [], True: []}
    for monitored in interleaved_order(PAIRS if pairs is None else pairs):
        result = train(cfg, monitor=GpuMonitor(index) if monitored else None)
        if result.status != "ok" or result.train_time_s is None:
            raise RuntimeError(f"the overhead training ended with status {result.status}: {result.error}")
        times[monitored].append(result.train_time_s)
    return times[False], times[True]
