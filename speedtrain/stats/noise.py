"""How noisy a case's seeds are, and what change they can therefore detect.

A verdict (:mod:`speedtrain.verdicts.rule`) can only see a change that is both beyond the threshold
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

Accuracy figures (``stats.HIGHER_IS_BETTER``) are judged on absolute changes (points, against
``acc_tolerance``), so their noise is absolute too: :func:`pooled_sd`, and the detectable
change in points (``absolute=True``). :func:`case_noise` picks the right pair for a case,
with or without a baseline, as a :class:`Noise`.

:func:`seeds_needed` turns the same simulation round: how many seeds a side a change needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from speedtrain.stats.samples import (ACC_TOLERANCE, AUTO_P_THRESHOLD, DETECT_POWER, HIGHER_IS_BETTER, P_THRESHOLD,
                              THRESHOLD, CaseSummary, significant)

TRIALS = 1000  # per simulated point: enough for the 0.1% the bisection resolves at 80% power
MAX_CHANGE = 4.0  # 5x slower: beyond this a rule that has not caught it never will
MAX_POINTS = 1.0  # an accuracy change of 100 points: the most there is


def _pooled(samples: list[np.ndarray]) -> Optional[float]:
    """Pooled within-sample standard deviation (each sample centred on its own mean, so a
    change between them is not counted as noise); None without a sample of 2+."""
    samples = [x for x in samples if len(x) >= 2]
    if not samples or any(not np.all(np.isfinite(x)) for x in samples):
        return None
    dof = sum(len(x) - 1 for x in samples)
    return float(math.sqrt(sum(float(((x - x.mean()) ** 2).sum()) for x in samples) / dof))


def pooled_cv(a: Sequence[float], b: Sequence[float] = ()) -> Optional[float]:
    """Pooled within-sample standard deviation of the log times of ``a`` and ``b``; None with
    fewer than 2 seeds on both sides or non-positive times."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _pooled([np.log(np.asarray(x, dtype=float)) for x in (a, b)])


def pooled_sd(a: Sequence[float], b: Sequence[float] = ()) -> Optional[float]:
    """Pooled within-sample standard deviation of accuracies (absolute, as fractions)."""
    return _pooled([np.asarray(x, dtype=float) for x in (a, b)])


def rule_detects(base: np.ndarray, new: np.ndarray, threshold: float = THRESHOLD,
                 p_threshold: float = P_THRESHOLD, absolute: bool = False) -> np.ndarray:
    """Per trial (rows of ``base`` (T, m) and ``new`` (T, n)): would ``stats.compare`` call the
    change one way or the other? The ratio of medians beyond the threshold (``absolute``: their
    difference, as ``stats.compare_accuracy`` does), and the noise rule (``stats.significant``)
    on the Mann-Whitney U of the pair."""
    n, m = new.shape[1], base.shape[1]
    med_new, med_base = np.median(new, axis=1), np.median(base, axis=1)
    change = med_new - med_base if absolute else med_new / med_base - 1
    greater = (new[:, :, None] > base[:, None, :]).sum(axis=(1, 2))
    ties = (new[:, :, None] == base[:, None, :]).sum(axis=(1, 2))
    u = greater + 0.5 * ties
    return (np.abs(change) > threshold) & significant(np.minimum(u, n * m - u), n, m, p_threshold)


@lru_cache(maxsize=4096)
def _detectable(cv: float, n: int, m: int, threshold: float, p_threshold: float, power: float,
                absolute: bool) -> Optional[float]:
    rng = np.random.default_rng(0)  # the same draws for every change: a monotone curve
    if absolute:  # the rule is shift-invariant: accuracies around 0 behave as around 0.9
        base, new = cv * rng.standard_normal((TRIALS, m)), cv * rng.standard_normal((TRIALS, n))
    else:
        base = np.maximum(1 + cv * rng.standard_normal((TRIALS, m)), 1e-3)
        new = np.maximum(1 + cv * rng.standard_normal((TRIALS, n)), 1e-3)

    def caught(change: float) -> bool:
        moved = new + change if absolute else new * (1 + change)
        return float(rule_detects(base, moved, threshold, p_threshold, absolute).mean()) >= power

    low, high = threshold, MAX_POINTS if absolute else MAX_CHANGE
    if not caught(high):
        return None
    while high - low > (1e-4 if absolute else 1e-3):  # 0.01 pt, 0.1%
        mid = (low + high) / 2
        low, high = (low, mid) if caught(mid) else (mid, high)
    return high


