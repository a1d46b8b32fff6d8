"""The pytest plugin behind ``benchmarks/``: options, the session's hooks, the verdict table;
the ``run_case`` fixture it registers is :mod:`speedtrain.suite.fixture`'s.

Installed with the package as a ``pytest11`` entry point, so the ``--st-*`` options and
``run_case`` work in any repository of benchmark files. A case only describes a configuration::

    @pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16", "half"])
    def test_precision(run_case, precision):
        run_case(precision=precision)

``run_case`` builds the config (see speedtrain.recipes.profiles for the order) and runs the shared
trainer once per seed itself (``seed_runner.run_seeds``), so ``--benchmark-disable`` and xdist never
drop seeds. pytest-benchmark's statistics of the case are then the per-seed values of the
figure the verdicts compare (``train_time_s``, or ``time_to_target_s`` in the full profile),
so its table, ``--benchmark-compare`` and ``--benchmark-compare-fail`` speak of the same
figure as the verdicts; the whole-call time per seed is kept as ``call_time_s`` in the
case's :class:`~speedtrain.records.record.CaseRecord` (``benchmark.extra_info``). At the end of the
session each record is compared with ``baselines.json`` and a verdict table is printed.
Before the first case the session is checked (:mod:`speedtrain.suite.session`); Ctrl-C
stops after the current seed and keeps the finished cases as a run marked partial.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from speedtrain.records import baselines as bl
from speedtrain.verdicts import rule as stats
from speedtrain.config.trainconfig import TrainConfig, choices
from speedtrain.common.errors import ConfigError, SpeedtrainError
from speedtrain.stats.option_rules import AUTO_RANGE, threshold_fraction
from speedtrain.common.output_paths import check_outputs
from speedtrain.recipes.profiles import PROFILES, base_choice, suite_base
from speedtrain.train.progress import Progress
from speedtrain.records.saved_run import RunMeta
from speedtrain.stats.seeding import MAX_SEEDS, MIN_SEEDS
from speedtrain.suite.output import session_steps, writer
from speedtrain.suite.summary import failed_line, noisy_line, verdict_lines
from speedtrain.suite.plan import case_dataset, session_estimate, will_run, worker_threads
from speedtrain.suite.fixture import PROGRESS, STEPS, device_label, run_case, session_fields, state  # noqa: F401 (run_case: the fixture)
from speedtrain.suite.session import (BASELINE_MODES, STATE, SuiteSession, baseline_source, catch_interrupts,
                                      check_baselines, check_data, check_doctor, choose_profile, explicit_args,
                                      judge, parse_seeds)
from speedtrain.hw.device import visible_gpu_count
from speedtrain.hw.resources import machine_limits, resource_warnings
from speedtrain.hw.runconditions import physical_cores, pin_threads
from speedtrain.common.atomic import check_writable

# pytest-xdist workers pinned to GPUs, shards, one saved run from many workers (issue 13);
# Ctrl-C under xdist (issue 22).
pytest_plugins = ["speedtrain.suite.scaleout", "speedtrain.suite.xdist_interrupt"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("speedtrain", "speedtrain benchmark suite")
    group.addoption("--st-profile", choices=sorted(PROFILES), default=None,
                    help="smoke (plumbing, anywhere), quick (short GPU training), full (time to target); "
                         "default: quick when benchmarks are named on the command line of a CUDA machine, else smoke")
    group.addoption("--st-dataset", choices=choices("dataset"), default="cifar10",
                    help="dataset of the cases that do not name one [default: cifar10]")
    group.addoption("--st-data-dir", default=os.environ.get("SPEEDTRAIN_DATA_DIR", "data"),
                    help="dataset folder or archive [default: $SPEEDTRAIN_DATA_DIR or ./data]")
    group.addoption("--st-download", action="store_true",
                    help="let torchvision download a missing dataset (checksum verified) before the first case")
    group.addoption("--st-device", choices=choices("device"), default="auto",
                    help="auto, cpu or cuda (cuda: no GPU or a doctor FAIL is an error) [default: auto]")
    group.addoption("--st-seeds", default=None,
                    help=f"training runs per case, 1 to {MAX_SEEDS}, or auto: as many as the case's noise needs "
                         f"({AUTO_RANGE}), {MIN_SEEDS} in the smoke profile [default: the profile's]")
    group.addoption("--st-threads", type=int, default=None,
                    help="torch CPU threads [default: the physical cores on a CPU run, torch's own on a GPU run]")
    group.addoption("--st-baselines", choices=BASELINE_MODES, default="check",
                    help="check: verdicts against the stored baselines; update: store this session's results "
                         "as the new baselines; off [default: check]")
    group.addoption("--st-baselines-file", default=None, help="[default: baselines.json at the root]")
    group.addoption("--st-fail-on-regression", action="store_true",
                    help="exit non-zero when a case is slower or lost accuracy against its baseline (needs 2+ seeds)")
    group.addoption("--st-breakdown-steps", type=int, default=None, metavar="N",
                    help="training steps profiled per seed after its timed run, off the clock, for the step "
                         "breakdown (0 = off) [default: the profile's: 1 smoke, 3 otherwise]")
    group.addoption("--st-trace", default=None, metavar="DIR",
                    help="also write each case's profiler Chrome trace of its breakdown steps into DIR, "
                         "named after the case (<case>.pt.trace.json; -seedN with several seeds)")
    group.addoption("--st-threshold", default=stats.THRESHOLD,
                    help="smallest relative time change that can count as faster/slower; 0.05 is 5%% [default: 0.05]")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption
    seeds = parse_seeds(opt("--st-seeds"))
    try:  # the rule of compare --threshold too; later readers of the option get the number
        config.option.st_threshold = threshold_fraction(opt("--st-threshold"), "--st-threshold")
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if opt("--st-threads") is not None and opt("--st-threads") < 1:
        raise pytest.UsageError(f"--st-threads must be a whole number of at least 1; got {opt('--st-threads')}")
    steps = opt("--st-breakdown-steps")
    if steps is not None and not 0 <= steps <= 100:
        raise pytest.UsageError(f"--st-breakdown-steps must be a whole number of steps from 0 (off) to 100; got {steps}")
    if opt("--st-trace") is not None:
        if steps == 0:
            raise pytest.UsageError("--st-trace writes the breakdown's profile; it needs --st-breakdown-steps above 0")
        try:
            check_writable(opt("--st-trace"), folder=True)
        except SpeedtrainError as exc:
            raise pytest.UsageError(f"--st-trace: {exc}") from None
    device = opt("--st-device")
    if device == "cuda" and not _cuda_available():
        raise pytest.UsageError("--st-device cuda was asked for but torch sees no CUDA GPU; use --st-device cpu or auto")
    device_type = ("cuda" if _cuda_available() else "cpu") if device == "auto" else device
    profile = PROFILES[choose_profile(opt("--st-profile"), explicit_args(config), device_type == "cuda")]
    n = profile.seeds if seeds is None else seeds
    if opt("--st-fail-on-regression") and n == 1:
        raise pytest.UsageError("--st-fail-on-regression needs 2+ seeds per case: one seed cannot tell a change "
                                "from run-to-run noise; add --st-seeds 2 (or more, or auto)")
    file = opt("--st-baselines-file") or str(Path(config.rootpath) / "baselines.json")
    try:  # the saved JSON must not land on the baselines or the durations it read (output_paths)
        check_outputs({"--benchmark-json": opt("benchmark_json", None)},
                      {"--st-baselines-file": file, "--st-shard-durations": opt("--st-shard-durations", None)})
    except SpeedtrainError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = SuiteSession(profile, None if n == "auto" else list(range(n)), file,
                                       device_type=device_type, threads=opt("--st-threads"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = state(config)
    p = st.profile
    data = "synthetic data" if p.synthetic else f"dataset {config.getoption('--st-dataset')} from {config.getoption('--st-data-dir')}"
    return [
        f"speedtrain: profile {p.name}: {p.description}",
        f"speedtrain: device {device_label(config)}, {data}, seeds {st.seeds_label()}, "
        f"baselines {config.getoption('--st-baselines')} ({st.baselines_file})",
    ]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    import torch

    from speedtrain.hw.env import environment

    st = state(config)
    env = environment(torch.device(st.device_type))
    info = RunMeta(
        profile=st.profile.name, device=env["device"], gpu=env["gpu"] or {}, torch=env["torch"],
        cuda=env["cuda"], cudnn=env["cudnn"], cpu=env["cpu"], commit=env["commit"],
        dataset=config.getoption("--st-dataset"), synthetic=st.profile.synthetic, seeds=st.seeds or [],
        profile_scales=st.profile.scales(),
    ).to_machine_info()
    info.update(st.machine)
    info["seeds_rule"] = st.seeds_label()
    if st.interrupted:
        info["partial"] = "interrupted (Ctrl-C): only the cases that finished are in this run"
    machine_info["speedtrain"] = info


# --- before the first case -------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Check the session once before its first case (only if it has cases: a unit-test session
    pays nothing), print what the machine will do, and catch Ctrl-C between seeds."""
    config = session.config
    cases = [item for item in session.items if "run_case" in getattr(item, "fixturenames", ())]
    if not cases or config.option.collectonly:
        return
    _prepare(config, cases)


