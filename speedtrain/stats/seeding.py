"""``--st-seeds auto``: each case runs the seeds its noise needs, and says why it stopped.

With a fixed seed count the verdict rule is either wasteful (quiet GPU cases) or blind (noisy
ones): at 5% run-to-run noise, 2 seeds a side flag an unchanged case 23% of the time and
catch a 10% slowdown 72% of the time. The sequential rule here instead keeps adding seeds
until the comparison can decide a change of twice the threshold, then stops:

1. Run at least ``MIN_SEEDS`` (3) timed seeds, so that the noise can be estimated.
2. Estimate the noise ``cv`` (``noise.pooled_cv``: log-time spread pooled over this run's
   seeds and the baseline's, so a change between them never counts as noise) and take its
   90% upper confidence bound: a few seeds often underestimate the noise badly, and stopping
   on such an estimate would leave the case with too few seeds.
3. Against a baseline of ``m`` seeds, stop once the standard error of the log time ratio,
   ``cv * sqrt(1/n + 1/m)``, is at most ``SE_FRACTION`` (0.4) x the threshold and the
   Mann-Whitney test can reach p < 0.01 with n against m seeds (5 + 5, 4 + 6, 3 + 9 and up).
   Without a baseline (or when recording one), the same with m = n: the baseline then holds
   enough seeds for a later run of the same size to decide.
4. Stop at ``MAX_SEEDS`` (20) whatever happens, or at once when the baseline alone is too
   small for step 3's target whatever this run adds (re-record it with auto).
5. In the smoke profile (``plumbing=True``) stop at ``MIN_SEEDS``: its times measure nothing,
   so no number of them makes a verdict hold, and 20 seeds of a plumbing check only cost time.

Accuracy cases (``stats.HIGHER_IS_BETTER``, the accuracy studies) run the same rule on the
absolute accuracy (``absolute=True``): their verdict counts points against ``acc_tolerance``
(0.5 pt), so the noise is the accuracies' pooled standard deviation (``noise.pooled_sd``) and
the target standard error ``SE_FRACTION`` x the tolerance.

The rule looks only at the noise, never at the change seen so far, so stopping early cannot
bias the verdict towards "slower" (optional stopping on the difference would). The verdict
of an auto case is ``stats.compare``'s, at p < 0.01 instead of 0.05 (``stats.AUTO_P_THRESHOLD``):
the seeds are sized for it. Simulated on normal noise (speedtrain/tests/test_seeding.py),
at 5% noise and the 5% threshold (baseline and new run both auto): 0.6% false alarms and
97% of +10% changes caught, with about 17 seeds a side; at 2% noise about 6 and 5 suffice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from speedtrain.stats.noise import fmt_noise, pooled_cv, pooled_sd
from speedtrain.stats.samples import AUTO_P_THRESHOLD

MIN_SEEDS = 3
MAX_SEEDS = 20
SE_FRACTION = 0.4  # target standard error of the log ratio, as a fraction of the threshold
UPPER_Z = -1.2816  # the noise bound used for stopping is its 90% upper confidence bound


@dataclass(frozen=True)
class SeedPlan:
    """After a seed: run another one (``more``), and the reason either way."""

    more: bool
    reason: str


def _se(cv: float, n: int, m: Optional[int]) -> float:
    """Standard error of the log time ratio of n seeds against m (against another n if None)."""
    return cv * math.sqrt(1 / n + 1 / (m or n))


def _needed(cv: float, threshold: float, m: Optional[int]) -> Optional[int]:
    """The fewest seeds (``MIN_SEEDS`` to ``MAX_SEEDS``) that decide at noise ``cv``, or None."""
    for n in range(MIN_SEEDS, MAX_SEEDS + 1):
        se = _se(cv, n, m)
        if se <= SE_FRACTION * threshold and 2 / math.comb(n + (m or n), n) < AUTO_P_THRESHOLD:
            return n
    return None


def cv_upper(cv: float, dof: int, z: float = UPPER_Z) -> float:
    """An upper confidence bound of the noise: a noise estimate from a few seeds is often far
    too low, and stopping on it would leave the case with too few seeds. Chi-square bound with
    ``dof`` degrees of freedom (Wilson-Hilferty's approximation of the quantile)."""
    k = 2 / (9 * dof)
    quantile = dof * max(1 - k + z * math.sqrt(k), 1e-3) ** 3
    return cv * math.sqrt(dof / quantile)


def next_seed(times: Sequence[Optional[float]], baseline: Sequence[float] = (),
              threshold: float = 0.05, absolute: bool = False, plumbing: bool = False) -> SeedPlan:
    """The plan after the seeds run so far (``times``: their compared figure, None for a seed
    without one) against the baseline's per-seed figures (empty: none, or recording one).
    ``absolute``: the figure is an accuracy and ``threshold`` the accuracy tolerance (a fraction).
    ``plumbing``: the times measure nothing (the smoke profile): stop at ``MIN_SEEDS``."""
    timed = [t for t in times if t is not None]
    if plumbing and len(timed) >= MIN_SEEDS:
        return SeedPlan(False, f"auto: {len(timed)} seeds, the smoke profile's times measure nothing, "
                               "so more seeds would not make a verdict hold")
    base = list(baseline) if len(baseline) >= 2 else []
    m = len(base) or None
    if len(timed) < MIN_SEEDS:
        if len(times) >= MAX_SEEDS:
            return SeedPlan(False, f"auto: cap of {MAX_SEEDS} seeds reached with {len(timed)} timed")
        return SeedPlan(True, f"auto: {len(timed)} of at least {MIN_SEEDS} timed seeds")
    cv = (pooled_sd if absolute else pooled_cv)(timed, base) or 0.0
    needed = _needed(cv_upper(cv, len(timed) - 1 + max(0, len(base) - 1)), threshold, m)
    noise = f"noise {fmt_noise(cv, absolute)}"
    against = f"against the baseline's {m}" if m else "for later comparisons"
    if needed is None and m and cv / math.sqrt(m) > SE_FRACTION * threshold:
        return SeedPlan(False, f"auto: stopped at {len(timed)} seeds: at {noise} the baseline's {m} seeds "
                               "are too few for any number of new ones; record it again with --st-seeds auto")
    if needed is not None and len(timed) >= needed:
        return SeedPlan(False, f"auto: {len(timed)} seeds, {noise}: enough {against}")
    wanted = f"{needed} needed" if needed is not None else f"more than {MAX_SEEDS} needed"
    if len(times) >= MAX_SEEDS:
        return SeedPlan(False, f"auto: cap of {MAX_SEEDS} seeds reached; {noise}: {wanted} {against}")
    return SeedPlan(True, f"auto: {len(timed)} seeds, {noise}: {wanted} {against}")
