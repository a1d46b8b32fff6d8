"""The baselines file: record, lookup, load/save/validation, and concurrent updates."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from speedtrain.records import baselines as bl
from speedtrain.records.baselines import load, lookup, record, save
from speedtrain.common.errors import BaselineError
from speedtrain.records.record import CaseRecord
from speedtrain.stats.samples import CaseSummary

MACHINE = "NVIDIA H100 80GB HBM3"
SOURCE = {"date": "2024-05-01T12:00:00+00:00", "commit": "abc123", "torch": "2.3.0",
          "cuda": "12.1", "driver": "550.54.15", "gpu": MACHINE, "profile": "quick",
          "dataset": "cifar10", "synthetic": False, "run": "0001_quick"}


# --- file -----------------------------------------------------------------------------------

RECORD = CaseRecord(section="precision", case="fp16", train_time_s=[10.0, 10.4, 10.1],
                    time_to_target_s=[8.0, 8.2, None], final_acc=[0.941, 0.942, 0.938],
                    reached_target=[True, True, False], images_per_s=[120000.0, 118000.0, 119000.0])


def recorded() -> dict[str, Any]:
    data = bl.empty()
    record(data, MACHINE, "quick", "test_precision[fp16]", RECORD, SOURCE)
    return data


def test_record_and_lookup() -> None:
    data = recorded()
    entry = data["machines"][MACHINE]["quick"]["test_precision[fp16]"]
    assert entry["median_s"] == 10.1 and entry["spread_s"] == pytest.approx(0.4)
    assert entry["images_per_s"] == 119000.0 and entry["source"]["run"] == "0001_quick"
    s = lookup(data, MACHINE, "quick", "test_precision[fp16]")
    assert s == CaseSummary("train_time_s", [10.0, 10.4, 10.1], [0.941, 0.942, 0.938],
                            [True, True, False], 119000.0)
    assert lookup(data, MACHINE, "full", "test_precision[fp16]") is None
    assert lookup(data, "cpu: other", "quick", "test_precision[fp16]") is None
    json.dumps(data, allow_nan=False)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    data = recorded()
    save(path, data)
    assert load(path) == data
    assert path.read_text().startswith('{\n  "schema": 1')  # human-readable, indented


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load(tmp_path / "nope.json") == {"schema": 1, "machines": {}}


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    path.write_text('{"schema": 1, "machines": {')
    with pytest.raises(BaselineError) as exc:
        load(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not valid JSON") and "line 1" in msg and "\n" not in msg


def _corrupt(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    data["machines"][MACHINE]["quick"]["test_precision[fp16]"][key] = value
    return data


@pytest.mark.parametrize("content, message", [
    ([], "the top level must be an object"),
    ({"schema": 2, "machines": {}}, "schema must be 1, got 2"),
    ({"schema": 1}, "machines must be an object"),
    ({"schema": 1, "machines": {"X": []}}, "machines['X'] must be an object of profiles"),
    ({"schema": 1, "machines": {"X": {"quick": 3}}}, "machines['X']['quick'] must be an object"),
    (_corrupt(recorded(), "time_s", [10.0, "x"]),
     f"machines[{MACHINE!r}]['quick']['test_precision[fp16]'].time_s must be a list of numbers"),
    (_corrupt(recorded(), "metric", "speed"),
     f"machines[{MACHINE!r}]['quick']['test_precision[fp16]'].metric must be one of"),
    (_corrupt(recorded(), "reached", [1]), "].reached must be a list of true/false"),
    (_corrupt(recorded(), "median_s", "10"), "].median_s must be a number or null"),
    (_corrupt(recorded(), "source", {"synthetic": "no"}), "].source.synthetic must be true"),
])
def test_wrong_structure_names_the_path_inside(tmp_path: Path, content: Any,
                                               message: str) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(content))
    with pytest.raises(BaselineError) as exc:
        load(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and message in msg and "\n" not in msg


def test_missing_entry_key_is_named(tmp_path: Path) -> None:
    data = recorded()
    del data["machines"][MACHINE]["quick"]["test_precision[fp16]"]["acc"]
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=r"\['test_precision\[fp16\]'\] lacks the key 'acc'"):
        load(path)


def test_save_refuses_invalid_data(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    with pytest.raises(BaselineError, match="refusing to save: schema must be 1"):
        save(path, {"machines": {}})
    assert not path.exists()


@pytest.mark.parametrize("target", ["os.replace", "json.dumps"])
def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    path = tmp_path / "baselines.json"
    save(path, bl.empty())
    old = path.read_text()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full (simulated)")

    module, name = target.split(".")
    monkeypatch.setattr({"os": os, "json": json}[module], name, boom)
    with pytest.raises(OSError, match="simulated"):
        save(path, recorded())
    monkeypatch.undo()
    assert path.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.json"]  # no temp file


# --- concurrent updates ---------------------------------------------------------------------

def one_seed(t: float) -> CaseRecord:
    return CaseRecord(section="precision", case="x", train_time_s=[t], final_acc=[0.9], reached_target=[False])


def test_an_update_paused_between_read_and_write_loses_no_other_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Updater A reads, then pauses before writing; B updates meanwhile. Both cases survive,
    and the case both measured holds the figure of the later writer."""
    path = tmp_path / "baselines.json"
    bl.update(path, MACHINE, "quick", {"test_old": one_seed(1.0)}, SOURCE)
    a_has_read, release_a = threading.Event(), threading.Event()
    real_save = bl.save

    def save_pausing_a(p: Any, data: Any) -> None:
        if threading.current_thread().name == "A":
            a_has_read.set()
            assert release_a.wait(30)
        real_save(p, data)

    monkeypatch.setattr(bl, "save", save_pausing_a)
    a = threading.Thread(name="A", target=bl.update,
                         args=(path, MACHINE, "quick", {"test_a": one_seed(2.0), "test_both": one_seed(5.0)}, SOURCE))
    b = threading.Thread(name="B", target=bl.update,
                         args=(path, MACHINE, "quick", {"test_b": one_seed(3.0), "test_both": one_seed(6.0)}, SOURCE))
    a.start()
    assert a_has_read.wait(30)
    b.start()
    b.join(0.5)
    assert b.is_alive()  # B waits for A's lock instead of reading what A is about to replace
    release_a.set()
    a.join(30)
    b.join(30)
    cases = load(path)["machines"][MACHINE]["quick"]
    assert set(cases) == {"test_old", "test_a", "test_b", "test_both"}
    assert cases["test_both"]["time_s"] == [6.0]  # B wrote last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.json", "baselines.json.lock"]


