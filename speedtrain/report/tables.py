"""The markdown tables of a report: environment, summary, one table per section, the ladder.

Per-seed figures are aggregated from :func:`speedtrain.records.runs.cases_frame` (the DataFrame
notebook users get from ``runs.to_dataframe``), so a report and a notebook agree; what is
not per seed (status, reference case, ladder step, error text) comes from the records.
Every cell is a pre-formatted string and ``-`` stands for a figure that was not recorded.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from speedtrain.stats import noise
from speedtrain.records import airbench_time
from speedtrain.common.errors import ReportError
from speedtrain.records.breakdown import Breakdown
from speedtrain.report.breakdown import most_cut, reference_words
from speedtrain.stats.noise import Noise
from speedtrain.records.saved_run import RunCase, SavedRun
from speedtrain.hw.runconditions import noisy_reason
from speedtrain.stats.samples import HIGHER_IS_BETTER, fmt_delta
from speedtrain.report.cells import (
    MISSING, fmt_gib, fmt_int, fmt_pct, fmt_range, fmt_ratio, fmt_scaled, fmt_seconds, markdown, seeds_text,
)

if TYPE_CHECKING:
    import pandas

    from speedtrain.verdicts.rule import VerdictRow

Key = tuple[str, int]  # (run label, case index in the run)


@dataclass
class CaseFigures:
    """One case's per-seed figures, aggregated over its seeds."""

    train_time_s: list[float]  # the seeds that have a training time
    time_to_target_s: list[float]  # the seeds that reached the target
    target_seeds: int  # seeds whose reaching the target is known
    any_reached: bool
    final_acc: Optional[float]  # median, fraction
    images_per_s: Optional[float]  # median
    peak_mem_allocated_bytes: Optional[float]
    energy_j: Optional[float]  # of the telemetry seed (the median-time seed's run)
    power_mean_w: Optional[float]
    util_mean_pct: Optional[float]
    # work done (speedtrain.train.flops): per image, the run's total and its rate (medians), MFU (fraction)
    flops_per_image: Optional[float] = None
    train_flops: Optional[float] = None
    achieved_flops_per_s: Optional[float] = None
    mfu: Optional[float] = None
    measured_peak_flops_per_s: Optional[float] = None  # FLOP/s the doctor measured for the case's matmuls

    @property
    def measured_mfu(self) -> Optional[float]:
        """Achieved FLOP/s over the measured matmul peak (fraction)."""
        return (self.achieved_flops_per_s / self.measured_peak_flops_per_s
                if self.achieved_flops_per_s and self.measured_peak_flops_per_s else None)

    @property
    def train_median(self) -> Optional[float]:
        return statistics.median(self.train_time_s) if self.train_time_s else None


def case_figures(frame: "pandas.DataFrame") -> dict[Key, CaseFigures]:
    out = {}
    for (run, index), rows in frame.groupby(["run", "case_index"], sort=False):
        telemetry = rows[rows["telemetry_seed"].fillna(False)]
        out[(str(run), int(index))] = CaseFigures(
            train_time_s=_values(rows["train_time_s"]), time_to_target_s=_values(rows["time_to_target_s"]),
            target_seeds=max(int(rows["reached_target"].notna().sum()), int(rows["time_to_target_s"].notna().sum())),
            any_reached=bool(rows["reached_target"].fillna(False).any()),
            final_acc=_median(rows["final_acc"]), images_per_s=_median(rows["images_per_s"]),
            peak_mem_allocated_bytes=_first(rows["peak_mem_allocated_bytes"]), energy_j=_first(telemetry["energy_j"]),
            power_mean_w=_first(telemetry["power_mean_w"]), util_mean_pct=_first(telemetry["util_mean_pct"]),
            flops_per_image=_first(rows["flops_per_image"]), train_flops=_median(rows["train_flops"]),
            achieved_flops_per_s=_median(rows["achieved_flops_per_s"]), mfu=_median(rows["mfu"]),
            measured_peak_flops_per_s=_first(rows["measured_peak_flops_per_s"]),
        )
    return out


