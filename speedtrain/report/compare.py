"""Case-by-case comparison of a run with an older run, or with stored baselines.

Both sides become :class:`speedtrain.stats.samples.CaseSummary` objects and every verdict comes from
:func:`speedtrain.verdicts.rule.compare`, so ``speedtrain compare`` and the pytest plugin's
``--st-baselines check`` can never disagree on what counts as slower; both print their rows
with :func:`format_rows`.

A case on one side only is listed as such: present only in the new run it is "no baseline";
present only in the baseline it is "missing", which is not a regression (the suite's
selection may simply differ), but it is shown so that a dropped case is noticed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Optional

from tabulate import tabulate

from speedtrain.records import baselines
from speedtrain.verdicts import rule as stats
from speedtrain.common.errors import ReportError
from speedtrain.records.runs import RunCase, load_run
from speedtrain.stats.samples import CaseSummary, fmt_delta, fmt_figure
from speedtrain.verdicts.case import judge_case
from speedtrain.verdicts.rule import VerdictRow

MISSING_LABEL = "missing"
TABLE_HEADERS = ("case", "metric", "baseline median", "now median", "change (times: + = slower)",
                 "verdict", "detail")


def compare_runs(a_path: str, b_path: str, *, threshold: float = stats.THRESHOLD,
                 only_common: bool = False) -> tuple[list[VerdictRow], bool]:
    """Rows comparing run B (new) with run A (baseline), and whether anything regressed;
    ``only_common`` leaves out the cases that only one run has."""
    old = _cases_by_name(a_path)
    new = _cases_by_name(b_path)
    rows = []
    for name, case in new.items():
        if only_common and name not in old:
            continue
        base = old[name].summary() if name in old else None
        rows.append(_row(name, base, case, f"only in {Path(b_path).name}", threshold,
                         old[name].record.conditions if name in old else None))
    if not only_common:
        rows += [_missing_row(name, case.summary(), f"only in {Path(a_path).name}")
                 for name, case in old.items() if name not in new]
    return rows, stats.regressed(rows)


def compare_with_baselines(baselines_path: str, run_path: str, *, threshold: float = stats.THRESHOLD,
                           only_common: bool = False) -> tuple[list[VerdictRow], bool]:
    """Rows comparing a run with the stored baselines of its machine and profile."""
    data = baselines.load_baselines(baselines_path)
    new = _cases_by_name(run_path)
    rows = []
    for name, case in new.items():
        base = baselines.lookup(data, case.machine, case.profile, name)
        if only_common and base is None:
            continue
        rows.append(_row(name, base, case, "no baseline for this machine/profile", threshold))
    # Baselines of this machine and profile that the run did not produce.
    for machine, profile in [] if only_common else _machine_profiles(new):
        stored = data.get("machines", {}).get(machine, {}).get(profile, {})
        for name in stored:
            if name not in new:
                base = baselines.lookup(data, machine, profile, name)
                rows.append(_missing_row(name, base, f"in {Path(baselines_path).name}, not in this run"))
    return rows, stats.regressed(rows)


def uncovered(baselines_path: str, run_path: str) -> list[tuple[str, str]]:
    """The (machine, profile) pairs of the run for which the baselines file holds nothing:
    a CI job on a new GPU would otherwise pass with every case "no baseline"."""
    data = baselines.load_baselines(baselines_path)
    return [(m, p) for m, p in _machine_profiles(_cases_by_name(run_path))
            if not data.get("machines", {}).get(m, {}).get(p)]


def _machine_profiles(cases: dict[str, RunCase]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((c.machine, c.profile) for c in cases.values()))


def to_json(rows: Iterable[VerdictRow], regressed: bool) -> dict[str, Any]:
    """The verdicts as ``compare --json`` writes them (ratio = now / baseline)."""
    return {"regressed": regressed,
            "rows": [{**asdict(r), "change_pct": r.change_pct} for r in rows]}


def format_rows(rows: Iterable[VerdictRow]) -> str:
    """The verdict table (plain text), as the plugin and ``speedtrain compare`` print it: times
    in seconds with their change in percent, accuracies in percent with their change in points."""
    body = [(r.case, r.metric, fmt_figure(r.metric, r.baseline_median_s), fmt_figure(r.metric, r.now_median_s),
             fmt_delta(r.metric, r.baseline_median_s, r.now_median_s), r.verdict, r.detail) for r in rows]
    return tabulate(body, headers=TABLE_HEADERS, tablefmt="simple", missingval="-", disable_numparse=True)


def _cases_by_name(path: str) -> dict[str, RunCase]:
    return cases_by_name(path)


def cases_by_name(path: str) -> dict[str, RunCase]:
    """The cases of the saved run at ``path`` by benchmark name (unique, else ReportError)."""
    cases: dict[str, RunCase] = {}
    for case in load_run(path).cases:
        if case.name in cases:
            raise ReportError(f"{path}: case {case.name} appears twice; compare needs unique case names")
        cases[case.name] = case
    return cases


def partial_notes(*paths: str) -> list[str]:
    """One line per run that was interrupted: its missing cases are not a dropped selection."""
    notes = []
    for path in paths:
        run = load_run(path)
        if run.partial:
            notes.append(f"{Path(path).name}: partial run, interrupted: {run.partial}")
    return notes


def _row(name: str, base: Optional[CaseSummary], case: RunCase, missing_why: str,
         threshold: float, base_conditions: Any = None) -> VerdictRow:
    row = judge_case(name, case.record, base, threshold=threshold, base_conditions=base_conditions,
                     summary=case.summary())
    if base is None:
        row.detail = f"status {case.record.status}: {missing_why}" if not case.record.ok else missing_why
    return row


def _missing_row(name: str, base: Optional[CaseSummary], why: str) -> VerdictRow:
    return VerdictRow(case=name, metric=None if base is None else base.metric,
                      baseline_median_s=None if base is None else base.median_s,
                      now_median_s=None, verdict=MISSING_LABEL, detail=why)
