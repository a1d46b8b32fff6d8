"""The suite's first screen after its last case: what the verdicts can say, in as few lines as that takes.

A first run (no baselines for this machine), or a run against the shipped 1-seed smoke
baselines, has nothing it can judge: every row would read "no baseline" or "not judged", with
changes of hundreds of percent that mean nothing. Such a run gets one line saying so
(:func:`verdict_lines`); the verdict table is printed only when some case can be judged (or
with ``-v``). A machine too busy to trust its times is one summary line over all its cases
(:func:`noisy_line`), not a warning per case; each case stays marked in the saved run, the
report and the (verbose) table.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from speedtrain.verdicts import rule as stats
from speedtrain.hw.runconditions import noisy_reason

NO_BASELINE = "no baseline"
# Rows that say nothing about a change: no stored figure, one seed on a side, a dropped case.
UNJUDGED = (stats.NOT_JUDGED, NO_BASELINE, "missing")


def can_judge(rows: Iterable[stats.VerdictRow]) -> bool:
    """Whether any row compares a case with its baseline beyond the noise (a real verdict)."""
    return any(row.verdict not in UNJUDGED for row in rows)


def nothing_to_judge_line(rows: list[stats.VerdictRow]) -> str:
    """One line for a run none of whose cases can be judged, saying why and what would make them so."""
    missing = sum(row.verdict == NO_BASELINE for row in rows)
    single = sum(row.verdict == stats.NOT_JUDGED for row in rows)
    why = []
    if missing:
        why.append(f"{missing} without a baseline for this machine and profile")
    if single:
        why.append(f"{single} with one seed on a side (the shipped baselines are 1-seed smoke runs), "
                   "so run-to-run noise is unknown")
    return (f"nothing to judge yet: {len(rows)} cases, {', '.join(why) or 'none compared'}; "
            "to get verdicts, record baselines with 2+ seeds (--st-seeds 2 --st-baselines update) "
            "and run again (-v lists every case)")


def verdict_lines(rows: list[stats.VerdictRow], verbose: bool) -> list[str]:
    """The verdict part of the terminal summary: the table where a case can be judged (or
    with ``verbose``), else one line."""
    from speedtrain.report.compare import format_rows

    if not rows:
        return []
    if not verbose and not can_judge(rows):
        return [nothing_to_judge_line(rows)]
    return ["changes: this run against the baseline (times: + = slower, ratio now / baseline; "
            "accuracies: in points, + = more accurate)", format_rows(rows)]


def noisy_line(conditions: Mapping[str, Any]) -> Optional[str]:
    """One line for the cases (name -> saved ``conditions``) that ran on a noisy machine, or None."""
    reasons = {name: noisy_reason(cond) for name, cond in conditions.items()}
    noisy = {name: why for name, why in reasons.items() if why}
    if not noisy:
        return None
    worst = max(noisy.values(), key=_load_of)
    shown = ", ".join(list(noisy)[:3]) + (", ..." if len(noisy) > 3 else "")
    return (f"noisy machine: {len(noisy)} of {len(conditions)} cases ran while the machine was busy "
            f"(worst: {worst}): their times are suspect ({shown}; each is marked in the saved run and the report)")


def failed_line(statuses: Mapping[str, tuple[str, Optional[str]]]) -> Optional[str]:
    """One line naming the cases (name -> (status, error)) that did not finish ok, or None.
    Made from the records the controller gathered, so an xdist run lists them as a serial one
    does, whatever became of the workers' warnings."""
    bad = [f"{name} ({status}{': ' + ' '.join(error.split())[:80] if error else ''})"
           for name, (status, error) in statuses.items() if status != "ok"]
    return f"not ok: {len(bad)} of {len(statuses)} cases: {'; '.join(bad)}" if bad else None


def _load_of(reason: str) -> float:
    """The load figure of a noisy reason ("load 5.2 > 2 CPUs"), for picking the worst; 0 if none."""
    try:
        return float(reason.split("load ", 1)[1].split(" ", 1)[0])
    except (IndexError, ValueError):
        return 0.0