def _values(column: "pandas.Series") -> list[float]:
    return [float(v) for v in column.dropna()]


def _median(column: "pandas.Series") -> Optional[float]:
    values = _values(column)
    return statistics.median(values) if values else None


def _first(column: "pandas.Series") -> Optional[float]:
    values = _values(column)
    return values[0] if values else None


# --------------------------------------------------------------------------- formatting


def fmt_time_to_target(f: CaseFigures) -> str:
    """Median over the seeds that reached the target, with k/n when not all of them did."""
    k, n = len(f.time_to_target_s), f.target_seeds
    if n == 0 or (k == 0 and f.any_reached):  # nothing recorded, or reached without a time
        return MISSING
    if k == 0:
        return f"not reached (0/{n} seeds)"
    text = fmt_seconds(statistics.median(f.time_to_target_s))
    return text if k == n else f"{text} ({k}/{n} seeds)"


def fmt_verdict(row: Optional["VerdictRow"]) -> str:
    """The verdict with the change that decided it (a time ratio, or accuracy points), marked
    when the machine was too busy to trust the times."""
    if row is None:
        return MISSING
    change = (fmt_delta(row.metric, row.baseline_median_s, row.now_median_s) if row.metric in HIGHER_IS_BETTER
              else None if row.ratio is None else f"{row.ratio:.2f}x")
    text = f"{row.verdict} ({change})" if change else row.verdict
    return f"{text}, noisy machine" if row.noisy_machine else text


def row_noise(c: RunCase, verdicts: Optional[dict[Key, "VerdictRow"]]) -> Optional[Noise]:
    """The case's noise: against its baseline where the report has verdicts, else its own seeds'."""
    row = verdicts.get((c.run, c.index)) if verdicts is not None else None
    if row is not None and row.noise is not None:
        return row.noise
    try:
        return noise.case_noise(c.summary())
    except ReportError:  # a malformed figure: the report shows the case without it, as elsewhere
        return None


# --------------------------------------------------------------------------- tables


def environment_table(runs: list[SavedRun]) -> str:
    """One row per property, one column per run: easy to compare two machines side by side."""
    columns = {run.label: _environment(run) for run in runs}
    # A row no run has a value for (GPU and driver on a CPU) is left out, and so are CUDA
    # and cuDNN when no run used a GPU: the CUDA build of torch reports them even on a CPU.
    gpu_used = any(not str(run.meta.device or "").startswith("cpu") or run.meta.gpu.get("name") for run in runs)
    names = [name for name in next(iter(columns.values()))
             if any(env[name] != MISSING for env in columns.values()) and (gpu_used or name not in ("CUDA", "cuDNN"))]
    header = "value" if len(runs) == 1 else None
    return markdown([{"": name, **{(header or label): env[name] for label, env in columns.items()}}
                     for name in names])


def _text(value: Any) -> str:
    if value is None or value == "" or value == []:
        return MISSING
    if isinstance(value, (list, tuple)):
        # Items that contain commas themselves (timer regions) need a stronger separator.
        sep = "; " if any("," in str(v) for v in value) else ", "
        return sep.join(str(v) for v in value)
    return str(value)


