"""The dense matmul rate a GPU reaches, measured at a size on its plateau (issue 19, item 9).

The measured-peak MFU divides a run's FLOP/s by the matmul rate ``speedtrain doctor`` measured
at the session's start. That quick doctor multiplied 4096 x 4096 matrices, which on large GPUs
runs below the rate of bigger products (the issue: 5-15% below 8192^3), so the MFU was
overstated by as much. A fixed larger size would be a guess for every GPU to come; instead
:func:`plateau_matmul` doubles the size until one doubling gains less than
:data:`PLATEAU_GAIN` -- the plateau -- and keeps the best rate with the size it was measured
at. Both the quick and the full doctor use it, and the size travels with the figure (the
doctor's check data, each case's record, the report's note), with ``plateau`` False when
memory or the time budget stopped the doubling before the gain fell.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import torch

from speedtrain.doctor.microbench import MATMUL_DTYPES, matmul_flops

if TYPE_CHECKING:
    from speedtrain.doctor.diagnosis import Check

PLATEAU_SIZES = (4096, 8192, 16384)  # square sizes tried, smallest first
PLATEAU_GAIN = 0.03  # a doubling that gains less than 3% is on the plateau
WARM_CALLS = 3  # seconds_per_call's untimed calls (2 warm-up, 1 sizing) before its >= 3 timed ones


@dataclass(frozen=True)
class MatmulPeak:
    flops: float  # the best rate measured, FLOP/s
    n: int  # the size it was measured at (n x n times n x n)
    plateau: bool  # a doubling gained less than PLATEAU_GAIN: the rate is the plateau's
    rates: dict[int, float] = field(default_factory=dict)  # every size tried -> FLOP/s
    stopped: Optional[str] = None  # why the doubling stopped before the plateau was seen


def fits(device: torch.device, n: int, precision: str, limit_bytes: Optional[int] = None) -> bool:
    """Three n x n matrices within half the free memory (a CPU: within ``limit_bytes``, if given)."""
    need = 3 * n * n * torch.tensor([], dtype=MATMUL_DTYPES[precision]).element_size()
    if limit_bytes is not None:
        return need <= limit_bytes
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return need <= free // 2


def plateau_matmul(device: torch.device, precision: str, *, sizes: tuple[int, ...] = PLATEAU_SIZES,
                   gain: float = PLATEAU_GAIN, target_s: float = 0.2, budget_s: float = 4.0,
                   limit_bytes: Optional[int] = None,
                   measure: Callable[[torch.device, str, int, float], float] = matmul_flops) -> MatmulPeak:
    """The matmul FLOP/s of ``precision`` at the first size whose doubling gains less than ``gain``.

    A size is skipped, and the search ends unfinished, when its matrices do not fit or when
    its calls (8x the previous size's time each, at least 6 of them) would overrun ``budget_s``:
    slow GPUs keep the larger rate measured and say it is not shown to be the plateau."""
    rates: dict[int, float] = {}
    spent, stopped, plateau = 0.0, None, False
    for n in sizes:
        if rates:
            last = max(rates)
            expected = (2.0 * n ** 3 / rates[last]) * (WARM_CALLS + 3)
            if spent + expected > budget_s:
                stopped = f"{n}^3 would take about {expected:.1f} s more than the {budget_s:g} s budget"
                break
        if not fits(device, n, precision, limit_bytes):
            stopped = f"{n}^3 does not fit in free memory"
            break
        start = time.perf_counter()
        rates[n] = measure(device, precision, n, target_s)
        spent += time.perf_counter() - start
        if len(rates) >= 2:
            previous = sorted(rates)[-2]
            if rates[n] < rates[previous] * (1 + gain):
                plateau = True
                break
    if not rates:
        raise RuntimeError(f"no matmul size fits here ({stopped})")
    best = max(rates, key=lambda k: rates[k])
    return MatmulPeak(rates[best], best, plateau, rates, None if plateau else stopped or "sizes exhausted")


def describe(peak: MatmulPeak) -> str:
    """``8192^3 (plateau)`` or ``8192^3 (not shown to be the plateau: ...)`` for a check's reason."""
    if peak.plateau:
        return f"{peak.n}^3 (plateau)"
    return f"{peak.n}^3 (not shown to be the plateau: {peak.stopped})"


def with_size(check: "Check", peak: MatmulPeak) -> "Check":
    """A matmul check with the size its rate was measured at, in its reason and data."""
    data = {**check.data, "n": peak.n, "plateau": peak.plateau,
            "tflops_by_n": {str(n): round(rate / 1e12, 2) for n, rate in peak.rates.items()}}
    return dataclasses.replace(check, reason=f"{check.reason}; at {describe(peak)}", data=data)
