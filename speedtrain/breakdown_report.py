"""The step breakdown (speedtrain.breakdown) in words and in a chart, for reports and ``compare``.

* :func:`describe`: a breakdown's largest shares ("convolution 64%, pooling 15%, ...");
* :func:`change_words`: the largest changes of shares against another case, in points of the
  profiled step ("copies and layout conversions -17 pt, convolution -9 pt");
* :func:`most_cut`: the category whose milliseconds per step fell most (the journey tables);
* :func:`plot_breakdown`: per section, one stacked horizontal bar per case, the same colour
  for a category in every section, device idle hatched, the legend in the image;
* :func:`compare_lines`: ``speedtrain compare --breakdown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

from speedtrain.breakdown import CATEGORIES, IDLE, LABELS, Breakdown
from speedtrain.stats import NOT_JUDGED

if TYPE_CHECKING:
    from speedtrain.plots import SectionPlot
    from speedtrain.runs import RunCase
    from speedtrain.stats import VerdictRow

# One fixed colour per category (tab20 shades picked apart), so that a colour means the same
# category in every section's chart; idle is light grey.
COLOURS = {
    "convolution": "#1f77b4", "matmul": "#aec7e8", "batch_norm": "#ff7f0e", "elementwise": "#2ca02c",
    "pooling": "#98df8a", "loss": "#9467bd", "optimizer": "#d62728", "loader": "#8c564b", "layout": "#e377c2",
    "communication": "#17becf", "host": "#bcbd22", "other": "#7f7f7f", IDLE: "#d9d9d9",
}
MISSING = "-"


def describe(bd: Breakdown, n: int = 4) -> str:
    """The ``n`` largest shares of the profiled step, largest first."""
    ranked = sorted(bd.segments().items(), key=lambda item: -item[1])
    words = [f"{LABELS[k]} {bd.share(k):.0%}" for k, _ in ranked[:n]]
    more = f" (+{len(ranked) - n} more)" if len(ranked) > n else ""
    return ", ".join(words) + more


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
    return f"{LABELS[key]} (-{_ms(saved)})" if saved > 0 else "none fell"


def _ms(x: float) -> str:
    return f"{x:.3g} ms"


def plot_breakdown(members: list["RunCase"], spec: "SectionPlot") -> Optional[bytes]:
    """One stacked horizontal bar per case with a breakdown: ms per profiled step by category.
    None when no case of the section has one (older runs, --st-breakdown-steps 0)."""
    from speedtrain.plots import _figure, _finish

    cases = [c for c in members if c.record.breakdown is not None]
    if not cases:
        return None
    fig = _figure(8)
    fig.set_size_inches(9.0, 1.6 + 0.45 * len(cases) + 0.9)
    ax = fig.add_subplot()
    used: dict[str, Any] = {}
    for row, c in enumerate(cases):
        bd = c.record.breakdown
        assert bd is not None
        left = 0.0
        for key, ms in bd.segments().items():
            bar = ax.barh([row], [ms], left=left, color=COLOURS[key], edgecolor="white", linewidth=0.5,
                          hatch="//" if key == IDLE else None)
            used.setdefault(key, bar)
            if bd.share(key) >= 0.08:  # name the share inside a segment wide enough for it
                ax.text(left + ms / 2, row, f"{bd.share(key):.0%}", ha="center", va="center", fontsize=7)
            left += ms
        ax.annotate(f"{_ms(bd.step_ms)}/step", (left, row), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    labels = [(f"{c.run}: " if spec.many else "") + c.record.case + (" (ref)" if c.record.reference else "")
              for c in cases]
    ax.set_yticks(range(len(cases)), labels, fontsize=8)
    ax.invert_yaxis()  # first case on top, as in the tables
    ax.set_xlim(0, max(c.record.breakdown.step_ms for c in cases if c.record.breakdown) * 1.18)
    order = [k for k in (*CATEGORIES, IDLE) if k in used]
    ax.legend([used[k] for k in order], [LABELS[k] for k in order], fontsize=7, ncol=min(4, len(order)),
              loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.25 / max(1, len(cases))), frameon=False)
    basis = {"cpu": "CPU self time of ops", "cuda": "GPU kernel time by launching op, device idle hatched"}
    bases = sorted({basis.get(c.record.breakdown.basis, c.record.breakdown.basis) for c in cases if c.record.breakdown})
    ax.set_xlabel("ms per profiled training step (" + "; ".join(bases) + ")")
    steps = sorted({c.record.breakdown.steps for c in cases if c.record.breakdown})
    ax.set_title(f"{spec.title}: where a training step's time goes\n(profiled after the timed run, off the clock, "
                 f"{'/'.join(map(str, steps))} step(s); % = share of the step)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, spec)


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
        parts = [f"{LABELS[k]} {pt:+.1f} pt ({_ms(a.segments().get(k, 0.0))} -> {_ms(b.segments().get(k, 0.0))})"
                 for k, pt in share_changes(a, b)]
        lines.append(f"{row.case} ({row.verdict}): step {_ms(a.step_ms)} -> {_ms(b.step_ms)}; " + "; ".join(parts))
    return lines
