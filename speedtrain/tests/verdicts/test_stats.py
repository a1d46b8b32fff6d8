"""Verdicts on constructed samples: threshold, noise rule, accuracy loss, Mann-Whitney."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pytest

from speedtrain.stats.samples import VERDICTS, CaseSummary, mann_whitney_p
from speedtrain.verdicts.rule import Verdict, VerdictRow, compare, regressed


def times(x: Any, metric: str = "train_time_s", acc: Optional[list[float]] = None,
          reached: Optional[list[bool]] = None) -> CaseSummary:
    t = [float(v) for v in x]
    return CaseSummary(metric, t, acc if acc is not None else [0.94] * len(t),
                       reached if reached is not None else [True] * len(t), None)


def noisy(rng: np.random.Generator, median: float, n: int = 5, noise: float = 0.01) -> CaseSummary:
    return times(median * (1 + noise * rng.standard_normal(n)))


# --- verdicts -------------------------------------------------------------------------------

def test_planted_slowdown_is_slower() -> None:
    rng = np.random.default_rng(1)
    v = compare(noisy(rng, 10.0), noisy(rng, 11.0))
    assert v.label == "slower"
    assert v.ratio == pytest.approx(1.10, abs=0.03)
    assert v.detail.startswith("+") and "baseline 10." in v.detail and "now 11." in v.detail


def test_planted_speedup_is_faster() -> None:
    rng = np.random.default_rng(2)
    v = compare(noisy(rng, 10.0), noisy(rng, 9.0))
    assert v.label == "faster" and v.ratio < 0.95
    assert v.detail.startswith("-")


@pytest.mark.parametrize("noise", [0.01, 0.03])
def test_same_distribution_rarely_flagged(noise: float) -> None:
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        v = compare(noisy(rng, 10.0, noise=noise), noisy(rng, 10.0, noise=noise))
        alarms += v.label != "unchanged"
    assert alarms / 200 < 0.05


def test_planted_slowdown_detected_over_many_seeds() -> None:
    hits = sum(compare(noisy(rng, 10.0), noisy(rng, 11.0)).label == "slower"
               for rng in (np.random.default_rng(s) for s in range(50)))
    assert hits == 50


def test_small_change_below_threshold_is_unchanged() -> None:
    base = times([10.00, 10.01, 10.02, 10.00, 10.01])
    new = times([10.30, 10.31, 10.32, 10.30, 10.31])  # +3%, perfectly separated
    v = compare(base, new)
    assert v.label == "unchanged" and "threshold" in v.detail
    assert v.ratio == pytest.approx(1.03, abs=1e-3)
    assert compare(base, new, threshold=0.02).label == "slower"


def test_big_change_within_huge_spread_is_unchanged() -> None:
    base = times([6.0, 9.0, 10.0, 13.0, 16.0])
    new = times([7.0, 10.5, 12.0, 14.0, 17.0])  # +20% median, samples interleave
    v = compare(base, new)
    assert v.label == "unchanged" and "noise" in v.detail
    assert v.ratio == pytest.approx(1.2)


def test_few_seeds_use_range_overlap() -> None:
    # 3 + 3 seeds: Mann-Whitney cannot reach p < 0.05, so the ranges decide.
    assert compare(times([10, 10.1, 10.2]), times([11, 11.1, 11.2])).label == "slower"
    assert compare(times([10, 10.1, 11.5]), times([11, 11.1, 11.2])).label == "unchanged"


def test_single_seed_is_not_judged_never_slower_or_faster() -> None:
    for base, new in [([10.0], [11.0]), ([10.0], [9.0]), ([10.0], [10.3]), ([6.0, 10.0, 14.0], [11.0]),
                      ([10.0], [20.0, 20.1])]:
        v = compare(times(base), times(new))
        assert v.label == "not judged", (base, new)
        assert "one seed" in v.detail and "--st-seeds auto" in v.detail
    v = compare(times([10.0]), times([11.0]))
    assert v.ratio == pytest.approx(1.1) and v.detail.startswith("+10.0%")
    assert "this run has one seed" in compare(times([10.0, 10.1]), times([11.0])).detail
    assert "the baseline has one seed" in compare(times([10.0]), times([11.0, 11.1])).detail


def test_fewer_seeds_reaching_target_is_accuracy_lost() -> None:
    base = times([10, 10.1, 10.2, 10.1, 10.0], metric="time_to_target_s")
    new = times([8.0, 8.1, 8.0, 8.1], metric="time_to_target_s",
                reached=[True, True, True, True, False])
    v = compare(base, new)
    assert v.label == "accuracy lost"  # precedes the (much faster) time verdict
    assert "4/5 seeds" in v.detail and "baseline 5/5" in v.detail
    assert v.ratio == pytest.approx(8.05 / 10.1)


def test_median_accuracy_drop_is_accuracy_lost() -> None:
    base = times([10] * 5, acc=[0.940, 0.941, 0.942, 0.941, 0.940])
    assert compare(base, times([10] * 5, acc=[0.930] * 5)).label == "accuracy lost"
    # A drop within acc_tolerance (0.5 pt) is not a loss.
    assert compare(base, times([10] * 5, acc=[0.938] * 5)).label == "unchanged"
    # Nor is one within the baseline's own accuracy spread.
    wide = times([10] * 5, acc=[0.93, 0.94, 0.95, 0.94, 0.945])
    assert compare(wide, times([10] * 5, acc=[0.932] * 5)).label == "unchanged"


def test_no_baseline_and_metric_mismatch() -> None:
    new = times([10, 10.1])
    v = compare(None, new)
    assert v == Verdict("no baseline", None, "no baseline for this case")
    v = compare(times([10, 10.1], metric="time_to_target_s"), new)
    assert v.label == "no baseline" and "metric differs" in v.detail
    assert "time_to_target_s" in v.detail and "train_time_s" in v.detail


def test_no_data_is_said() -> None:
    v = compare(times([]), times([10.0]))
    assert v.label == "no baseline" and "no train_time_s data in the baseline" in v.detail
    v = compare(times([10.0]), CaseSummary("train_time_s", [], [], [], None))
    assert v.label == "accuracy lost" and "no seed produced train_time_s" in v.detail


def test_every_label_is_known() -> None:
    rng = np.random.default_rng(0)
    for base, new in [(None, noisy(rng, 10)), (noisy(rng, 10), noisy(rng, 12)),
                      (noisy(rng, 10), noisy(rng, 10))]:
        assert compare(base, new).label in VERDICTS


def test_mann_whitney_exact_values() -> None:
    # Complete separation of 5 + 5: p = 2 / C(10, 5).
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    # One swapped pair: U = 1, P(U <= 1) = 2 / 252, two-sided 4 / 252.
    assert mann_whitney_p([1, 2, 3, 4, 6], [5, 7, 8, 9, 10]) == pytest.approx(4 / 252)
    # Interleaved 3 + 3: U = 3, P(U <= 3) = 7 / 20 (what scipy's exact method gives too).
    assert mann_whitney_p([1, 3, 5], [2, 4, 6]) == pytest.approx(0.7)
    # Large samples use the normal approximation; separated ones are very significant.
    assert mann_whitney_p(list(range(30)), list(range(100, 130))) < 1e-6


def test_regressed_takes_verdict_rows() -> None:
    def row(label: str) -> VerdictRow:
        return VerdictRow("test_x", "train_time_s", 10.0, 11.0, label, "", 1.1)

    assert regressed([row("unchanged"), row("slower")]) and regressed([row("accuracy lost")])
    assert not regressed([row("faster"), row("unchanged"), row("no baseline"), row("missing")])
    assert row("slower").change_pct == pytest.approx(10.0)


def test_a_case_that_no_longer_finishes_is_a_regression():
    base = CaseSummary("train_time_s", [10.0, 10.1], [0.9, 0.9], [True, True], None)
    failed = CaseSummary("train_time_s", [], [], [False, False], None)
    verdict = compare(base, failed)
    assert verdict.label == "accuracy lost" and "0/2 seeds reached" in verdict.detail
    assert regressed([VerdictRow("c", "train_time_s", 10.0, None, verdict.label, verdict.detail)])
    no_record = CaseSummary("train_time_s", [], [], [], None)  # e.g. an older run without figures
    verdict = compare(base, no_record)
    assert verdict.label == "accuracy lost" and "no seed produced" in verdict.detail


def test_a_single_seed_case_that_no_longer_finishes_is_still_a_regression():
    verdict = compare(CaseSummary("train_time_s", [10.0], [0.9], [True], None),
                      CaseSummary("train_time_s", [], [], [False], None))
    assert verdict.label == "accuracy lost"


def test_single_seed_accuracy_noise_is_not_judged():
    # one seed of synthetic data: accuracy is noise, and so is a "drop"
    verdict = compare(times([10.0], acc=[0.12]), times([10.1], acc=[0.09]))
    assert verdict.label == "not judged"


def test_auto_cases_are_judged_at_p_001() -> None:
    base, new = [10.0, 10.1, 10.2, 10.3, 10.4], [11.0, 11.1, 11.2, 11.3, 10.35]  # one swap: p = 4/252
    assert compare(times(base), times(new)).label == "slower"  # p < 0.05
    auto = CaseSummary("train_time_s", new, [0.94] * 5, [True] * 5, None, sequential=True)
    assert compare(times(base), auto).label == "unchanged"  # not p < 0.01


@pytest.mark.parametrize("seed", range(20))
def test_significant_is_the_scalar_rule_on_arrays(seed: int) -> None:
    """The array form the simulations use gives the scalar rule's answer on every pair."""
    from speedtrain.stats.samples import beyond_noise, mann_whitney_p, significant, u_low

    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    a, b = list(10 + rng.standard_normal(n)), list(10.5 + rng.standard_normal(m))
    for p in (0.05, 0.01):
        reachable = 2 / __import__("math").comb(n + m, n) < p
        expected = mann_whitney_p(a, b) < p if reachable else (max(a) < min(b) or max(b) < min(a))
        assert beyond_noise(a, b, p) == expected
        assert bool(significant(np.array([u_low(a, b)]), n, m, p)[0]) == expected
