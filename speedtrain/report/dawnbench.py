"""Export a time-to-target case as a DAWNBench CIFAR-10 training entry.

DAWNBench (github.com/stanford-futuredata/dawn-bench-entries) takes two files per entry,
named ``[author]_[model]_[hardware tag]_[framework]``; the model part here is the case
(``speedtrain_resnet9-24ep-half_1v100_pytorch``; a case id that does not start with its
model's name gets it in front), so the cases of one run export side by side. A file of that
name holding another case's entry (or no speedtrain entry) is not overwritten: the export
stops with one line before writing anything. Re-exporting the same case replaces its files.

* ``.json``: version ("v1.0"), author, authorEmail, framework, codeURL, model, hardware,
  costPerHour (USD; left out when not given, as entries without a cost do), timestamp
  (``yyyy-mm-dd``), misc (free-form object);
* ``.tsv``: ``epoch<TAB>hours<TAB>top1Accuracy``, one line per epoch, hours cumulative and
  accuracy in percent; the leaderboard time is the first line at or above 94%.

The TSV follows one seed: the median seed by time to target (seeds that missed the target
rank last), so the entry is a run that happened, not an average of several. Without ``case``
the run's ``dawnbench`` section is exported; a run without one is an error rather than some
other case passed off as an entry. ``hardware`` counts the GPUs the case trained on (its
``nproc``), not those the machine has.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from speedtrain.common.atomic import write_text_atomic
from speedtrain.common.errors import ReportError
from speedtrain.records.record import CurvePoint
from speedtrain.records.runs import RunCase, SavedRun, load_run
from speedtrain.stats.samples import lower_median

DAWNBENCH_VERSION = "v1.0"


@dataclass(frozen=True)
class Entrant:
    """Who submits the entry: DAWNBench's author, authorEmail, codeURL and costPerHour."""

    author: str = "speedtrain"
    email: str = ""
    code_url: Optional[str] = None  # None: the run's commit URL, if pytest-benchmark saved one
    cost_per_hour: Optional[float] = None  # USD


def export_dawnbench(run_path: str, out_dir: str, case: Optional[str] = None,
                     entrant: Entrant = Entrant()) -> list[str]:
    """Write ``<name>.json`` and ``<name>.tsv`` for one case of a saved run; returns the paths."""
    run = load_run(run_path)
    chosen = _choose_case(run.cases, case, run_path)
    seed = _median_seed(chosen)
    curve = chosen.record.curves[seed]

    entry = _entry(run, chosen, seed, entrant)
    json_path, tsv_path = _target_paths(run_path, chosen, out_dir, entrant)

    warning = entry["misc"].get("warning") if isinstance(entry.get("misc"), dict) else None
    # A smoke entry's table says so too: the .tsv travels (and is read) without the .json.
    lines = [f"# WARNING: {warning}"] if warning else []
    lines += ["epoch\thours\ttop1Accuracy"]
    lines += [f"{_epoch(p, i)}\t{p.train_s / 3600:.10f}\t{100 * p.test_acc:.2f}" for i, p in enumerate(curve)]
    write_text_atomic(json_path, json.dumps(entry, indent=4) + "\n")
    write_text_atomic(tsv_path, "\n".join(lines) + "\n")
    return [str(json_path), str(tsv_path)]


def check_targets(run_path: str, out_dir: str, case: Optional[str] = None, entrant: Entrant = Entrant()) -> None:
    """Refuse now (ReportError, one line) an export that :func:`export_dawnbench` would refuse,
    so a command can check before its other work."""
    _target_paths(run_path, _choose_case(load_run(run_path).cases, case, run_path), out_dir, entrant)


def entry_name(case: RunCase, entrant: Entrant) -> str:
    """``[author]_[model]_[hardware tag]_pytorch``, the model part named after the case."""
    model = str(case.record.config.get("model") or "resnet")
    case_id = case.name.split("[", 1)[1].rstrip("]") if "[" in case.name else (case.record.case or case.name)
    part = case_id if _slug(case_id).startswith(_slug(model)) else f"{model}-{case_id}"
    return "_".join(_slug(p) for p in (entrant.author, part, _hardware_tag(case), "pytorch"))


def _target_paths(run_path: str, case: RunCase, out_dir: str, entrant: Entrant) -> tuple[Path, Path]:
    name = entry_name(case, entrant)
    json_path, tsv_path = Path(out_dir) / f"{name}.json", Path(out_dir) / f"{name}.tsv"
    for target in (json_path, tsv_path):
        if target.resolve() == Path(run_path).resolve():
            raise ReportError(f"{target}: the export would overwrite its input run; choose another folder")
    if json_path.exists() or tsv_path.exists():
        other = _existing_case(json_path)
        if other != case.name:
            held = f"the entry of case {other!r}" if other else "no speedtrain entry of a case"
            raise ReportError(f"{json_path if json_path.exists() else tsv_path} holds {held}, not {case.name!r}; "
                              "export into another folder (or remove it)")
    return json_path, tsv_path


def _existing_case(json_path: Path) -> Optional[str]:
    """The case a previously exported entry file belongs to (None: unreadable, or not ours)."""
    try:
        misc = json.loads(json_path.read_text(encoding="utf-8")).get("misc")
    except (OSError, ValueError, AttributeError):
        return None
    case = misc.get("case") if isinstance(misc, dict) else None
    return case if isinstance(case, str) else None


