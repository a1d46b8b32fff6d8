"""Scaling the suite out with pytest-xdist and shards: one GPU per worker, one saved run.

``pytest benchmarks -n 4`` (pytest-xdist) runs four cases side by side. Three things make that
a benchmark run rather than a test run:

* **One GPU per worker, pinned before CUDA starts.** The controller writes
  ``CUDA_VISIBLE_DEVICES`` into each worker's execnet spec (``pytest_xdist_setupnodes``), so
  execnet sets it in the worker process before pytest, torch or any conftest is imported
  there; CUDA reads the variable once, when it initialises, and it cannot be changed later. The
  value is the GPU's UUID (``GPU-...``, or ``MIG-...`` for a MIG slice) where NVML can tell it
  (:mod:`speedtrain.suite.gpupin`), not its index, which depends on CUDA's device order and, under MIG,
  on which slices exist; each pin's kind is in ``machine_info``.
  ``--st-gpus 0,1,3`` picks GPUs (indices as this process's torch numbers them), default all
  visible ones; more workers than GPUs is refused, never two cases on one GPU.
* **One saved run.** pytest-benchmark disables itself under xdist. Each worker turns it back
  on for itself (each worker owns a GPU, so its timings are as good as a serial run's) with
  its own saving off, and hands every case (pytest-benchmark's own JSON entry, and the
  speedtrain record) to the controller when it ends. The controller puts them, in collection
  order, into its pytest-benchmark session, whose normal saving then writes ONE file with the
  usual ``--benchmark-save`` / ``--benchmark-json`` names, ``machine_info`` and
  ``commit_info``; verdicts and ``--st-baselines update`` run once, there, on every case.
* **Shards.** ``--st-shard K/N`` keeps a deterministic K-th share of the selected cases, so N
  CI jobs (or Slurm array tasks) split the suite; ``speedtrain merge`` joins their runs.
  Shares are balanced by the durations of a previous run (``--st-shard-durations RUN.json``)
  by longest-first greedy assignment, else dealt round-robin by count.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pytest

from speedtrain.suite.gpupin import GpuPin, pin_gpus, placement_label
from speedtrain.records.record import CaseRecord, is_number
from speedtrain.suite.session import STATE
from speedtrain.hw.device import visible_gpu_count

GATHER_KEY = "speedtrain_cases"  # what a worker hands back in workeroutput (a JSON string)
GPU_ENV = "CUDA_VISIBLE_DEVICES"


# --- options -----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("speedtrain", "speedtrain benchmark suite")
    group.addoption("--st-gpus", default=None, metavar="0,1,3",
                    help="with pytest-xdist (-n N): the GPUs the workers run on, one worker per GPU "
                         "(indices as torch numbers them here) [default: every visible GPU]")
    group.addoption("--st-shard", default=None, metavar="K/N",
                    help="run only the K-th of N deterministic shares of the selected cases (e.g. 1/2), "
                         "for splitting the suite over jobs; join their saved runs with 'speedtrain merge'")
    group.addoption("--st-shard-durations", default=None, metavar="RUN.json",
                    help="with --st-shard: balance the shares by the case durations of this saved run "
                         "[default: balance by count]")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as users write it
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        parts = text.split("/")
        try:
            k, n = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
        except ValueError:
            k = n = 0
        if not 1 <= k <= n:
            raise pytest.UsageError(f"--st-shard must be K/N with 1 <= K <= N (e.g. 1/2); got {text!r}")
        return cls(k, n)


def parse_gpus(text: str, visible: int) -> list[int]:
    """``--st-gpus 0,1,3`` as distinct indices below ``visible``."""
    try:
        gpus = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        gpus = []
    if not gpus or len(set(gpus)) != len(gpus) or not all(0 <= g < visible for g in gpus):
        raise pytest.UsageError(f"--st-gpus must list distinct GPU indices from 0 to {visible - 1} "
                                f"(this machine shows {visible} GPUs), e.g. 0,1; got {text!r}")
    return gpus


# --- GPU pinning ---------------------------------------------------------------------------


def _uses_cuda(config: pytest.Config) -> bool:
    return config.getoption("--st-device") != "cpu" and visible_gpu_count() > 0


def _selected_gpus(config: pytest.Config) -> Optional[list[int]]:
    """The workers' GPUs as torch numbers them here, or None when the suite runs on the CPU."""
    text = config.getoption("--st-gpus")
    if not _uses_cuda(config):
        if text is not None:
            raise pytest.UsageError("--st-gpus needs CUDA GPUs, and this session runs on the CPU")
        return None
    visible = visible_gpu_count()
    return parse_gpus(text, visible) if text is not None else list(range(visible))


def _pinned_gpus(config: pytest.Config) -> Optional[list[GpuPin]]:
    """The workers' pins (CUDA_VISIBLE_DEVICES values: UUIDs where NVML tells them), or None on the CPU."""
    gpus = _selected_gpus(config)
    return None if gpus is None else pin_gpus(gpus, os.environ.get(GPU_ENV))