def _environment(run: SavedRun) -> dict[str, str]:
    meta, gpu, timer, commit = run.meta, run.meta.gpu, run.meta.timer, run.commit
    monitor = run.cases[0].record.gpu
    gpu_name = gpu.get("name")
    if gpu_name and isinstance(gpu.get("count"), int) and gpu["count"] > 1:
        gpu_name = f"{gpu['count']} x {gpu_name}"
    monitor_text = MISSING
    if monitor is not None:
        monitor_text = "NVML" if monitor.get("available") else f"unavailable ({monitor.get('reason') or 'no reason given'})"
    commit_text = MISSING
    if commit.get("id"):  # the branch where it was recorded (a train --json result records none)
        about = [f"branch {commit['branch']}" if commit.get("branch") else None,
                 "uncommitted changes" if commit.get("dirty") else None]
        commit_text = str(commit["id"])[:12] + (f" ({', '.join(a for a in about if a)})" if any(about) else "")
    return {
        "device": _text(meta.device), "GPU": _text(gpu_name), "driver": _text(gpu.get("driver")),
        "CUDA": _text(meta.cuda or gpu.get("cuda")), "cuDNN": _text(meta.cudnn or gpu.get("cudnn")),
        "torch": _text(meta.torch), "Python": _text(run.python), "CPU": _text(run.cpu_brand or meta.cpu),
        "profile": _text(meta.profile), "dataset": _text(meta.dataset), "synthetic data": _text(meta.synthetic),
        "seeds": f"{_text(meta.seeds)} ({seeds_text(len(meta.seeds))})" if meta.seeds else MISSING,
        "timer clock": _text(timer.get("clock")),
        "timed (includes)": _text(timer.get("includes")), "not timed (excludes)": _text(timer.get("excludes")),
        "GPU monitor": monitor_text, "telemetry window": _text(timer.get("telemetry")),
        "run date": _text(run.datetime), "commit": commit_text, "pytest-benchmark": _text(run.version),
    }


def reference_times(members: list[RunCase], figs: dict[Key, CaseFigures]) -> dict[str, float]:
    """Median train time of each run's reference case in this section."""
    refs: dict[str, float] = {}
    for c in members:
        t = figs[(c.run, c.index)].train_median
        if c.record.reference and c.run not in refs and t:
            refs[c.run] = t
    return refs


def _speedup(c: RunCase, figs: dict[Key, CaseFigures], refs: dict[str, float]) -> Optional[float]:
    ref, t = refs.get(c.run), figs[(c.run, c.index)].train_median
    return ref / t if ref and t else None


def summary_table(sections: dict[str, list[RunCase]], titles: dict[str, str],
                  figs: dict[Key, CaseFigures], many: bool) -> str:
    rows = []
    for section, members in sections.items():
        refs = reference_times(members, figs)
        for run in dict.fromkeys(c.run for c in members):
            mine = [c for c in members if c.run == run]
            row = {"run": run} if many else {}
            row.update({"section": titles.get(section, section), "cases": str(len(mine)),
                        **_best(mine, figs, refs, smoke=any(c.profile == "smoke" for c in mine)),
                        "not ok": ", ".join(f"{c.record.case} ({c.record.status})" for c in mine if not c.record.ok) or MISSING})
            rows.append(row)
    return markdown(rows, numeric=("cases", "figure", "speed-up vs reference"))


def is_accuracy_study(members: list[RunCase]) -> bool:
    """A section whose compared figure is an accuracy (the optimiser grid, the 100-image study)."""
    return bool(members) and all(c.record.metric in HIGHER_IS_BETTER for c in members)


def _best(mine: list[RunCase], figs: dict[Key, CaseFigures], refs: dict[str, float], smoke: bool) -> dict[str, str]:
    """A section's best case for the summary: the most accurate in an accuracy study, else the
    fastest with its speed-up (left out in smoke, whose one-batch times compare nothing)."""
    if is_accuracy_study(mine):
        scored = [c for c in mine if c.record.ok and figs[(c.run, c.index)].final_acc is not None]
        best = max(scored, key=lambda c: figs[(c.run, c.index)].final_acc) if scored else None
        return {"best case": f"{best.record.case} (most accurate)" if best else MISSING,
                "figure": fmt_pct(figs[(best.run, best.index)].final_acc) if best else MISSING,
                "speed-up vs reference": MISSING}
    timed = [c for c in mine if c.record.ok and figs[(c.run, c.index)].train_median is not None]
    fastest = min(timed, key=lambda c: figs[(c.run, c.index)].train_median) if timed else None
    return {"best case": f"{fastest.record.case} (fastest)" if fastest else MISSING,
            "figure": f"{fmt_seconds(figs[(fastest.run, fastest.index)].train_median)} s train" if fastest else MISSING,
            "speed-up vs reference": fmt_ratio(_speedup(fastest, figs, refs) if fastest and not smoke else None)}


