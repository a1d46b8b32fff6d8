"""--st-seeds auto and the noise figures, on simulated normal noise (seeded, a few seconds).

The simulation runs the real code: the baseline is recorded with ``next_seed`` (no baseline),
the new run compared with ``next_seed`` against it, and the verdict is ``stats.compare``'s.
"""

from __future__ import annotations

import numpy as np
import pytest

from speedtrain.noise import detectable_change, pooled_cv, rule_detects, seeds_needed
from speedtrain.seeding import MAX_SEEDS, MIN_SEEDS, cv_upper, next_seed
from speedtrain.stats import CaseSummary, compare

TRIALS = 1000


def auto_seeds(rng: np.random.Generator, mean: float, cv: float, baseline: list[float]) -> list[float]:
    times: list[float] = []
    while True:
        times.append(mean * (1 + cv * rng.standard_normal()))
        if not next_seed(times, baseline, 0.05).more:
            return times


def summary(times: list[float]) -> CaseSummary:
    return CaseSummary("train_time_s", times, [0.94] * len(times), [True] * len(times), None, sequential=True)


def simulate(change: float, cv: float, seed: int) -> tuple[float, float]:
    """(fraction of trials judged slower-or-faster (no change) or slower (a change), mean seeds)."""
    rng = np.random.default_rng(seed)
    flagged, seeds = 0, 0
    for _ in range(TRIALS):
        base = auto_seeds(rng, 10.0, cv, [])
        new = auto_seeds(rng, 10.0 * (1 + change), cv, base)
        label = compare(summary(base), summary(new)).label
        flagged += label in ("slower", "faster") if change == 0 else label == "slower"
        seeds += len(new)
    return flagged / TRIALS, seeds / TRIALS


def test_auto_at_5pct_noise_rarely_cries_wolf_and_catches_10pct_slowdowns():
    false_alarms, _ = simulate(0.0, 0.05, seed=0)
    caught, seeds = simulate(0.10, 0.05, seed=1)
    assert false_alarms <= 0.01
    assert caught >= 0.95
    assert 10 <= seeds <= MAX_SEEDS  # noise this high needs many seeds: the point of auto


def test_auto_spends_few_seeds_on_quiet_cases():
    rng = np.random.default_rng(3)
    base = auto_seeds(rng, 10.0, 0.005, [])
    new = auto_seeds(rng, 10.0, 0.005, base)
    assert len(base) == len(new) == 5  # the fewest with which p < 0.01 is reachable
    assert compare(summary(base), summary(new)).label == "unchanged"


def test_next_seed_reasons():
    assert next_seed([10.0, 10.1]).more  # fewer than MIN_SEEDS
    assert "at least 3" in next_seed([10.0]).reason
    plan = next_seed([10.0] * 5)
    assert not plan.more and "enough for later comparisons" in plan.reason
    plan = next_seed([10.0, 11.0, 9.0, 12.0, 8.0])  # ~15% noise: more seeds
    assert plan.more and "needed" in plan.reason
    capped = next_seed([10.0, 11.0, 9.0, 12.0, 8.0] * 4)
    assert not capped.more and f"cap of {MAX_SEEDS}" in capped.reason
    small_base = next_seed([10.0, 11.0, 9.0, 10.5], baseline=[10.0, 12.0])
    assert not small_base.more and "record it again with --st-seeds auto" in small_base.reason
    failed = next_seed([None] * MAX_SEEDS)
    assert not failed.more and "0 timed" in failed.reason
    assert next_seed([None, 10.0, 10.0]).more  # a seed without a time does not count
    assert MIN_SEEDS == 3


def test_noise_upper_bound_is_above_the_estimate_and_tightens():
    assert cv_upper(0.05, 2) > cv_upper(0.05, 20) > 0.05
    assert cv_upper(0.05, 200) == pytest.approx(0.05, rel=0.15)


def test_pooled_cv_ignores_the_change_between_sides():
    assert pooled_cv([10.0, 10.0], [20.0, 20.0]) == 0.0
    assert pooled_cv([10.0]) is None
    assert pooled_cv([9.5, 10.5], [19.0, 21.0]) == pytest.approx(0.1 / 2 ** 0.5, rel=0.01)


def test_detectable_change_follows_noise_and_seeds():
    assert detectable_change(0.0, 3, 3) == 0.05  # no noise: the threshold
    quiet, noisy = detectable_change(0.01, 5, 5), detectable_change(0.05, 5, 5)
    assert 0.05 < quiet < noisy
    assert detectable_change(0.05, 15, 15) < noisy  # more seeds see smaller changes
    assert detectable_change(None, 3, 3) is None
    # the number really is caught 80% of the time by the rule (fresh draws)
    rng = np.random.default_rng(7)
    change = detectable_change(0.03, 5, 5)
    base = 1 + 0.03 * rng.standard_normal((4000, 5))
    new = (1 + 0.03 * rng.standard_normal((4000, 5))) * (1 + change)
    assert rule_detects(base, new).mean() == pytest.approx(0.8, abs=0.03)


def test_seeds_needed():
    assert seeds_needed(0.10, 0.01) == 2
    assert seeds_needed(0.10, 0.05) > seeds_needed(0.10, 0.02)
    assert seeds_needed(0.05, 0.05, cap=12) is None  # a change at the threshold is never reliably beyond it
