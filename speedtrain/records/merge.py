"""``speedtrain merge``: join saved runs (shards, GPU types, boxes) into one saved run.

N CI jobs or cluster tasks each run a share of the suite (``--st-shard K/N``) and save it;
this joins their pytest-benchmark JSON files into one file of the same format, so
``pytest-benchmark compare``, ``speedtrain report``, ``compare`` and baselines read it as
they read a serial run. Rules:

* one profile: a quick run and a smoke run measure different things and are refused;
* no clashes: a case (benchmark ``fullname``) may appear once per GPU model; the same case
  twice on one model is refused with one line naming both files (which figure would win?);
* each case keeps its machine: its record names its device, and ``machine_info["merged_runs"]``
  keeps every input's ``machine_info``, ``commit_info`` and date with the cases it brought.
  When the inputs ran on different devices, the run-level device is left empty, so readers
  take each case's own (a run-level device would file every case under one GPU model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from speedtrain.common.atomic import write_json_atomic
from speedtrain.common.errors import SpeedtrainError


class MergeError(SpeedtrainError):
    """Saved runs that cannot be joined into one."""


@dataclass
class _Input:
    path: str
    data: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        return self.data["machine_info"].get("speedtrain") or {}

    def profile(self) -> Optional[str]:
        return self.meta.get("profile") or next(
            (b["extra_info"].get("profile") for b in self.data["benchmarks"]), None)

    def device_of(self, bench: dict[str, Any]) -> Optional[str]:
        return bench["extra_info"].get("device") or self.meta.get("device")


def _read(path: str) -> _Input:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise MergeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise MergeError(f"{path}: not valid JSON: {exc}") from None
    ok = isinstance(data, dict) and isinstance(data.get("benchmarks"), list) and isinstance(data.get("machine_info"), dict)
    if not ok or not all(isinstance(b, dict) and isinstance(b.get("fullname"), str)
                         and isinstance(b.get("extra_info"), dict) for b in data["benchmarks"]):
        raise MergeError(f"{path}: not a saved benchmark run (pytest-benchmark JSON with benchmarks and machine_info)")
    return _Input(path, data)


def merge_runs(paths: Sequence[str]) -> dict[str, Any]:
    """The saved runs at ``paths`` as one saved run (see the module docstring for the rules)."""
    if len(paths) < 1:
        raise MergeError("merge needs at least one saved run")
    inputs = [_read(p) for p in paths]
    profiles = {i.path: i.profile() for i in inputs}
    if len(set(profiles.values())) > 1:
        shown = ", ".join(f"{os.path.basename(p)} is {v}" for p, v in profiles.items())
        raise MergeError(f"runs of different profiles cannot be merged ({shown}); merge runs of one profile")
    seen: dict[tuple[str, Optional[str]], str] = {}
    benchmarks, sources = [], []
    for run in inputs:
        for bench in run.data["benchmarks"]:
            key = (bench["fullname"], run.device_of(bench))
            if key in seen:
                raise MergeError(f"case {key[0]} on {key[1]} is in both {seen[key]} and {run.path}; "
                                 f"merge runs of different cases or different GPU models")
            seen[key] = run.path
            benchmarks.append(bench)
        sources.append({"file": run.path, "machine_info": run.data["machine_info"],
                        "commit_info": run.data.get("commit_info"), "datetime": run.data.get("datetime"),
                        "cases": [b["fullname"] for b in run.data["benchmarks"]]})
    first = inputs[0].data
    machine_info = json.loads(json.dumps(first["machine_info"]))  # a copy: the inputs stay as read
    devices = {d for (_, d) in seen}
    if len(devices) > 1 and isinstance(machine_info.get("speedtrain"), dict):
        machine_info["speedtrain"]["device"] = None
        machine_info["speedtrain"]["gpu"] = None
    machine_info["merged_runs"] = sources
    return {"machine_info": machine_info, "commit_info": first.get("commit_info"), "benchmarks": benchmarks,
            "datetime": datetime.now(timezone.utc).isoformat(), "version": first.get("version")}


def merge_files(paths: Sequence[str], output: str) -> dict[str, Any]:
    """Merge and write ``output`` atomically; returns the merged run."""
    merged = merge_runs(paths)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, merged)
    return merged