# Columns of the section tables that hold numbers (right-aligned).
NUMERIC_COLUMNS = (
    "train s (median)", "spread (min-max)", "time to target s", "final acc", "images/s",
    "peak mem GiB", "energy J", "power W", "GPU util", "speed-up", "noise", "detects", "GFLOP/img", "TFLOP/s", "MFU",
    "MFU (measured peak)",
)


def section_table(members: list[RunCase], figs: dict[Key, CaseFigures], many: bool,
                  verdicts: Optional[dict[Key, "VerdictRow"]]) -> str:
    refs = reference_times(members, figs)
    accuracy = is_accuracy_study(members)  # judged by accuracy: no time to target, no speed-up
    if accuracy and not many:  # ranked by what the study measures, most accurate first
        members = sorted(members, key=lambda c: -(figs[(c.run, c.index)].final_acc or -1.0))
    rows = []
    for c in members:
        f = figs[(c.run, c.index)]
        spread = row_noise(c, verdicts)
        speedup = None if accuracy or c.profile == "smoke" else _speedup(c, figs, refs)  # smoke: one batch each
        row = {"run": c.run} if many else {}
        row.update({
            "case": c.record.case + (" (ref)" if c.record.reference else ""),
            "status": c.record.status,
            "train s (median)": fmt_seconds(f.train_median),
            "spread (min-max)": fmt_range(f.train_time_s),
            "time to target s": MISSING if accuracy else fmt_time_to_target(f),
            "final acc": fmt_pct(f.final_acc),
            "images/s": fmt_int(f.images_per_s),
            "peak mem GiB": fmt_gib(f.peak_mem_allocated_bytes),
            "energy J": fmt_int(f.energy_j),
            "power W": fmt_int(f.power_mean_w),
            "GPU util": MISSING if f.util_mean_pct is None else f"{f.util_mean_pct:.0f}%",
            "speed-up": fmt_ratio(speedup),
            "noise": MISSING if spread is None else spread.spread_text(),
            "detects": MISSING if spread is None else spread.detectable_text(),
            "GFLOP/img": fmt_scaled(f.flops_per_image, 1e9),
            "TFLOP/s": fmt_scaled(f.achieved_flops_per_s, 1e12),
            "MFU": fmt_pct(f.mfu),
            "MFU (measured peak)": fmt_pct(f.measured_mfu),
            "step breakdown": reference_words(c, members),  # vs the reference case (issue 20)
        })
        if verdicts is not None:
            row["verdict"] = fmt_verdict(verdicts.get((c.run, c.index)))
        rows.append(row)
    return markdown(rows, numeric=NUMERIC_COLUMNS)


def notes(members: list[RunCase], many: bool) -> list[str]:
    """Why a case failed, a machine too busy to trust its times, and clock throttling, which
    makes a time slower than the GPU can do."""
    out = []
    for c in members:
        where = f"`{c.name}`" + (f" ({c.run})" if many else "")
        if not c.record.ok:
            error = " ".join(c.record.error.split()) if c.record.error else "no error message recorded"
            out.append(f"- {where}: **{c.record.status}**: {error[:200]}")
        noisy = noisy_reason(c.record.conditions)
        if noisy:
            out.append(f"- {where}: **noisy machine** ({noisy}): its times are suspect")
        reasons = (c.record.gpu or {}).get("throttle_reasons")
        # gpu_idle only says the GPU waited for work between steps: not a slowdown of the GPU.
        throttled = [r for r in reasons if r != "gpu_idle"] if isinstance(reasons, list) else []
        if throttled:
            out.append(f"- {where}: GPU clocks throttled ({', '.join(map(str, throttled))})")
    return out + _flops_notes(members) + airbench_time.report_notes(members)


