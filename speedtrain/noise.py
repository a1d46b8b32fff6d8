"""How noisy a case's seeds are, and what change they can therefore detect.

A verdict (:mod:`speedtrain.stats`) can only see a change that is both beyond the threshold
and beyond the run-to-run noise, so a table of verdicts is only half an answer: "unchanged"
from two noisy seeds is not "unchanged" from ten quiet ones. Each verdict row therefore
carries

- the run-to-run noise, :func:`pooled_cv`: the standard deviation of log times within each
  side, pooled over both sides (for small spreads this is the coefficient of variation);
- the smallest change the seeds can detect, :func:`detectable_change`: the slowdown that the
  verdict rule catches ``power`` (80%) of the time at that noise with those seed counts. It
  is found by simulating the rule itself (:func:`rule_detects`, the array form of
  ``stats.compare``'s time verdict) on normal noise, not by a formula that could drift from
  the rule: 1000 seeded trials per point, bisected to 0.1%, cached.

:func:`seeds_needed` turns the same simulation round: how many seeds a side a change needs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from speedtrain.stats import DETECT_POWER, P_THRESHOLD, THRESHOLD, significant

TRIALS = 1000  # per simulated point: enough for the 0.1% the bisection resolves at 80% power
MAX_CHANGE = 4.0  # 5x slower: beyond this a rule that has not caught it never will


def pooled_cv(a: Sequence[float], b: Sequence[float] = ()) -> Optional[float]:
    """Pooled within-sample standard deviation of the log times of ``a`` and ``b`` (each
    centred on its own mean, so a change between them is not counted as noise); None with
    fewer than 2 seeds on both sides or non-positive times."""
    logs = [np.log(np.asarray(x, dtype=float)) for x in (a, b) if len(x) >= 2]
    dof = sum(len(x) - 1 for x in logs)
    if not logs or any(not np.all(np.isfinite(x)) for x in logs):
        return None
    return float(math.sqrt(sum(float(((x - x.mean()) ** 2).sum()) for x in logs) / dof))


def rule_detects(base: np.ndarray, new: np.ndarray, threshold: float = THRESHOLD,
                 p_threshold: float = P_THRESHOLD) -> np.ndarray:
    """Per trial (rows of ``base`` (T, m) and ``new`` (T, n)): would ``stats.compare`` call the
    time change slower or faster? The ratio of medians beyond the threshold, and the noise
    rule (``stats.significant``) on the Mann-Whitney U of the pair."""
    n, m = new.shape[1], base.shape[1]
    ratio = np.median(new, axis=1) / np.median(base, axis=1)
    greater = (new[:, :, None] > base[:, None, :]).sum(axis=(1, 2))
    ties = (new[:, :, None] == base[:, None, :]).sum(axis=(1, 2))
    u = greater + 0.5 * ties
    return (np.abs(ratio - 1) > threshold) & significant(np.minimum(u, n * m - u), n, m, p_threshold)


@lru_cache(maxsize=4096)
def _detectable(cv: float, n: int, m: int, threshold: float, p_threshold: float, power: float) -> Optional[float]:
    rng = np.random.default_rng(0)  # the same draws for every change: a monotone curve
    base = np.maximum(1 + cv * rng.standard_normal((TRIALS, m)), 1e-3)
    new = np.maximum(1 + cv * rng.standard_normal((TRIALS, n)), 1e-3)

    def caught(change: float) -> bool:
        return float(rule_detects(base, new * (1 + change), threshold, p_threshold).mean()) >= power

    low, high = threshold, MAX_CHANGE
    if not caught(high):
        return None
    while high - low > 1e-3:
        mid = (low + high) / 2
        low, high = (low, mid) if caught(mid) else (mid, high)
    return high


def detectable_change(cv: Optional[float], n: int, m: int, threshold: float = THRESHOLD,
                      p_threshold: float = P_THRESHOLD, power: float = DETECT_POWER) -> Optional[float]:
    """The smallest relative slowdown that ``n`` new seeds against ``m`` baseline seeds catch
    with probability ``power`` at noise ``cv``; None when no change up to 5x is caught.
    ``cv`` is rounded to 2 significant digits (the estimate is not better than that)."""
    if cv is None:
        return None
    if cv <= 0:
        return threshold  # no noise: anything beyond the threshold is caught
    return _detectable(float(f"{cv:.2g}"), n, m, threshold, p_threshold, power)


def seeds_needed(change: float, cv: float, threshold: float = THRESHOLD, p_threshold: float = P_THRESHOLD,
                 power: float = DETECT_POWER, cap: int = 40) -> Optional[int]:
    """Seeds a side for ``change`` to be caught with probability ``power`` at noise ``cv``;
    None if more than ``cap`` would be needed (or the change is within the threshold)."""
    for n in range(2, cap + 1):
        found = detectable_change(cv, n, n, threshold, p_threshold, power)
        if found is not None and found <= change:
            return n
    return None
