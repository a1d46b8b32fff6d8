"""A case's recorded history in ``baselines.json``: one point per ``--st-baselines update``.

asv keeps every result of every commit and its main view is the trend of one benchmark over
them. A baselines file is committed to the repository, so it keeps a short history instead:
beside each case's current baseline, the last :data:`HISTORY_LIMIT` updates (commit, date,
median, spread, seeds), newest last. The report draws them as a trend plot per section and
``speedtrain history CASE`` prints them.

Files written before the history existed load unchanged: their first update starts the
history with the figures it replaces, so no measurement is thrown away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from speedtrain.common.errors import BaselineError
from speedtrain.records.record import is_number, show

HISTORY_LIMIT = 20  # points kept per case: a committed file stays small and diffable


@dataclass(frozen=True)
class HistoryPoint:
    """One recorded baseline of a case."""

    date: Optional[str]  # ISO date-time of the update
    commit: Optional[str]
    metric: str  # what median_s measures: train_time_s or time_to_target_s
    median_s: Optional[float]
    spread_s: Optional[float]  # range (max - min) over seeds
    seeds: int  # seeds that produced a time

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def point_of(entry: Mapping[str, Any]) -> HistoryPoint:
    """The history point of a baselines entry (its current figures and source)."""
    source = entry.get("source") or {}
    return HistoryPoint(date=source.get("date"), commit=source.get("commit"), metric=entry["metric"],
                        median_s=entry.get("median_s"), spread_s=entry.get("spread_s"),
                        seeds=len(entry.get("time_s") or []))


def extended(old: Optional[Mapping[str, Any]], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history to store with ``new``: the old entry's (or, for an entry written before
    histories existed, its figures as one point), then ``new``'s point, capped."""
    points: list[dict[str, Any]] = []
    if old is not None:
        points = list(old.get("history") or [point_of(old).to_json()])
    points.append(point_of(new).to_json())
    return points[-HISTORY_LIMIT:]


def validate(history: Any, where: str) -> None:
    """Raise BaselineError (one line) if ``history`` is not a list of history points."""
    if not isinstance(history, list):
        raise BaselineError(f"{where} must be a list, got {show(history)}")
    for i, point in enumerate(history):
        at = f"{where}[{i}]"
        if not isinstance(point, dict):
            raise BaselineError(f"{at} must be an object, got {show(point)}")
        for key in ("date", "commit", "metric"):
            if point.get(key) is not None and not isinstance(point[key], str):
                raise BaselineError(f"{at}.{key} must be a string or null, got {show(point[key])}")
        for key in ("median_s", "spread_s"):
            if point.get(key) is not None and not is_number(point[key]):
                raise BaselineError(f"{at}.{key} must be a number or null, got {show(point[key])}")
        seeds = point.get("seeds", 0)
        if not (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 0):
            raise BaselineError(f"{at}.seeds must be a whole number >= 0, got {show(seeds)}")


def points(entry: Mapping[str, Any]) -> list[HistoryPoint]:
    """An entry's history, oldest first; an entry from before histories is its one point."""
    raw = entry.get("history")
    if not raw:
        return [point_of(entry)]
    return [HistoryPoint(date=p.get("date"), commit=p.get("commit"), metric=p.get("metric") or entry["metric"],
                         median_s=p.get("median_s"), spread_s=p.get("spread_s"), seeds=p.get("seeds", 0))
            for p in raw]


@dataclass(frozen=True)
class CaseHistory:
    machine: str
    profile: str
    case: str  # the benchmark name, e.g. test_precision[fp16]
    points: list[HistoryPoint]


def find(data: Mapping[str, Any], case: str, machine: Optional[str] = None,
         profile: Optional[str] = None) -> list[CaseHistory]:
    """Histories of ``case`` (the benchmark name, or its id in brackets: ``fp16`` finds
    ``test_precision[fp16]``) on every machine and profile of the file, or only the given
    ones. BaselineError naming what the file holds when nothing matches or an id is ambiguous."""
    found = []
    for m, profiles in data.get("machines", {}).items():
        for p, cases in profiles.items():
            if machine not in (None, m) or profile not in (None, p):
                continue
            names = [case] if case in cases else [n for n in cases if n.endswith(f"[{case}]")]
            found += [(m, p, n, cases[n]) for n in names]
    distinct = sorted({n for _, _, n, _ in found})
    if len(distinct) > 1:
        raise BaselineError(f"case {case!r} is ambiguous; use one of {', '.join(distinct)}")
    if not found:
        where = " and ".join(f"{k} {v!r}" for k, v in (("machine", machine), ("profile", profile)) if v)
        held = sorted({f"{m} / {p}" for m, ps in data.get("machines", {}).items() for p in ps})
        raise BaselineError(f"no baseline of case {case!r}{' for ' + where if where else ''}; "
                            f"the file holds {', '.join(held) or 'no baselines'}")
    return [CaseHistory(m, p, n, points(entry)) for m, p, n, entry in found]


def format_history(history: CaseHistory) -> str:
    """A plain-text table of one case's history, oldest first, with the change from the
    previous point (times: percent, positive = slower; accuracies: points)."""
    from tabulate import tabulate

    from speedtrain.stats.samples import fmt_delta, fmt_figure, fmt_spread

    rows, previous = [], None
    for pt in history.points:
        same = previous is not None and previous.metric == pt.metric
        change = fmt_delta(pt.metric, previous.median_s, pt.median_s) if same else None
        rows.append((pt.date[:19] if pt.date else None, (pt.commit or "")[:12] or None, pt.metric,
                     fmt_figure(pt.metric, pt.median_s, 3), fmt_spread(pt.metric, pt.spread_s, 3), pt.seeds, change))
        previous = pt
    title = f"{history.case} on {history.machine} ({history.profile}): {len(history.points)} recorded baselines"
    table = tabulate(rows, headers=("date", "commit", "metric", "median", "spread (max-min)", "seeds",
                                    "change vs previous (times: + = slower)"),
                     tablefmt="simple", missingval="-", disable_numparse=True)
    return f"{title}\n{table}"

