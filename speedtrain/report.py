"""Markdown reports of saved benchmark runs.

A saved run is an ordinary pytest-benchmark JSON file (``--benchmark-save`` or
``--benchmark-json``); speedtrain's fields live in ``machine_info["speedtrain"]`` and in each
benchmark's ``extra_info``. Runs come from older versions and from failed cases, so every
field may be missing: readers here go through ``_get``, ``_floats`` and :func:`as_float`,
which turn anything absent or malformed into ``None`` (or an empty list), and the tables
print ``-`` for it.

The report is written atomically; its plots are PNG files in the same folder, named after
the report (``REPORT-precision-time.png``) so two reports can share a folder.
"""

from __future__ import annotations

import io
import json
import math
import re
import statistics
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from speedtrain.atomic import write_bytes_atomic, write_text_atomic
from speedtrain.errors import ReportError

# Sections in the order of the myrtle.ai journey; sections not listed here follow in the
# order they first appear.
SECTION_ORDER = (
    "workers", "batch_size", "image_size", "precision", "memory_format", "channel_halving",
    "channel_reduction", "downsample", "architecture", "tricks", "tricks_cumulative", "dawnbench",
    "monitor_overhead",
)
SECTION_TITLES = {
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
    "dawnbench": "DAWNBench: time to target accuracy",
    "monitor_overhead": "GPU monitor overhead",
}
SMOKE_BANNER = (
    "smoke profile / synthetic data: these numbers prove the plumbing, "
    "they are not measurements of training speed"
)
MISSING = "-"


# --------------------------------------------------------------------------- reading runs


def load_run(path: str | Path) -> dict:
    """Read a saved pytest-benchmark run; ReportError (one line, naming the file) if unusable."""
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{p}: no such file")
    if not p.is_file():
        raise ReportError(f"{p}: not a file (expected a pytest-benchmark JSON run)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{p}: cannot read ({_one_line(exc)})") from None
    if not text.strip():
        raise ReportError(f"{p}: empty file (expected a pytest-benchmark JSON run)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{p}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{p}: not a pytest-benchmark file (no 'benchmarks' list)")
    if not data["benchmarks"]:
        raise ReportError(f"{p}: no speedtrain cases (the 'benchmarks' list is empty)")
    if not any(_is_speedtrain(b) for b in data["benchmarks"]):
        raise ReportError(f"{p}: no speedtrain cases (no benchmark has extra_info.section)")
    return data


def _is_speedtrain(bench: Any) -> bool:
    return isinstance(bench, dict) and isinstance(_get(bench, "extra_info", "section"), str)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _floats(values: Any) -> list[float]:
    """The finite numbers in a per-seed list (None for a seed that has no value is skipped)."""
    if not isinstance(values, list):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _median(values: Any) -> float | None:
    nums = _floats(values)
    return statistics.median(nums) if nums else None


def as_float(value: Any) -> float | None:
    """The value as a float, or None when it is missing, not a number or not finite."""
    nums = _floats([value])
    return nums[0] if nums else None


@dataclass
class Case:
    """One benchmark of one saved run, with the run's metadata at hand."""

    run: str  # label of the run: its file stem
    name: str  # the benchmark name, e.g. 'test_precision[fp16]': the case id baselines use
    info: dict  # extra_info
    meta: dict = field(repr=False)  # run metadata, see run_meta()
    path: str = ""  # the saved run's file, for error messages

    @property
    def section(self) -> str:
        return str(self.info.get("section"))

    @property
    def case(self) -> str:
        """The param id: extra_info's, else the part of the name in brackets."""
        bracket = re.search(r"\[(.*)\]$", self.name)
        return str(self.info.get("case") or (bracket.group(1) if bracket else self.name))

    @property
    def status(self) -> str:
        return str(self.info.get("status") or "ok")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def machine(self) -> str | None:
        return self.meta.get("device") or self.info.get("device")

    @property
    def profile(self) -> str | None:
        return self.meta.get("profile") or self.info.get("profile")

    @property
    def train_median(self) -> float | None:
        return _median(self.info.get("train_time_s"))

    @property
    def curves(self) -> list[list[dict]]:
        """Per-seed accuracy curves, keeping only well-formed points."""
        curves = self.info.get("curves")
        if not isinstance(curves, list):
            return []
        out = []
        for curve in curves:
            points = [
                p for p in curve if isinstance(p, dict)
                and as_float(p.get("train_s")) is not None and as_float(p.get("test_acc")) is not None
            ] if isinstance(curve, list) else []
            if points:
                out.append(points)
        return out


