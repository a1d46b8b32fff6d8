"""The pytest plugin behind ``benchmarks/``: options, the ``run_case`` fixture, the verdict table.

A case only describes a configuration::

    @pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16", "half"])
    def test_precision(run_case, precision):
        run_case(precision=precision)

``run_case`` builds the config (see speedtrain.profiles for the order), runs the shared
trainer once per seed as pytest-benchmark rounds (so the saved stats are whole-run times),
and saves the case's :class:`~speedtrain.record.CaseRecord` in ``benchmark.extra_info``. At
the end of the session each record is compared with ``baselines.json`` and a verdict table
is printed. The session's state is one :class:`SuiteSession` in ``config.stash``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from speedtrain import baselines as bl
from speedtrain import stats
from speedtrain.compare import format_rows
from speedtrain.config import TrainConfig, check_device
from speedtrain.errors import ConfigError, DataError, SpeedtrainError
from speedtrain.profiles import PROFILES, Profile, default_profile, suite_base
from speedtrain.record import CaseRecord
from speedtrain.runs import RunMeta

BASELINE_MODES = ("check", "update", "off")
# pytest-xdist workers pinned to GPUs, shards, one saved run from many workers (issue 13).
pytest_plugins = ["speedtrain.scaleout"]


@dataclass
class SuiteSession:
    """What the plugin knows about this pytest session: its settings, then what it measured."""

    profile: Profile
    seeds: list[int]
    baselines_file: str
    records: dict[str, CaseRecord] = field(default_factory=dict)  # benchmark name -> record
    verdicts: list[stats.VerdictRow] = field(default_factory=list)
    error: Optional[str] = None  # the baselines file could not be used
    note: Optional[str] = None  # what happened to the baselines, for the terminal summary


STATE = pytest.StashKey[SuiteSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("speedtrain", "speedtrain benchmark suite")
    group.addoption("--st-profile", choices=sorted(PROFILES), default=None,
                    help="smoke (plumbing, anywhere), quick (short GPU training), full (time to target); "
                         "default: quick with CUDA, else smoke")
    group.addoption("--st-dataset", choices=("cifar10", "fashion-mnist"), default="cifar10",
                    help="dataset of the cases that do not name one [default: cifar10]")
    group.addoption("--st-data-dir", default=os.environ.get("SPEEDTRAIN_DATA_DIR", "data"),
                    help="dataset folder or archive [default: $SPEEDTRAIN_DATA_DIR or ./data]")
    group.addoption("--st-download", action="store_true", help="let torchvision download missing datasets")
    group.addoption("--st-device", choices=("auto", "cpu", "cuda"), default="auto", help="[default: auto]")
    group.addoption("--st-seeds", type=int, default=None, help="training runs per case [default: the profile's]")
    group.addoption("--st-baselines", choices=BASELINE_MODES, default="check",
                    help="check: verdicts against the stored baselines; update: store this session's results "
                         "as the new baselines; off [default: check]")
    group.addoption("--st-baselines-file", default=None, help="[default: baselines.json at the root]")
    group.addoption("--st-fail-on-regression", action="store_true",
                    help="exit non-zero when a case is slower or lost accuracy against its baseline")
    group.addoption("--st-threshold", type=float, default=0.05,
                    help="smallest relative time change that can count as faster/slower [default: 0.05]")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption
    profile_name = opt("--st-profile") or default_profile(_cuda_available())
    seeds = opt("--st-seeds")
    if seeds is not None and seeds < 1:
        raise pytest.UsageError(f"--st-seeds must be a whole number of at least 1; got {seeds}")
    if not 0 < opt("--st-threshold") < 1:
        raise pytest.UsageError(f"--st-threshold must be a fraction in (0, 1); got {opt('--st-threshold')}")
    if opt("--st-device") == "cuda" and not _cuda_available():
        raise pytest.UsageError("--st-device cuda was asked for but torch sees no CUDA GPU; use --st-device cpu or auto")
    profile = PROFILES[profile_name]
    file = opt("--st-baselines-file") or str(Path(config.rootpath) / "baselines.json")
    config.stash[STATE] = SuiteSession(profile, list(range(seeds if seeds is not None else profile.seeds)), file)


def _state(config: pytest.Config) -> SuiteSession:
    return config.stash[STATE]


def _session_device(config: pytest.Config) -> str:
    wanted = config.getoption("--st-device")
    return ("cuda" if _cuda_available() else "cpu") if wanted == "auto" else wanted


def _device_label(config: pytest.Config) -> str:
    import torch

    from speedtrain.env import device_name

    return device_name(torch.device(_session_device(config)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = _state(config)
    p = st.profile
    data = "synthetic data" if p.synthetic else f"dataset {config.getoption('--st-dataset')} from {config.getoption('--st-data-dir')}"
    return [
        f"speedtrain: profile {p.name}: {p.description}",
        f"speedtrain: device {_device_label(config)}, {data}, seeds {st.seeds}, "
        f"baselines {config.getoption('--st-baselines')} ({st.baselines_file})",
    ]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    import torch

    from speedtrain.env import environment

    st = _state(config)
    env = environment(torch.device(_session_device(config)))
    machine_info["speedtrain"] = RunMeta(
        profile=st.profile.name, device=env["device"], gpu=env["gpu"] or {}, torch=env["torch"],
        cuda=env["cuda"], cudnn=env["cudnn"], cpu=env["cpu"], commit=env["commit"],
        dataset=config.getoption("--st-dataset"), synthetic=st.profile.synthetic, seeds=st.seeds,
    ).to_machine_info()


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Per-epoch lines on the terminal while a long case trains, past pytest's capture."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.write_line("    " + line)
        else:
            reporter.write_line("    " + line)
    return write


def _case_identity(request: pytest.FixtureRequest) -> tuple[str, str, bool]:
    """(section, case id, is the section's reference case) from the test's name and parameters."""
    section = request.function.__name__.removeprefix("test_")
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return section, "default", True
    return section, callspec.id, all(i == 0 for i in callspec.indices.values())


@pytest.fixture
def run_case(request: pytest.FixtureRequest, benchmark: Any) -> Callable[..., CaseRecord]:
    """``run_case(**config_fields, step=None, monitor=True)``: train the case, record it."""
    config = request.config
    st = _state(config)
    profile = st.profile

    def run(*, step: Optional[int] = None, monitor: bool = True, **fields: Any) -> CaseRecord:
        from speedtrain.gpumonitor import GpuMonitor
        from speedtrain.train import train

        session = {"dataset": config.getoption("--st-dataset"), "data_dir": config.getoption("--st-data-dir"),
                   "download": config.getoption("--st-download"), "device": config.getoption("--st-device")}
        try:
            base = TrainConfig(**{**suite_base(_session_device(config)), **session, **fields})
            cfgs = [profile.apply(base, seed) for seed in st.seeds]
        except ConfigError as exc:
            pytest.fail(f"invalid case configuration: {exc}", pytrace=False)
        try:
            check_device(base, _session_device(config))
        except ConfigError as exc:
            pytest.skip(str(exc))

        section, case, reference = _case_identity(request)
        log = _progress_writer(config) if profile.name != "smoke" else (lambda line: None)
        results: list = []
        rounds = iter(cfgs)

        def one_training_run(cfg: TrainConfig) -> None:
            log(f"{request.node.name} seed {cfg.seed}:")
            # Without a GPU or driver the monitor records why it has no telemetry.
            gpu_monitor = GpuMonitor() if monitor else None
            try:
                results.append(train(cfg, monitor=gpu_monitor, log=log))
            except DataError as exc:
                pytest.fail(str(exc), pytrace=False)

        benchmark.pedantic(one_training_run, setup=lambda: ((next(rounds),), {}), rounds=len(cfgs), iterations=1)
        record = CaseRecord.from_results(
            results, section=section, case=case, reference=reference, step=step, profile=profile.name,
            metric=profile.metric, seeds=[c.seed for c in cfgs[:len(results)]], target_acc=cfgs[0].target,
            config=cfgs[0].to_dict(), monitor=monitor)
        benchmark.extra_info.update(record.to_extra_info())
        st.records[benchmark.name] = record
        if not record.ok:
            warnings.warn(f"{benchmark.name}: {record.status}: {record.error}", stacklevel=2)
        return record

    return run


# --- end of session: verdicts against the stored baselines ----------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = _state(config)
    mode = config.getoption("--st-baselines")
    if not st.records or mode == "off":
        return
    try:
        data = bl.load(st.baselines_file)
    except SpeedtrainError as exc:
        st.error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    machine, profile = _device_label(config), st.profile.name
    st.verdicts = [stats.verdict_row(name, bl.lookup(data, machine, profile, name), record.summary(),
                                     threshold=config.getoption("--st-threshold"))
                   for name, record in st.records.items()]
    if mode == "update":
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            st.note = "session interrupted: baselines left unchanged"
            return
        try:
            written = bl.update(st.baselines_file, machine, profile, st.records, _source(config))
        except SpeedtrainError as exc:
            st.error = str(exc)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        st.note = f"baselines for {len(written)} cases on {machine} ({profile}) written to {st.baselines_file}"
    elif config.getoption("--st-fail-on-regression") and stats.regressed(st.verdicts):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        st.note = "regression against the baselines: failing the session (--st-fail-on-regression)"


def _source(config: pytest.Config) -> dict[str, Any]:
    import torch

    from speedtrain.env import environment

    env = environment(torch.device(_session_device(config)))
    gpu = env["gpu"] or {}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": env["commit"],
        "torch": env["torch"],
        "cuda": env["cuda"],
        "driver": gpu.get("driver"),
        "gpu": env["device"],
        "profile": _state(config).profile.name,
        "dataset": config.getoption("--st-dataset"),
        "synthetic": _state(config).profile.synthetic,
        "run": config.getoption("benchmark_save", None) or "",
    }


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    st = _state(config)
    if not st.records:
        return
    tr = terminalreporter
    tr.section("speedtrain verdicts")
    if st.error is not None:
        tr.write_line(f"error: {st.error}")
        return
    if st.profile.synthetic:
        tr.write_line(f"profile {st.profile.name}: synthetic data and tiny runs; these times check plumbing, they measure nothing.")
    if st.verdicts:
        tr.write_line(format_rows(st.verdicts))
    if st.note is not None:
        tr.write_line(st.note)
