"""The NVML monitor's own cost, judged with the suite's noise rule (issue 19, item 5).

``speedtrain doctor`` times the same short training with the monitor off and on. Two runs a
side, judged by their medians, failed a healthy GPU 2-8% of the time at 0.5-1% run-to-run
noise (the issue's simulation), and a FAIL makes the doctor exit 1. The overhead is now judged
like any time change the suite reports (:func:`speedtrain.verdicts.rule.compare`'s time rule), with the
monitor's goal (1%) as the threshold:

* the runs come in **interleaved pairs**, each pair's order alternating (off-on, on-off, ...),
  so a drift in clocks or temperature falls on both sides alike (:func:`interleaved_order`);
* **enough pairs** (:data:`PAIRS`) for the exact Mann-Whitney test to resolve p < 0.01
  (``stats.AUTO_P_THRESHOLD``, the level of sequentially chosen seeds, since a false FAIL
  stops a new user at the first command) -- 3+3 runs cannot reach p < 0.05 at all;
* **FAIL only beyond the noise**: the ratio of medians is above 1 + goal *and* the monitored
  runs are slower beyond the run-to-run noise (``stats.significant``). Above the goal within
  the noise is a WARN; below the goal a PASS.

:func:`false_fail_rate` simulates this very rule on normal noise; ``test_overhead`` holds the
rates (healthy GPU and a real 10% overhead) that the docstring of :func:`judge_overhead` states.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from speedtrain.stats.noise import detectable_change, pooled_cv
from speedtrain.stats.samples import AUTO_P_THRESHOLD, significant, u_low

PAIRS = 8  # monitored/unmonitored pairs: 8+8 runs resolve p < 0.01 (3+3 cannot reach 0.05)
P_LEVEL = AUTO_P_THRESHOLD


@dataclass(frozen=True)
class OverheadVerdict:
    status: str  # "pass" (below the goal) | "within_noise" (above it, within the noise) | "fail"
    overhead: float  # median(on) / median(off) - 1
    noise: Optional[float]  # pooled run-to-run noise (stats: pooled_cv), None below 2 runs a side
    beyond_noise: bool  # the monitored runs are slower beyond the noise (Mann-Whitney, P_LEVEL)


def interleaved_order(pairs: int) -> list[bool]:
    """Monitored (True) or not, run by run: pairs alternate their order (off-on, on-off, ...),
    so a linear drift over the runs adds the same to both sides (an ABBA design)."""
    out: list[bool] = []
    for i in range(pairs):
        out += [False, True] if i % 2 == 0 else [True, False]
    return out


def judge_overhead(off_s: Sequence[float], on_s: Sequence[float], goal: float,
                   p_threshold: float = P_LEVEL) -> OverheadVerdict:
    """The monitor's overhead from runs without (``off_s``) and with it (``on_s``).

    ``fail`` needs both halves of the suite's verdict rule: median(on)/median(off) - 1 above
    ``goal``, and the two samples different beyond their noise with the monitored ones slower
    (exact Mann-Whitney, ``p_threshold``). Simulated with :data:`PAIRS` pairs on normal noise
    (``test_overhead``): a monitor that costs nothing is failed in under 0.5% of trials at 1%
    noise, and a 10% overhead is failed in every trial at 0.5-1% noise."""
    off, on = list(off_s), list(on_s)
    if not off or not on:
        raise ValueError("judge_overhead needs at least one run with the monitor off and one with it on")
    cost = statistics.median(on) / statistics.median(off) - 1
    n, m = len(on), len(off)
    slower = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in on for y in off) > n * m / 2
    beyond = bool(slower and min(n, m) >= 2 and significant(np.asarray(u_low(on, off)), n, m, p_threshold))
    status = "pass" if cost < goal else "fail" if beyond else "within_noise"
    return OverheadVerdict(status, cost, pooled_cv(off, on), beyond)


def detectable_overhead(noise: Optional[float], n: int, m: int, goal: float,
                        p_threshold: float = P_LEVEL) -> Optional[float]:
    """The overhead these runs catch 80% of the time at this noise (``noise.detectable_change``
    simulates the same rule, with the goal as its threshold)."""
    return detectable_change(noise, n, m, threshold=goal, p_threshold=p_threshold)


def simulated_runs(rng: np.random.Generator, trials: int, pairs: int, noise: float,
                   overhead: float) -> tuple[np.ndarray, np.ndarray]:
    """``trials`` rows of ``pairs`` run times a side, normal relative noise, the monitored side
    slower by ``overhead``."""
    off = 1 + noise * rng.standard_normal((trials, pairs))
    on = (1 + overhead) * (1 + noise * rng.standard_normal((trials, pairs)))
    return off, on


def fail_rate(noise: float, overhead: float, goal: float, pairs: int = PAIRS, trials: int = 4000,
              p_threshold: float = P_LEVEL, seed: int = 0) -> float:
    """How often :func:`judge_overhead` says ``fail`` for a monitor costing ``overhead`` at
    run-to-run ``noise`` (both relative): the false-FAIL rate when ``overhead`` is 0."""
    off, on = simulated_runs(np.random.default_rng(seed), trials, pairs, noise, overhead)
    fails = sum(judge_overhead(a, b, goal, p_threshold).status == "fail" for a, b in zip(off, on))
    return fails / trials


def false_fail_rate(noise: float, goal: float, **kwargs: int) -> float:
    """:func:`fail_rate` of a monitor that costs nothing."""
    return fail_rate(noise, 0.0, goal, **kwargs)
