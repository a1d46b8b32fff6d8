"""Case-by-case comparison of a run with an older run, or with stored baselines.

Both sides become :class:`speedtrain.stats.CaseSummary` objects and every verdict comes from
:func:`speedtrain.stats.compare`, so ``speedtrain compare`` and the pytest plugin's
``--st-baselines check`` can never disagree on what counts as slower; both print their rows
with :func:`format_rows`.

A case on one side only is listed as such: present only in the new run it is "no baseline";
present only in the baseline it is "missing", which is not a regression (the suite's
selection may simply differ), but it is shown so that a dropped case is noticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from tabulate import tabulate

from speedtrain import baselines, stats
from speedtrain.errors import ReportError
from speedtrain.runs import RunCase, load_run
from speedtrain.stats import CaseSummary, VerdictRow

MISSING_LABEL = "missing"
TABLE_HEADERS = ("case", "metric", "baseline median", "now median", "change %", "verdict", "detail")


def compare_runs(a_path: str, b_path: str) -> tuple[list[VerdictRow], bool]:
    """Rows comparing run B (new) with run A (baseline), and whether anything regressed."""
    old = _cases_by_name(a_path)
    new = _cases_by_name(b_path)
    rows = []
    for name, case in new.items():
        base = old[name].summary() if name in old else None
        rows.append(_row(name, base, case, missing_why=f"only in {Path(b_path).name}"))
    rows += [_missing_row(name, case.summary(), f"only in {Path(a_path).name}")
             for name, case in old.items() if name not in new]
    return rows, stats.regressed(rows)


def compare_with_baselines(baselines_path: str, run_path: str) -> tuple[list[VerdictRow], bool]:
    """Rows comparing a run with the stored baselines of its machine and profile."""
    data = baselines.load_baselines(baselines_path)
    new = _cases_by_name(run_path)
    rows = []
    for name, case in new.items():
        base = baselines.lookup(data, case.machine, case.profile, name)
        rows.append(_row(name, base, case, missing_why="no baseline for this machine/profile"))
    # Baselines of this machine and profile that the run did not produce.
    for machine, profile in dict.fromkeys((c.machine, c.profile) for c in new.values()):
        stored = data.get("machines", {}).get(machine, {}).get(profile, {})
        for name in stored:
            if name not in new:
                base = baselines.lookup(data, machine, profile, name)
                rows.append(_missing_row(name, base, f"in {Path(baselines_path).name}, not in this run"))
    return rows, stats.regressed(rows)


def format_rows(rows: Iterable[VerdictRow]) -> str:
    """The verdict table (plain text), as the plugin and ``speedtrain compare`` print it."""
    def secs(x: Optional[float]) -> Optional[str]:
        return None if x is None else f"{x:.2f} s"

    body = [(r.case, r.metric, secs(r.baseline_median_s), secs(r.now_median_s),
             None if r.change_pct is None else f"{r.change_pct:+.1f}", r.verdict, r.detail) for r in rows]
    return tabulate(body, headers=TABLE_HEADERS, tablefmt="simple", missingval="-", disable_numparse=True)


def _cases_by_name(path: str) -> dict[str, RunCase]:
    cases: dict[str, RunCase] = {}
    for case in load_run(path).cases:
        if case.name in cases:
            raise ReportError(f"{path}: case {case.name} appears twice; compare needs unique case names")
        cases[case.name] = case
    return cases


def _row(name: str, base: Optional[CaseSummary], case: RunCase, missing_why: str) -> VerdictRow:
    row = stats.verdict_row(name, base, case.summary())
    if base is None:
        row.detail = missing_why
    if not case.record.ok:
        # A failed case has no times, so its verdict alone would hide why.
        row.detail = f"status {case.record.status}: {row.detail}"
    return row


def _missing_row(name: str, base: Optional[CaseSummary], why: str) -> VerdictRow:
    return VerdictRow(case=name, metric=None if base is None else base.metric,
                      baseline_median_s=None if base is None else base.median_s,
                      now_median_s=None, verdict=MISSING_LABEL, detail=why)
