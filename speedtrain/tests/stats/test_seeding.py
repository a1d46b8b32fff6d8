"""--st-seeds auto and the noise figures, on simulated normal noise (seeded, a few seconds).

The simulation runs the real code: the baseline is recorded with ``next_seed`` (no baseline),
the new run compared with ``next_seed`` against it, and the verdict is ``stats.compare``'s.
"""

from __future__ import annotations

import numpy as np
import pytest

from speedtrain.stats.noise import Noise, case_noise, detectable_change, pooled_cv, pooled_sd, rule_detects, seeds_needed
from speedtrain.stats.seeding import MAX_SEEDS, MIN_SEEDS, cv_upper, next_seed
from speedtrain.stats.samples import ACC_TOLERANCE, CaseSummary
from speedtrain.verdicts.rule import compare

TRIALS = 1000


def auto_seeds(rng: np.random.Generator, mean: float, cv: float, baseline: list[float],
               accuracy: bool = False) -> list[float]:
    """Seeds as ``--st-seeds auto`` runs them: a time with relative noise ``cv``, or an
    accuracy with absolute noise ``cv`` (judged against the accuracy tolerance)."""
    times: list[float] = []
    while True:
        times.append(mean + cv * rng.standard_normal() if accuracy else mean * (1 + cv * rng.standard_normal()))
        plan = next_seed(times, baseline, ACC_TOLERANCE, absolute=True) if accuracy else next_seed(times, baseline, 0.05)
        if not plan.more:
            return times


def summary(times: list[float], metric: str = "train_time_s") -> CaseSummary:
    return CaseSummary(metric, times, [0.94] * len(times), [True] * len(times), None, sequential=True)


def simulate(change: float, cv: float, seed: int, accuracy: bool = False) -> tuple[float, float]:
    """(fraction of trials judged either way (no change) or worse (a change: slower, or for an
    accuracy ``change`` points lower), mean seeds)."""
    rng = np.random.default_rng(seed)
    flagged, seeds = 0, 0
    mean, metric, worse = (0.90, "final_acc", "accuracy lost") if accuracy else (10.0, "train_time_s", "slower")
    changed = mean - change if accuracy else mean * (1 + change)
    for _ in range(TRIALS):
        base = auto_seeds(rng, mean, cv, [], accuracy)
        new = auto_seeds(rng, changed, cv, base, accuracy)
        label = compare(summary(base, metric), summary(new, metric)).label
        flagged += label not in ("unchanged", "not judged") if change == 0 else label == worse
        seeds += len(new)
    return flagged / TRIALS, seeds / TRIALS


def test_auto_at_5pct_noise_rarely_cries_wolf_and_catches_10pct_slowdowns():
    false_alarms, _ = simulate(0.0, 0.05, seed=0)
    caught, seeds = simulate(0.10, 0.05, seed=1)
    assert false_alarms <= 0.01
    assert caught >= 0.95
    assert 10 <= seeds <= MAX_SEEDS  # noise this high needs many seeds: the point of auto


def test_auto_sizes_accuracy_cases_on_points():
    """An accuracy case (the studies' final_acc) judged in points: at 0.3 pt of noise against
    the 0.5 pt tolerance, auto rarely flags an unchanged case and catches a 1 pt loss."""
    false_alarms, _ = simulate(0.0, 0.003, seed=2, accuracy=True)
    caught, seeds = simulate(0.01, 0.003, seed=3, accuracy=True)
    assert false_alarms <= 0.01
    assert caught >= 0.95
    assert MIN_SEEDS <= seeds <= MAX_SEEDS
    # the noise is read in points: 1 pt of noise is far too much for a 2-seed decision
    plan = next_seed([0.90, 0.91, 0.89], absolute=True, threshold=ACC_TOLERANCE)
    assert plan.more and "noise 1.00 pt" in plan.reason


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


def test_the_smoke_profile_stops_auto_at_the_minimum_whatever_the_noise():
    noisy = [10.0, 14.0, 7.0]  # would want more than the cap
    assert next_seed(noisy).more
    assert next_seed(noisy[:2], plumbing=True).more  # the minimum still runs
    plan = next_seed(noisy, plumbing=True)
    assert not plan.more and "smoke profile" in plan.reason
    assert next_seed([None, 10.0, 12.0], plumbing=True).more  # three timed seeds, not three runs


def test_noise_upper_bound_is_above_the_estimate_and_tightens():
    assert cv_upper(0.05, 2) > cv_upper(0.05, 20) > 0.05
    assert cv_upper(0.05, 200) == pytest.approx(0.05, rel=0.15)


def test_pooled_cv_ignores_the_change_between_sides():
    assert pooled_cv([10.0, 10.0], [20.0, 20.0]) == 0.0
    assert pooled_cv([10.0]) is None
    assert pooled_cv([9.5, 10.5], [19.0, 21.0]) == pytest.approx(0.1 / 2 ** 0.5, rel=0.01)


def test_pooled_sd_is_absolute():
    assert pooled_sd([0.90, 0.92], [0.80, 0.82]) == pytest.approx(0.01 * 2 ** 0.5)
    assert pooled_sd([0.9]) is None


def test_case_noise_in_percent_for_times_and_points_for_accuracies():
    times = case_noise(summary([10.0, 10.2, 9.8, 10.1, 9.9]))  # no baseline: a rerun of as many seeds
    assert times is not None and not times.absolute
    assert times.spread == pytest.approx(0.0158, abs=0.001) and times.detectable > 0.05
    assert times.text().startswith("noise 1.6%, detects ")
    acc = case_noise(summary([0.900, 0.904, 0.896, 0.902, 0.898], "final_acc"),
                     summary([0.901, 0.903, 0.899, 0.897, 0.900], "final_acc"))
    assert acc is not None and acc.absolute and acc.spread == pytest.approx(0.0027, abs=0.0003)
    assert ACC_TOLERANCE < acc.detectable < 0.02  # points, not a ratio of accuracies
    assert acc.text().startswith("noise 0.27 pt, detects ") and acc.text().endswith(" pt+")
    assert case_noise(summary([10.0])) is None
    assert case_noise(summary([10.0, 10.1]), summary([10.0])) is None
    assert Noise(0.5, None).text() == "noise 50.0%, detects no change up to 5x"


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
    points = detectable_change(0.004, 5, 5, ACC_TOLERANCE, absolute=True)  # an accuracy: in points
    acc_base, acc_new = 0.9 + 0.004 * rng.standard_normal((4000, 5)), 0.9 + 0.004 * rng.standard_normal((4000, 5))
    assert rule_detects(acc_base, acc_new - points, ACC_TOLERANCE, absolute=True).mean() == pytest.approx(0.8, abs=0.03)


def test_seeds_needed():
    assert seeds_needed(0.10, 0.01) == 2
    assert seeds_needed(0.10, 0.05) > seeds_needed(0.10, 0.02)
    assert seeds_needed(0.05, 0.05, cap=12) is None  # a change at the threshold is never reliably beyond it
