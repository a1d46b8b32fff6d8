"""Stored baselines (``baselines.json``): the file store, read, validated, merged and written.

File format (human-readable, one entry per machine / profile / case)::

    {"schema": 1, "machines": {"NVIDIA H100 80GB HBM3": {"quick": {"test_precision[fp16]": {
        "metric": "train_time_s",          # or "time_to_target_s"
        "time_s": [10.0, 10.1, 9.9],       # per seed; seeds that missed the target are absent
        "median_s": 10.0, "spread_s": 0.2, # spread = range (max - min) of time_s
        "acc": [0.941, 0.943, 0.940], "reached": [true, true, true], "images_per_s": 118000.0,
        "source": {"date": "...", "commit": "...", "torch": "...", "cuda": "...", ...},
        "history": [{"date": "...", "commit": "...", "metric": "train_time_s",
                     "median_s": 10.3, "spread_s": 0.3, "seeds": 3}, ...]}}}}}

``history`` (optional: files written before it load unchanged) keeps the last updates of the
case, newest last, the current baseline included; see :mod:`speedtrain.records.history`.

``spread_s`` is the range, not the IQR: with the 3-5 seeds a training benchmark can afford,
quartiles are interpolations between one or two points, and the range is exactly what the
overlap check of :mod:`speedtrain.verdicts.rule` uses. Verdicts are computed there.

Two suites may update the file at once (two GPUs of one machine, a CI job and a user).
:func:`update` therefore takes a lock on the file, reads what is on disk *then*, puts this
session's cases into it case by case and writes it atomically before letting go: each
session replaces only the cases it measured, and no update is lost to another's stale copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from speedtrain.records import history
from speedtrain.common.atomic import file_lock, write_json_atomic
from speedtrain.common.errors import BaselineError
from speedtrain.records.record import CaseRecord, is_number, show
from speedtrain.stats.samples import METRICS, CaseSummary

SCHEMA = 1
PathLike = Union[str, os.PathLike[str]]


def _numbers(value: Any, where: str) -> list[float]:
    if not (isinstance(value, list) and all(is_number(v) for v in value)):
        raise BaselineError(f"{where} must be a list of numbers, got {show(value)}")
    return [float(v) for v in value]


def _bools(value: Any, where: str) -> list[bool]:
    if not (isinstance(value, list) and all(isinstance(v, bool) for v in value)):
        raise BaselineError(f"{where} must be a list of true/false, got {show(value)}")
    return list(value)


def _optional_number(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if not is_number(value):
        raise BaselineError(f"{where} must be a number or null, got {show(value)}")
    return float(value)



def empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "machines": {}}


def _validate_source(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise BaselineError(f"{where} must be an object, got {show(source)}")
    for key, value in source.items():
        if key == "synthetic":
            if not isinstance(value, bool):
                raise BaselineError(f"{where}.synthetic must be true or false, got {show(value)}")
        elif value is not None and not isinstance(value, str):
            raise BaselineError(f"{where}.{key} must be a string or null, got {show(value)}")


def _validate_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} must be an object, got {show(entry)}")
    for key in ("metric", "time_s", "median_s", "spread_s", "acc", "reached", "source"):
        if key not in entry:
            raise BaselineError(f"{where} lacks the key {key!r}")
    if entry["metric"] not in METRICS:
        raise BaselineError(
            f"{where}.metric must be one of {', '.join(METRICS)}, got {show(entry['metric'])}")
    _numbers(entry["time_s"], f"{where}.time_s")
    _optional_number(entry["median_s"], f"{where}.median_s")
    _optional_number(entry["spread_s"], f"{where}.spread_s")
    _numbers(entry["acc"], f"{where}.acc")
    _bools(entry["reached"], f"{where}.reached")
    _optional_number(entry.get("images_per_s"), f"{where}.images_per_s")
    _validate_source(entry["source"], f"{where}.source")
    if "history" in entry:
        history.validate(entry["history"], f"{where}.history")


def validate(data: Any) -> None:
    """Raise BaselineError (one line, naming the place inside) if data is not a baselines file."""
    if not isinstance(data, dict):
        raise BaselineError(f"the top level must be an object, got {show(data)}")
    if data.get("schema") != SCHEMA:
        raise BaselineError(f"schema must be {SCHEMA}, got {show(data.get('schema'))}")
    machines = data.get("machines")
    if not isinstance(machines, dict):
        raise BaselineError(f"machines must be an object, got {show(machines)}")
    for machine, profiles in machines.items():
        where_m = f"machines[{machine!r}]"
        if not isinstance(profiles, dict):
            raise BaselineError(f"{where_m} must be an object of profiles, got {show(profiles)}")
        for profile, cases in profiles.items():
            where_p = f"{where_m}[{profile!r}]"
            if not isinstance(cases, dict):
                raise BaselineError(f"{where_p} must be an object of cases, got {show(cases)}")
            for case, entry in cases.items():
                _validate_entry(entry, f"{where_p}[{case!r}]")


def load(path: PathLike) -> dict[str, Any]:
    """Read and validate a baselines file; a missing file is an empty set of baselines."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return empty()
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{os.fspath(path)}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{os.fspath(path)}: not valid JSON: {exc.msg} at line "
                            f"{exc.lineno} column {exc.colno}") from None
    try:
        validate(data)
    except BaselineError as exc:
        raise BaselineError(f"{os.fspath(path)}: {exc}") from None
    return data