def _is_controller(config: pytest.Config) -> bool:
    """An xdist session's controller (it runs no case itself); xdist's own test, in its terms."""
    return not _is_worker(config) and config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own: one per CPU core
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Optional[int]:
    """``-n auto`` on a GPU machine: one worker per GPU, not one per CPU core."""
    gpus = _selected_gpus(config)
    return len(gpus) if gpus else None


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has made its session
def pytest_configure(config: pytest.Config) -> None:
    shard = config.getoption("--st-shard")
    if shard is not None:
        Shard.parse(shard)  # a bad value stops the session before collection
    if config.getoption("--st-shard-durations") and shard is None:
        raise pytest.UsageError("--st-shard-durations only applies with --st-shard K/N")
    if _is_controller(config):
        pins = _pinned_gpus(config)
        workers = len(config.getoption("tx") or [])
        if pins is not None and workers > len(pins):
            raise pytest.UsageError(f"{workers} xdist workers for {len(pins)} GPUs: two cases would share a GPU "
                                    f"and time each other; use -n {len(pins)} (or -n auto)")
        config.stash[_GATHER] = _Gathered(gpus=None if pins is None else [p.value for p in pins],
                                          pins=None if pins is None else [p.to_dict() for p in pins])


def pytest_sessionstart(session: pytest.Session) -> None:
    # Here, not in pytest_configure: pytest-benchmark's own (trylast) configure turns itself off
    # under xdist, and the order of two trylast hooks depends on how the plugins were registered.
    config = session.config
    if _is_worker(config) and config.workerinput.get(GATHER_KEY):  # type: ignore[attr-defined]
        _enable_benchmarks_in_worker(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Sequence[Any]) -> None:
    """Before any worker starts: its GPU goes into its spec's environment (see module doc)."""
    gpus = config.stash[_GATHER].gpus
    if gpus is None:
        return
    for spec, device in zip(specs, gpus):
        spec.env[GPU_ENV] = device


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[GATHER_KEY] = True


# --- shards --------------------------------------------------------------------------------


def case_durations(path: str) -> dict[str, float]:
    """Seconds each case of a saved run took, by node id (pytest-benchmark's ``fullname``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        benchmarks = data["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise pytest.UsageError(f"--st-shard-durations {path}: not a readable saved run ({exc})") from None
    out = {}
    for bench in benchmarks:
        total = (bench.get("stats") or {}).get("total")
        if isinstance(bench.get("fullname"), str) and is_number(total):
            out[bench["fullname"]] = float(total)
    return out


def assign_shards(ids: Sequence[str], count: int, durations: Optional[Mapping[str, float]] = None) -> list[int]:
    """Each id's shard (0-based), the same on every machine for the same ids.

    With durations: longest case first onto the least loaded shard (a case missing from them
    counts as the median known duration); without: round-robin in collection order."""
    if not durations:
        return [i % count for i in range(len(ids))]
    known = [durations[i] for i in ids if i in durations]
    default = statistics.median(known) if known else 1.0
    cost = [durations.get(i, default) for i in ids]
    load = [0.0] * count
    shard = [0] * len(ids)
    for i in sorted(range(len(ids)), key=lambda i: (-cost[i], ids[i])):
        shard[i] = min(range(count), key=lambda s: (load[s], s))
        load[shard[i]] += cost[i]
    return shard


@pytest.hookimpl(trylast=True)  # after -k / -m: a share of the *selected* cases
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    text = config.getoption("--st-shard")
    if text is None:
        return
    shard = Shard.parse(text)
    path = config.getoption("--st-shard-durations")
    owner = assign_shards([item.nodeid for item in items], shard.count, case_durations(path) if path else None)
    keep = [item for item, s in zip(items, owner) if s == shard.index - 1]
    dropped = [item for item, s in zip(items, owner) if s != shard.index - 1]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


# --- one saved run from many workers -------------------------------------------------------


@dataclass
class _Gathered:
    """The controller's collection of what its workers measured."""

    gpus: Optional[list[str]]  # the workers' CUDA_VISIBLE_DEVICES; None on the CPU
    pins: Optional[list[dict[str, Any]]] = None  # gpupin.GpuPin of each: value, kind (gpu/mig UUID, index)
    order: Optional[list[str]] = None  # node ids in collection order
    benchmarks: list[dict[str, Any]] = field(default_factory=list)  # pytest-benchmark entries
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> record extra_info


_GATHER = pytest.StashKey[_Gathered]()


