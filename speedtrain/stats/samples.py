"""A case's per-seed figures and the test that tells two samples apart.

:class:`CaseSummary` holds one case's figures (made by ``CaseRecord.summary()`` for a saved
or live run, and by ``baselines.lookup`` for a stored baseline); the exact Mann-Whitney U
test (:func:`mann_whitney_p`, :func:`significant`, :func:`beyond_noise`) is the noise half of
the verdict rule in :mod:`speedtrain.verdicts.rule`, which explains the rule. The constants
here are the rule's parameters, read by the noise simulation (:mod:`speedtrain.stats.noise`)
and the seed rule (:mod:`speedtrain.stats.seeding`) as well.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np


METRICS = ("train_time_s", "time_to_target_s", "final_acc")  # the figures a verdict can compare
# Figures where up is good: the accuracy studies (issue 14) compare final test accuracy with
# the same noise rule (:func:`compare_accuracy`); ``time_s`` then holds accuracies (fractions).
HIGHER_IS_BETTER = ("final_acc",)
NOT_JUDGED = "not judged"
VERDICTS = ("faster", "unchanged", "slower", "accuracy lost", NOT_JUDGED, "no baseline", "more accurate")
REGRESSIONS = ("slower", "accuracy lost")
P_THRESHOLD = 0.05  # Mann-Whitney significance level (see module docstring)
AUTO_P_THRESHOLD = 0.01  # the level of cases whose seeds --st-seeds auto chose
DETECT_POWER = 0.8  # "can detect": caught this often (detectable_change)
THRESHOLD = 0.05  # smallest relative time change that counts
ACC_TOLERANCE = 0.005  # accuracy drop (fraction) that never counts as lost
_EXACT_MAX_N = 40  # beyond this many samples in all, the normal approximation is used

T = TypeVar("T")


def fmt_figure(metric: Optional[str], x: Optional[float], digits: int = 2) -> Optional[str]:
    """A compared figure with its unit: ``10.02 s``, or ``94.10%`` for an accuracy."""
    if x is None:
        return None
    return f"{100 * x:.{digits}f}%" if metric in HIGHER_IS_BETTER else f"{x:.{digits}f} s"


def fmt_spread(metric: Optional[str], x: Optional[float], digits: int = 2) -> Optional[str]:
    """A difference of the figure: ``0.12 s``, or ``0.40 pt`` for an accuracy."""
    if x is None:
        return None
    return f"{100 * x:.{digits}f} pt" if metric in HIGHER_IS_BETTER else f"{x:.{digits}f} s"


def fmt_delta(metric: Optional[str], before: Optional[float], after: Optional[float]) -> Optional[str]:
    """The change from ``before`` to ``after`` in the verdicts' unit: ``+12.3%`` for a time
    (+ = slower), ``-0.40 pt`` for an accuracy (points, + = more accurate)."""
    if before is None or after is None:
        return None
    if metric in HIGHER_IS_BETTER:
        return f"{100 * (after - before):+.2f} pt"
    return f"{100 * (after / before - 1):+.1f}%" if before > 0 else None


def median_or_none(xs: Iterable[Optional[float]]) -> Optional[float]:
    """The median of the values that are not None; None when there are none."""
    values = [x for x in xs if x is not None]
    return statistics.median(values) if values else None


def lower_median(items: Iterable[T], key: Callable[[T], Any]) -> T:
    """The item at the lower middle when sorted by ``key``: with seeds, a run that happened
    rather than an average of two. ``items`` must not be empty."""
    ranked = sorted(items, key=key)
    return ranked[(len(ranked) - 1) // 2]


@dataclass(frozen=True)
class CaseSummary:
    """One case's per-seed figures: the times compared (``metric``), accuracies, targets.

    ``time_s`` holds only the seeds that produced the metric (a seed that missed the target
    has no time to target; it shows in ``reached``)."""

    metric: str
    time_s: list[float]
    acc: list[float]
    reached: list[bool]
    images_per_s: Optional[float]
    sequential: bool = False  # seeds chosen by --st-seeds auto: judged at AUTO_P_THRESHOLD

    @property
    def n_seeds(self) -> int:
        """Seeds the case ran (those without a time included)."""
        return max(len(self.time_s), len(self.reached), len(self.acc))

    @property
    def median_s(self) -> Optional[float]:
        return median_or_none(self.time_s)

    @property
    def spread_s(self) -> Optional[float]:
        """Range (max - min) of the times: what the overlap rule uses, see the docstring."""
        return max(self.time_s) - min(self.time_s) if self.time_s else None

@lru_cache(maxsize=None)
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """Number of orderings of n + m distinct values giving each Mann-Whitney U = 0..n*m."""
    if n == 0 or m == 0:
        return (1,)
    # The largest value belongs to the first sample (it beats all m others: U += m) or to
    # the second (U unchanged): Mann & Whitney's 1947 recurrence.
    out = [0] * (n * m + 1)
    for u, c in enumerate(_u_counts(n - 1, m)):
        out[u + m] += c
    for u, c in enumerate(_u_counts(n, m - 1)):
        out[u] += c
    return tuple(out)


def u_low(a: Sequence[float], b: Sequence[float]) -> float:
    """The smaller of the two Mann-Whitney U statistics of a against b (ties count one half)."""
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    return min(u, len(a) * len(b) - u)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (exact for small samples).

    Ties count one half; the exact null distribution assumes none, which is close enough
    for float timings. Above ``_EXACT_MAX_N`` values the normal approximation is used.
    """
    n, m = len(a), len(b)
    low = u_low(a, b)  # the distribution is symmetric
    if n + m <= _EXACT_MAX_N:
        counts = _u_counts(n, m)
        tail = sum(counts[: math.floor(low) + 1])
        return min(1.0, 2.0 * tail / math.comb(n + m, n))
    return float(_normal_p(np.asarray(low), n, m))


