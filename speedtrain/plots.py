"""The PNG plots of a report: per section, median training times and accuracy curves.

Drawn on a bare matplotlib ``Figure`` (no pyplot): no global state and no GUI backend, so
reports render headless and in parallel. Each function returns PNG bytes, or None when the
section has nothing to show; :data:`PLOTS` lists them in the order the report shows them.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Optional

from speedtrain.report_tables import CaseFigures, Key, fmt_seconds
from speedtrain.runs import RunCase


def _label(c: RunCase, many: bool) -> str:
    return f"{c.run}\n{c.record.case}" if many else c.record.case


def _figure(n_items: int) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(max(6.0, 0.9 * n_items + 2.5), 4.5), dpi=110, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_times(members: list[RunCase], figs: dict[Key, CaseFigures], title: str, many: bool) -> Optional[bytes]:
    """Bar per case: median train time, error bar = min-max over seeds; failed cases marked."""
    fig = _figure(len(members))
    ax = fig.add_subplot()
    xs = list(range(len(members)))
    medians = [figs[(c.run, c.index)].train_median or 0.0 for c in members]
    colors = ["tab:orange" if c.record.reference else "tab:blue" for c in members]
    ax.bar(xs, medians, color=colors)
    tops = list(medians)
    for x, c, m in zip(xs, members, medians):
        f = figs[(c.run, c.index)]
        if len(f.train_s) > 1:  # one seed has no spread to draw
            ax.errorbar([x], [m], yerr=[[m - min(f.train_s)], [max(f.train_s) - m]], color="black", capsize=4)
            tops[x] = max(f.train_s)
        ok = c.record.ok
        text = c.record.status if not ok else fmt_seconds(f.train_median) if f.train_median else "n/a"
        ax.annotate(text, (x, tops[x]), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color="black" if ok else "tab:red")
    ax.set_ylim(0, (max(tops) or 1.0) * 1.15)
    rotate = len(members) > 5
    ax.set_xticks(xs, [_label(c, many) for c in members], rotation=30 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_ylabel("training time per run (s)")
    ax.set_title(f"{title}: median training time\n(error bars: min-max over seeds; orange: reference case)",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_curves(members: list[RunCase], figs: dict[Key, CaseFigures], title: str, many: bool) -> Optional[bytes]:
    """Test accuracy against cumulative timed training seconds, every seed, one colour a case."""
    with_curves = [c for c in members if c.record.curves]
    if not with_curves:
        return None
    fig = _figure(8)
    ax = fig.add_subplot()
    for c, color in zip(with_curves, _colors(len(with_curves))):
        for i, curve in enumerate(c.record.curves):
            ax.plot([p.train_s for p in curve], [100 * p.test_acc for p in curve], marker=".", color=color,
                    alpha=0.85, linewidth=1.2, label=_label(c, many).replace("\n", " ") if i == 0 else None)
    targets = {c.record.target_acc for c in with_curves if c.record.target_acc is not None}
    for t in sorted(targets):
        ax.axhline(100 * t, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"target {100 * t:.0f}%", (0, 100 * t), xycoords=("axes fraction", "data"),
                    xytext=(3, 3), textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("timed training seconds")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}: test accuracy during training\n(one line per seed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


Plot = Callable[[list[RunCase], dict[Key, CaseFigures], str, bool], Optional[bytes]]
# Each section gets these plots, in this order, when they have data to show.
PLOTS: tuple[tuple[str, Plot], ...] = (("time", plot_times), ("accuracy", plot_curves))
