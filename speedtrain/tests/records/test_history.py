"""Per-case history in baselines.json: kept across updates, capped, old files still load,
printed by ``speedtrain history``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedtrain.records import baselines as bl
from speedtrain.records import history
from speedtrain.cli.main import main
from speedtrain.common.errors import BaselineError
from speedtrain.records.record import CaseRecord

MACHINE = "NVIDIA H100 80GB HBM3"
NAME = "test_precision[fp16]"


def rec(times: list[float]) -> CaseRecord:
    return CaseRecord(section="precision", case="fp16", train_time_s=times, final_acc=[0.94] * len(times),
                      reached_target=[True] * len(times))


def source(i: int) -> dict:
    return {"date": f"2024-05-{i + 1:02d}T12:00:00+00:00", "commit": f"c{i:011d}", "torch": "2.4.0"}


def test_updates_keep_the_previous_figures(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    for i, times in enumerate([[10.0, 10.2], [9.0, 9.4, 9.2], [8.0]]):
        bl.update(path, MACHINE, "quick", {NAME: rec(times)}, source(i))
    entry = bl.load(path)["machines"][MACHINE]["quick"][NAME]
    assert entry["median_s"] == 8.0  # the current baseline is the last update
    assert [p["median_s"] for p in entry["history"]] == [10.1, 9.2, 8.0]
    assert [p["seeds"] for p in entry["history"]] == [2, 3, 1]
    assert entry["history"][1]["spread_s"] == pytest.approx(0.4)
    assert [p["commit"] for p in entry["history"]] == ["c00000000000", "c00000000001", "c00000000002"]


def test_history_is_capped(tmp_path: Path) -> None:
    data = bl.empty()
    for i in range(history.HISTORY_LIMIT + 5):
        bl.record(data, MACHINE, "quick", NAME, rec([float(i + 1)]), source(i % 28))
    points = data["machines"][MACHINE]["quick"][NAME]["history"]
    assert len(points) == history.HISTORY_LIMIT
    assert points[-1]["median_s"] == history.HISTORY_LIMIT + 5 and points[0]["median_s"] == 6.0


def test_a_file_from_before_histories_loads_and_its_figures_start_the_history(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    old_entry = {"metric": "train_time_s", "time_s": [5.0, 5.2], "median_s": 5.1, "spread_s": 0.2,
                 "acc": [0.94, 0.94], "reached": [True, True], "images_per_s": None,
                 "source": {"date": "2023-01-01T00:00:00+00:00", "commit": "old"}}
    path.write_text(json.dumps({"schema": 1, "machines": {MACHINE: {"quick": {NAME: old_entry}}}}))
    data = bl.load(path)  # no history key: still valid
    assert history.points(data["machines"][MACHINE]["quick"][NAME])[0].median_s == 5.1
    bl.update(path, MACHINE, "quick", {NAME: rec([4.0, 4.0])}, source(0))
    points = bl.load(path)["machines"][MACHINE]["quick"][NAME]["history"]
    assert [(p["commit"], p["median_s"]) for p in points] == [("old", 5.1), ("c00000000000", 4.0)]


@pytest.mark.parametrize("bad, words", [
    ("x", "history must be a list"),
    ([{"median_s": "fast"}], "history[0].median_s must be a number"),
    ([{"seeds": -1}], "history[0].seeds"),
    ([3], "history[0] must be an object"),
])
def test_a_malformed_history_is_refused_naming_the_place(tmp_path: Path, bad, words) -> None:
    data = bl.empty()
    bl.record(data, MACHINE, "quick", NAME, rec([1.0]), source(0))
    data["machines"][MACHINE]["quick"][NAME]["history"] = bad
    with pytest.raises(BaselineError, match=f"{NAME}.*{words}".replace("[", r"\[").replace("]", r"\]")):
        bl.validate(data)


def test_find_by_benchmark_name_or_case_id_and_errors() -> None:
    data = bl.empty()
    bl.record(data, MACHINE, "quick", NAME, rec([1.0]), source(0))
    bl.record(data, MACHINE, "full", NAME, rec([2.0]), source(0))
    bl.record(data, MACHINE, "quick", "test_memory_format[fp16]", rec([1.0]), source(0))
    assert [h.profile for h in history.find(data, NAME)] == ["quick", "full"]
    assert [h.profile for h in history.find(data, NAME, profile="full")] == ["full"]
    assert history.find(data, "test_memory_format[fp16]")[0].case == "test_memory_format[fp16]"
    with pytest.raises(BaselineError, match="ambiguous; use one of test_memory_format"):
        history.find(data, "fp16")
    with pytest.raises(BaselineError, match="no baseline of case .bf16.; the file holds NVIDIA H100 80GB HBM3 / full, NVIDIA H100 80GB HBM3 / quick"):
        history.find(data, "bf16")
    with pytest.raises(BaselineError, match="for machine 'cpu: x'"):
        history.find(data, NAME, machine="cpu: x")


def test_history_command_prints_every_point_with_its_change(capsys, tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    for i, times in enumerate([[10.0], [11.0], [8.8]]):
        bl.update(path, MACHINE, "quick", {NAME: rec(times)}, source(i))
    assert main(["history", NAME, "--baselines", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{NAME} on {MACHINE} (quick): 3 recorded baselines" in out
    lines = out.splitlines()
    assert lines[-3].split()[-1] == "-" and lines[-2].split()[-1] == "+10.0%" and lines[-1].split()[-1] == "-20.0%"
    assert "2024-05-03T12:00:00" in lines[-1] and "c00000000002" in lines[-1] and "8.800 s" in lines[-1]


def test_history_of_an_accuracy_case_speaks_points(capsys, tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    for i, accs in enumerate([[0.40, 0.42], [0.45, 0.47]]):
        record = CaseRecord(section="small_data", case="flip", metric="final_acc", train_time_s=[1.0, 1.0],
                            final_acc=accs, reached_target=[False, False])
        bl.update(path, MACHINE, "quick", {"test_small_data[flip]": record}, source(i))
    assert main(["history", "flip", "--baselines", str(path)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "46.000%" in last and "2.000 pt" in last and last.split()[-1] == "pt" and "+5.00 pt" in last
    assert " s " not in last


def test_history_command_errors_are_one_line(capsys, tmp_path: Path) -> None:
    assert main(["history", NAME, "--baselines", str(tmp_path / "none.json")]) == 2
    assert "no such baselines file" in capsys.readouterr().err
    path = tmp_path / "b.json"
    bl.update(path, MACHINE, "quick", {NAME: rec([1.0])}, source(0))
    assert main(["history", "bf16", "--baselines", str(path), "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no baseline of case 'bf16' for profile 'quick'") and len(err.splitlines()) == 1
