"""DAWNBench entry files exported from a saved run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from speedtrain.report.dawnbench import Entrant, export_dawnbench
from speedtrain.common.errors import ReportError

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns


@pytest.fixture
def dawnbench_run(fake_runs: "FakeRuns") -> Path:
    """The sample run plus a dawnbench case whose seeds reach the target at 24, 20 and 30 s."""
    dawn = fake_runs.bench("dawnbench", "resnet9", [26.0, 22.0, 33.0], test="test_dawnbench", metric="time_to_target_s",
                      time_to_target_s=[24.0, 20.0, 30.0])
    return fake_runs.write("run.json", fake_runs.run(fake_runs.sample() + [dawn]))


def read_tsv(path: str) -> list[list[str]]:
    return [line.split("\t") for line in Path(path).read_text().splitlines()]


def test_export_writes_json_and_tsv(dawnbench_run: Path, tmp_path: Path) -> None:
    paths = export_dawnbench(str(dawnbench_run), str(tmp_path / "dawn"))
    assert [Path(p).suffix for p in paths] == [".json", ".tsv"]
    assert Path(paths[0]).name == "speedtrain_resnet9_1v100_pytorch.json"

    entry = json.loads(Path(paths[0]).read_text())
    for key in ("version", "author", "authorEmail", "framework", "codeURL", "model", "hardware",
                "timestamp", "misc"):
        assert key in entry
    assert entry["framework"] == "PyTorch 2.4.0"
    assert entry["hardware"] == "1 x Tesla V100-SXM2-16GB"
    assert entry["timestamp"] == "2024-05-01"
    assert "costPerHour" not in entry  # no cost given: left out, not null
    assert entry["misc"]["case"] == "test_dawnbench[resnet9]"
    assert entry["misc"]["profile"] == "quick" and entry["misc"]["synthetic"] is False
    assert entry["misc"]["config"]["model"] == "resnet9"

    rows = read_tsv(paths[1])
    assert rows[0] == ["epoch", "hours", "top1Accuracy"]
    hours = [float(r[1]) for r in rows[1:]]
    assert hours == sorted(hours) and len(set(hours)) == len(hours)
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3, 4]
    assert float(rows[-1][2]) == pytest.approx(94.0)  # percent, not a fraction


def test_tsv_follows_the_median_seed(dawnbench_run: Path, tmp_path: Path) -> None:
    paths = export_dawnbench(str(dawnbench_run), str(tmp_path / "dawn"))
    # Seeds reach the target at 24, 20, 30 s: the median seed is seed 0, which trained 26 s.
    assert float(read_tsv(paths[1])[-1][1]) == pytest.approx(26.0 / 3600)
    assert json.loads(Path(paths[0]).read_text())["misc"]["exported seed"] == 0


def test_named_case_and_entrant_fields(dawnbench_run: Path, tmp_path: Path) -> None:
    entrant = Entrant(author="Jane Doe", email="jane@example.org", code_url="https://example.org/code",
                      cost_per_hour=3.06)
    named = export_dawnbench(str(dawnbench_run), str(tmp_path / "b"), case="fp16", entrant=entrant)
    entry = json.loads(Path(named[0]).read_text())
    assert entry["misc"]["case"] == "test_precision[fp16]"
    assert Path(named[0]).name.startswith("jane-doe_resnet9-fp16_")  # the case, after its model
    assert (entry["author"], entry["authorEmail"], entry["codeURL"], entry["costPerHour"]) == \
        ("Jane Doe", "jane@example.org", "https://example.org/code", 3.06)


def test_a_run_without_a_dawnbench_case_is_an_error_not_another_case(fake_runs: "FakeRuns", tmp_path: Path) -> None:
    run = fake_runs.write("run.json", fake_runs.run(fake_runs.sample()))  # curves, but no dawnbench section
    with pytest.raises(ReportError, match="no dawnbench case to export"):
        export_dawnbench(str(run), str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("nproc, machine_gpus, hardware, tag", [
    (None, 8, "1 x Tesla V100-SXM2-16GB", "1v100"),  # an 8-GPU machine, one GPU used
    (4, 8, "4 x Tesla V100-SXM2-16GB", "4v100"),
])
def test_hardware_counts_the_gpus_used(fake_runs: "FakeRuns", tmp_path: Path, nproc, machine_gpus, hardware, tag) -> None:
    config = {"model": "resnet9", **({"nproc": nproc} if nproc else {})}
    dawn = fake_runs.bench("dawnbench", "resnet9", [26.0], test="test_dawnbench", config=config)
    data = fake_runs.run([dawn])
    data["machine_info"]["speedtrain"]["gpu"]["count"] = machine_gpus
    paths = export_dawnbench(str(fake_runs.write("run.json", data)), str(tmp_path / "out"))
    assert json.loads(Path(paths[0]).read_text())["hardware"] == hardware
    assert Path(paths[0]).name == f"speedtrain_resnet9_{tag}_pytorch.json"


def test_a_cpu_run_is_no_gpu_entry(fake_runs: "FakeRuns", tmp_path: Path) -> None:
    dawn = fake_runs.bench("dawnbench", "resnet9", [26.0], test="test_dawnbench", device="cpu: AMD EPYC")
    data = fake_runs.run([dawn], device="cpu: AMD EPYC")
    data["machine_info"]["speedtrain"]["gpu"] = None
    paths = export_dawnbench(str(fake_runs.write("run.json", data)), str(tmp_path / "out"))
    assert json.loads(Path(paths[0]).read_text())["hardware"] == "cpu: AMD EPYC"
    assert "_cpu_" in Path(paths[0]).name


def test_errors(fake_runs: "FakeRuns", tmp_path: Path) -> None:
    no_curves = [fake_runs.bench("dawnbench", "resnet9", [10.0], test="test_dawnbench", drop=("curves",))]
    run = fake_runs.write("run.json", fake_runs.run(no_curves))
    with pytest.raises(ReportError, match="no dawnbench case has accuracy curves"):
        export_dawnbench(str(run), str(tmp_path / "out"))
    with pytest.raises(ReportError, match="no case 'nope'"):
        export_dawnbench(str(run), str(tmp_path / "out"), case="nope")
    with pytest.raises(ReportError, match="no such file"):
        export_dawnbench(str(tmp_path / "missing.json"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_smoke_run_entry_carries_a_warning(fake_runs: "FakeRuns", tmp_path: Path) -> None:
    dawn = fake_runs.bench("dawnbench", "resnet9", [26.0], test="test_dawnbench", profile="smoke")
    run = fake_runs.write("run.json", fake_runs.run([dawn], profile="smoke"))
    json_path, tsv_path = export_dawnbench(str(run), str(tmp_path / "out"))
    entry = json.loads(Path(json_path).read_text())
    assert "not a valid DAWNBench entry" in entry["misc"]["warning"]
    first, header = Path(tsv_path).read_text().splitlines()[:2]  # the table says so too
    assert first == f"# WARNING: {entry['misc']['warning']}" and header == "epoch\thours\ttop1Accuracy"


def test_a_measured_entrys_table_has_no_warning(dawnbench_run: Path, tmp_path: Path) -> None:
    tsv = Path(export_dawnbench(str(dawnbench_run), str(tmp_path / "out"))[1]).read_text()
    assert tsv.startswith("epoch\thours\ttop1Accuracy\n")