def run_meta(run: dict) -> dict:
    """The run's speedtrain metadata; older runs without machine_info.speedtrain fall back to
    the first case's extra_info, which repeats device, profile, dataset, seeds and timer."""
    meta = dict(_get(run, "machine_info", "speedtrain") or {})
    first = next((b["extra_info"] for b in run.get("benchmarks", []) if _is_speedtrain(b)), {})
    for key in ("device", "profile", "dataset", "synthetic", "seeds", "timer"):
        if meta.get(key) is None and first.get(key) is not None:
            meta[key] = first[key]
    return meta


def run_cases(run: dict, label: str, path: str | Path = "") -> list[Case]:
    meta = run_meta(run)
    return [
        Case(run=label, name=str(b.get("name") or b["extra_info"].get("case")), info=b["extra_info"],
             meta=meta, path=str(path))
        for b in run["benchmarks"] if _is_speedtrain(b)
    ]


def case_summary(case: Case) -> Any:
    """The case as a baselines.CaseSummary; a malformed field is a ReportError naming the file."""
    from speedtrain.baselines import CaseSummary
    from speedtrain.errors import BaselineError

    try:
        return CaseSummary.from_extra_info(case.info)
    except BaselineError as exc:
        raise ReportError(f"{case.path or case.run}: case {case.name}: {exc}") from None


def load_baselines(path: str | Path) -> dict:
    """Stored baselines; unlike the plugin (which starts a new file), a missing file is an
    error here: asking for verdicts against nothing is a typo, not a first run."""
    from speedtrain import baselines
    from speedtrain.errors import BaselineError

    if not Path(path).is_file():
        raise BaselineError(f"{path}: no such baselines file")
    return baselines.load(path)


def run_labels(paths: Sequence[str | Path]) -> list[str]:
    """File stems, made unique (``ci``, ``ci#2``) so two runs never share a label."""
    labels: list[str] = []
    for p in paths:
        stem = Path(p).stem
        label, n = stem, 1
        while label in labels:
            n += 1
            label = f"{stem}#{n}"
        labels.append(label)
    return labels


def is_smoke(run: dict) -> bool:
    """A smoke-profile or synthetic-data run: its numbers are not speed measurements."""
    meta = run_meta(run)
    if meta.get("profile") == "smoke" or meta.get("synthetic") is True:
        return True
    return any(
        b["extra_info"].get("profile") == "smoke" or b["extra_info"].get("synthetic") is True
        for b in run["benchmarks"] if _is_speedtrain(b)
    )


def run_date(run: dict) -> str | None:
    """``yyyy-mm-dd`` of the run from pytest-benchmark's ISO ``datetime``."""
    when = run.get("datetime")
    return when[:10] if isinstance(when, str) and len(when) >= 10 else None


# --------------------------------------------------------------------------- formatting


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return MISSING
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_pct(fraction: float | None) -> str:
    return MISSING if fraction is None else f"{100 * fraction:.2f}%"


def fmt_ratio(x: float | None) -> str:
    return MISSING if x is None else f"{x:.2f}x"


def _fmt_int(x: float | None) -> str:
    return MISSING if x is None else f"{x:,.0f}"


def _fmt_gib(n_bytes: float | None) -> str:
    return MISSING if n_bytes is None else f"{n_bytes / 2**30:.2f}"


def _fmt_spread(values: Any) -> str:
    nums = _floats(values)
    if not nums:
        return MISSING
    if len(nums) == 1:
        return f"{fmt_seconds(nums[0])} (n=1)"
    return f"{fmt_seconds(min(nums))}-{fmt_seconds(max(nums))} (n={len(nums)})"


