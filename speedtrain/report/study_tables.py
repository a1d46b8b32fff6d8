"""The report's tables for the two accuracy studies (issue 14), beside the speed sections.

- The optimiser grid (sections ``optimizer_grid``, ``optimizer_grid_dropout``): a table like
  the study's, one row per case: optimiser, batch, learning rate, L2, dropout, best epoch
  (by validation top-1), training time, train / validation / test top-1 at the best epoch,
  and the last epoch's test top-1/2/3. Figures are medians over the seeds.
- The 100-image regime (section ``small_data``): each augmentation's test accuracy as
  mean +/- standard deviation over the seeds, its difference from the reference case (no
  augmentation), and whether that difference is beyond the seeds' noise by the verdicts' own
  rule (:func:`speedtrain.stats.samples.beyond_noise`).
- For one chosen case of each study section (the one with the highest median test top-1),
  top-1/2/3 and a heat map of its confusion matrix (the best epoch's when there was a
  validation split, else the last epoch's; counts summed over the seeds, rows normalised).

:func:`study_parts` is the one entry point; ``report._section`` appends what it returns.
"""

from __future__ import annotations

import io
import statistics
from typing import Optional

from speedtrain.records.record import CaseRecord
from speedtrain.report.cells import MISSING, fmt_pct, fmt_seconds, markdown
from speedtrain.records.saved_run import RunCase
from speedtrain.stats.samples import beyond_noise, median_or_none

GRID_SECTIONS = ("optimizer_grid", "optimizer_grid_dropout")
SMALL_DATA_SECTION = "small_data"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def study_parts(section: str, members: list[RunCase], stem: str, smoke: bool) -> tuple[list[str], dict[str, bytes]]:
    """Markdown lines and PNG files (name -> bytes) for a study section; nothing for others."""
    if section in GRID_SECTIONS:
        table = grid_table(members)
    elif section == SMALL_DATA_SECTION:
        table = augmentation_table(members)
    else:
        return [], {}
    parts = ["### Study table", "", table, ""]
    chosen = max(members, key=lambda c: median_or_none(c.record.final_acc) or -1.0)
    parts += [f"### Top-k and confusion matrix of `{chosen.record.case}` (highest median test top-1)", "",
              topk_line(chosen.record), ""]
    png = confusion_png(chosen.record, smoke)
    pngs: dict[str, bytes] = {}
    if png is not None:
        name = f"{stem}-{section}-confusion.png"
        pngs[name] = png
        parts += [f"![confusion matrix of {chosen.record.case}]({name})", ""]
    return parts, pngs


def _median_pct(values: list[Optional[float]]) -> str:
    return fmt_pct(median_or_none(values))


def grid_table(members: list[RunCase]) -> str:
    rows = []
    for c in members:
        r, cfg = c.record, c.record.config
        epochs = [e for e in r.best_epoch if e is not None]
        rows.append({
            "case": r.case, "optimiser": str(cfg.get("optimizer", MISSING)), "batch": str(cfg.get("batch_size", MISSING)),
            "lr": f"{cfg['lr']:g}" if "lr" in cfg else MISSING,
            "L2": f"{cfg['weight_decay']:g}" if "weight_decay" in cfg else MISSING,
            "dropout": f"{cfg['dropout']:g}" if "dropout" in cfg else MISSING,
            "best epoch": str(statistics.median_low(epochs)) if epochs else MISSING,
            "train s": fmt_seconds(median_or_none(r.train_time_s)),
            "train top-1": _median_pct(r.best_train_acc), "val top-1": _median_pct(r.val_acc),
            "test top-1 (best)": _median_pct(r.best_test_acc), "test top-1": _median_pct(r.final_acc),
            "top-2": _median_pct(r.top2_acc), "top-3": _median_pct(r.top3_acc), "seeds": str(len(r.seeds)),
        })
    return markdown(rows, numeric=[k for k in rows[0] if k not in ("case", "optimiser")] if rows else ())


def _mean_std(values: list[float]) -> str:
    if not values:
        return MISSING
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f}%" if len(values) < 2 else f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}%"


def augmentation_table(members: list[RunCase]) -> str:
    ref = next((c for c in members if c.record.reference), None)
    base = [a for a in ref.record.final_acc if a is not None] if ref else []
    rows = []
    for c in members:
        acc = [a for a in c.record.final_acc if a is not None]
        if c is ref or not (acc and base):
            diff, noise = MISSING, "reference" if c is ref else MISSING
        else:
            diff = f"{100 * (statistics.fmean(acc) - statistics.fmean(base)):+.2f} pt"
            noise = ("yes" if beyond_noise(base, acc) else "no") if min(len(acc), len(base)) >= 2 else "n/a (1 seed)"
        rows.append({"augmentation": c.record.case, "seeds": str(len(acc)), "test top-1 (mean ± std)": _mean_std(acc),
                     "vs none": diff, "beyond noise": noise, "top-2": _median_pct(c.record.top2_acc)})
    return markdown(rows, numeric=["seeds", "test top-1 (mean ± std)", "vs none", "top-2"])


def topk_line(r: CaseRecord) -> str:
    return (f"Test top-1 {_median_pct(r.final_acc)}, top-2 {_median_pct(r.top2_acc)}, "
            f"top-3 {_median_pct(r.top3_acc)} (last epoch, median of {len(r.seeds)} seed(s)).")


def class_names(r: CaseRecord, k: int) -> list[str]:
    chosen = r.config.get("classes") or list(range(k))
    if r.dataset in (None, "cifar10") and len(chosen) == k:
        return [CIFAR10_CLASSES[i] for i in chosen]
    return [str(i) for i in chosen][:k] if len(chosen) == k else [str(i) for i in range(k)]


def confusion_png(r: CaseRecord, smoke: bool) -> Optional[bytes]:
    """A heat map of the case's confusion matrix, rows (true class) normalised to recall."""
    matrix = r.best_confusion or r.confusion
    if not matrix:
        return None
    from matplotlib.figure import Figure

    k = len(matrix)
    rates = [[v / max(sum(row), 1) for v in row] for row in matrix]
    names = class_names(r, k)
    fig = Figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.55 * k), dpi=110, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{matrix[i][j]}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i][j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    which = "best epoch" if r.best_confusion else "last epoch"
    ax.set_title(f"{r.section} {r.case}: test set, {which}\n(counts over {len(r.seeds)} seed(s); colour = row fraction)",
                 fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if smoke:
        fig.text(0.5, 0.5, "SMOKE / SYNTHETIC DATA", ha="center", va="center", rotation=18, fontsize=14,
                 fontweight="bold", color="tab:red", alpha=0.35)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
