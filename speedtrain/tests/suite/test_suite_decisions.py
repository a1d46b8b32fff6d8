"""The suite's decision functions, without running pytest sessions: profile, seeds, reference
cases, machine state, progress lines, verdict rows."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from speedtrain.recipes.profiles import PROFILES
from speedtrain.train.progress import Progress, duration
from speedtrain.records.record import CaseRecord
from speedtrain.records.section import Section
from speedtrain.hw.runconditions import Conditions, gpu_clocks, noisy_reason, physical_cores
from speedtrain.suite.seed_runner import case_identity
from speedtrain.stats.samples import CaseSummary
from speedtrain.suite.session import SuiteSession, choose_profile, judge, parse_seeds
from speedtrain.tests.conftest import ROOT


@pytest.mark.parametrize("option, explicit, cuda, expected", [
    (None, False, True, "smoke"),  # bare `pytest` on a GPU machine: tests stay tests
    (None, True, True, "quick"),  # `pytest benchmarks` on a GPU machine measures
    (None, True, False, "smoke"),
    ("full", False, False, "full"),
])
def test_profile_choice(option, explicit, cuda, expected):
    assert choose_profile(option, explicit, cuda) == expected


def test_seeds_option():
    assert parse_seeds(None) is None and parse_seeds("auto") == "auto" and parse_seeds("3") == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(pytest.UsageError, match="--st-seeds"):
            parse_seeds(bad)


def request_for(function: str, params: dict, indices: dict, **module: object) -> SimpleNamespace:
    callspec = SimpleNamespace(params=params, indices=indices, id="-".join(map(str, params.values())))
    return SimpleNamespace(function=SimpleNamespace(__name__=function), node=SimpleNamespace(callspec=callspec),
                           module=SimpleNamespace(**module))


def test_reference_is_named_by_the_module():
    ref = {"downsample": "maxpool"}
    r18_maxpool = request_for("test_downsample", {"model": "resnet18", "downsample": "maxpool"},
                              {"model": 1, "downsample": 0}, REFERENCE=ref, SECTION_BY=("model",))
    assert case_identity(r18_maxpool)[:3] == ("downsample-resnet18", "resnet18-maxpool", True)
    strided = request_for("test_downsample", {"model": "resnet9", "downsample": "strided"},
                          {"model": 0, "downsample": 1}, REFERENCE=ref, SECTION_BY=("model",))
    assert case_identity(strided)[:3] == ("downsample-resnet9", "resnet9-strided", False)
    per_section = {"tricks": {"trick": {}}, "tricks_cumulative": {"step": 0}}
    assert case_identity(request_for("test_tricks", {"trick": {}}, {"trick": 0}, REFERENCE=per_section))[2]
    assert not case_identity(request_for("test_tricks_cumulative", {"step": 3}, {"step": 3}, REFERENCE=per_section))[2]
    # without REFERENCE: the first value of every parameter
    assert case_identity(request_for("test_x", {"a": 1}, {"a": 0}))[2]
    assert not case_identity(request_for("test_x", {"a": 2}, {"a": 1}))[2]


def test_a_section_is_shown_as_its_file_says():
    memory = Section("Memory format", parameter="precision and memory format", order=50)
    case = request_for("test_memory_format", {"precision": "fp16", "channels_last": True},
                       {"precision": 1, "channels_last": 1}, SECTION=memory, SECTION_BY=("precision",))
    assert case_identity(case)[3] == Section("Memory format (fp16)", "precision and memory format", order=50)
    tricks = {"tricks": Section("Each alone", "trick"), "tricks_cumulative": Section("Cumulative", "step")}
    assert case_identity(request_for("test_tricks_cumulative", {"step": 1}, {"step": 1}, SECTIONS=tricks))[3].title == "Cumulative"
    assert case_identity(request_for("test_x", {"a": 1}, {"a": 0}))[3] is None
    assert Section("Batch size", "batch size", unit="images per step").axis == "batch size (images per step)"
    with pytest.raises(ValueError):
        Section("", "x")


BENCHMARK_FILES = sorted((ROOT / "benchmarks").glob("test_*.py"))


@pytest.mark.parametrize("path", BENCHMARK_FILES, ids=lambda p: p.stem)
def test_every_benchmark_section_says_how_it_is_shown(path):
    """Each section of each benchmark file has its Section (title, parameter, order) beside its
    file's REFERENCE, so the report never falls back to a raw id."""
    module = _load(path)
    sections = [name.removeprefix("test_") for name in vars(module) if name.startswith("test_")]
    assert sections
    shown = getattr(module, "SECTIONS", {})
    for section in sections:
        found = shown.get(section, getattr(module, "SECTION", None))
        assert isinstance(found, Section), f"{path.name}: no Section for {section}"
        assert found.order is not None, f"{path.name}: {section} has no place in the report's order"
    if len(sections) > 1 or getattr(module, "SECTION_BY", ()):
        return
    assert "REFERENCE = " in path.read_text() or path.stem == "test_multigpu"


