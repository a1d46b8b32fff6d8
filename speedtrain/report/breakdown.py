"""The step breakdown (speedtrain.train.breakdown) in words and in a chart, for reports and ``compare``.

* :func:`describe`: a breakdown's largest shares ("convolution 64%, pooling 15%, ...");
* :func:`change_words`: the largest changes of shares against another case, in points of the
  profiled step ("copies and layout conversions -17 pt, convolution -9 pt");
* :func:`most_cut`: the category whose milliseconds per step fell most (the journey tables);
* :func:`plot_breakdown`: per section, one stacked horizontal bar per case, the same colour
  for a category in every section, device idle hatched, the legend in the image;
* :func:`compare_lines`: ``speedtrain compare --breakdown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from speedtrain.records.breakdown import Breakdown, IDLE, LABELS, describe, fmt_ms
from speedtrain.stats.samples import NOT_JUDGED

if TYPE_CHECKING:
    from speedtrain.records.runs import RunCase
    from speedtrain.verdicts.rule import VerdictRow

# One fixed colour per category (tab20 shades picked apart), so that a colour means the same
# category in every section's chart; idle is light grey.
COLOURS = {
    "convolution": "#1f77b4", "matmul": "#aec7e8", "batch_norm": "#ff7f0e", "elementwise": "#2ca02c",
    "pooling": "#98df8a", "loss": "#9467bd", "optimizer": "#d62728", "loader": "#8c564b", "layout": "#e377c2",
    "communication": "#17becf", "host": "#bcbd22", "other": "#7f7f7f", IDLE: "#d9d9d9",
}
MISSING = "-"


def share_changes(ref: Breakdown, bd: Breakdown) -> list[tuple[str, float]]:
    """(category, change of its share in points), largest change first."""
    keys = dict.fromkeys([*ref.segments(), *bd.segments()])
    changes = [(k, 100 * (bd.share(k) - ref.share(k))) for k in keys]
    return sorted(changes, key=lambda item: -abs(item[1]))


def change_words(ref: Breakdown, bd: Breakdown, n: int = 2, at_least_pt: float = 1.0) -> str:
    """The ``n`` largest changes of share against ``ref``, e.g. "layout copies -17 pt, convolution -9 pt"."""
    words = [f"{LABELS[k]} {pt:+.0f} pt" for k, pt in share_changes(ref, bd)[:n] if abs(pt) >= at_least_pt]
    return ", ".join(words) or f"no share moved by {at_least_pt:g} pt or more"


def reference_words(case: "RunCase", members: list["RunCase"]) -> str:
    """The section table's cell: the reference's own largest shares, another case's largest
    changes against its run's reference case."""
    bd = case.record.breakdown
    if bd is None:
        return MISSING
    if case.record.reference:
        return describe(bd, 2)
    ref = next((c.record.breakdown for c in members if c.record.reference and c.run == case.run
                and c.record.breakdown is not None), None)
    return MISSING if ref is None else change_words(ref, bd)


def most_cut(previous: Optional[Breakdown], bd: Optional[Breakdown]) -> str:
    """The category whose ms per step fell most from ``previous`` to ``bd`` (a ladder step)."""
    if previous is None or bd is None:
        return MISSING
    keys = dict.fromkeys([*previous.segments(), *bd.segments()])
    cuts = [(previous.segments().get(k, 0.0) - bd.segments().get(k, 0.0), k) for k in keys]
    saved, key = max(cuts, default=(0.0, ""))
    return f"{LABELS[key]} (-{fmt_ms(saved)})" if saved > 0 else "none fell"


BASES = {"cpu": "CPU self time of ops", "cuda": "GPU kernel time by launching op; device idle hatched"}


def compare_lines(old: dict[str, "RunCase"], new: dict[str, "RunCase"], rows: Iterable["VerdictRow"],
                  threshold: float) -> list[str]:
    """Per case that changed (faster or slower; with one seed a side, a change beyond the
    threshold), the change of each category: share in points and ms per step."""
    lines = []
    for row in rows:
        changed = row.verdict in ("faster", "slower") or (  # one seed a side: the change beyond the threshold
            row.verdict == NOT_JUDGED and row.ratio is not None and abs(row.ratio - 1) >= threshold)
        if not changed or row.case not in old or row.case not in new:
            continue
        a, b = old[row.case].record.breakdown, new[row.case].record.breakdown
        if a is None or b is None:
            lines.append(f"{row.case} ({row.verdict}): no breakdown on {'either side' if a is b else 'one side'}")
            continue
        parts = [f"{LABELS[k]} {pt:+.1f} pt ({fmt_ms(a.segments().get(k, 0.0))} -> {fmt_ms(b.segments().get(k, 0.0))})"
                 for k, pt in share_changes(a, b)]
        lines.append(f"{row.case} ({row.verdict}): step {fmt_ms(a.step_ms)} -> {fmt_ms(b.step_ms)}; " + "; ".join(parts))
    return lines