def _fmt_time_to_target(info: dict) -> str:
    """Median over the seeds that reached the target, with k/n when not all of them did."""
    per_seed = info.get("time_to_target_s")
    if not isinstance(per_seed, list) or not per_seed:
        return MISSING
    reached = _floats(per_seed)
    k, n = len(reached), len(per_seed)
    if not reached:
        return f"not reached (0/{n} seeds)"
    text = fmt_seconds(statistics.median(reached))
    return text if k == n else f"{text} ({k}/{n} seeds)"


def _markdown(rows: list[dict], numeric: Iterable[str] = ()) -> str:
    """A pipe table; cells are pre-formatted strings, so tabulate must not re-parse numbers."""
    import pandas as pd

    # A '|' inside a cell would end the cell early.
    df = pd.DataFrame([{k: str(v).replace("|", "\\|") for k, v in row.items()} for row in rows])
    numeric = set(numeric)
    align = ["right" if c in numeric else "left" for c in df.columns]
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


# --------------------------------------------------------------------------- the report


def build_report(run_paths: list[str], output: str, baselines_path: str | None = None) -> str:
    """Write a markdown report of the saved runs (plus PNG plots next to it); returns its path."""
    if not run_paths:
        raise ReportError("no saved run given: pass one or more pytest-benchmark JSON files")
    out = Path(output)
    if not output or out.is_dir():
        raise ReportError(f"{output!r}: the report must be a file path such as reports/REPORT.md")
    for p in run_paths:
        if Path(p).resolve() == out.resolve():
            raise ReportError(f"{out}: the report would overwrite its input run; choose another output")
    # Read everything before writing anything: an error leaves an existing report untouched.
    runs = [load_run(p) for p in run_paths]
    labels = run_labels(run_paths)
    cases = [c for run, label, p in zip(runs, labels, run_paths) for c in run_cases(run, label, p)]
    verdicts = _verdicts(cases, baselines_path) if baselines_path else None
    many = len(runs) > 1

    parts = ["# speedtrain benchmark report", ""]
    smoke = [label for run, label in zip(runs, labels) if is_smoke(run)]
    if smoke:
        which = f" (runs: {', '.join(smoke)})" if many else ""
        parts += [f"> **WARNING: {SMOKE_BANNER}.**{which}", ""]
    parts += ["## Environment", "", _environment_table(runs, labels), ""]
    parts += _legend(baselines_path)

    sections = _ordered_sections(cases)
    parts += ["## Summary", "", _summary_table(sections, many), ""]
    plots: dict[str, bytes] = {}
    for section, members in sections.items():
        parts += _section(section, members, many, verdicts, out.stem, plots)

    try:
        for name, png in plots.items():
            write_bytes_atomic(out.parent / name, png)
        write_text_atomic(out, "\n".join(parts).rstrip() + "\n")
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the report ({_one_line(exc)})") from None
    return str(out)


def _verdicts(cases: list[Case], baselines_path: str) -> dict[tuple[str, str], Any]:
    """Baseline verdict of each (run, case name); machine = device, profile as recorded."""
    from speedtrain import baselines

    data = load_baselines(baselines_path)
    out = {}
    for c in cases:
        base = baselines.lookup(data, c.machine or "", c.profile or "", c.name)
        out[(c.run, c.name)] = baselines.compare(base, case_summary(c))
    return out


def fmt_verdict(verdict: Any) -> str:
    ratio = getattr(verdict, "ratio", None)
    label = getattr(verdict, "label", MISSING)
    return f"{label} ({ratio:.2f}x)" if isinstance(ratio, (int, float)) else str(label)


def _environment_table(runs: list[dict], labels: list[str]) -> str:
    """One row per property, one column per run: easy to compare two machines side by side."""
    columns = {label: _environment(run) for run, label in zip(runs, labels)}
    names = list(next(iter(columns.values())))
    header = "value" if len(runs) == 1 else None
    rows = [
        {"": name, **{(header or label): env[name] for label, env in columns.items()}}
        for name in names
    ]
    return _markdown(rows)


