"""Case-by-case comparison of saved runs, and of a run with stored baselines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from speedtrain.records import baselines
from speedtrain.report.compare import compare_runs, compare_with_baselines, format_rows
from speedtrain.common.errors import BaselineError, ReportError
from speedtrain.records.record import CaseRecord
from speedtrain.verdicts.rule import VerdictRow

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns

MACHINE = "Tesla V100-SXM2-16GB"


class Runs:
    """Three cases with a tight 1% spread, saved as runs with times multiplied by ``scale``."""

    def __init__(self, fake_runs: "FakeRuns") -> None:
        self.fake = fake_runs

    def benches(self, scale: float = 1.0, acc: float = 0.941) -> list[dict]:
        def seeds(t: float) -> list[float]:
            return [t * scale, t * scale * 1.01, t * scale * 0.99]

        return [
            self.fake.bench("precision", "fp32", seeds(10.0), reference=True, final_acc=[acc] * 3),
            self.fake.bench("precision", "fp16", seeds(5.0), final_acc=[acc] * 3),
            self.fake.bench("batch_size", "512", seeds(8.0), final_acc=[acc] * 3),
        ]

    def save(self, name: str, benches: list[dict]) -> str:
        return str(self.fake.write(name, self.fake.run(benches)))

    def record(self, bench: dict) -> CaseRecord:
        return CaseRecord.from_extra_info(bench["extra_info"], bench["name"])


@pytest.fixture
def runs(fake_runs: "FakeRuns") -> Runs:
    return Runs(fake_runs)


def by_case(rows: list[VerdictRow]) -> dict[str, VerdictRow]:
    return {r.case: r for r in rows}


def test_identical_runs_are_not_regressed(runs: Runs, tmp_path: Path) -> None:
    rows, regressed = compare_runs(runs.save("a.json", runs.benches()), runs.save("b.json", runs.benches()))
    assert not regressed
    assert {r.verdict for r in rows} == {"unchanged"}
    assert len(rows) == 3


def test_ten_percent_slower_run_is_regressed(runs: Runs, tmp_path: Path) -> None:
    a = runs.save("a.json", runs.benches())
    b = runs.save("b.json", runs.benches(scale=1.1))
    rows, regressed = compare_runs(a, b)
    assert regressed
    row = by_case(rows)["test_precision[fp16]"]
    assert row.verdict == "slower"
    assert row.change_pct == pytest.approx(10.0)
    # ... and the other way round it is faster, not a regression.
    rows, regressed = compare_runs(b, a)
    assert not regressed and {r.verdict for r in rows} == {"faster"}


def test_accuracy_loss_is_regressed(runs: Runs, tmp_path: Path) -> None:
    rows, regressed = compare_runs(runs.save("a.json", runs.benches()),
                                   runs.save("b.json", runs.benches(acc=0.90)))
    assert regressed
    assert {r.verdict for r in rows} == {"accuracy lost"}


def test_cases_on_one_side_only_are_listed(runs: Runs, tmp_path: Path) -> None:
    old = runs.benches()
    new = runs.benches()[1:] + [runs.fake.bench("precision", "bf16", [4.0, 4.0, 4.0])]
    rows, regressed = compare_runs(runs.save("a.json", old), runs.save("b.json", new))
    rows_ = by_case(rows)
    assert not regressed
    assert rows_["test_precision[bf16]"].verdict == "no baseline"
    assert rows_["test_precision[bf16]"].detail == "only in b.json"
    assert rows_["test_precision[fp32]"].verdict == "missing"
    assert rows_["test_precision[fp32]"].detail == "only in a.json"


def test_failed_case_shows_its_status(runs: Runs, tmp_path: Path) -> None:
    new = runs.benches()[:2] + [runs.fake.bench("batch_size", "512", [], status="oom")]
    rows, _ = compare_runs(runs.save("a.json", runs.benches()), runs.save("b.json", new))
    assert by_case(rows)["test_batch_size[512]"].detail.startswith("status oom:")


def test_format_rows_is_a_table_with_every_case(runs: Runs, tmp_path: Path) -> None:
    rows, _ = compare_runs(runs.save("a.json", runs.benches()), runs.save("b.json", runs.benches(scale=1.1)))
    text = format_rows(rows)
    assert "verdict" in text.splitlines()[0]
    for row in rows:
        assert row.case in text
    assert "+10.0%" in text and " s " in text


def test_format_rows_speaks_points_for_accuracy_cases() -> None:
    from speedtrain.stats.samples import CaseSummary
    from speedtrain.verdicts.rule import verdict_row

    def acc(values: list[float]) -> CaseSummary:
        return CaseSummary("final_acc", values, values, [True] * len(values), None)

    row = verdict_row("test_small_data[flip]", acc([0.40, 0.41, 0.42, 0.40]), acc([0.37, 0.36, 0.38, 0.37]))
    text = format_rows([row])
    assert row.verdict == "accuracy lost"
    assert "40.50%" in text and "37.00%" in text and "-3.50 pt" in text
    assert " s " not in text and "%  " in text
    assert "noise" in row.detail and " pt, detects " in row.detail


def test_with_baselines(runs: Runs, tmp_path: Path) -> None:
    data = baselines.empty()
    for bench in runs.benches():
        baselines.record(data, MACHINE, "quick", bench["name"], runs.record(bench), {"commit": "abc"})
    baselines.record(data, MACHINE, "quick", "test_old[gone]", runs.record(runs.benches()[0]), {})
    baselines.record(data, "another GPU", "quick", "test_elsewhere[x]", runs.record(runs.benches()[0]), {})
    path = tmp_path / "baselines.json"
    baselines.save(path, data)

    rows, regressed = compare_with_baselines(str(path), runs.save("same.json", runs.benches()))
    assert not regressed
    rows_ = by_case(rows)
    assert rows_["test_precision[fp16]"].verdict == "unchanged"
    assert rows_["test_old[gone]"].verdict == "missing"
    assert "test_elsewhere[x]" not in rows_  # another machine's baselines are not this run's business

    rows, regressed = compare_with_baselines(str(path), runs.save("slow.json", runs.benches(scale=1.1)))
    assert regressed
    assert by_case(rows)["test_batch_size[512]"].verdict == "slower"


def test_with_baselines_of_another_profile_has_no_baseline(runs: Runs, tmp_path: Path) -> None:
    data = baselines.empty()
    for bench in runs.benches():
        baselines.record(data, MACHINE, "full", bench["name"], runs.record(bench), {})
    path = tmp_path / "baselines.json"
    baselines.save(path, data)
    rows, regressed = compare_with_baselines(str(path), runs.save("quick.json", runs.benches(scale=2)))
    assert not regressed
    assert {r.verdict for r in rows} == {"no baseline"}


def test_errors(runs: Runs, tmp_path: Path) -> None:
    good = runs.save("a.json", runs.benches())
    with pytest.raises(ReportError, match="no such file"):
        compare_runs(good, str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BaselineError, match="bad.json"):
        compare_with_baselines(str(tmp_path / "bad.json"), good)
    with pytest.raises(BaselineError, match="no such baselines file"):
        compare_with_baselines(str(tmp_path / "nope.json"), good)
    broken = runs.benches()
    broken[0]["extra_info"]["final_acc"] = "high"
    with pytest.raises(ReportError, match=r"broken.json: case test_precision\[fp32\]: .*final_acc"):
        compare_runs(good, runs.save("broken.json", broken))
