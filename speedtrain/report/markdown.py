"""Markdown reports of saved benchmark runs: the assembly of tables and plots into one file.

Runs are read by :mod:`speedtrain.records.runs`, tables made by :mod:`speedtrain.report.tables`,
plots by :mod:`speedtrain.report.plots`. The report is written atomically, after everything has
been read and drawn (an error leaves an existing report untouched); its plots are PNG files
in the same folder, named after the report (``REPORT-precision-time.png``) so two reports
can share a folder.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from speedtrain.report import tables
from speedtrain.report import study_tables as study_report
from speedtrain.common.atomic import write_bytes_atomic, write_text_atomic
from speedtrain.common.errors import ReportError, exception_text
from speedtrain.common.output_paths import check_outputs
from speedtrain.report.breakdown_plot import plot_breakdown
from speedtrain.report.plots import PLOTS, SectionPlot, plot_trend
from speedtrain.records.saved_run import RunCase
from speedtrain.records.runs import cases_frame, load_runs
from speedtrain.stats.samples import THRESHOLD
from speedtrain.verdicts.case import judge_case
from speedtrain.verdicts.rule import VerdictRow

if TYPE_CHECKING:
    from speedtrain.records.history import HistoryPoint

# How runs saved before a case carried its section's title, axis and order (each benchmark
# file now says them beside its REFERENCE: speedtrain.records.section) show their sections:
# in the order of the myrtle.ai journey, with these titles and axes. Sections in neither
# follow in the order they first appear, named by their id.
LEGACY_SECTION_ORDER = (
    "workers", "batch_size", "image_size", "precision", "memory_format", "channel_halving",
    "channel_reduction", "downsample", "architecture", "tricks", "tricks_cumulative", "airbench",
    "airbench_alone", "dawnbench", "monitor_overhead", "optimizer_grid", "optimizer_grid_dropout", "small_data",
)
LEGACY_SECTION_TITLES = {
    "workers": "Data-loader workers",
    "batch_size": "Batch size",
    "image_size": "Image size",
    "precision": "Numeric precision",
    "memory_format": "Memory format",
    "channel_halving": "Channel halving (ResNet-18)",
    "channel_reduction": "Channel reduction (ResNet-9)",
    "downsample": "Downsampling",
    "architecture": "Architecture ladder (cumulative)",
    "tricks": "Bag of tricks, each alone",
    "tricks_cumulative": "Bag of tricks (cumulative)",
    "airbench": "Airbench ladder (cumulative, ResNet-9 to airbench94)",
    "airbench_alone": "Airbench steps, each alone on ResNet-9",
    "dawnbench": "DAWNBench: time to target accuracy",
    "monitor_overhead": "GPU monitor overhead",
    "optimizer_grid": "Optimiser grid (ResNet-20, accuracy study)",
    "optimizer_grid_dropout": "Dropout at the grid's reference point (ResNet-20, accuracy study)",
    "small_data": "100 training images: each augmentation alone (accuracy study)",
}
# What each section varies, with its unit: the x axis of its time plot.
LEGACY_SECTION_AXES = {
    "workers": "data loader (torch-N: DataLoader with N worker processes)",
    "batch_size": "batch size (images per step)",
    "image_size": "image side (pixels)",
    "precision": "numeric precision",
    "memory_format": "precision and memory format",
    "channel_halving": "channel width multiplier (x ResNet-18's)",
    "channel_reduction": "channel width multiplier (x ResNet-9's)",
    "downsample": "model and downsampling layer",
    "architecture": "ladder step (changes add up left to right)",
    "tricks": "trick (each alone)",
    "tricks_cumulative": "ladder step (tricks add up left to right)",
    "airbench": "ladder step (airbench's changes add up left to right)",
    "airbench_alone": "airbench step (each alone on the ResNet-9 recipe)",
    "dawnbench": "recipe (epochs and precision)",
    "monitor_overhead": "NVML monitor",
    "optimizer_grid": "optimiser, batch, learning rate, L2",
    "optimizer_grid_dropout": "dropout before the classifier (fraction)",
    "small_data": "augmentation (each alone)",
    "train": "configuration (speedtrain train)",
}
SMOKE_BANNER = (
    "smoke profile / synthetic data: these numbers prove the plumbing, "
    "they are not measurements of training speed"
)
# How the smoke profile shrank every case in runs saved before runs kept it (RunMeta.profile_scales):
# the profile had these values from the first version until 2026-12-03.
OLD_SMOKE_SCALES = {"epochs": 2, "steps_per_epoch": 1, "width_scale": 0.125, "batch_scale": 0.25}


def smoke_changes(scales: Mapping[str, Any]) -> str:
    """What the smoke profile changed in every case of a run, from the run's own record of it."""
    s = {**OLD_SMOKE_SCALES, **{k: v for k, v in scales.items() if v is not None}}
    least = s.get("min_batch", 1)
    batch = f"{s['batch_scale']:g}x its batch" + (f" ({least} images at least)" if least > 1 else "")
    return (f"*Smoke profile:* every case trained {s['epochs']} epochs of {s['steps_per_epoch']} batch, at "
            f"{s['width_scale']:g}x its width and {batch} (a case named `b64` trained "
            f"batches of {max(least, round(64 * s['batch_scale']))}): case names give the recipe's values, the config "
            "columns what ran; speed-ups are left out, as one batch of each size compares nothing.")


