"""Case-by-case comparison of a run with an older run, or with stored baselines.

Both sides become :class:`speedtrain.baselines.CaseSummary` objects and every verdict comes
from :func:`speedtrain.baselines.compare`, so ``speedtrain compare`` and the pytest plugin's
``--st-baselines check`` can never disagree on what counts as slower. Rows have the shape of
:func:`speedtrain.baselines.verdict_rows` (A = the baseline side, B = the new run).

A case on one side only is listed as such: present only in the new run it is "no baseline";
present only in the baseline it is "missing", which is not a regression (the suite's
selection may simply differ), but it is shown so that a dropped case is noticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from speedtrain import baselines
from speedtrain.baselines import CaseSummary
from speedtrain.errors import ReportError
from speedtrain.report import Case, case_summary, load_baselines, load_run, run_cases

Row = dict[str, Any]
MISSING_LABEL = "missing"


def compare_runs(a_path: str, b_path: str) -> tuple[list[Row], bool]:
    """Rows comparing run B (new) with run A (baseline), and whether anything regressed."""
    old = _cases_by_name(a_path)
    new = _cases_by_name(b_path)
    rows = []
    for name, case in new.items():
        base = case_summary(old[name]) if name in old else None
        rows.append(_row(name, base, case, missing_why=f"only in {Path(b_path).name}"))
    rows += [_missing_row(name, case_summary(case), f"only in {Path(a_path).name}")
             for name, case in old.items() if name not in new]
    return rows, baselines.regressed(rows)


def compare_with_baselines(baselines_path: str, run_path: str) -> tuple[list[Row], bool]:
    """Rows comparing a run with the stored baselines of its machine and profile."""
    data = load_baselines(baselines_path)
    new = _cases_by_name(run_path)
    rows = []
    for name, case in new.items():
        base = baselines.lookup(data, case.machine or "", case.profile or "", name)
        rows.append(_row(name, base, case, missing_why="no baseline for this machine/profile"))
    # Baselines of this machine and profile that the run did not produce.
    for machine, profile in dict.fromkeys((c.machine or "", c.profile or "") for c in new.values()):
        stored = data.get("machines", {}).get(machine, {}).get(profile, {})
        for name in stored:
            if name not in new:
                base = baselines.lookup(data, machine, profile, name)
                rows.append(_missing_row(name, base, f"in {Path(baselines_path).name}, not in this run"))
    return rows, baselines.regressed(rows)


def format_rows(rows: list[Row]) -> str:
    """The comparison as a plain-text table (the same layout as the plugin's verdict table)."""
    return baselines.format_table(rows)


def _cases_by_name(path: str) -> dict[str, Case]:
    run = load_run(path)
    cases: dict[str, Case] = {}
    for case in run_cases(run, Path(path).stem, path):
        if case.name in cases:
            raise ReportError(f"{path}: case {case.name} appears twice; compare needs unique case names")
        cases[case.name] = case
    return cases


def _row(name: str, base: Optional[CaseSummary], case: Case, missing_why: str) -> Row:
    new = case_summary(case)
    row = baselines.verdict_row(name, baselines.compare(base, new), base, new)
    if base is None:
        row["detail"] = missing_why
    if not case.ok:
        # A failed case has no times, so its verdict alone would hide why.
        row["detail"] = f"status {case.status}: {row['detail']}"
    return row


def _missing_row(name: str, base: Optional[CaseSummary], why: str) -> Row:
    return {
        "case": name,
        "metric": None if base is None else base.metric,
        "baseline_median_s": None if base is None else base.median_s,
        "now_median_s": None,
        "change_pct": None,
        "verdict": MISSING_LABEL,
        "detail": why,
        "ratio": None,
    }
