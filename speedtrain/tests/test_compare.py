"""Case-by-case comparison of saved runs, and of a run with stored baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import make_bench, make_run, write_run

from speedtrain import baselines
from speedtrain.compare import compare_runs, compare_with_baselines, format_rows
from speedtrain.errors import BaselineError, ReportError

MACHINE = "Tesla V100-SXM2-16GB"


def benches(scale: float = 1.0, acc: float = 0.941) -> list[dict]:
    """Three cases with a tight 1% spread, times multiplied by ``scale``."""
    def seeds(t: float) -> list[float]:
        return [t * scale, t * scale * 1.01, t * scale * 0.99]

    return [
        make_bench("precision", "fp32", seeds(10.0), reference=True, final_acc=[acc] * 3),
        make_bench("precision", "fp16", seeds(5.0), final_acc=[acc] * 3),
        make_bench("batch_size", "512", seeds(8.0), final_acc=[acc] * 3),
    ]


def save(tmp_path: Path, name: str, benches_: list[dict]) -> str:
    return str(write_run(tmp_path / name, make_run(benches_)))


def by_case(rows: list[dict]) -> dict[str, dict]:
    return {r["case"]: r for r in rows}


def test_identical_runs_are_not_regressed(tmp_path: Path) -> None:
    rows, regressed = compare_runs(save(tmp_path, "a.json", benches()), save(tmp_path, "b.json", benches()))
    assert not regressed
    assert {r["verdict"] for r in rows} == {"unchanged"}
    assert len(rows) == 3


def test_ten_percent_slower_run_is_regressed(tmp_path: Path) -> None:
    a = save(tmp_path, "a.json", benches())
    b = save(tmp_path, "b.json", benches(scale=1.1))
    rows, regressed = compare_runs(a, b)
    assert regressed
    row = by_case(rows)["test_precision[fp16]"]
    assert row["verdict"] == "slower"
    assert row["change_pct"] == pytest.approx(10.0)
    # ... and the other way round it is faster, not a regression.
    rows, regressed = compare_runs(b, a)
    assert not regressed and {r["verdict"] for r in rows} == {"faster"}


def test_accuracy_loss_is_regressed(tmp_path: Path) -> None:
    rows, regressed = compare_runs(save(tmp_path, "a.json", benches()),
                                   save(tmp_path, "b.json", benches(acc=0.90)))
    assert regressed
    assert {r["verdict"] for r in rows} == {"accuracy lost"}


def test_cases_on_one_side_only_are_listed(tmp_path: Path) -> None:
    old = benches()
    new = benches()[1:] + [make_bench("precision", "bf16", [4.0, 4.0, 4.0])]
    rows, regressed = compare_runs(save(tmp_path, "a.json", old), save(tmp_path, "b.json", new))
    rows_ = by_case(rows)
    assert not regressed
    assert rows_["test_precision[bf16]"]["verdict"] == "no baseline"
    assert rows_["test_precision[bf16]"]["detail"] == "only in b.json"
    assert rows_["test_precision[fp32]"]["verdict"] == "missing"
    assert rows_["test_precision[fp32]"]["detail"] == "only in a.json"


def test_failed_case_shows_its_status(tmp_path: Path) -> None:
    new = benches()[:2] + [make_bench("batch_size", "512", [], status="oom")]
    rows, _ = compare_runs(save(tmp_path, "a.json", benches()), save(tmp_path, "b.json", new))
    assert by_case(rows)["test_batch_size[512]"]["detail"].startswith("status oom:")


def test_format_rows_is_a_table_with_every_case(tmp_path: Path) -> None:
    rows, _ = compare_runs(save(tmp_path, "a.json", benches()), save(tmp_path, "b.json", benches(scale=1.1)))
    text = format_rows(rows)
    assert "verdict" in text.splitlines()[0]
    for row in rows:
        assert row["case"] in text
    assert "+10.0" in text


def test_with_baselines(tmp_path: Path) -> None:
    data = baselines.empty()
    for bench in benches():
        baselines.record(data, MACHINE, "quick", bench["name"], bench["extra_info"], {"commit": "abc"})
    baselines.record(data, MACHINE, "quick", "test_old[gone]", benches()[0]["extra_info"], {})
    baselines.record(data, "another GPU", "quick", "test_elsewhere[x]", benches()[0]["extra_info"], {})
    path = tmp_path / "baselines.json"
    baselines.save(path, data)

    rows, regressed = compare_with_baselines(str(path), save(tmp_path, "same.json", benches()))
    assert not regressed
    rows_ = by_case(rows)
    assert rows_["test_precision[fp16]"]["verdict"] == "unchanged"
    assert rows_["test_old[gone]"]["verdict"] == "missing"
    assert "test_elsewhere[x]" not in rows_  # another machine's baselines are not this run's business

    rows, regressed = compare_with_baselines(str(path), save(tmp_path, "slow.json", benches(scale=1.1)))
    assert regressed
    assert by_case(rows)["test_batch_size[512]"]["verdict"] == "slower"


def test_with_baselines_of_another_profile_has_no_baseline(tmp_path: Path) -> None:
    data = baselines.empty()
    for bench in benches():
        baselines.record(data, MACHINE, "full", bench["name"], bench["extra_info"], {})
    path = tmp_path / "baselines.json"
    baselines.save(path, data)
    rows, regressed = compare_with_baselines(str(path), save(tmp_path, "quick.json", benches(scale=2)))
    assert not regressed
    assert {r["verdict"] for r in rows} == {"no baseline"}


def test_errors(tmp_path: Path) -> None:
    good = save(tmp_path, "a.json", benches())
    with pytest.raises(ReportError, match="no such file"):
        compare_runs(good, str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BaselineError, match="bad.json"):
        compare_with_baselines(str(tmp_path / "bad.json"), good)
    with pytest.raises(BaselineError, match="no such baselines file"):
        compare_with_baselines(str(tmp_path / "nope.json"), good)
    broken = benches()
    broken[0]["extra_info"]["final_acc"] = "high"
    with pytest.raises(ReportError, match=r"broken.json: case test_precision\[fp32\]: .*final_acc"):
        compare_runs(good, save(tmp_path, "broken.json", broken))
