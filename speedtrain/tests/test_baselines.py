"""Verdicts on constructed samples, and the baselines file's load/save/validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from speedtrain import baselines as bl
from speedtrain.baselines import (
    VERDICTS,
    CaseSummary,
    Verdict,
    compare,
    format_table,
    load,
    lookup,
    mann_whitney_p,
    record,
    regressed,
    save,
    verdict_rows,
)
from speedtrain.errors import BaselineError

MACHINE = "NVIDIA H100 80GB HBM3"
SOURCE = {"date": "2024-05-01T12:00:00+00:00", "commit": "abc123", "torch": "2.3.0",
          "cuda": "12.1", "driver": "550.54.15", "gpu": MACHINE, "profile": "quick",
          "dataset": "cifar10", "synthetic": False, "run": "0001_quick"}


def times(x: Any, metric: str = "train_time_s", acc: Optional[list[float]] = None,
          reached: Optional[list[bool]] = None) -> CaseSummary:
    t = [float(v) for v in x]
    return CaseSummary(metric, t, acc if acc is not None else [0.94] * len(t),
                       reached if reached is not None else [True] * len(t), None)


def noisy(rng: np.random.Generator, median: float, n: int = 5, noise: float = 0.01) -> CaseSummary:
    return times(median * (1 + noise * rng.standard_normal(n)))


# --- verdicts -------------------------------------------------------------------------------

def test_planted_slowdown_is_slower() -> None:
    rng = np.random.default_rng(1)
    v = compare(noisy(rng, 10.0), noisy(rng, 11.0))
    assert v.label == "slower"
    assert v.ratio == pytest.approx(1.10, abs=0.03)
    assert v.detail.startswith("+") and "baseline 10." in v.detail and "now 11." in v.detail


def test_planted_speedup_is_faster() -> None:
    rng = np.random.default_rng(2)
    v = compare(noisy(rng, 10.0), noisy(rng, 9.0))
    assert v.label == "faster" and v.ratio < 0.95
    assert v.detail.startswith("-")


@pytest.mark.parametrize("noise", [0.01, 0.03])
def test_same_distribution_rarely_flagged(noise: float) -> None:
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        v = compare(noisy(rng, 10.0, noise=noise), noisy(rng, 10.0, noise=noise))
        alarms += v.label != "unchanged"
    assert alarms / 200 < 0.05


def test_planted_slowdown_detected_over_many_seeds() -> None:
    hits = sum(compare(noisy(rng, 10.0), noisy(rng, 11.0)).label == "slower"
               for rng in (np.random.default_rng(s) for s in range(50)))
    assert hits == 50


def test_small_change_below_threshold_is_unchanged() -> None:
    base = times([10.00, 10.01, 10.02, 10.00, 10.01])
    new = times([10.30, 10.31, 10.32, 10.30, 10.31])  # +3%, perfectly separated
    v = compare(base, new)
    assert v.label == "unchanged" and "threshold" in v.detail
    assert v.ratio == pytest.approx(1.03, abs=1e-3)
    assert compare(base, new, threshold=0.02).label == "slower"


def test_big_change_within_huge_spread_is_unchanged() -> None:
    base = times([6.0, 9.0, 10.0, 13.0, 16.0])
    new = times([7.0, 10.5, 12.0, 14.0, 17.0])  # +20% median, samples interleave
    v = compare(base, new)
    assert v.label == "unchanged" and "noise" in v.detail
    assert v.ratio == pytest.approx(1.2)


def test_few_seeds_use_range_overlap() -> None:
    # 3 + 3 seeds: Mann-Whitney cannot reach p < 0.05, so the ranges decide.
    assert compare(times([10, 10.1, 10.2]), times([11, 11.1, 11.2])).label == "slower"
    assert compare(times([10, 10.1, 11.5]), times([11, 11.1, 11.2])).label == "unchanged"


def test_single_sample_only_threshold_applies() -> None:
    assert compare(times([10.0]), times([11.0])).label == "slower"
    assert compare(times([10.0]), times([10.3])).label == "unchanged"
    # One side with a wide spread does not matter when the other side has a single seed.
    assert compare(times([6.0, 10.0, 14.0]), times([11.0])).label == "slower"
    v = compare(times([10.0]), times([9.0]))
    assert v.label == "faster" and "[" not in v.detail.split("baseline")[1].split(",")[0]


def test_fewer_seeds_reaching_target_is_accuracy_lost() -> None:
    base = times([10, 10.1, 10.2, 10.1, 10.0], metric="time_to_target_s")
    new = times([8.0, 8.1, 8.0, 8.1], metric="time_to_target_s",
                reached=[True, True, True, True, False])
    v = compare(base, new)
    assert v.label == "accuracy lost"  # precedes the (much faster) time verdict
    assert "4/5 seeds" in v.detail and "baseline 5/5" in v.detail
    assert v.ratio == pytest.approx(8.05 / 10.1)


def test_median_accuracy_drop_is_accuracy_lost() -> None:
    base = times([10] * 5, acc=[0.940, 0.941, 0.942, 0.941, 0.940])
    assert compare(base, times([10] * 5, acc=[0.930] * 5)).label == "accuracy lost"
    # A drop within acc_tolerance (0.5 pt) is not a loss.
    assert compare(base, times([10] * 5, acc=[0.938] * 5)).label == "unchanged"
    # Nor is one within the baseline's own accuracy spread.
    wide = times([10] * 5, acc=[0.93, 0.94, 0.95, 0.94, 0.945])
    assert compare(wide, times([10] * 5, acc=[0.932] * 5)).label == "unchanged"


def test_no_baseline_and_metric_mismatch() -> None:
    new = times([10, 10.1])
    v = compare(None, new)
    assert v == Verdict("no baseline", None, "no baseline for this case")
    v = compare(times([10, 10.1], metric="time_to_target_s"), new)
    assert v.label == "no baseline" and "metric differs" in v.detail
    assert "time_to_target_s" in v.detail and "train_time_s" in v.detail


def test_no_data_is_said() -> None:
    v = compare(times([]), times([10.0]))
    assert v.label == "no baseline" and "no train_time_s data in the baseline" in v.detail
    v = compare(times([10.0]), CaseSummary("train_time_s", [], [], [], None))
    assert v.label == "accuracy lost" and "no seed produced train_time_s" in v.detail


def test_every_label_is_known() -> None:
    rng = np.random.default_rng(0)
    for base, new in [(None, noisy(rng, 10)), (noisy(rng, 10), noisy(rng, 12)),
                      (noisy(rng, 10), noisy(rng, 10))]:
        assert compare(base, new).label in VERDICTS


def test_mann_whitney_exact_values() -> None:
    # Complete separation of 5 + 5: p = 2 / C(10, 5).
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    # One swapped pair: U = 1, P(U <= 1) = 2 / 252, two-sided 4 / 252.
    assert mann_whitney_p([1, 2, 3, 4, 6], [5, 7, 8, 9, 10]) == pytest.approx(4 / 252)
    # Interleaved 3 + 3: U = 3, P(U <= 3) = 7 / 20 (what scipy's exact method gives too).
    assert mann_whitney_p([1, 3, 5], [2, 4, 6]) == pytest.approx(0.7)
    # Large samples use the normal approximation; separated ones are very significant.
    assert mann_whitney_p(list(range(30)), list(range(100, 130))) < 1e-6


# --- extra_info ------------------------------------------------------------------------------

def test_from_extra_info_time_to_target_drops_unreached() -> None:
    s = CaseSummary.from_extra_info({
        "metric": "time_to_target_s", "train_time_s": [12.0, 12.5, 13.0],
        "time_to_target_s": [9.0, None, 10.0], "final_acc": [0.941, 0.935, 0.942],
        "reached_target": [True, False, True], "images_per_s": [100.0, 300.0, 200.0]})
    assert s == CaseSummary("time_to_target_s", [9.0, 10.0], [0.941, 0.935, 0.942],
                            [True, False, True], 200.0)


def test_from_extra_info_missing_keys_give_empty() -> None:
    s = CaseSummary.from_extra_info({})
    assert s == CaseSummary("train_time_s", [], [], [], None)
    assert compare(s, s).label == "no baseline"


@pytest.mark.parametrize("extra, key", [
    ({"metric": "speed"}, "extra_info['metric']"),
    ({"train_time_s": "fast"}, "extra_info['train_time_s']"),
    ({"train_time_s": [1.0, "2"]}, "extra_info['train_time_s']"),
    ({"reached_target": [1, 0]}, "extra_info['reached_target']"),
    ({"final_acc": [float("nan")]}, "extra_info['final_acc']"),
    ({"images_per_s": "many"}, "extra_info['images_per_s']"),
])
def test_from_extra_info_garbage_is_one_line_error(extra: dict, key: str) -> None:
    with pytest.raises(BaselineError) as exc:
        CaseSummary.from_extra_info(extra)
    msg = str(exc.value)
    assert msg.startswith(key) and "\n" not in msg


# --- file -----------------------------------------------------------------------------------

EXTRA = {"metric": "train_time_s", "train_time_s": [10.0, 10.4, 10.1],
         "time_to_target_s": [8.0, 8.2, None], "final_acc": [0.941, 0.942, 0.938],
         "reached_target": [True, True, False], "images_per_s": [120000.0, 118000.0, 119000.0]}


def recorded() -> dict[str, Any]:
    data = bl.empty()
    record(data, MACHINE, "quick", "test_precision[fp16]", EXTRA, SOURCE)
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


# --- table ----------------------------------------------------------------------------------

def test_verdict_rows_table_and_regressed() -> None:
    data = recorded()
    slower = dict(EXTRA, train_time_s=[11.5, 11.6, 11.4])
    rows = verdict_rows(data, MACHINE, "quick",
                        {"test_precision[fp16]": slower, "test_new_case": EXTRA})
    assert [r["verdict"] for r in rows] == ["slower", "no baseline"]
    assert rows[0]["baseline_median_s"] == 10.1 and rows[0]["now_median_s"] == 11.5
    assert rows[0]["change_pct"] == pytest.approx(100 * (11.5 / 10.1 - 1))
    assert rows[1]["baseline_median_s"] is None and rows[1]["change_pct"] is None
    table = format_table(rows)
    lines = table.splitlines()
    for header in ("case", "metric", "baseline median", "now median", "change %", "verdict",
                   "detail"):
        assert header in lines[0]
    assert "+13.9" in table and "10.10 s" in table and "11.50 s" in table
    assert regressed(rows)
    assert regressed([Verdict("accuracy lost", None, "")])
    assert not regressed([Verdict("faster", 0.9, ""), "unchanged", {"verdict": "no baseline"}])
    json.dumps(rows)


def test_format_table_takes_verdict_tuples() -> None:
    base, new = times([10.0, 10.1, 10.2]), times([12.0, 12.1, 12.2])
    verdict = compare(base, new)
    items = [("test_a", verdict, base, new), ("test_b", compare(None, new), None, new)]
    assert format_table(items) == format_table(
        [bl.verdict_row("test_a", verdict, base, new),
         bl.verdict_row("test_b", compare(None, new), None, new)])
    assert "slower" in format_table(items) and regressed(items)


def test_a_case_that_no_longer_finishes_is_a_regression():
    base = CaseSummary("train_time_s", [10.0, 10.1], [0.9, 0.9], [True, True], None)
    failed = CaseSummary("train_time_s", [], [], [False, False], None)
    verdict = compare(base, failed)
    assert verdict.label == "accuracy lost" and "0/2 seeds reached" in verdict.detail
    assert regressed([verdict])
    no_record = CaseSummary("train_time_s", [], [], [], None)  # e.g. an older run without figures
    verdict = compare(base, no_record)
    assert verdict.label == "accuracy lost" and "no seed produced" in verdict.detail


def test_a_single_seed_verdict_says_its_noise_is_unknown():
    one = CaseSummary("train_time_s", [10.0], [], [], None)
    slower = CaseSummary("train_time_s", [12.0], [], [], None)
    verdict = compare(one, slower)
    assert verdict.label == "slower" and "noise unknown" in verdict.detail
    many = compare(CaseSummary("train_time_s", [10.0, 10.1, 9.9], [], [], None),
                   CaseSummary("train_time_s", [12.0, 12.1, 11.9], [], [], None))
    assert many.label == "slower" and "noise unknown" not in many.detail
