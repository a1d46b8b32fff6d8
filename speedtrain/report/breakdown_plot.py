"""The report's step-breakdown chart: per section, one stacked bar per case, the same colours in
every section (:data:`speedtrain.report.breakdown.COLOURS`), device idle hatched on a GPU."""

from __future__ import annotations

from typing import Any, Optional

from speedtrain.records.breakdown import CATEGORIES, IDLE, LABELS, fmt_ms
from speedtrain.records.saved_run import RunCase
from speedtrain.report.breakdown import BASES, COLOURS
from speedtrain.report.plots import SectionPlot, _figure, _finish


def plot_breakdown(members: list[RunCase], spec: SectionPlot) -> Optional[bytes]:
    """Stacked horizontal bars, one per case with a breakdown: on the left ms per profiled step by
    category (how much each case spends), on the right the same as shares of its step (what
    changed in proportion). None when no case of the section has one (older runs, 0 steps)."""
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
