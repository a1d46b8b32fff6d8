"""The ``run_case`` fixture: a case's config, its seeds through the shared trainer, its record.

What a benchmark file calls (``run_case(precision="half")``); the hooks around it are in
:mod:`speedtrain.suite.plugin`, the session's state in :mod:`speedtrain.suite.session`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import pytest

from speedtrain.common.errors import ConfigError, DataError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.device import check_device
from speedtrain.hw.runconditions import Conditions, cpu_device_name, gpu_clocks, load_average, physical_cores, usable_cpus
from speedtrain.recipes.profiles import Profile, suite_base
from speedtrain.records import baselines as bl
from speedtrain.records.record import CaseRecord
from speedtrain.suite.output import writer
from speedtrain.suite.plan import case_dataset
from speedtrain.suite.seed_runner import case_identity, feed_benchmark, run_seeds
from speedtrain.suite.session import STATE, SuiteSession
from speedtrain.train.progress import EpochProgress, Progress
from speedtrain.verdicts import rule as stats

def state(config: pytest.Config) -> SuiteSession:
    return config.stash[STATE]


def device_label(config: pytest.Config) -> str:
    device_type = state(config).device_type
    if device_type != "cuda":  # the header of a CPU session needs no torch (2-3 s to import)
        return cpu_device_name()
    import torch

    from speedtrain.hw.env import device_name

    return device_name(torch.device(device_type))


def session_fields(config: pytest.Config) -> dict[str, Any]:
    steps = config.getoption("--st-breakdown-steps")
    if steps is None:  # the profile's own count, else TrainConfig's default
        steps = state(config).profile.breakdown_steps
    return {"dataset": config.getoption("--st-dataset"), "data_dir": config.getoption("--st-data-dir"),
            "download": config.getoption("--st-download"), "device": config.getoption("--st-device"),
            **({} if steps is None else {"breakdown_steps": steps})}


PROGRESS = pytest.StashKey[Progress]()
STEPS = pytest.StashKey[Optional[EpochProgress]]()


@pytest.fixture
def run_case(request: pytest.FixtureRequest, benchmark: Any) -> Callable[..., CaseRecord]:
    """``run_case(**config_fields, step=None, monitor=True, metric=None, seeds=None)``: train the
    case, record it. ``metric`` overrides the profile's compared figure (the accuracy studies pass
    ``"final_acc"``); ``seeds`` is the case's own seed count, used when --st-seeds is not given
    and the profile is not smoke (the 100-image study's 10)."""
    config = request.config
    st = state(config)
    profile: Profile = st.profile

    def run(*, step: Optional[int] = None, monitor: bool = True, metric: Optional[str] = None,
            seeds: Optional[int] = None, **fields: Any) -> CaseRecord:
        if st.interrupted:
            pytest.skip("session interrupted (Ctrl-C)")
        try:
            session = {**session_fields(config), "dataset": case_dataset(request.node, config.getoption("--st-dataset"))}
            base = TrainConfig(**{**suite_base(st.device_type), **session, **fields})
            profile.apply(base, 0)  # the profile's changes must make a valid config too
        except ConfigError as exc:
            pytest.fail(f"invalid case configuration: {exc}", pytrace=False)
        try:
            check_device(base, st.device_type)
        except ConfigError as exc:
            pytest.skip(str(exc))

        section, case, reference, shown = case_identity(request)
        benchmark.group = section
        benchmark._mode = "speedtrain run_case"  # noqa: SLF001 - used, even if training fails
        name = request.node.name
        stored = _baseline_of(config, name)
        progress = config.stash.get(PROGRESS, None)
        log = writer(config) if profile.name != "smoke" else (lambda line: None)
        conditions = Conditions(torch_threads=_threads(), cpus=usable_cpus(), physical_cores=physical_cores(),
                                load_before=load_average())
        try:
            runs = run_seeds(st, base, name=name, monitor=monitor, baseline=stored,
                             threshold=config.getoption("--st-threshold"), log=lambda line: log("    " + line),
                             progress=progress, seeds=own_seeds(config, st, seeds), metric=metric,
                             steps=config.stash.get(STEPS, None), trace_dir=config.getoption("--st-trace"))
        except DataError as exc:  # the preflight read the session's dataset: this is a case's own
            pytest.fail(str(exc), pytrace=False)
        finally:
            if progress is not None:
                progress.case_done()
        conditions.load_after = load_average()
        results = runs.results
        record = CaseRecord.from_results(
            results, section=section, case=case, reference=reference, step=step, profile=profile.name,
            metric=metric or profile.metric, seeds=[r.config["seed"] for r in results], target_acc=base.target,
            config=profile.apply(base, 0).to_dict(), monitor=monitor)
        record.show_section(shown)
        record.call_time_s = [round(t, 4) for t in runs.call_time_s]
        record.seeds_auto, record.seeds_note = st.auto, runs.note
        conditions.gpu_clocks = gpu_clocks(record.gpu)
        record.conditions = conditions.to_dict()
        record.measured_peak_flops_per_s = st.measured_peak(base.precision, gpus=base.nproc)
        record.measured_peak_matmul_n = st.measured_peak_size(base.precision)
        feed_benchmark(benchmark, record)
        record.published = benchmark.extra_info.get("published")  # set by the benchmark file, if at all
        benchmark.extra_info.update(record.to_extra_info())
        st.records[benchmark.name] = record
        # a noisy machine is one line over all cases at the end (suite_summary), not a warning each
        if not record.ok:
            warnings.warn(f"{benchmark.name}: {record.status}: {record.error}", stacklevel=2)
        if st.interrupted:
            config.stash[STATE].notes.append("interrupted (Ctrl-C): the finished cases were kept, "
                                              "this run is marked partial")
            request.session.shouldstop = "interrupted by the user (Ctrl-C)"
        return record

    return run


def own_seeds(config: pytest.Config, st: SuiteSession, seeds: Optional[int]) -> Optional[list[int]]:
    """A case's own seed count, unless the user chose seeds or the profile only checks plumbing."""
    if seeds is None or config.getoption("--st-seeds") is not None or st.profile.name == "smoke":
        return None
    return list(range(seeds))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _baseline_of(config: pytest.Config, name: str) -> Optional[stats.CaseSummary]:
    st = state(config)
    if st.baselines is None:
        return None
    return bl.lookup(st.baselines, device_label(config), st.profile.name, name)