def _environment(run: dict) -> dict[str, str]:
    meta = run_meta(run)
    gpu = meta.get("gpu") if isinstance(meta.get("gpu"), dict) else {}
    timer = meta.get("timer") if isinstance(meta.get("timer"), dict) else {}
    monitor = next((b["extra_info"].get("gpu") for b in run["benchmarks"] if _is_speedtrain(b)), None)
    commit = run.get("commit_info") if isinstance(run.get("commit_info"), dict) else {}

    def text(value: Any) -> str:
        if value is None or value == "" or value == []:
            return MISSING
        if isinstance(value, (list, tuple)):
            # Items that contain commas themselves (timer regions) need a stronger separator.
            sep = "; " if any("," in str(v) for v in value) else ", "
            return sep.join(str(v) for v in value)
        return str(value)

    gpu_name = gpu.get("name")
    if gpu_name and isinstance(gpu.get("count"), int) and gpu["count"] > 1:
        gpu_name = f"{gpu['count']} x {gpu_name}"
    monitor_text = MISSING
    if isinstance(monitor, dict):
        monitor_text = "NVML" if monitor.get("available") else f"unavailable ({monitor.get('reason') or 'no reason given'})"
    commit_text = MISSING
    if commit.get("id"):
        commit_text = f"{str(commit['id'])[:12]} ({commit.get('branch') or '?'}{', dirty' if commit.get('dirty') else ''})"
    return {
        "device": text(meta.get("device")),
        "GPU": text(gpu_name),
        "driver": text(gpu.get("driver")),
        "CUDA": text(meta.get("cuda") or gpu.get("cuda")),
        "cuDNN": text(meta.get("cudnn") or gpu.get("cudnn")),
        "torch": text(meta.get("torch")),
        "Python": text(_get(run, "machine_info", "python_version")),
        "CPU": text(_get(run, "machine_info", "cpu", "brand_raw") or meta.get("cpu")),
        "profile": text(meta.get("profile")),
        "dataset": text(meta.get("dataset")),
        "synthetic data": text(meta.get("synthetic")),
        "seeds": text(meta.get("seeds")),
        "timer clock": text(timer.get("clock")),
        "timed (includes)": text(timer.get("includes")),
        "not timed (excludes)": text(timer.get("excludes")),
        "GPU monitor": monitor_text,
        "telemetry window": text(timer.get("telemetry")),
        "run date": text(run.get("datetime")),
        "commit": commit_text,
        "pytest-benchmark": text(run.get("version")),
    }


def _legend(baselines_path: str | None) -> list[str]:
    lines = [
        "How to read the tables: *train s* is the timed training time of one run (one seed), "
        "median over seeds, with evaluation excluded (see the timer above); *spread* is min-max "
        "over seeds; *time to target* is the median over the seeds that reached the target "
        "accuracy; *speed-up* is the reference case's median train time divided by the case's; "
        "energy, power and utilisation come from NVML during the timed training epochs "
        "(sampling pauses for evaluation), for one run: the seed with the median train time.",
    ]
    if baselines_path:
        lines.append(f"*verdict* compares each case with `{baselines_path}` (ratio = run / baseline).")
    return [" ".join(lines), ""]


def _ordered_sections(cases: list[Case]) -> dict[str, list[Case]]:
    sections: dict[str, list[Case]] = {}
    for c in cases:
        sections.setdefault(c.section, []).append(c)
    rank = {name: i for i, name in enumerate(SECTION_ORDER)}
    order = sorted(sections, key=lambda s: (rank.get(s, len(rank)), list(sections).index(s)))
    return {s: sections[s] for s in order}


def _reference_times(members: list[Case]) -> dict[str, float]:
    """Median train time of each run's reference case in this section."""
    refs = {}
    for c in members:
        if c.info.get("reference") is True and c.run not in refs and c.train_median:
            refs[c.run] = c.train_median
    return refs


def _speedup(c: Case, refs: dict[str, float]) -> float | None:
    ref, t = refs.get(c.run), c.train_median
    return ref / t if ref and t else None


