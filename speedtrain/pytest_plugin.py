"""The pytest plugin behind ``benchmarks/``: options, the ``run_case`` fixture, the verdict table.

A case only describes a configuration::

    @pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16", "half"])
    def test_precision(run_case, precision):
        run_case(precision=precision)

``run_case`` builds the config (see speedtrain.profiles for the order), runs the shared
trainer once per seed as pytest-benchmark rounds (so the saved stats are whole-run times),
and puts every measured figure into ``benchmark.extra_info``. At the end of the session each
case is compared with ``baselines.json`` and a verdict table is printed.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from speedtrain import baselines as bl
from speedtrain.config import TrainConfig, check_device
from speedtrain.errors import ConfigError, DataError, SpeedtrainError
from speedtrain.profiles import PROFILES, Profile, default_profile, suite_base

STATE = pytest.StashKey[dict]()
BASELINE_MODES = ("check", "update", "off")


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
    config.stash[STATE] = {
        "profile": profile,
        "seeds": list(range(seeds if seeds is not None else profile.seeds)),
        "baselines_file": file,
        "cases": {},  # benchmark name -> extra_info
        "verdicts": [],
    }


def _state(config: pytest.Config) -> dict[str, Any]:
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
    p: Profile = st["profile"]
    data = "synthetic data" if p.synthetic else f"dataset {config.getoption('--st-dataset')} from {config.getoption('--st-data-dir')}"
    return [
        f"speedtrain: profile {p.name}: {p.description}",
        f"speedtrain: device {_device_label(config)}, {data}, seeds {st['seeds']}, "
        f"baselines {config.getoption('--st-baselines')} ({st['baselines_file']})",
    ]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    import torch

    from speedtrain.env import environment

    st = _state(config)
    env = environment(torch.device(_session_device(config)))
    machine_info["speedtrain"] = {
        "profile": st["profile"].name,
        "device": env["device"],
        "gpu": env["gpu"],
        "torch": env["torch"],
        "cuda": env["cuda"],
        "cudnn": env["cudnn"],
        "cpu": env["cpu"],
        "commit": env["commit"],
        "dataset": config.getoption("--st-dataset"),
        "synthetic": st["profile"].synthetic,
        "seeds": st["seeds"],
    }


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


def case_extra_info(results: list, *, section: str, case: str, reference: bool, step: Optional[int],
                    profile: Profile, seeds: list[int], cfg: TrainConfig) -> dict[str, Any]:
    """Everything a case measured, per seed, in the shape reports and baselines read."""
    first = results[0]
    statuses = [r.status for r in results]
    status = next((s for s in ("oom", "diverged") if s in statuses), "ok")
    return {
        "section": section,
        "case": case,
        "reference": reference,
        "ladder": step is not None,
        "step": step,
        "profile": profile.name,
        "synthetic": first.synthetic,
        "dataset": cfg.dataset,
        "data_source": first.data_source,
        "device": first.device,
        "seeds": seeds,
        "status": status,
        "error": next((r.error for r in results if r.error), None),
        "metric": profile.metric,
        # a diverged seed's partial time is not comparable with a finished run's: left out
        "train_time_s": [r.train_time_s if r.status == "ok" else None for r in results],
        "time_to_target_s": [r.time_to_target_s for r in results],
        "reached_target": [r.reached_target for r in results],
        "reached_fraction": sum(r.reached_target for r in results) / len(results),
        "target_acc": cfg.target,
        "final_acc": [r.final_acc for r in results],
        "images_per_s": [r.images_per_s for r in results],
        "epoch_time_s": [bl.median_or_none(e.epoch_s for e in r.epochs) for r in results],
        "eval_time_s": [r.eval_time_s for r in results],
        "warmup_s": [r.warmup_s for r in results],
        "n_params": first.n_params,
        "peak_mem_allocated_bytes": max((r.peak_mem_allocated_bytes or 0 for r in results), default=0) or None,
        "peak_mem_reserved_bytes": max((r.peak_mem_reserved_bytes or 0 for r in results), default=0) or None,
        "diverged": any(r.diverged for r in results),
        "timer": first.timer,
        "config": cfg.to_dict(),
        "gpu": _merge_gpu(results),
        "curves": [[{"epoch": e.epoch, "train_s": e.train_s, "test_acc": e.test_acc, "train_loss": e.train_loss}
                    for e in r.epochs] for r in results],
    }


def _merge_gpu(results: list) -> Optional[dict[str, Any]]:
    """One telemetry summary per case: that of the seed with the median training time (the
    lower one for an even count), so its figures belong to one real run; every seed's energy kept."""
    watched = [r for r in results if r.gpu]
    if not watched:
        return None
    chosen = bl.lower_median(watched, key=lambda r: (r.train_time_s is None, r.train_time_s or 0.0))
    merged = dict(chosen.gpu)
    merged["seed"] = chosen.config.get("seed")
    merged["energy_j_per_seed"] = [(r.gpu or {}).get("energy_j") for r in results]
    return merged