class SavedBenchmark:
    """A worker's benchmark, as pytest-benchmark's own saving and display read a ``Metadata``:
    ``as_dict`` returns the entry the worker's pytest-benchmark produced, unchanged."""

    has_error = False

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry
        self.name, self.fullname = entry["name"], entry["fullname"]

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        stats = self.entry.get("stats") or {}
        return stats[key] if key in stats else self.entry[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def as_dict(self, include_data: bool = True, flat: bool = False, stats: bool = True,
                cprofile: Any = None) -> dict[str, Any]:
        out = {k: v for k, v in self.entry.items() if k != "stats"}
        if stats:
            figures = dict(self.entry.get("stats") or {})
            if not include_data:
                figures.pop("data", None)
            if flat:
                out.update(figures)
            else:
                out["stats"] = figures
        return out


def _benchmark_session(config: pytest.Config) -> Any:
    return getattr(config, "_benchmarksession", None)


def _enable_benchmarks_in_worker(config: pytest.Config) -> None:
    """pytest-benchmark in a worker: measuring (unless the user disabled it), saving nothing."""
    bs = _benchmark_session(config)
    if bs is None:
        return
    user_disabled = config.getoption("benchmark_disable") and not config.getoption("benchmark_enable")
    bs.disabled = bool(user_disabled)
    bs.xdist_warning = False
    bs.save = bs.autosave = bs.json = None
    bs.compare = bs.compare_fail = None  # the controller compares, on every case at once
    bs.compared_mapping = {}


def _placement(config: pytest.Config) -> dict[str, Any]:
    """Which worker and GPU ran a case: its pin (a GPU or MIG UUID, labelled) and the UUID torch
    reports (bare: torch does not say whether it is a GPU's or a MIG slice's)."""
    visible = os.environ.get(GPU_ENV)
    out: dict[str, Any] = {"worker": config.workerinput.get("workerid"),  # type: ignore[attr-defined]
                           "cuda_visible_devices": visible, **placement_label(visible)}
    import torch

    if torch.cuda.is_available():
        out["torch_uuid"] = str(torch.cuda.get_device_properties(0).uuid)
    return out


def _suite_records(config: pytest.Config) -> dict[str, CaseRecord]:
    return config.stash[STATE].records


def _suite_machine(config: pytest.Config) -> dict[str, Any]:
    return config.stash[STATE].machine


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """In a worker, before the suite's own end-of-session: hand every case to the controller,
    and leave the worker no record to judge or store (that happens once, at the controller)."""
    config = session.config
    if _is_worker(config) and config.workerinput.get(GATHER_KEY):  # type: ignore[attr-defined]
        from pytest_benchmark.utils import safe_dumps

        placement = _placement(config)
        records = _suite_records(config)
        bs = _benchmark_session(config)
        entries = [b.as_dict(include_data=True) for b in (bs.benchmarks if bs else []) if not b.has_error]
        for entry in entries:
            entry["extra_info"]["placement"] = placement
        config.workeroutput[GATHER_KEY] = safe_dumps({  # type: ignore[attr-defined]
            "benchmarks": entries,
            "records": {name: record.to_extra_info() for name, record in records.items()},
            "machine": _suite_machine(config),  # doctor, base precision, threads: as a serial run saves
        })
        records.clear()
        if bs is not None:
            bs.benchmarks.clear()
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    gathered = node.config.stash[_GATHER]
    if gathered.order is None:
        gathered.order = list(ids)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker is done: its cases join the controller's session (and its saved run)."""
    text = getattr(node, "workeroutput", {}).get(GATHER_KEY)
    if not text:
        return
    payload = json.loads(text)
    config = node.config
    gathered = config.stash[_GATHER]
    gathered.benchmarks.extend(payload["benchmarks"])
    gathered.records.update(payload["records"])
    # The first worker's machine facts (doctor, base precision, threads) stand for the run, as
    # a serial run's would: the workers share one box; each case's record keeps its own threads.
    machine = _suite_machine(config)
    for key, value in (payload.get("machine") or {}).items():
        machine.setdefault(key, value)
    position = {nodeid: i for i, nodeid in enumerate(gathered.order or [])}
    gathered.benchmarks.sort(key=lambda b: position.get(b["fullname"], len(position)))
    bs = _benchmark_session(config)
    if bs is not None:
        bs.benchmarks[:] = [SavedBenchmark(entry) for entry in gathered.benchmarks]
    # The suite's records in collection order too: its verdict table lists them so.
    rank = {b["name"]: i for i, b in enumerate(gathered.benchmarks)}
    records = _suite_records(config)
    records.clear()
    for name in sorted(gathered.records, key=lambda name: rank.get(name, len(rank))):
        records[name] = CaseRecord.from_extra_info(gathered.records[name], name)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """How the run was split, so a reader knows its cases did not run one after another."""
    gathered = config.stash.get(_GATHER, None)
    shard = config.getoption("--st-shard")
    if gathered is None and shard is None:
        return
    machine_info["speedtrain_scaleout"] = {
        "workers": len(config.getoption("tx") or []) if gathered is not None else 1,
        "gpus": gathered.gpus if gathered is not None else None,
        "pins": gathered.pins if gathered is not None else None,
        "shard": shard,
    }