def _summary_table(sections: dict[str, list[Case]], many: bool) -> str:
    rows = []
    for section, members in sections.items():
        refs = _reference_times(members)
        for run in dict.fromkeys(c.run for c in members):
            mine = [c for c in members if c.run == run]
            timed = [c for c in mine if c.ok and c.train_median is not None]
            fastest = min(timed, key=lambda c: c.train_median) if timed else None
            failed = [f"{c.case} ({c.status})" for c in mine if not c.ok]
            row = {"run": run} if many else {}
            row.update({
                "section": SECTION_TITLES.get(section, section),
                "cases": str(len(mine)),
                "fastest case": fastest.case if fastest else MISSING,
                "train s": fmt_seconds(fastest.train_median if fastest else None),
                "speed-up vs reference": fmt_ratio(_speedup(fastest, refs) if fastest else None),
                "not ok": ", ".join(failed) or MISSING,
            })
            rows.append(row)
    return _markdown(rows, numeric=("cases", "train s", "speed-up vs reference"))


# Columns of the section tables that hold numbers (right-aligned).
NUMERIC_COLUMNS = (
    "train s (median)", "spread (min-max)", "time to target s", "final acc", "images/s",
    "peak mem GiB", "energy J", "power W", "GPU util", "speed-up",
)


def _section(section: str, members: list[Case], many: bool, verdicts: dict | None,
             stem: str, plots: dict[str, bytes]) -> list[str]:
    title = SECTION_TITLES.get(section, section)
    refs = _reference_times(members)
    parts = [f"## {title}", ""]
    ref_names = ", ".join(f"`{name}`" for name in sorted({c.case for c in members if c.info.get("reference") is True}))
    against = f"the reference case {ref_names}" if ref_names else "nothing: no case is marked as the reference"
    parts += [f"Section `{section}`; speed-ups are against {against}.", ""]
    rows = [_case_row(c, refs, many, verdicts) for c in members]
    parts += [_markdown(rows, numeric=NUMERIC_COLUMNS), ""]

    notes = _notes(members, many)
    if notes:
        parts += [*notes, ""]

    ladder = [c for c in members if c.info.get("ladder") is True]
    if ladder:
        parts += ["### Cumulative journey", "", _ladder_table(ladder, many), ""]

    for kind, draw in PLOTS:
        png = draw(members, title, many)
        if png is not None:
            name = f"{stem}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', section)}-{kind}.png"  # no path separators
            plots[name] = png
            parts += [f"![{title}: {kind}]({urllib.parse.quote(name)})", ""]
    return parts


def _notes(members: list[Case], many: bool) -> list[str]:
    """Why a case failed, and clock throttling, which makes a time slower than the GPU can do."""
    notes = []
    for c in members:
        where = f"`{c.name}`" + (f" ({c.run})" if many else "")
        if not c.ok:
            error = _one_line(c.info["error"]) if c.info.get("error") else "no error message recorded"
            notes.append(f"- {where}: **{c.status}**: {error[:200]}")
        reasons = _get(c.info, "gpu", "throttle_reasons")
        # gpu_idle only says the GPU waited for work between steps: not a slowdown of the GPU.
        throttled = [r for r in reasons if r != "gpu_idle"] if isinstance(reasons, list) else []
        if throttled:
            notes.append(f"- {where}: GPU clocks throttled ({', '.join(map(str, throttled))})")
    return notes


def _case_row(c: Case, refs: dict[str, float], many: bool, verdicts: dict | None) -> dict[str, str]:
    info = c.info
    gpu = info.get("gpu") if isinstance(info.get("gpu"), dict) and info["gpu"].get("available") else {}
    util = as_float(gpu.get("util_mean_pct"))
    speedup = _speedup(c, refs)
    row = {"run": c.run} if many else {}
    row.update({
        "case": c.case + (" (ref)" if info.get("reference") is True else ""),
        "status": c.status,
        "train s (median)": fmt_seconds(c.train_median),
        "spread (min-max)": _fmt_spread(info.get("train_time_s")),
        "time to target s": _fmt_time_to_target(info),
        "final acc": fmt_pct(_median(info.get("final_acc"))),
        "images/s": _fmt_int(_median(info.get("images_per_s"))),
        "peak mem GiB": _fmt_gib(as_float(info.get("peak_mem_allocated_bytes"))),
        "energy J": _fmt_int(as_float(gpu.get("energy_j"))),
        "power W": _fmt_int(as_float(gpu.get("power_mean_w"))),
        "GPU util": MISSING if util is None else f"{util:.0f}%",
        "speed-up": fmt_ratio(speedup),
    })
    if verdicts is not None:
        row["verdict"] = fmt_verdict(verdicts.get((c.run, c.name)))
    return row


