"""Noise-aware verdicts: is a case's new time faster, slower, or within the noise?

Verdicts compare :class:`CaseSummary` objects, the per-seed figures of one case (made by
``CaseRecord.summary()`` for a saved or live run and by ``baselines.lookup`` for a stored
baseline), so the plugin, ``speedtrain compare`` and ``speedtrain report --baselines`` can
never disagree on what counts as slower.

Verdict rule (modelled on ``asv compare``, which flags a change only when the ratio of the
results passes a factor *and* ``asv``'s ``is_different`` finds the samples statistically
different). A time change counts only if

1. the ratio of medians (now / baseline) is beyond ``1 +/- threshold`` (default 5%): a
   change smaller than that is not worth acting on even when it is real; and
2. it is larger than the run-to-run noise: with at least 2 seeds on each side, an exact
   two-sided Mann-Whitney U test gives p < 0.05 where the sample sizes let the test reach
   that level at all (4+4 or 3+5 seeds and more); for smaller samples (3+3, 3+4, 2 against
   fewer than 8), where even complete separation cannot reach p < 0.05, the two samples'
   ranges must not overlap. Mann-Whitney because it assumes no distribution (training
   times are skewed by warm-up and stragglers) and is exact for tiny samples; asv uses the
   same test, with its own fallback to non-overlapping intervals for small samples. asv
   asks p < 0.002 of its many repeats; a training case has 3-5 seeds, for which 0.002 is
   unreachable, and the threshold in (1) already keeps small drifts out. Measured on
   normal noise, same-distribution samples are flagged in 0% (1% noise) to ~4% (5% noise)
   of trials, and a 10% change with 1% noise is always caught. Cases whose seeds were
   chosen by ``--st-seeds auto`` (:mod:`speedtrain.stats.seeding`) are sized for the stricter
   p < 0.01 and are judged at that level.
3. With only one seed on a side there is no spread to measure: the time verdict is
   "not judged" (with the figures), never faster or slower -- one seed cannot tell a change
   from noise. A case that no longer finishes at all is still "accuracy lost".

For rows with 2+ seeds a side the table also gives the run-to-run noise (the pooled
coefficient of variation, :func:`pooled_cv`) and the smallest change the seeds can detect
(:func:`detectable_change`: the change the rule above catches 80% of the time at that noise,
found by simulating the rule itself on normal noise).

"accuracy lost" takes precedence over any time verdict: a smaller fraction of seeds reached
the target than in the baseline, or the median final accuracy fell by more than
``max(acc_tolerance, range of the baseline's accuracies)`` -- the baseline's spread, not the
new run's, so that a run which collapses on some seeds cannot widen its own tolerance.
"""


from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable, Optional

from speedtrain.stats.noise import Noise, case_noise
from speedtrain.stats.samples import (ACC_TOLERANCE, AUTO_P_THRESHOLD, HIGHER_IS_BETTER, NOT_JUDGED, P_THRESHOLD, REGRESSIONS,
                                      THRESHOLD, CaseSummary, beyond_noise)



@dataclass(frozen=True)
class Verdict:
    label: str  # one of VERDICTS
    ratio: Optional[float]  # new median time / baseline median time
    detail: str  # short human reason, e.g. "+11.8% (baseline 10.02 s [9.90-10.10], now ...)"


@dataclass
class VerdictRow:
    """One line of a verdict table (plugin, ``speedtrain compare``); ``verdict`` is a label
    of VERDICTS, or ``"missing"`` for a baseline case the new run lacks."""

    case: str
    metric: Optional[str]
    baseline_median_s: Optional[float]
    now_median_s: Optional[float]
    verdict: str
    detail: str
    ratio: Optional[float] = None
    noise: Optional[Noise] = None  # run-to-run noise of both sides, smallest detectable change
    noisy_machine: Optional[str] = None  # why the machine was too busy to trust the times

    @property
    def change_pct(self) -> Optional[float]:
        return None if self.ratio is None else 100 * (self.ratio - 1)



def _describe(xs: list[float]) -> str:
    med = statistics.median(xs)
    if len(xs) == 1:
        return f"{med:.2f} s"
    return f"{med:.2f} s [{min(xs):.2f}-{max(xs):.2f}]"


def _accuracy_loss(base: CaseSummary, new: CaseSummary, acc_tolerance: float) -> Optional[str]:
    """Why accuracy counts as lost, or None."""
    if base.reached and new.reached:
        frac_base = sum(base.reached) / len(base.reached)
        frac_new = sum(new.reached) / len(new.reached)
        if frac_new < frac_base:
            return (f"{sum(new.reached)}/{len(new.reached)} seeds reached the target "
                    f"(baseline {sum(base.reached)}/{len(base.reached)})")
    if base.acc and new.acc:
        med_base, med_new = statistics.median(base.acc), statistics.median(new.acc)
        allowed = max(acc_tolerance, max(base.acc) - min(base.acc))
        drop = med_base - med_new
        if drop > allowed:
            return (f"median accuracy {100 * med_new:.2f}% (baseline {100 * med_base:.2f}%, "
                    f"-{100 * drop:.2f} pt > {100 * allowed:.2f} pt allowed)")
    return None