def _prepare(config: pytest.Config, cases: list[pytest.Item]) -> None:
    st, opt, write = state(config), config.getoption, writer(config)
    check_baselines(st, opt("--st-baselines"))
    choice = base_choice(st.device_type)
    st.machine["base_precision"] = {"precision": choice.precision, "reason": choice.reason}
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))  # xdist: the cores are shared
    threads, oversubscribed = worker_threads(st.device_type, st.threads, workers, physical_cores())
    if oversubscribed:
        write(f"speedtrain: warning: {oversubscribed}")
    base_fields = {**suite_base(st.device_type), **session_fields(config)}
    base = TrainConfig(**base_fields)
    for line in resource_warnings(base, machine_limits(base)):
        write(f"speedtrain: warning: {line}")
    gpus = visible_gpu_count() if st.device_type == "cuda" else 0
    running = [item.name for item in cases
               if will_run(getattr(getattr(item, "callspec", None), "params", {}),
                           {**base_fields, "dataset": case_dataset(item, opt("--st-dataset"))},
                           st.device_type, gpus) is None]
    warning = session_estimate(st.profile.name, st.device_type, running, len(cases) - len(running))
    if warning:
        write(warning)
    if not st.profile.synthetic:  # the smoke profile never reads (or downloads) a dataset
        for dataset in dict.fromkeys(case_dataset(item, opt("--st-dataset")) for item in cases):
            check_data(dataset, opt("--st-data-dir"), opt("--st-download"))  # the selected cases' data
    elif opt("--st-download"):
        write("speedtrain: --st-download: nothing downloaded: the smoke profile trains on synthetic data "
              "(the quick and full profiles read the dataset, and fetch it with --st-download)")
    # torch from here on, not before: a session refused above (baselines, data) never imports it (2-3 s)
    import torch

    from speedtrain.doctor.command import run_doctor

    st.machine["torch_threads"] = pin_threads(st.device_type, threads)
    report = run_doctor(torch.device(st.device_type), quick=True)
    st.machine["doctor"] = report.to_dict()
    st.matmul_peaks = report.matmul_peaks()  # each case's record carries its precision's (issue 12)
    st.matmul_sizes = report.matmul_sizes()  # and the matmul size it was measured at (issue 19)
    check_doctor(report, opt("--st-device"))
    bench = config.pluginmanager.getplugin("pytest-benchmark")
    if bench is None or getattr(bench, "disabled", False):
        st.self_run_note = ("pytest-benchmark is off (--benchmark-disable, or under xdist): speedtrain runs every "
                            "seed itself; the per-seed figures are in the verdicts and in extra_info")
        write(f"speedtrain: {st.self_run_note}")
    config.stash[PROGRESS] = Progress(len(cases), st.profile.name, st.device_type,
                                      write if st.profile.name != "smoke" else (lambda line: None))
    config.stash[STEPS] = session_steps(config, st.profile.name == "smoke", write)  # the TTY is read now
    catch_interrupts(st, write, config.add_cleanup)
    st.prepared = True


