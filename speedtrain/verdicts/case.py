"""The one way a benchmark case becomes a verdict row: the suite's session, ``speedtrain
compare`` and the report all call :func:`judge_case`, with the same threshold rule, so they
cannot disagree on a case."""

from __future__ import annotations

from typing import Any, Optional

from speedtrain.hw.runconditions import noisy_reason
from speedtrain.records.record import CaseRecord
from speedtrain.stats.samples import THRESHOLD, CaseSummary
from speedtrain.verdicts.rule import VerdictRow, verdict_row


def judge_case(name: str, record: CaseRecord, base: Optional[CaseSummary], *, threshold: float = THRESHOLD,
               base_conditions: Any = None, summary: Optional[CaseSummary] = None) -> VerdictRow:
    """``record``'s verdict against ``base`` (None: no baseline). A case measured on a noisy
    machine, or judged against a baseline that was, says so first; a failed case says its
    status, since it has no times to show. ``summary`` is ``record.summary()`` when a reader
    has already made it (a saved run's, whose errors name the file)."""
    reasons = [noisy_reason(record.conditions)]
    if base is not None and noisy_reason(base_conditions):
        reasons.append(f"baseline: {noisy_reason(base_conditions)}")
    row = verdict_row(name, base, summary or record.summary(), threshold=threshold,
                      noisy_machine="; ".join(r for r in reasons if r) or None)
    if not record.ok:
        row.detail = f"status {record.status}: {row.detail}"
    return row