def compare(base: Optional[CaseSummary], new: CaseSummary, *, threshold: float = THRESHOLD,
            acc_tolerance: float = ACC_TOLERANCE) -> Verdict:
    """Verdict of ``new`` against ``base`` under the rule in the module docstring."""
    if base is None:
        return Verdict("no baseline", None, "no baseline for this case")
    if base.metric != new.metric:
        return Verdict("no baseline", None,
                       f"metric differs: baseline {base.metric}, now {new.metric}")
    if new.metric in HIGHER_IS_BETTER:
        return compare_accuracy(base, new, acc_tolerance=acc_tolerance)
    ratio = None
    if base.time_s and new.time_s and statistics.median(base.time_s) > 0:
        ratio = statistics.median(new.time_s) / statistics.median(base.time_s)
    lost = _accuracy_loss(base, new, acc_tolerance)
    if base.time_s and not new.time_s:
        # The baseline finished and this run did not (every seed diverged, ran out of memory
        # or missed the target): a regression, not a missing baseline, however few the seeds.
        return Verdict("accuracy lost", None, lost or f"no seed produced {new.metric} this time "
                       f"(baseline {_describe(base.time_s)})")
    if not base.time_s:
        return Verdict("no baseline", None, f"no {base.metric} data in the baseline")
    figures = f"(baseline {_describe(base.time_s)}, now {_describe(new.time_s)})"
    change = "" if ratio is None else f"{100 * (ratio - 1):+.1f}% "
    if min(base.n_seeds, new.n_seeds) < 2:
        side = "the baseline has" if base.n_seeds < 2 else "this run has"
        return Verdict(NOT_JUDGED, ratio, f"{change}{figures}: {side} one seed, so run-to-run noise is "
                       "unknown (use 2+ seeds or --st-seeds auto)")
    if lost is not None:
        return Verdict("accuracy lost", ratio, lost)
    if ratio is None:
        return Verdict("no baseline", None, f"baseline {base.metric} median is 0")
    if abs(ratio - 1) <= threshold:
        return Verdict("unchanged", ratio, f"{change}within the {100 * threshold:g}% threshold {figures}")
    p = AUTO_P_THRESHOLD if base.sequential or new.sequential else P_THRESHOLD
    if not beyond_noise(base.time_s, new.time_s, p):
        return Verdict("unchanged", ratio, f"{change}within run-to-run noise {figures}")
    return Verdict("slower" if ratio > 1 else "faster", ratio, f"{change}{figures}")


def compare_accuracy(base: CaseSummary, new: CaseSummary, *, acc_tolerance: float = ACC_TOLERANCE) -> Verdict:
    """The verdict for an accuracy figure: the time rule turned round. A change counts only if
    the medians differ by more than ``acc_tolerance`` (absolute, 0.5 pt: a relative threshold
    means little for accuracies) and the seeds differ beyond their noise (the same
    Mann-Whitney / non-overlap rule, at the same levels); lower is "accuracy lost"."""
    def pct(xs: list[float]) -> str:
        med = 100 * statistics.median(xs)
        return f"{med:.2f}%" if len(xs) == 1 else f"{med:.2f}% [{100 * min(xs):.2f}-{100 * max(xs):.2f}]"

    if not base.time_s:
        return Verdict("no baseline", None, f"no {base.metric} data in the baseline")
    if not new.time_s:
        return Verdict("accuracy lost", None, f"no seed produced {new.metric} this time (baseline {pct(base.time_s)})")
    med_base, med_new = statistics.median(base.time_s), statistics.median(new.time_s)
    ratio = med_new / med_base if med_base > 0 else None
    figures = f"{100 * (med_new - med_base):+.2f} pt (baseline {pct(base.time_s)}, now {pct(new.time_s)})"
    if min(base.n_seeds, new.n_seeds) < 2:
        return Verdict(NOT_JUDGED, ratio, f"{figures}: one seed on a side, so run-to-run noise is unknown")
    if abs(med_new - med_base) <= acc_tolerance:
        return Verdict("unchanged", ratio, f"{figures}: within {100 * acc_tolerance:g} pt")
    p = AUTO_P_THRESHOLD if base.sequential or new.sequential else P_THRESHOLD
    if not beyond_noise(base.time_s, new.time_s, p):
        return Verdict("unchanged", ratio, f"{figures}: within run-to-run noise")
    return Verdict("accuracy lost" if med_new < med_base else "more accurate", ratio, figures)


def verdict_row(case: str, base: Optional[CaseSummary], new: CaseSummary, *,
                threshold: float = THRESHOLD, acc_tolerance: float = ACC_TOLERANCE,
                noisy_machine: Optional[str] = None) -> VerdictRow:
    """The verdict of ``new`` against ``base`` as a table row, with the noise of the two
    samples and the smallest change they can detect when both have 2+ seeds with the figure.
    ``noisy_machine`` (``runconditions.noisy_reason``) marks the row: the times are suspect."""
    verdict = compare(base, new, threshold=threshold, acc_tolerance=acc_tolerance)
    row = VerdictRow(case=case, metric=new.metric,
                     baseline_median_s=None if base is None else base.median_s,
                     now_median_s=new.median_s, verdict=verdict.label, detail=verdict.detail,
                     ratio=verdict.ratio, noisy_machine=noisy_machine)
    if base is not None:
        row.noise = case_noise(new, base, threshold=threshold, acc_tolerance=acc_tolerance)
        if row.noise is not None:
            row.detail += f"; {row.noise.text()}"
    if noisy_machine:
        row.detail = f"noisy machine ({noisy_machine}): {row.detail}"
    return row


def regressed(rows: Iterable[VerdictRow]) -> bool:
    """Whether any row's verdict is 'slower' or 'accuracy lost'."""
    return any(row.verdict in REGRESSIONS for row in rows)