def _normal_p(low: np.ndarray, n: int, m: int) -> np.ndarray:
    mu, sigma = n * m / 2.0, math.sqrt(n * m * (n + m + 1) / 12.0)
    z = np.maximum(0.0, (mu - low - 0.5) / sigma)  # 0.5: continuity correction
    return np.minimum(1.0, np.vectorize(math.erfc)(z / math.sqrt(2.0)))


@lru_cache(maxsize=None)
def _critical_u(n: int, m: int, p_threshold: float) -> int:
    """The largest U (rounded down) whose exact two-sided p-value is below ``p_threshold``."""
    total, tail, crit = math.comb(n + m, n), 0, -1
    for u, c in enumerate(_u_counts(n, m)):
        tail += c
        if 2.0 * tail / total >= p_threshold:
            break
        crit = u
    return crit


def significant(low: np.ndarray, n: int, m: int, p_threshold: float = P_THRESHOLD) -> np.ndarray:
    """Element-wise: does a smaller U statistic ``low`` (of samples of n and m) pass the noise
    rule of the module docstring? Array-valued so that the simulations of :mod:`speedtrain.stats.noise`
    run this very rule; :func:`beyond_noise` is its one-pair form."""
    low = np.asarray(low, dtype=float)
    if n < 2 or m < 2:
        return np.ones(low.shape, dtype=bool)  # no spread to measure on one side: threshold only
    if 2.0 / math.comb(n + m, n) >= p_threshold:  # the test cannot reach p_threshold at all:
        return low == 0  # the ranges must not overlap
    if n + m <= _EXACT_MAX_N:
        return np.floor(low) <= _critical_u(n, m, p_threshold)
    return _normal_p(low, n, m) < p_threshold


def beyond_noise(a: list[float], b: list[float], p_threshold: float = P_THRESHOLD) -> bool:
    """Whether samples a and b differ by more than their run-to-run spread (docstring rule)."""
    return bool(significant(np.asarray(u_low(a, b)), len(a), len(b), p_threshold))
