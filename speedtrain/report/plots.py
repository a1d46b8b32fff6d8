"""The PNG plots of a report: per section, median training times, accuracy curves and the
trend of the stored baselines over their recorded history.

Drawn on a bare matplotlib ``Figure`` (no pyplot): no global state and no GUI backend, so
reports render headless and in parallel. Each function returns PNG bytes, or None when the
section has nothing to show; :data:`PLOTS` lists the per-run plots in the order the report
shows them. A plot of a smoke or synthetic run carries that mark in the image itself, since
a PNG travels without the report's banner.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from speedtrain.report.cells import fmt_seconds
from speedtrain.report.tables import CaseFigures, Key
from speedtrain.records.saved_run import RunCase
from speedtrain.stats.samples import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from speedtrain.records.history import HistoryPoint

SMOKE_MARK = "SMOKE / SYNTHETIC DATA\nnot a measurement of training speed"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # accuracy curves: one a case
LINESTYLES = ("-", "--", "-.", ":")
METRIC_LABELS = {"train_time_s": "median training time (s)", "time_to_target_s": "median time to target (s)",
                 "final_acc": "median final test accuracy (%)"}


@dataclass(frozen=True)
class SectionPlot:
    """What every plot of a section needs besides the figures."""

    title: str  # the section's title
    axis: str  # what the section varies, with its unit: the x axis of the time plot
    many: bool  # several runs: bars grouped by case, one colour a run
    smoke: bool  # a smoke-profile or synthetic-data case is in it: marked in the image


def _figure(n_items: int) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(max(6.0, 0.9 * n_items + 2.5), 4.5), dpi=110, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _finish(fig: Any, spec: SectionPlot) -> bytes:
    if spec.smoke:  # inside the axes: over the data, never over the tick labels around them
        ax = fig.axes[0]
        ax.text(0.5, 0.5, SMOKE_MARK, transform=ax.transAxes, ha="center", va="center", fontsize=15,
                fontweight="bold", color="tab:red", alpha=0.3, zorder=10)
    return _png(fig)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_times(members: list[RunCase], figs: dict[Key, CaseFigures], spec: SectionPlot) -> Optional[bytes]:
    """Bars of median train time per case (grouped by case, one colour a run, when there are
    several runs); error bar = min-max over seeds; failed cases marked."""
    cases = list(dict.fromkeys(c.record.case for c in members))
    runs = list(dict.fromkeys(c.run for c in members))
    width = 0.8 / len(runs)
    fig = _figure(round(len(cases) * (1 + 0.4 * (len(runs) - 1))))
    ax = fig.add_subplot()
    colors = _colors(len(runs))
    tops = [0.0]
    for c in members:
        f = figs[(c.run, c.index)]
        r = runs.index(c.run)
        x = cases.index(c.record.case) + (r - (len(runs) - 1) / 2) * width
        m = f.train_median or 0.0
        color = colors[r] if spec.many else "tab:orange" if c.record.reference else "tab:blue"
        ax.bar([x], [m], width=width * 0.95, color=color, label=c.run if spec.many else None)
        top = m
        if len(f.train_time_s) > 1:  # one seed has no spread to draw
            ax.errorbar([x], [m], yerr=[[m - min(f.train_time_s)], [max(f.train_time_s) - m]], color="black", capsize=4)
            top = max(f.train_time_s)
        tops.append(top)
        ok = c.record.ok
        text = c.record.status if not ok else fmt_seconds(f.train_median) if f.train_median else "n/a"
        ax.annotate(text, (x, top), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7 if spec.many else 8, color="black" if ok else "tab:red")
    ax.set_ylim(0, (max(tops) or 1.0) * 1.15)
    refs = {c.record.case for c in members if c.record.reference}
    labels = [f"{case}\n(reference)" if case in refs else case for case in cases]
    rotate = len(cases) > 5
    ax.set_xticks(range(len(cases)), labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlabel(spec.axis)
    ax.set_ylabel("training time per run (s)")
    if spec.many:
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), title="run", fontsize=8)
    colours = "colour: run" if spec.many else "orange: reference case"
    ax.set_title(f"{spec.title}: median training time\n(error bars: min-max over seeds; {colours})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, spec)


def plot_curves(members: list[RunCase], figs: dict[Key, CaseFigures], spec: SectionPlot) -> Optional[bytes]:
    """Test accuracy against cumulative timed training seconds, every seed, one colour a case;
    the y axis zooms to the data, the target line is drawn when it falls in that range."""
    with_curves = [c for c in members if c.record.curves]
    if not with_curves:
        return None
    fig = _figure(8)
    ax = fig.add_subplot()
    accs = []
    for k, (c, color) in enumerate(zip(with_curves, _colors(len(with_curves)))):
        label = f"{c.run}: {c.record.case}" if spec.many else c.record.case
        # a marker and a dash pattern of its own: a line that lies on another still shows
        style = {"marker": MARKERS[k % len(MARKERS)], "linestyle": LINESTYLES[k // len(MARKERS) % len(LINESTYLES)]}
        for i, curve in enumerate(c.record.curves):
            ys = [100 * p.test_acc for p in curve]
            accs += ys
            ax.plot([p.train_s for p in curve], ys, color=color, alpha=0.85, linewidth=1.2, markersize=5,
                    markerfacecolor="none", label=label if i == 0 else None, **style)
    lo, hi = min(accs), max(accs)
    pad = max(0.5, 0.08 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    ax.set_ylim(lo, hi)
    outside = []
    for t in sorted({100 * c.record.target_acc for c in with_curves if c.record.target_acc is not None}):
        if lo <= t <= hi:
            ax.axhline(t, color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"target {t:.0f}%", (0, t), xycoords=("axes fraction", "data"),
                        xytext=(3, 3), textcoords="offset points", fontsize=8, color="grey")
        else:
            outside.append(f"target {t:.0f}% {'above' if t > hi else 'below'} the data")
    ax.set_xlabel("timed training time (s, cumulative; evaluation excluded)")
    ax.set_ylabel("test accuracy (%)")
    note = "; ".join(["one line per seed", *outside])
    ax.set_title(f"{spec.title}: test accuracy during training\n({note})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, spec)


def plot_time_vs_flops(members: list[RunCase], figs: dict[Key, CaseFigures], spec: SectionPlot) -> Optional[bytes]:
    """Median training time against the run's training FLOPs (log-log), one labelled point a
    case: cases on one diagonal run at the same FLOP/s (they saved or added work); a case below
    its neighbours' diagonal runs the same work faster. None unless 2+ cases have both figures."""
    points = [(c, figs[(c.run, c.index)]) for c in members]
    points = [(c, f) for c, f in points if f.train_flops and f.train_median]
    if len(points) < 2:
        return None
    from matplotlib.ticker import FuncFormatter

    fig = _figure(8)
    ax = fig.add_subplot()
    colors = _colors(len(points))
    xs, ys = [f.train_flops / 1e12 for _, f in points], [f.train_median for _, f in points]
    ax.scatter(xs, ys, color=colors, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for set_lim, values in ((ax.set_xlim, xs), (ax.set_ylim, ys)):
        if max(values) < 1.2 * min(values):  # one shared value: autoscale would span a whole decade
            set_lim(min(values) / 1.25, max(values) * 1.25)
    for axis, limits in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.3, not 3 x 10^-1
        # minor ticks named only on an axis spanning under a decade, where no major tick may fall
        axis.set_minor_formatter(FuncFormatter(lambda v, _, lim=limits: f"{v:g}" if lim()[1] < 10 * lim()[0] else ""))
    labels = [f"{c.run}: {c.record.case}" if spec.many else c.record.case for c, _ in points]
    place_labels(ax, xs, ys, labels, colors)
    ax.set_xlabel("training FLOPs per run (TFLOP: forward + backward, every image trained)")
    ax.set_ylabel("median training time (s)")
    ax.set_title(f"{spec.title}: time against work\n(same diagonal: same FLOP/s; left: less work; down: faster)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    return _finish(fig, spec)


LABEL_FONT = 7  # points


def place_labels(ax: Any, xs: list[float], ys: list[float], labels: list[str], colors: list[Any]) -> None:
    """Name each point beside it, moving a label down (with a thin leader line to its point)
    until it overlaps no label placed before: ladder steps often share a spot (same FLOPs,
    nearly the same time). Greedy, top point first, in the axes' own log coordinates."""
    import math

    fig = ax.get_figure()
    width, height = fig.get_size_inches() * 72 * 0.8  # the axes' rough size in points
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()  # autoscaled by now: the points are drawn

    def to_points(x: float, y: float) -> tuple[float, float]:
        return (width * math.log(x / x0) / math.log(x1 / x0), height * math.log(y / y0) / math.log(y1 / y0))

    line = LABEL_FONT * 1.3
    placed: list[tuple[float, float, float, float]] = []
    for i in sorted(range(len(xs)), key=lambda i: -ys[i]):
        px, py = to_points(xs[i], ys[i])
        w = 0.6 * LABEL_FONT * len(labels[i])
        drop = 0.0
        while any(px + 4 < r and l < px + 4 + w and py + 3 - drop < t and b < py + 3 - drop + line
                  for l, b, r, t in placed) and drop < 40 * line:
            drop += line
        placed.append((px + 4, py + 3 - drop, px + 4 + w, py + 3 - drop + line))
        arrow = {"arrowstyle": "-", "color": colors[i], "linewidth": 0.6} if drop else None
        ax.annotate(labels[i], (xs[i], ys[i]), xytext=(4, 3 - drop), textcoords="offset points",
                    fontsize=LABEL_FONT, color="black", arrowprops=arrow, va="bottom")


def plot_trend(histories: dict[str, list["HistoryPoint"]], spec: SectionPlot,
               current: Optional[dict[str, "HistoryPoint"]] = None) -> Optional[bytes]:
    """Each case's recorded baselines over time (asv's main view): median per update, bar =
    the spread (max - min over seeds) centred on the median; x = the updates in date order,
    then the reported run itself (``current``, by the same labels), a hollow marker at the right.
    None unless some case has 2+ points, the current run's counted."""
    current = current or {}
    if not any(len(points) + (label in current) >= 2 for label, points in histories.items()):
        return None
    metric = next(iter(histories.values()))[-1].metric
    updates = sorted({(p.date or "", p.commit or "") for pts in histories.values() for p in pts})
    fig = _figure(len(updates) + 4)  # room for the title and the "this run" column
    ax = fig.add_subplot()
    for (case, points), color in zip(histories.items(), _colors(len(histories))):
        points = [p for p in points if p.metric == metric and p.median_s is not None]
        xs = [updates.index((p.date or "", p.commit or "")) for p in points]
        scale = 100.0 if metric in HIGHER_IS_BETTER else 1.0  # accuracies in percent
        ys = [scale * p.median_s for p in points]
        half = [scale * (p.spread_s or 0.0) / 2 for p in points]
        ax.errorbar(xs, ys, yerr=half, marker="o", color=color, capsize=3, linewidth=1.2, label=case)
        now = current.get(case)
        if now is not None and now.metric == metric and now.median_s is not None:
            ax.errorbar([len(updates)], [scale * now.median_s], yerr=[scale * (now.spread_s or 0.0) / 2],
                        marker="o", markerfacecolor="white", color=color, capsize=3, linestyle="none")
            if ys:
                ax.plot([xs[-1], len(updates)], [ys[-1], scale * now.median_s], color=color, linestyle=":", linewidth=1)
    ticks = [f"{d[:10] or '?'}\n{c[:7]}" for d, c in updates] + (["this run"] if current else [])
    ax.set_xticks(range(len(ticks)), ticks, fontsize=7,
                  rotation=30 if len(ticks) > 6 else 0, ha="right" if len(ticks) > 6 else "center")
    ax.set_xlabel("baseline update (date, commit)" + (", then this run (hollow)" if current else ""))
    ax.set_ylabel(METRIC_LABELS.get(metric, f"{metric} (s)"))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{spec.title}: stored baselines over time\n(bars: spread over seeds, max - min)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, spec)


Plot = Callable[[list[RunCase], dict[Key, CaseFigures], SectionPlot], Optional[bytes]]
# Each section gets these plots, in this order, when they have data to show.
PLOTS: tuple[tuple[str, Plot], ...] = (("time", plot_times), ("accuracy", plot_curves), ("flops", plot_time_vs_flops))
