"""CaseRecord (what the plugin saves, what every reader reads) and the saved-run DataFrame."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from speedtrain.common.errors import BaselineError, ReportError
from speedtrain.records.record import CaseRecord, CurvePoint, merge_telemetry
from speedtrain.records.runs import load_run, to_dataframe
from speedtrain.stats.samples import CaseSummary
from speedtrain.train.loop import EpochStats, RunResult
from speedtrain.tests.conftest import GOLDEN

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns


def result(seed: int, train_s: float | None, *, status: str = "ok", reached: bool = False,
           energy: float | None = None) -> RunResult:
    epochs = [EpochStats(epoch=e, lr=0.1, train_loss=1.0 / e, train_acc=0.5, test_acc=0.25 * e,
                         epoch_s=(train_s or 1.0) / 2, eval_s=0.1, train_s=(train_s or 1.0) * e / 2) for e in (1, 2)]
    gpu = None if energy is None else {"available": True, "energy_j": energy, "power_mean_w": energy / 10}
    return RunResult(config={"seed": seed}, env={}, device="NVIDIA H100 80GB HBM3", status=status,
                     error=None if status == "ok" else "boom", epochs=epochs, train_time_s=train_s,
                     time_to_target_s=train_s if reached else None, reached_target=reached, final_acc=0.6,
                     images_per_s=100.0, peak_mem_allocated_bytes=2**30, timer={"clock": "cuda_events"}, gpu=gpu)


def from_results(results: list[RunResult], metric: str = "train_time_s") -> CaseRecord:
    return CaseRecord.from_results(results, section="precision", case="fp16", reference=False, step=None,
                                   profile="quick", metric=metric, seeds=[0, 1, 2][:len(results)], target_acc=0.94,
                                   config={"dataset": "cifar10", "precision": "fp16"}, monitor=True)


def test_a_record_survives_saving_as_pytest_benchmark_json() -> None:
    record = from_results([result(0, 10.0, reached=True, energy=300.0), result(1, 9.0, energy=250.0),
                           result(2, None, status="diverged")], metric="time_to_target_s")
    saved = json.loads(json.dumps(record.to_extra_info()))
    assert CaseRecord.from_extra_info(saved) == record
    assert saved["reached_fraction"] == pytest.approx(1 / 3) and saved["train_time_s"] == [10.0, 9.0, None]
    assert record.status == "diverged" and record.error == "boom" and record.curves[0][1] == CurvePoint(2, 10.0, 0.5, 0.5)
    assert record.summary() == CaseSummary("time_to_target_s", [10.0], [0.6, 0.6, 0.6], [True, False, False], 100.0)


def test_the_saved_keys_are_those_older_runs_have() -> None:
    committed = json.loads((GOLDEN / "smoke-cpu-run.json").read_text())  # an older version's run
    old = committed["benchmarks"][0]["extra_info"]
    saved = from_results([result(0, 1.0)]).to_extra_info()
    assert [key for key in saved if key in old] == list(old)  # newer fields may follow, none is lost
    again = CaseRecord.from_extra_info(old).to_extra_info()
    assert {key: again[key] for key in old} == old  # nothing lost on the way through


def test_telemetry_of_a_case_is_the_median_time_seeds_run() -> None:
    def run(seed: int, train_s: float | None, energy: float) -> SimpleNamespace:
        return SimpleNamespace(config={"seed": seed}, train_time_s=train_s,
                               gpu={"available": True, "energy_j": energy, "power_mean_w": energy / 10})

    merged = merge_telemetry([run(0, 12.0, 300.0), run(1, 10.0, 250.0), run(2, 11.0, 280.0)])
    assert merged["seed"] == 2 and merged["energy_j"] == 280.0 and merged["power_mean_w"] == 28.0
    assert merged["energy_j_per_seed"] == [300.0, 250.0, 280.0]  # in seed order
    # a failed seed (no time) ranks last; with two left the lower median is taken
    assert merge_telemetry([run(0, None, 999.0), run(1, 10.0, 250.0)])["seed"] == 1
    assert merge_telemetry([SimpleNamespace(config={"seed": 0}, train_time_s=1.0, gpu=None)]) is None


def test_reading_never_fails_and_verdicts_refuse_what_is_malformed() -> None:
    record = CaseRecord.from_extra_info({"section": "precision", "train_time_s": "fast", "final_acc": [None, "x"],
                                         "gpu": 5, "curves": [["x"], None], "step": "first", "timer": "perf_counter"},
                                        name="test_precision[fp16]")
    assert record.case == "fp16" and record.train_time_s == [] and record.final_acc == [None, None]
    assert record.gpu is None and record.curves == [] and record.step is None and record.timer == {}
    with pytest.raises(BaselineError, match=r"^extra_info\['train_time_s'\] must be a list of numbers or null, got 'fast'$"):
        record.summary()
    assert CaseRecord.from_extra_info({}).summary() == CaseSummary("train_time_s", [], [], [], None)
    assert CaseRecord.from_extra_info("junk").problems


@pytest.mark.parametrize("extra, key", [
    ({"metric": "speed"}, "extra_info['metric']"),
    ({"train_time_s": [1.0, "2"]}, "extra_info['train_time_s']"),
    ({"reached_target": [1, 0]}, "extra_info['reached_target']"),
    ({"final_acc": [float("nan")]}, "extra_info['final_acc']"),
    ({"images_per_s": "many"}, "extra_info['images_per_s']"),
])
def test_a_malformed_compared_figure_is_a_one_line_error(extra: dict, key: str) -> None:
    with pytest.raises(BaselineError) as exc:
        CaseRecord.from_extra_info(extra).summary()
    assert str(exc.value).startswith(key) and "\n" not in str(exc.value)


def test_a_run_case_names_file_and_case_in_errors(fake_runs: "FakeRuns") -> None:
    bench = fake_runs.bench("precision", "fp32", [10.0], final_acc="high")
    run = load_run(fake_runs.write("broken.json", fake_runs.run([bench])))
    with pytest.raises(ReportError, match=r"broken.json: case test_precision\[fp32\]: extra_info\['final_acc'\]"):
        run.cases[0].summary()


def test_dataframe_has_a_row_per_case_and_seed_with_units(fake_runs: "FakeRuns") -> None:
    a = fake_runs.write("a.json", fake_runs.run(fake_runs.sample()))
    b = fake_runs.write("b/a.json", fake_runs.run([fake_runs.bench("precision", "fp32", [12.0], reference=True)]))
    df = to_dataframe([a, b])
    assert {"train_time_s", "final_acc", "images_per_s", "energy_j", "power_mean_w", "seed"} <= set(df.columns)
    assert len(df) == 3 + 3 + 1 + 3 + 1 + 2 + 2 + 2 + 1  # seeds per case; a case without figures keeps a row
    fp16 = df[(df.run == "a") & (df.case == "fp16")]
    assert fp16.train_time_s.tolist() == [5.0, 5.2, 4.8] and fp16.seed.tolist() == [0, 1, 2]
    assert fp16.final_acc.median() == pytest.approx(0.941)
    # the telemetry summary is one seed's: energy, power and utilisation sit on that row
    assert fp16.telemetry_seed.tolist() == [True, False, False] and fp16.power_mean_w.notna().sum() == 1
    oom = df[(df.run == "a") & (df.case == "bf16")]
    assert oom.status.tolist() == ["oom"] and math.isnan(oom.train_time_s.iloc[0])
    assert df[df.run == "a#2"].train_time_s.tolist() == [12.0]
    assert to_dataframe(a).equals(df[df.run == "a"])


def test_dataframe_of_a_real_smoke_run(smoke_run: Path, smoke_data: dict) -> None:
    df = to_dataframe(smoke_run)
    assert set(df.name) == {b["name"] for b in smoke_data["benchmarks"]}
    fp32 = df[df.name == "test_precision[fp32]"]
    saved = next(b for b in smoke_data["benchmarks"] if b["name"] == "test_precision[fp32]")["extra_info"]
    assert fp32.train_time_s.tolist() == saved["train_time_s"] and (fp32.device.str.startswith("cpu")).all()