LEGEND = (
    "How to read the tables: *train s* is the timed training time of one run (one seed), "
    "median over seeds, with evaluation excluded (see the timer above); *spread* is min-max "
    "over seeds; *time to target* is the median over the seeds that reached the target "
    "accuracy; *speed-up* is the reference case's median train time divided by the case's; "
    "energy, power and utilisation come from NVML during the timed training epochs "
    "(sampling pauses for evaluation), for one run: the seed with the median train time. "
    "*noise* is the run-to-run spread of the case's compared figure over its seeds (log-time "
    "standard deviation, about the coefficient of variation; for accuracy studies the accuracy's "
    "standard deviation in points) and *detects* the smallest change those seeds catch 80% of the "
    "time (against the baseline where it has 2+ seeds, else against a rerun with as many seeds); both "
    "need 2+ seeds. A case marked *noisy machine* ran while the machine's load exceeded its CPUs "
    "(or its GPU throttled): its times are suspect."
)
BREAKDOWN_LEGEND = (  # added to LEGEND when a case has a breakdown (runs saved before issue 20 have none)
    " *step breakdown* is where a training step's time went, from a few steps profiled with "
    "torch.profiler after the timed run (off the clock): the reference case's largest shares, and each "
    "other case's largest changes of share against it in points of the step (pt); *cut most* is the "
    "category whose ms per step a journey step cut most; the breakdown chart shows ms per profiled "
    "step by category and the same as shares."
)


def build_report(run_paths: list[str], output: str, baselines_path: Optional[str] = None, *,
                 threshold: float = THRESHOLD) -> str:
    """Write a markdown report of the saved runs (plus PNG plots next to it); returns its path.
    Verdicts against ``baselines_path`` use ``threshold``, as the suite and ``compare`` do."""
    if not run_paths:
        raise ReportError("no saved run given: pass one or more pytest-benchmark JSON files")
    out = Path(output)
    if not output or out.is_dir():
        raise ReportError(f"{output!r}: the report must be a file path such as reports/REPORT.md")
    check_outputs({"the report": out}, {"RUN": run_paths, "--baselines": baselines_path})  # as every command
    runs = load_runs(run_paths)
    cases = [c for run in runs for c in run.cases]
    stored = _load_baselines(baselines_path)
    verdicts = _verdicts(cases, stored, threshold) if stored is not None else None
    figs = tables.case_figures(cases_frame(runs))
    many = len(runs) > 1

    parts = ["# speedtrain benchmark report", ""]
    smoke = [run.label for run in runs if run.smoke]
    if smoke:
        which = f" (runs: {', '.join(smoke)})" if many else ""
        parts += [f"> **WARNING: {SMOKE_BANNER}.**{which}", ""]
    for run in runs:  # an interrupted run holds only the cases that finished
        if run.partial:
            which = f" (run {run.label})" if many else ""
            parts += [f"> **PARTIAL RUN, interrupted: {run.partial}.**{which}", ""]
    parts += ["## Environment", "", tables.environment_table(runs), ""]
    legend = LEGEND + (BREAKDOWN_LEGEND if any(c.record.breakdown for c in cases) else "")
    if baselines_path:
        legend += (f" *verdict* compares each case with `{baselines_path}` (ratio = run / baseline); the "
                   "trend plots show its recorded baselines over time.")
    parts += [legend, ""]

    sections = _ordered_sections(cases)
    parts += ["## Summary", "", tables.summary_table(sections, {s: _title(s, m) for s, m in sections.items()}, figs, many), ""]
    plots: dict[str, bytes] = {}
    for section, members in sections.items():
        trend = _histories(members, stored) if stored is not None else {}
        parts += _section(section, members, figs, many, verdicts, trend, out.stem, plots)

    try:
        for name, png in plots.items():
            write_bytes_atomic(out.parent / name, png)
        write_text_atomic(out, "\n".join(parts).rstrip() + "\n")
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the report ({exception_text(exc)})") from None
    return str(out)


def _load_baselines(path: Optional[str]) -> Optional[dict[str, Any]]:
    from speedtrain.records import baselines

    return baselines.load_baselines(path) if path else None


def _verdicts(cases: list[RunCase], data: dict[str, Any], threshold: float) -> dict[tables.Key, VerdictRow]:
    """Baseline verdict of each case (machine = device, profile as recorded), as the plugin and
    ``compare`` make it (:func:`judge_case`)."""
    from speedtrain.records import baselines

    return {(c.run, c.index): judge_case(c.name, c.record, baselines.lookup(data, c.machine, c.profile, c.name),
                                         threshold=threshold, summary=c.summary())
            for c in cases}