def _ladder_table(ladder: list[Case], many: bool) -> str:
    """Each step's time and accuracy, with speed-ups over the previous step and over the first
    step of the same run (the myrtle.ai table)."""
    rows = []
    for run in dict.fromkeys(c.run for c in ladder):
        steps = sorted(
            (c for c in ladder if c.run == run),
            key=lambda c: (not isinstance(c.info.get("step"), int), c.info.get("step") or 0),
        )
        first = previous = None
        for c in steps:
            t = c.train_median
            first = first or t
            row = {"run": run} if many else {}
            row.update({
                "step": str(c.info["step"]) if isinstance(c.info.get("step"), int) else MISSING,
                "case": c.case,
                "status": c.status,
                "train s (median)": fmt_seconds(t),
                "time to target s": _fmt_time_to_target(c.info),
                "final acc": fmt_pct(_median(c.info.get("final_acc"))),
                "vs previous": fmt_ratio(previous / t if previous and t else None),
                "vs first": fmt_ratio(first / t if first and t else None),
            })
            rows.append(row)
            previous = t or previous
    return _markdown(rows, numeric=("step", "train s (median)", "time to target s", "final acc",
                                    "vs previous", "vs first"))


# --------------------------------------------------------------------------- plots


def _label(c: Case, many: bool) -> str:
    return f"{c.run}\n{c.case}" if many else c.case


def _figure(n_items: int):
    # Figure() without pyplot: no global state and no GUI backend, so it works headless.
    from matplotlib.figure import Figure

    return Figure(figsize=(max(6.0, 0.9 * n_items + 2.5), 4.5), dpi=110, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_times(members: list[Case], title: str, many: bool) -> bytes | None:
    """Bar per case: median train time, error bar = min-max over seeds; failed cases marked."""
    fig = _figure(len(members))
    ax = fig.add_subplot()
    xs = list(range(len(members)))
    medians = [c.train_median or 0.0 for c in members]
    colors = ["tab:orange" if c.info.get("reference") is True else "tab:blue" for c in members]
    ax.bar(xs, medians, color=colors)
    tops = list(medians)
    for x, c, m in zip(xs, members, medians):
        nums = _floats(c.info.get("train_time_s"))
        if len(nums) > 1:  # one seed has no spread to draw
            ax.errorbar([x], [m], yerr=[[m - min(nums)], [max(nums) - m]], color="black", capsize=4)
            tops[x] = max(nums)
        text = c.status if not c.ok else fmt_seconds(c.train_median) if c.train_median else "n/a"
        ax.annotate(text, (x, tops[x]), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color="black" if c.ok else "tab:red")
    ax.set_ylim(0, (max(tops) or 1.0) * 1.15)
    rotate = len(members) > 5
    ax.set_xticks(xs, [_label(c, many) for c in members], rotation=30 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_ylabel("training time per run (s)")
    ax.set_title(f"{title}: median training time\n(error bars: min-max over seeds; orange: reference case)",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _plot_curves(members: list[Case], title: str, many: bool) -> bytes | None:
    """Test accuracy against cumulative timed training seconds, every seed, one colour a case."""
    with_curves = [c for c in members if c.curves]
    if not with_curves:
        return None
    fig = _figure(8)
    ax = fig.add_subplot()
    colors = _colors(len(with_curves))
    for c, color in zip(with_curves, colors):
        for i, curve in enumerate(c.curves):
            xs = [float(p["train_s"]) for p in curve]
            ys = [100 * float(p["test_acc"]) for p in curve]
            ax.plot(xs, ys, marker=".", color=color, alpha=0.85, linewidth=1.2,
                    label=_label(c, many).replace("\n", " ") if i == 0 else None)
    targets = {t for c in with_curves if (t := as_float(c.info.get("target_acc"))) is not None}
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


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# Each section gets these plots, in this order, when they have data to show.
PLOTS = (("time", _plot_times), ("accuracy", _plot_curves))
