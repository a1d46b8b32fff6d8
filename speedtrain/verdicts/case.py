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
    # a busy machine spoils the old run's times as surely as the new one's
    sides = [("new", record.conditions), ("old", base_conditions if base is not None else None)]
    reasons = [(side, noisy_reason(cond)) for side, cond in sides if cond]
    marked = [f"{side} run: {why}" if base_conditions else why for side, why in reasons if why]
    row = verdict_row(name, base, summary or record.summary(), threshold=threshold,
                      noisy_machine="; ".join(marked) or None)
    if not record.ok:
        row.detail = f"status {record.status}: {row.detail}"
    return row