def _histories(members: list[RunCase], data: dict[str, Any]) -> dict[str, list["HistoryPoint"]]:
    """The recorded history of each case of a section on its machine and profile, by label."""
    from speedtrain.records.history import points

    machines = {c.machine for c in members}
    out = {}
    for c in members:
        entry = data.get("machines", {}).get(c.machine, {}).get(c.profile, {}).get(c.name)
        if entry is not None:
            out[c.record.case + (f" ({c.machine})" if len(machines) > 1 else "")] = points(entry)
    return out


def _current(members: list[RunCase], trend: dict[str, list["HistoryPoint"]]) -> dict[str, "HistoryPoint"]:
    """The reported run's own point of each case with a history, labelled as :func:`_histories` does."""
    from speedtrain.records.history import HistoryPoint

    machines = {c.machine for c in members}
    out = {}
    for c in members:
        label = c.record.case + (f" ({c.machine})" if len(machines) > 1 else "")
        if label not in trend or not c.record.ok:
            continue
        summary = c.summary()
        values = summary.time_s
        out[label] = HistoryPoint(date=None, commit=None, metric=summary.metric, median_s=summary.median_s,
                                  spread_s=max(values) - min(values) if values else None, seeds=len(values))
    return out


def _ordered_sections(cases: list[RunCase]) -> dict[str, list[RunCase]]:
    """Sections in their files' order (``Section.order``; a run saved before sections carried
    it: the journey's order of LEGACY_SECTION_ORDER), then in the order they first appear."""
    sections: dict[str, list[RunCase]] = {}
    for c in cases:
        sections.setdefault(c.record.section, []).append(c)
    legacy = {name: i for i, name in enumerate(LEGACY_SECTION_ORDER)}

    def rank(section: str) -> tuple[int, float, int]:
        order = next((c.record.section_order for c in sections[section] if c.record.section_order is not None), None)
        if order is not None:
            return 0, order, list(sections).index(section)
        return (0, 10.0 * (legacy[section] + 1), 0) if section in legacy else (1, 0.0, list(sections).index(section))

    return {s: sections[s] for s in sorted(sections, key=rank)}


def _title(section: str, members: list[RunCase]) -> str:
    return next((c.record.section_title for c in members if c.record.section_title),
                LEGACY_SECTION_TITLES.get(section, section))


def _axis(section: str, members: list[RunCase]) -> str:
    return next((c.record.section_axis for c in members if c.record.section_axis),
                LEGACY_SECTION_AXES.get(section, "case"))


def _section(section: str, members: list[RunCase], figs: dict[tables.Key, tables.CaseFigures], many: bool,
             verdicts: Optional[dict[tables.Key, VerdictRow]], trend: dict[str, list["HistoryPoint"]], stem: str,
             plots: dict[str, bytes]) -> list[str]:
    title = _title(section, members)
    parts = [f"## {title}", ""]
    ref_names = ", ".join(f"`{name}`" for name in sorted({c.record.case for c in members if c.record.reference}))
    against = f"the reference case {ref_names}" if ref_names else "nothing: no case is marked as the reference"
    if tables.is_accuracy_study(members):
        parts += [f"Section `{section}`: an accuracy study, ranked by final test accuracy (most accurate first); "
                  f"the reference is {against.removeprefix('the reference case ')}.", ""]
    else:
        parts += [f"Section `{section}`; speed-ups are against {against}.", ""]
    for scales in {json.dumps(c.meta.profile_scales, sort_keys=True): c.meta.profile_scales
                   for c in members if c.profile == "smoke"}.values():  # one line per distinct shrink
        parts += [smoke_changes(scales), ""]
    parts += [tables.section_table(members, figs, many, verdicts), ""]

    notes = tables.notes(members, many)
    if notes:
        parts += [*notes, ""]

    study, study_pngs = study_report.study_parts(  # the accuracy studies' own tables (issue 14)
        section, members, stem, any(c.profile == "smoke" or c.record.synthetic for c in members))
    parts += study
    plots.update(study_pngs)

    ladder = [c for c in members if c.record.ladder]
    if ladder:
        parts += ["### Cumulative journey", "", tables.ladder_table(ladder, figs, many), ""]

    spec = SectionPlot(title=title, axis=_axis(section, members), many=many,
                       smoke=any(c.profile == "smoke" or c.record.synthetic or c.meta.synthetic for c in members))
    drawn = [(kind, draw(members, figs, spec)) for kind, draw in PLOTS] + [("trend", plot_trend(trend, spec, _current(members, trend)))]
    drawn.append(("breakdown", plot_breakdown(members, spec)))  # where the step's time goes (issue 20)
    for kind, png in drawn:
        if png is not None:
            name = f"{stem}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', section)}-{kind}.png"  # no path separators
            plots[name] = png
            parts += [f"![{title}: {kind}]({urllib.parse.quote(name)})", ""]
    return parts
