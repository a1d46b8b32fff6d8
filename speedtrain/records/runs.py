"""The reader of saved benchmark runs, and every case of them as one pandas DataFrame.

A saved run is an ordinary pytest-benchmark JSON file (``--benchmark-save`` or
``--benchmark-json``): the suite's metadata lives in ``machine_info["speedtrain"]``
(:class:`RunMeta`) and each case's figures in its benchmark's ``extra_info``
(:class:`speedtrain.records.record.CaseRecord`). Report, compare and DAWNBench export read runs here
and nowhere else; :func:`to_dataframe` gives notebooks the same figures the report tabulates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from speedtrain.common.errors import ReportError, exception_text
from speedtrain.records.breakdown import CATEGORIES, IDLE
from speedtrain.records.record import CaseRecord, is_number
from speedtrain.records import trainrun
from speedtrain.records.saved_run import RunCase, RunMeta, SavedRun

if TYPE_CHECKING:
    import pandas

def _read_json(p: Path) -> Any:
    if not p.exists():
        raise ReportError(f"{p}: no such file")
    if not p.is_file():
        raise ReportError(f"{p}: not a file (expected a pytest-benchmark JSON run)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{p}: cannot read ({exception_text(exc)})") from None
    if not text.strip():
        raise ReportError(f"{p}: empty file (expected a pytest-benchmark JSON run)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{p}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def load_run(path: str | Path, label: Optional[str] = None) -> SavedRun:
    """Read a saved pytest-benchmark run, or a ``speedtrain train --json`` result as a run of
    one case (:mod:`speedtrain.records.trainrun`); ReportError (one line, naming the file) if unusable."""
    p = Path(path)
    data = _read_json(p)
    if trainrun.is_train_result(data):  # `speedtrain train --json`: a run of one case
        return trainrun.train_result_run(p, data, label or p.stem)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{p}: neither a pytest-benchmark run (no 'benchmarks' list) nor a speedtrain train --json result")
    if not data["benchmarks"]:
        raise ReportError(f"{p}: no speedtrain cases (the 'benchmarks' list is empty)")
    ours = [b for b in data["benchmarks"]
            if isinstance(b, dict) and isinstance(b.get("extra_info"), dict) and isinstance(b["extra_info"].get("section"), str)]
    if not ours:
        raise ReportError(f"{p}: no speedtrain cases (no benchmark has extra_info.section)")
    names = [str(b.get("name") or b["extra_info"].get("case")) for b in ours]
    records = [CaseRecord.from_extra_info(b["extra_info"], n) for b, n in zip(ours, names)]
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    meta = RunMeta.read(machine.get("speedtrain"), records[0])
    label = label or p.stem
    cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    return SavedRun(
        path=str(path), label=label, meta=meta,
        cases=[RunCase(label, n, rec, meta, str(path), i) for i, (n, rec) in enumerate(zip(names, records))],
        python=_text(machine.get("python_version")), cpu_brand=_text(cpu.get("brand_raw")),
        datetime=data["datetime"] if isinstance(data.get("datetime"), str) else None,
        commit=data["commit_info"] if isinstance(data.get("commit_info"), dict) else {},
        version=_text(data.get("version")),
        partial=_text((machine.get("speedtrain") or {}).get("partial")) if isinstance(machine.get("speedtrain"), dict) else None,
    )


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def load_runs(paths: Sequence[str | Path]) -> list[SavedRun]:
    """Several runs, labelled by file stem, made unique (``ci``, ``ci#2``)."""
    labels: list[str] = []
    for p in paths:
        stem = Path(p).stem
        label, n = stem, 1
        while label in labels:
            n += 1
            label = f"{stem}#{n}"
        labels.append(label)
    return [load_run(p, label) for p, label in zip(paths, labels)]


def to_dataframe(paths: Sequence[str | Path] | str | Path) -> "pandas.DataFrame":
    """Every case of one or more saved runs as a DataFrame, one row per case and seed
    (columns: see the README, "Saved runs in a notebook")."""
    return cases_frame(load_runs([paths] if isinstance(paths, (str, Path)) else paths))


# Per-seed columns and the record list each comes from (units in the names: _s seconds,
# _frac fractions of 1, _j joules, _w watts, _pct percent).
# The per-seed figures of a record, each a column under the record's own name (one name per
# figure from the trainer to the report); accuracies and MFU are fractions, as in the record.
PER_SEED = (
    "train_time_s", "time_to_target_s", "final_acc", "images_per_s", "epoch_time_s", "eval_time_s", "warmup_s",
    # work done (speedtrain.train.flops): FLOPs of the run, achieved FLOP/s, MFU; airbench's whitening seconds
    "train_flops", "achieved_flops_per_s", "mfu", "whiten_s", "airbench_time_s",  # the last: records.airbench_time
    # accuracy studies (speedtrain.train.evaluation): top-k of the last epoch, the best epoch by validation
    "top2_acc", "top3_acc", "best_epoch", "val_acc", "best_train_acc", "best_test_acc",
)
# The telemetry summary's figures (speedtrain.hw.gpumonitor), under their own names too.
TELEMETRY = ("power_mean_w", "util_mean_pct")
# The step breakdown (speedtrain.records.breakdown), ms per profiled step, on the row of the seed it profiled.
BREAKDOWN_COLUMNS = {"breakdown_step_ms": "step", **{f"breakdown_{k}_ms": k for k in (*CATEGORIES, IDLE)}}
FLOAT_COLUMNS = (*PER_SEED, "target_acc", "energy_j", *TELEMETRY, "flops_per_image", "measured_peak_flops_per_s",
                 *BREAKDOWN_COLUMNS)
INT_COLUMNS = ("step", "seed", "n_params", "peak_mem_allocated_bytes", "peak_mem_reserved_bytes")


def cases_frame(runs: Sequence[SavedRun]) -> "pandas.DataFrame":
    """One row per case and seed of ``runs``; a case without per-seed figures (e.g. it ran
    out of memory before the first epoch) still has one row, so every case is listed."""
    import pandas as pd

    rows = [row for run in runs for case in run.cases for row in _case_rows(case)]
    frame = pd.DataFrame(rows, columns=list(_case_rows(_EMPTY)[0]))
    frame[list(FLOAT_COLUMNS)] = frame[list(FLOAT_COLUMNS)].astype(float)
    for column in INT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    for column in ("reached_target", "telemetry_seed", "breakdown_seed"):
        frame[column] = frame[column].astype("boolean")
    return frame


def _case_rows(case: RunCase) -> list[dict[str, Any]]:
    rec = case.record
    lists = [getattr(rec, name) for name in PER_SEED]
    n = max(len(rec.seeds), len(rec.reached_target), *(len(values) for values in lists), 1)
    gpu = rec.gpu if rec.gpu and rec.gpu.get("available") is True else {}
    # The telemetry summary belongs to one seed's run (record.merge_telemetry).
    chosen = rec.seeds.index(gpu["seed"]) if gpu.get("seed") in rec.seeds else 0
    energy = gpu.get("energy_j_per_seed") if isinstance(gpu.get("energy_j_per_seed"), list) else []
    rows = []
    for i in range(n):
        telemetry = bool(gpu) and i == chosen
        row: dict[str, Any] = {
            "run": case.run, "case_index": case.index, "name": case.name, "section": rec.section, "case": rec.case,
            "status": rec.status, "reference": rec.reference, "ladder": rec.ladder, "step": rec.step,
            "device": case.machine, "profile": case.profile, "dataset": rec.dataset or case.meta.dataset,
            "synthetic": rec.synthetic, "metric": rec.metric, "seed": _at(rec.seeds, i),
            **{name: _at(getattr(rec, name), i) for name in PER_SEED},
            "reached_target": _at(rec.reached_target, i), "target_acc": rec.target_acc,
            "energy_j": _number(gpu.get("energy_j") if telemetry else _at(energy, i)),
            "telemetry_seed": telemetry,
            **{name: _number(gpu.get(name)) if telemetry else None for name in TELEMETRY},
            "peak_mem_allocated_bytes": rec.peak_mem_allocated_bytes,
            "peak_mem_reserved_bytes": rec.peak_mem_reserved_bytes, "n_params": rec.n_params,
            "flops_per_image": rec.flops_per_image, "measured_peak_flops_per_s": rec.measured_peak_flops_per_s,
            **_breakdown_columns(rec, i),
        }
        rows.append(row)
    return rows


def _breakdown_columns(rec: CaseRecord, i: int) -> dict[str, Any]:
    bd = rec.breakdown
    seed_row = rec.seeds.index(bd.seed) if bd is not None and bd.seed in rec.seeds else 0
    here = bd is not None and i == seed_row
    out: dict[str, Any] = {"breakdown_seed": here}
    for column, key in BREAKDOWN_COLUMNS.items():
        out[column] = None if not here else bd.step_ms if key == "step" else bd.segments().get(key, 0.0)
    return out


def _at(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


def _number(value: Any) -> Optional[float]:
    return float(value) if is_number(value) else None


_EMPTY = RunCase("", "", CaseRecord(section="", case=""), RunMeta())