def test_update_keeps_other_machines_profiles_and_failed_cases_out(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    bl.update(path, "another GPU", "quick", {"test_a": one_seed(1.0)}, SOURCE)
    failed = CaseRecord(section="precision", case="y", status="oom")
    written = bl.update(path, MACHINE, "full", {"test_a": one_seed(2.0), "test_oom": failed}, SOURCE)
    assert written == ["test_a"]
    machines = load(path)["machines"]
    assert machines["another GPU"]["quick"]["test_a"]["time_s"] == [1.0]
    assert set(machines[MACHINE]["full"]) == {"test_a"}


def test_each_case_is_filed_under_the_gpu_model_it_ran_on(tmp_path: Path) -> None:
    """One box, two GPU models (xdist, a worker per GPU): each model keeps its own baselines,
    and a case that does not name its device goes under the session's."""
    path = tmp_path / "baselines.json"
    on_a100 = CaseRecord(section="precision", case="a", device="NVIDIA A100-SXM4-80GB", train_time_s=[1.0],
                         final_acc=[0.9], reached_target=[False])
    on_t4 = CaseRecord(section="precision", case="b", device="Tesla T4", train_time_s=[4.0],
                       final_acc=[0.9], reached_target=[False])
    bl.update(path, MACHINE, "quick", {"test_a": on_a100, "test_b": on_t4, "test_c": one_seed(2.0)}, SOURCE)
    machines = load(path)["machines"]
    assert set(machines) == {"NVIDIA A100-SXM4-80GB", "Tesla T4", MACHINE}
    assert lookup(load(path), "Tesla T4", "quick", "test_b").time_s == [4.0]
    assert lookup(load(path), "Tesla T4", "quick", "test_a") is None


def test_an_interrupted_update_leaves_the_file_and_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "baselines.json"
    bl.update(path, MACHINE, "quick", {"test_a": one_seed(1.0)}, SOURCE)
    before = path.read_bytes()

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bl.update(path, MACHINE, "quick", {"test_b": one_seed(2.0)}, SOURCE)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.json", "baselines.json.lock"]
    # The lock went with the interrupted update; a killed writer's orphan goes with the next one.
    (tmp_path / ".baselines.json.k1ll3d.tmp").write_text("{")
    bl.update(path, MACHINE, "quick", {"test_b": one_seed(2.0)}, SOURCE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baselines.json", "baselines.json.lock"]
    assert set(load(path)["machines"][MACHINE]["quick"]) == {"test_a", "test_b"}


def test_record_refuses_a_malformed_saved_record() -> None:
    broken = CaseRecord.from_extra_info({"section": "s", "final_acc": "high", "train_time_s": [1.0]})
    with pytest.raises(BaselineError, match=r"^extra_info\['final_acc'\] must be a list"):
        record(bl.empty(), MACHINE, "quick", "test_x", broken, SOURCE)