def _load(path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_physical_cores_count_smt_siblings_once(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for cpu, core in enumerate([0, 0, 1, 1]):
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "core_id").write_text(f"{core}\n")
        (topo / "physical_package_id").write_text("0\n")
    assert physical_cores(tmp_path) == 2
    assert physical_cores(tmp_path / "missing") == 4  # unreadable topology: the usable CPUs


def test_noisy_machine_reasons():
    quiet = Conditions(torch_threads=2, cpus=4, physical_cores=2, load_before=[1.0, 1, 1], load_after=[2.5, 1, 1])
    assert noisy_reason(quiet) is None
    busy = Conditions(torch_threads=2, cpus=4, physical_cores=2, load_before=[1.0, 1, 1], load_after=[6.2, 3, 1])
    assert noisy_reason(busy) == "load 6.2 > 4 CPUs"
    hot = {"cpus": 4, "gpu_clocks": {"throttle_reasons": ["sw_power_cap", "hw_thermal"]}}
    assert noisy_reason(hot) == "GPU throttled (hw_thermal)"  # at the power cap is normal for a busy GPU
    assert gpu_clocks({"available": False}) == {}
    assert gpu_clocks({"available": True, "sm_clock_mean_mhz": 1400.0})["sm_clock_mean_mhz"] == 1400.0


def test_progress_lines_and_estimates():
    assert duration(42) == "42 s" and duration(185) == "3 min 05 s" and duration(7620) == "2 h 07 min"
    lines: list[str] = []
    progress = Progress(3, "quick", "cuda", lines.append)
    assert progress.case_estimate(None, 2) == 60.0  # nothing known: the profile's rough figure
    assert progress.case_estimate(10.0, 2) == 30.0  # the previous run's time x the default overhead
    progress.seed_started("test_precision[fp16]", 0, "2", 30.0)
    assert lines[-1].startswith("[case 1/3] test_precision[fp16] seed 0 of 2, elapsed 0 s, about 1 min 30 s left")
    progress.seed_done(10.0, 12.0)
    assert progress.case_estimate(10.0, 1) == pytest.approx(12.0)  # the measured overhead


def _record(times: list[float], load: float) -> CaseRecord:
    return CaseRecord(section="precision", case="fp32", metric="train_time_s", train_time_s=times,
                      final_acc=[0.94] * len(times), reached_target=[True] * len(times), seeds=list(range(len(times))),
                      conditions={"cpus": 2, "load_before": [load, 0, 0], "load_after": [load, 0, 0]})


def test_verdict_rows_carry_noise_and_the_noisy_machine_mark():
    st = SuiteSession(PROFILES["quick"], [0, 1, 2], "baselines.json")
    st.records = {"test_precision[fp32]": _record([10.0, 10.1, 10.2], 5.0), "test_precision[fp16]": _record([5.0], 0.5)}
    data = {"machines": {"gpu": {"quick": {
        name: {"metric": "train_time_s", "time_s": [10.0, 10.1, 10.2], "acc": [0.94] * 3, "reached": [True] * 3}
        for name in st.records}}}}
    rows = {r.case: r for r in judge(st, data, "gpu", 0.05)}
    noisy = rows["test_precision[fp32]"]
    assert noisy.detail.startswith("noisy machine (load 5.0 > 2 CPUs): ")
    assert noisy.noise.spread == pytest.approx(0.0099, abs=0.001) and noisy.noise.detectable is not None
    assert noisy.noisy_machine == "load 5.0 > 2 CPUs"
    assert "noise 1.0%, detects" in noisy.detail
    single = rows["test_precision[fp16]"]
    assert single.verdict == "not judged" and single.noise is None and single.noisy_machine is None


def test_auto_records_are_judged_as_sequential():
    record = _record([10.0, 10.1, 10.2, 10.3, 10.4], 0.0)
    record.seeds_auto = True
    assert record.summary().sequential is True
    again = CaseRecord.from_extra_info(record.to_extra_info(), "test_precision[fp32]")
    assert again.seeds_auto and again.conditions == record.conditions
    assert CaseSummary("train_time_s", [1.0], [], [False, False], None).n_seeds == 2


def test_a_case_gets_the_doctor_measured_peak_of_its_precision():
    st = SuiteSession(PROFILES["quick"], [0], "baselines.json")
    assert st.measured_peak("fp16") is None  # a CPU session: the doctor measured no matmul
    st.matmul_peaks = {"fp32": 19e12, "fp16": 250e12}
    assert st.measured_peak("half") == st.measured_peak("fp16") == 250e12  # half multiplies in fp16
    assert st.measured_peak("fp32") == 19e12 and st.measured_peak("bf16") is None
    assert st.measured_peak("fp32", gpus=4) == 4 * 19e12  # a DDP case's FLOP/s are its 4 GPUs'
    st.matmul_sizes = {"fp32": 8192, "fp16": 16384}
    assert st.measured_peak_size("half") == 16384 and st.measured_peak_size("bf16") is None


@pytest.mark.parametrize("metric, seeds_run", [(None, 5), ("final_acc", 20)])
def test_auto_seeds_follow_the_cases_own_figure(monkeypatch, metric, seeds_run):
    """--st-seeds auto sizes a case on the figure it is judged by: steady times stop at the
    fewest seeds, while the same runs' accuracies, 1 point apart, need the cap."""
    from speedtrain.train import loop as trainer
    from speedtrain.config.trainconfig import TrainConfig
    from speedtrain.suite.seed_runner import run_seeds

    accuracies = iter([0.90, 0.91, 0.89, 0.92, 0.88] * 5)
    monkeypatch.setattr(trainer, "train", lambda cfg, **kw: SimpleNamespace(
        status="ok", train_time_s=10.0, time_to_target_s=None, final_acc=next(accuracies)))
    st = SuiteSession(PROFILES["quick"], None, "baselines.json")
    runs = run_seeds(st, TrainConfig(), name="test_small_data[flip]", monitor=False, metric=metric)
    assert len(runs.results) == seeds_run
    assert ("pt" in runs.note) == (metric == "final_acc")
