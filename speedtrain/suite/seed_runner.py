"""One benchmark case's seeds: the per-seed training loop, and how the case appears to pytest-benchmark.

:func:`run_seeds` is the one place a case's seeds run (the plugin's ``run_case`` calls it,
and so can a plugin that distributes cases): the session's fixed seeds, or ``--st-seeds
auto``'s sequential rule, each seed timed as a whole call beside the trainer's own clock.
pytest-benchmark does not run the seeds (with ``--benchmark-disable`` or under xdist it would
run one); :func:`feed_benchmark` gives it the per-seed compared figure afterwards instead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from speedtrain.verdicts import rule as stats
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.breakdown import trace_name
from speedtrain.train.progress import EpochProgress, Progress
from speedtrain.records.section import Section
from speedtrain.records.record import CaseRecord
from speedtrain.suite.session import SuiteSession
from speedtrain.hw.device import resolve_device
from speedtrain.hw.gpumonitor import GpuMonitor


@dataclass
class SeedRuns:
    """What :func:`run_seeds` produced: one result and whole-call time per seed run."""

    results: list = field(default_factory=list)  # speedtrain.train.loop.RunResult, in seed order
    call_time_s: list[float] = field(default_factory=list)
    note: Optional[str] = None  # why the seeds stopped (auto's reason, an interrupt, oom)


def run_seeds(st: SuiteSession, base: TrainConfig, *, name: str, monitor: bool = True,
              baseline: Optional[stats.CaseSummary] = None, threshold: float = 0.05,
              log: Callable[[str], None] = lambda line: None, progress: Optional[Progress] = None,
              seeds: Optional[list[int]] = None, metric: Optional[str] = None,
              steps: Optional[EpochProgress] = None, trace_dir: Optional[str] = None) -> SeedRuns:
    """Train ``base`` under the session's profile once per seed: the session's fixed seeds, or
    (``--st-seeds auto``) until :func:`speedtrain.stats.seeding.next_seed` says stop. Stops early
    after a seed that ran out of memory (every later seed would too) or on Ctrl-C. ``metric`` is
    the case's compared figure when it is not the profile's (the accuracy studies' final_acc).
    ``steps``: progress within each epoch (speedtrain.train.progress), passed to the trainer.
    ``trace_dir``: each seed's breakdown Chrome trace goes there, named after the case."""
    from speedtrain.stats.seeding import MAX_SEEDS, next_seed
    from speedtrain.train.loop import train

    runs = SeedRuns()
    compared = metric or st.profile.metric
    if seeds is None:  # the case's own seeds (run_case's seeds=) win over the session's fixed ones
        seeds = st.seeds if st.seeds is not None else list(range(MAX_SEEDS))
    for seed in seeds:
        cfg = st.profile.apply(base, seed)
        if progress is not None:
            timed = baseline is not None and baseline.metric not in stats.HIGHER_IS_BETTER  # else an accuracy
            left = progress.case_estimate(baseline.median_s if timed else None, len(seeds) - len(runs.results))
            progress.seed_started(name, seed, st.seeds_label() if st.auto else str(len(seeds)), left)
        start = time.perf_counter()
        trace = None
        if trace_dir is not None:  # one file per seed when there are several
            trace = os.path.join(trace_dir, trace_name(name if len(seeds) == 1 else f"{name}-seed{seed}"))
        result = train(cfg, monitor=GpuMonitor(resolve_device(cfg)) if monitor else None, log=log,
                       steps=steps, trace=trace)
        runs.call_time_s.append(time.perf_counter() - start)
        runs.results.append(result)
        if progress is not None:
            progress.seed_done(result.train_time_s, runs.call_time_s[-1])
        if result.status == "oom":
            runs.note = "out of memory: the remaining seeds were not run"
            break
        if st.interrupted:
            runs.note = f"interrupted after {len(runs.results)} seed(s)"
            break
        if st.auto:  # the case's compared figure: RunResult has an attribute of each metric's name
            figure = [getattr(r, compared) for r in runs.results]
            accuracy = compared in stats.HIGHER_IS_BETTER
            plan = next_seed(figure, baseline.time_s if baseline else (),
                             stats.ACC_TOLERANCE if accuracy else threshold, absolute=accuracy,
                             plumbing=st.profile.name == "smoke")
            runs.note = plan.reason
            if not plan.more:
                break
    return runs


def case_identity(request: pytest.FixtureRequest) -> tuple[str, str, bool, Optional[Section]]:
    """(section, case id, is the section's reference case, how the report shows the section),
    from the benchmark module.

    The section is the test function's name without ``test_``, split further by the values
    of the parameters the module lists in ``SECTION_BY`` (``("model",)``: one section per
    model). The reference case is the one whose parameters match the module's ``REFERENCE``
    (``{"precision": "fp32"}``, or ``{section: {...}}`` for a module of several sections);
    without one, the first value of every parameter. The :class:`Section` is the module's
    ``SECTION``, or its ``SECTIONS[section]`` (None: the report falls back to the id)."""
    section = request.function.__name__.removeprefix("test_")
    shown = getattr(request.module, "SECTIONS", {}).get(section, getattr(request.module, "SECTION", None))
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return section, "default", True, shown
    params = callspec.params
    named = getattr(request.module, "REFERENCE", None)
    if isinstance(named, dict) and isinstance(named.get(section), dict):
        named = named[section]
    split = [str(params[key]) for key in getattr(request.module, "SECTION_BY", ())]
    section += "".join(f"-{value}" for value in split)
    if shown is not None:
        shown = shown.split_by(split)
    if isinstance(named, dict) and named and set(named) <= set(params):
        return section, callspec.id, all(params[k] == v for k, v in named.items()), shown
    return section, callspec.id, all(i == 0 for i in callspec.indices.values()), shown


def feed_benchmark(benchmark: Any, record: CaseRecord) -> None:
    """pytest-benchmark's statistics of the case: the per-seed compared figure (see module
    docstring). A case where no seed produced it (out of memory, diverged, target missed) is
    fed its whole-call times instead, so that it still appears in the saved run, and
    ``extra_info["benchmark_stats"]`` says which figure the statistics are. Nothing when
    pytest-benchmark is off."""
    benchmark._mode = "speedtrain run_case"  # noqa: SLF001 - used: no "fixture was not used" warning
    figure = {"train_time_s": record.train_time_s, "time_to_target_s": record.time_to_target_s,
              "final_acc": record.final_acc}[record.metric]
    values, label = [t for t in figure if t is not None], record.metric
    if not values:
        values = [t for t in record.call_time_s if t is not None]
        label = f"call_time_s (no seed produced {record.metric})"
    if getattr(benchmark, "disabled", True) or not values:
        return
    benchmark.extra_info["benchmark_stats"] = label
    bench_stats = benchmark._make_stats(1)  # noqa: SLF001 - the one way to give it our own rounds
    for value in values:
        bench_stats.update(value)