def _flops_notes(members: list[RunCase]) -> list[str]:
    """What the FLOP columns mean, and why MFU is missing, once per section that has FLOPs."""
    counted = [c for c in members if c.record.flops_per_image is not None]
    if not counted:
        return []
    out = ["- GFLOP/img: training FLOPs (forward + backward; convolutions and matmuls) per image, counted "
           "by torch's FlopCounterMode; TFLOP/s: the run's FLOPs over its train s; MFU: that over the GPU's "
           "datasheet dense peak at the case's precision (times its GPUs for a data-parallel case)."]
    measured = sorted({(c.record.measured_peak_flops_per_s, c.record.measured_peak_matmul_n) for c in counted
                       if c.record.measured_peak_flops_per_s}, key=lambda pair: pair[0])
    if measured:
        # Each rate with the matmul size it was measured at (issue 19, item 9); older runs lack it.
        rates = ", ".join(f"{x / 1e12:.3g} TFLOP/s " + (f"at {n}^3" if n else "at an unrecorded size") for x, n in measured)
        out.append(f"- MFU (measured peak): the same TFLOP/s over the dense matmul rate `speedtrain doctor` "
                   f"measured on this GPU at the session's start, at the case's precision ({rates}; "
                   "the doctor doubles the n x n size until a doubling gains < 3%): a rate the GPU showed it "
                   "reaches, where the datasheet peak is a ceiling.")
    reasons = sorted({c.record.mfu_reason for c in counted if c.record.mfu_reason})
    out += [f"- MFU not shown: {reason}" for reason in reasons]
    return out


def fmt_published(published: Optional[Mapping[str, Any]]) -> str:
    """A step's published figures, e.g. ``46 s, 94.1%`` (what its source measured, not this run)."""
    if not published:
        return MISSING
    seconds, acc = published.get("seconds"), published.get("accuracy")
    parts = ([f"{seconds:g} s"] if isinstance(seconds, (int, float)) else []) + \
            ([f"{100 * acc:.1f}%"] if isinstance(acc, (int, float)) else [])
    return ", ".join(parts) or MISSING


def ladder_table(ladder: list[RunCase], figs: dict[Key, CaseFigures], many: bool) -> str:
    """Each step's time and accuracy, with speed-ups over the previous step and over the first
    step of the same run (the myrtle.ai table)."""
    rows = []
    for run in dict.fromkeys(c.run for c in ladder):
        steps = sorted((c for c in ladder if c.run == run),
                       key=lambda c: (c.record.step is None, c.record.step or 0))
        first = previous = None
        previous_bd: Optional[Breakdown] = None
        for c in steps:
            f = figs[(c.run, c.index)]
            t = f.train_median
            smoke = c.profile == "smoke"  # one batch a step: its speed-ups compare nothing
            first = first or t
            row = {"run": run} if many else {}
            row.update({
                "step": MISSING if c.record.step is None else str(c.record.step),
                "case": c.record.case,
                "status": c.record.status,
                "train s (median)": fmt_seconds(t),
                "time to target s": fmt_time_to_target(f),
                "final acc": fmt_pct(f.final_acc),
                "vs previous": fmt_ratio(previous / t if previous and t and not smoke else None),
                "vs first": fmt_ratio(first / t if first and t and not smoke else None),
                "cut most (ms/step)": most_cut(previous_bd, c.record.breakdown),
            })
            if any(s.record.published for s in steps):
                row["published (source's GPU)"] = fmt_published(c.record.published)
            rows.append(row)
            previous = t or previous
            previous_bd = c.record.breakdown
    return markdown(rows, numeric=("step", "train s (median)", "time to target s", "final acc",
                                   "vs previous", "vs first"))
