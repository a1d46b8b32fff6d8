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
    return f"{LABELS[key]} (-{fmt_ms(saved)})" if saved > 0 else "none fell"


def fmt_ms(x: float) -> str:
    """Milliseconds, as seconds from 1000 ms on: a reduced-precision CPU step takes seconds."""
    return f"{x / 1000:.3g} s" if x >= 1000 else f"{x:.3g} ms"


def plot_breakdown(members: list["RunCase"], spec: "SectionPlot") -> Optional[bytes]:
    """Stacked horizontal bars, one per case with a breakdown: on the left ms per profiled step by
    category (how much each case spends), on the right the same as shares of its step (what
    changed in proportion). None when no case of the section has one (older runs, 0 steps)."""
    from speedtrain.plots import _figure, _finish

    cases = [(c, c.record.breakdown) for c in members if c.record.breakdown is not None]
    if not cases:
        return None
    fig = _figure(8)
    fig.set_size_inches(12.0, 2.4 + 0.5 * len(cases))
    absolute, shares = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    longest = max(bd.step_ms for _, bd in cases)
    used: dict[str, Any] = {}
    for row, (c, bd) in enumerate(cases):
        left = start = 0.0
        for key, ms in bd.segments().items():
            style = {"color": COLOURS[key], "edgecolor": "white", "linewidth": 0.5, "hatch": "//" if key == IDLE else None}
            used.setdefault(key, absolute.barh([row], [ms], left=left, **style))
            share = 100 * bd.share(key)
            shares.barh([row], [share], left=start, **style)
            if share >= 7:  # a label only where the segment has room for it
                shares.text(start + share / 2, row, f"{share:.0f}%", ha="center", va="center", fontsize=7)
            if ms / longest >= 0.07:
                absolute.text(left + ms / 2, row, f"{share:.0f}%", ha="center", va="center", fontsize=7)
            left, start = left + ms, start + share
        absolute.annotate(f"{fmt_ms(bd.step_ms)} per step", (left, row), xytext=(3, 0), textcoords="offset points",
                          va="center", fontsize=7)
    labels = [(f"{c.run}: " if spec.many else "") + c.record.case + (" (ref)" if c.record.reference else "")
              for c, _ in cases]
    absolute.set_yticks(range(len(cases)), labels, fontsize=8)
    absolute.invert_yaxis()  # first case on top, as in the tables
    absolute.set_xlim(0, longest * 1.22)
    shares.set_xlim(0, 100)
    bases = sorted({BASES.get(bd.basis, bd.basis) for _, bd in cases})
    absolute.set_xlabel("ms per profiled training step\n(" + "; ".join(bases) + ")", fontsize=8)
    shares.set_xlabel("share of the profiled step (%)", fontsize=8)
    for ax in (absolute, shares):
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    order = [k for k in (*CATEGORIES, IDLE) if k in used]
    fig.legend([used[k] for k in order], [LABELS[k] for k in order], fontsize=7, ncol=min(6, len(order)),
               loc="outside lower center", frameon=False)
    steps = "/".join(map(str, sorted({bd.steps for _, bd in cases})))
    fig.suptitle(f"{spec.title}: where a training step's time goes\n(torch.profiler, {steps} step(s) per case "
                 "after the timed run, off the clock; % = share of the step)", fontsize=10)
    return _finish(fig, spec)


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