def save(path: PathLike, data: Mapping[str, Any]) -> None:
    """Validate, then write atomically: on any failure the old file is left as it was."""
    try:
        validate(data)
    except BaselineError as exc:
        raise BaselineError(f"{os.fspath(path)}: refusing to save: {exc}") from None
    write_json_atomic(path, data)


def lookup(data: Mapping[str, Any], machine: str, profile: str,
           case: str) -> Optional[CaseSummary]:
    """The stored baseline of a case, or None if this machine/profile/case has none."""
    entry = data.get("machines", {}).get(machine, {}).get(profile, {}).get(case)
    if entry is None:
        return None
    return CaseSummary(metric=entry["metric"], time_s=[float(t) for t in entry["time_s"]],
                       acc=[float(a) for a in entry["acc"]], reached=list(entry["reached"]),
                       images_per_s=entry.get("images_per_s"))


def record(data: dict[str, Any], machine: str, profile: str, case: str,
           result: CaseRecord, source: Mapping[str, Any]) -> None:
    """Put a case's figures into ``data`` (in memory; :func:`save` writes the file); the
    entry they replace stays in the case's history."""
    summary = result.summary()
    src = dict(source)
    src.setdefault("profile", profile)
    _validate_source(src, "source")
    entry = {
        "metric": summary.metric,
        "time_s": summary.time_s,
        "median_s": summary.median_s,
        "spread_s": summary.spread_s,
        "acc": summary.acc,
        "reached": summary.reached,
        "images_per_s": summary.images_per_s,
        "source": src,
    }
    data.setdefault("schema", SCHEMA)
    cases = data.setdefault("machines", {}).setdefault(machine, {}).setdefault(profile, {})
    entry["history"] = history.extended(cases.get(case), entry)
    cases[case] = entry


def load_baselines(path: PathLike) -> dict[str, Any]:
    """Stored baselines for ``report --baselines`` and ``compare --baselines``: unlike the
    plugin (which starts a new file), a missing file is an error here, since asking for
    verdicts against nothing is a typo, not a first run."""
    if not Path(path).is_file():
        raise BaselineError(f"{os.fspath(path)}: no such baselines file")
    return load(path)


def update(path: PathLike, machine: str, profile: str, records: Mapping[str, CaseRecord],
           source: Mapping[str, Any]) -> list[str]:
    """Store the cases of ``records`` that finished (status ok) as the baselines of this
    machine and profile, keeping every other case of the file as it is on disk now.

    Holds the file's lock from the read to the rename, so a concurrent update is merged,
    never overwritten; returns the names of the cases written. A case is filed under the
    device it ran on (``machine`` when it does not say): on a box with GPUs of several models
    (pytest-xdist, one worker per GPU), each model keeps its own baselines."""
    with file_lock(path):
        data = load(path)  # what is on disk now, not what this session read at its start
        written = [name for name, rec in records.items() if rec.ok]
        for name in written:
            record(data, records[name].device or machine, profile, name, records[name], source)
        _remove_stale_temp_files(Path(path))
        save(path, data)
    return written


def _remove_stale_temp_files(path: Path) -> None:
    """Temporary files of writers that were killed mid-write (SIGKILL, power loss): under the
    lock no other update is writing, so any left is an orphan."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