# --- end of session: verdicts against the stored baselines ----------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = state(config)
    if st.interrupted:
        session.exitstatus = pytest.ExitCode.INTERRUPTED
    mode = config.getoption("--st-baselines")
    if not st.records or mode == "off":
        return
    data = st.baselines
    if data is None:  # no preflight in this process (the xdist controller): read it now
        try:
            data = bl.load(st.baselines_file)
        except SpeedtrainError as exc:
            st.error = str(exc)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
    machine, profile = device_label(config), st.profile.name
    st.verdicts = judge(st, data, machine, config.getoption("--st-threshold"))
    if mode == "update":
        _update_baselines(session, st, machine, profile, exitstatus)
    elif config.getoption("--st-fail-on-regression"):
        unjudged = sum(r.verdict == stats.NOT_JUDGED for r in st.verdicts)
        if unjudged:
            st.notes.append(f"--st-fail-on-regression: {unjudged} case(s) not judged (one seed on a side) "
                            "cannot fail the session")
        if stats.regressed(st.verdicts):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            st.notes.append("regression against the baselines: failing the session (--st-fail-on-regression)")


def _update_baselines(session: pytest.Session, st: SuiteSession, machine: str, profile: str, exitstatus: int) -> None:
    if st.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED:
        st.notes.append("session interrupted: baselines left unchanged")
        return
    try:
        written = bl.update(st.baselines_file, machine, profile, st.records,
                            baseline_source(st, session.config.getoption("--st-dataset"),
                                            session.config.getoption("benchmark_save", None)))
    except SpeedtrainError as exc:
        st.error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    st.notes.append(f"baselines for {len(written)} cases on {machine} ({profile}) written to {st.baselines_file}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    st = state(config)
    if not st.records:
        return
    tr = terminalreporter
    tr.section("speedtrain verdicts")
    if st.error is not None:
        tr.write_line(f"error: {st.error}")
        return
    if st.profile.synthetic:
        tr.write_line(f"profile {st.profile.name}: synthetic data and tiny runs; these times check plumbing, they measure nothing.")
    for line in verdict_lines(st.verdicts, config.option.verbose > 0):
        tr.write_line(line)
    for line in (failed_line({name: (r.status, r.error) for name, r in st.records.items()}),
                 noisy_line({name: record.conditions for name, record in st.records.items()})):
        if line:
            tr.write_line(line)
    for note in st.notes:
        tr.write_line(note)