def _epoch(point: CurvePoint, index: int) -> int:
    return point.epoch if point.epoch is not None else index + 1


def _choose_case(cases: list[RunCase], wanted: Optional[str], run_path: str) -> RunCase:
    """The named case (benchmark name or case id), else the run's dawnbench case with curves."""
    if wanted is not None:
        matches = [c for c in cases if c.name == wanted] or [c for c in cases if c.record.case == wanted]
        if not matches:
            raise ReportError(f"{run_path}: no case {wanted!r}; cases: {', '.join(c.name for c in cases)}")
        if len(matches) > 1:
            raise ReportError(f"{run_path}: case {wanted!r} is ambiguous; use one of "
                              f"{', '.join(c.name for c in matches)}")
        if not matches[0].record.curves:
            raise ReportError(f"{run_path}: case {matches[0].name} has no accuracy curves to export")
        return matches[0]
    dawnbench = [c for c in cases if c.record.section == "dawnbench"]
    if not dawnbench:
        raise ReportError(f"{run_path}: no dawnbench case to export (run benchmarks/test_dawnbench.py, "
                          f"or name one with --case)")
    with_curves = [c for c in dawnbench if c.record.curves]
    if not with_curves:
        raise ReportError(f"{run_path}: no dawnbench case has accuracy curves (extra_info.curves) to export")
    return with_curves[0]


def _median_seed(case: RunCase) -> int:
    """Index (into the curves) of the median seed by time to target; ties go to train time."""
    def per_seed(values: list[Optional[float]], i: int) -> float:
        value = values[i] if i < len(values) else None
        return math.inf if value is None else value

    rec = case.record
    return lower_median(range(len(rec.curves)),
                        key=lambda i: (per_seed(rec.time_to_target_s, i), per_seed(rec.train_time_s, i)))


def _entry(run: SavedRun, case: RunCase, seed: int, entrant: Entrant) -> dict[str, Any]:
    meta, rec, commit = case.meta, case.record, run.commit
    seeds = rec.seeds or meta.seeds
    torch_version = meta.torch
    misc_note = {}
    if case.profile == "smoke" or rec.synthetic is True or meta.synthetic is True:
        misc_note = {"warning": "smoke profile / synthetic data: not a valid DAWNBench entry"}
    return {
        "version": DAWNBENCH_VERSION,
        "author": entrant.author,
        "authorEmail": entrant.email,
        "framework": f"PyTorch {torch_version}" if torch_version else "PyTorch",
        # pytest-benchmark's commit info has no remote URL; the commit id is in misc.
        "codeURL": entrant.code_url if entrant.code_url is not None else str(commit.get("url") or ""),
        "model": str(rec.config.get("model") or "resnet"),
        "hardware": _hardware(case),
        # entries give a number or leave the key out; null is neither
        **({"costPerHour": entrant.cost_per_hour} if entrant.cost_per_hour is not None else {}),
        # DAWNBench's timestamp is the entry's date: the run's, else today's.
        "timestamp": run.date or datetime.date.today().isoformat(),
        "misc": {
            **misc_note,
            "case": case.name,
            "section": rec.section,
            "profile": case.profile,
            "dataset": rec.dataset or meta.dataset,
            "synthetic": bool(rec.synthetic if rec.synthetic is not None else meta.synthetic),
            "seeds": seeds,
            "exported seed": seeds[seed] if seed < len(seeds) else seed,
            "target accuracy": rec.target_acc,
            "time to target (s), per seed": rec.time_to_target_s,
            "training time (s), per seed": rec.train_time_s,
            "timer": rec.timer or meta.timer,
            "CUDA version": meta.cuda,
            "cuDNN version": meta.cudnn,
            "commit": commit.get("id"),
            "config": rec.config,
        },
    }


def gpus_used(case: RunCase) -> int:
    """GPUs the case trained on: one per process (``nproc``), whatever the machine has."""
    nproc = case.record.config.get("nproc", 1)
    return nproc if isinstance(nproc, int) and not isinstance(nproc, bool) and nproc > 0 else 1


def _gpu_name(case: RunCase) -> Optional[str]:
    """The case's GPU model; None for a CPU run."""
    if case.machine.startswith("cpu"):
        return None
    return str(case.meta.gpu.get("name") or case.machine or "") or None


def _hardware(case: RunCase) -> str:
    name = _gpu_name(case)
    return f"{gpus_used(case)} x {name}" if name else str(case.machine or "unknown")


def _hardware_tag(case: RunCase) -> str:
    """DAWNBench's short hardware tag, e.g. '1v100' for one V100; 'cpu' without a GPU."""
    name = _gpu_name(case)
    if not name:
        return "cpu"
    count = gpus_used(case)
    # 'NVIDIA H100 80GB HBM3' -> 'h100', 'Tesla V100-SXM2-16GB' -> 'v100',
    # 'NVIDIA GeForce RTX 4090' -> 'rtx4090'
    words = re.sub(r"^((nvidia|tesla|geforce|quadro)\s+)+", "", name.lower()).split()
    if not words:
        return f"{count}gpu"
    model = re.split(r"[-_]", words[0])[0]
    if not re.search(r"\d", model) and len(words) > 1:
        model += re.split(r"[-_]", words[1])[0]
    return f"{count}{model}"


def _slug(text: str) -> str:
    # Underscores separate the name's parts, so none may appear inside a part.
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"