def _case_identity(request: pytest.FixtureRequest) -> tuple[str, str, bool]:
    """(section, case id, is the section's reference case) from the test's name and parameters."""
    section = request.function.__name__.removeprefix("test_")
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return section, "default", True
    return section, callspec.id, all(i == 0 for i in callspec.indices.values())


@pytest.fixture
def run_case(request: pytest.FixtureRequest, benchmark: Any) -> Callable[..., dict[str, Any]]:
    """``run_case(**config_fields, step=None, monitor=True)``: train the case, record it."""
    config = request.config
    st = _state(config)
    profile: Profile = st["profile"]

    def run(*, step: Optional[int] = None, monitor: bool = True, **fields: Any) -> dict[str, Any]:
        from speedtrain.gpumonitor import GpuMonitor
        from speedtrain.train import train

        session = {"dataset": config.getoption("--st-dataset"), "data_dir": config.getoption("--st-data-dir"),
                   "download": config.getoption("--st-download"), "device": config.getoption("--st-device")}
        try:
            base = TrainConfig(**{**suite_base(_session_device(config)), **session, **fields})
            cfgs = [profile.apply(base, seed) for seed in st["seeds"]]
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
        info = case_extra_info(results, section=section, case=case, reference=reference, step=step,
                               profile=profile, seeds=[c.seed for c in cfgs[:len(results)]], cfg=cfgs[0])
        info["monitor"] = monitor
        benchmark.extra_info.update(info)
        st["cases"][benchmark.name] = info
        if info["status"] != "ok":
            warnings.warn(f"{benchmark.name}: {info['status']}: {info['error']}", stacklevel=2)
        return info

    return run


# --- end of session: verdicts against the stored baselines ----------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = _state(config)
    mode = config.getoption("--st-baselines")
    if not st["cases"] or mode == "off":
        return
    try:
        data = bl.load(st["baselines_file"])
    except SpeedtrainError as exc:
        st["baseline_error"] = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    machine, profile = _device_label(config), st["profile"].name
    for name, info in st["cases"].items():
        new = bl.CaseSummary.from_extra_info(info)
        base = bl.lookup(data, machine, profile, name)
        st["verdicts"].append((name, bl.compare(base, new, threshold=config.getoption("--st-threshold")), base, new))
    if mode == "update":
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            st["update_note"] = "session interrupted: baselines left unchanged"
            return
        source = _source(config)
        for name, info in st["cases"].items():
            if info["status"] == "ok":
                bl.record(data, machine, profile, name, info, source)
        bl.save(st["baselines_file"], data)
        st["update_note"] = f"baselines for {len(st['cases'])} cases on {machine} ({profile}) written to {st['baselines_file']}"
    elif config.getoption("--st-fail-on-regression") and bl.regressed([v for _, v, _, _ in st["verdicts"]]):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        st["update_note"] = "regression against the baselines: failing the session (--st-fail-on-regression)"


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
        "profile": _state(config)["profile"].name,
        "dataset": config.getoption("--st-dataset"),
        "synthetic": _state(config)["profile"].synthetic,
        "run": config.getoption("benchmark_save", None) or "",
    }


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    st = _state(config)
    if not st["cases"]:
        return
    tr = terminalreporter
    tr.section("speedtrain verdicts")
    if "baseline_error" in st:
        tr.write_line(f"error: {st['baseline_error']}")
        return
    if st["profile"].synthetic:
        tr.write_line(f"profile {st['profile'].name}: synthetic data and tiny runs; these times check plumbing, they measure nothing.")
    if st["verdicts"]:
        tr.write_line(bl.format_table(st["verdicts"]))
    if "update_note" in st:
        tr.write_line(st["update_note"])