def detectable_change(cv: Optional[float], n: int, m: int, threshold: float = THRESHOLD,
                      p_threshold: float = P_THRESHOLD, power: float = DETECT_POWER,
                      absolute: bool = False) -> Optional[float]:
    """The smallest relative slowdown that ``n`` new seeds against ``m`` baseline seeds catch
    with probability ``power`` at noise ``cv``; None when no change up to 5x is caught.
    ``absolute``: ``cv`` is an accuracy's standard deviation, ``threshold`` the accuracy
    tolerance, and the answer a change in accuracy (a fraction: 0.01 is one point).
    ``cv`` is rounded to 2 significant digits (the estimate is not better than that)."""
    if cv is None:
        return None
    if cv <= 0:
        return threshold  # no noise: anything beyond the threshold is caught
    return _detectable(float(f"{cv:.2g}"), n, m, threshold, p_threshold, power, absolute)


def fmt_noise(spread: float, absolute: bool) -> str:
    """A noise figure: ``1.2%`` for a time (relative), ``0.40 pt`` for an accuracy (absolute)."""
    return f"{100 * spread:.2f} pt" if absolute else f"{100 * spread:.1f}%"


@dataclass(frozen=True)
class Noise:
    """A case's run-to-run noise and the smallest change its seeds can detect (None: none up to
    5x). Times: relative (``spread`` the log-time SD, ``detectable`` a fraction of the time);
    accuracies (``absolute``): the accuracy's SD and a change of accuracy, as fractions."""

    spread: float
    detectable: Optional[float]
    absolute: bool = False

    def spread_text(self) -> str:
        """``1.2%`` for a time, ``0.40 pt`` for an accuracy."""
        return fmt_noise(self.spread, self.absolute)

    def detectable_text(self) -> str:
        """``8%+``, ``1.3 pt+``, or ``no change up to 5x``."""
        if self.detectable is None:
            return "no change up to 5x"
        return f"{100 * self.detectable:.1f} pt+" if self.absolute else f"{100 * self.detectable:.0f}%+"

    def text(self) -> str:
        """``noise 1.2%, detects 8%+`` or, for accuracies, ``noise 0.40 pt, detects 1.3 pt+``."""
        return f"noise {self.spread_text()}, detects {self.detectable_text()}"


def case_noise(new: CaseSummary, base: Optional[CaseSummary] = None, *, threshold: float = THRESHOLD,
               acc_tolerance: float = ACC_TOLERANCE) -> Optional[Noise]:
    """The noise of ``new``'s compared figure pooled with ``base``'s, and the change ``new``'s
    seeds can detect against ``base``'s. Without a baseline: ``new``'s own noise and what a
    later run with as many seeds could detect against it. None without 2+ seeds a side."""
    if len(new.time_s) < 2 or (base is not None and len(base.time_s) < 2):
        return None
    absolute = new.metric in HIGHER_IS_BETTER
    other = base.time_s if base is not None else ()
    spread = (pooled_sd if absolute else pooled_cv)(new.time_s, other)
    if spread is None:
        return None
    sequential = new.sequential or (base is not None and base.sequential)
    m = len(base.time_s) if base is not None else len(new.time_s)
    detectable = detectable_change(spread, len(new.time_s), m, acc_tolerance if absolute else threshold,
                                   AUTO_P_THRESHOLD if sequential else P_THRESHOLD, absolute=absolute)
    return Noise(spread, detectable, absolute)


def seeds_needed(change: float, cv: float, threshold: float = THRESHOLD, p_threshold: float = P_THRESHOLD,
                 power: float = DETECT_POWER, cap: int = 40) -> Optional[int]:
    """Seeds a side for ``change`` to be caught with probability ``power`` at noise ``cv``;
    None if more than ``cap`` would be needed (or the change is within the threshold)."""
    for n in range(2, cap + 1):
        found = detectable_change(cv, n, n, threshold, p_threshold, power)  # relative: times
        if found is not None and found <= change:
            return n
    return None
