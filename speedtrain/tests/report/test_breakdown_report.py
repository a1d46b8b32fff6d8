"""The step breakdown from record to report: save, merge, reload, to_dataframe, the report's
chart and words, the journey table's "cut most", ``compare --breakdown``; older runs without one."""

from __future__ import annotations

import json
import re

import pytest

from speedtrain.records.breakdown import Breakdown, TopOp
from speedtrain.report.breakdown import change_words, describe, most_cut
from speedtrain.cli.main import main
from speedtrain.records.merge import merge_runs
from speedtrain.records.record import CaseRecord
from speedtrain.report.markdown import build_report
from speedtrain.records.runs import load_run, to_dataframe


def bd(step_ms: float, idle_ms: float | None = None, seed: int = 0, **ms: float) -> dict:
    return Breakdown(steps=3, basis="cuda" if idle_ms is not None else "cpu", step_ms=step_ms, ms=ms,
                     idle_ms=idle_ms, top=[TopOp("aten::mkldnn_convolution", "convolution", ms.get("convolution", 0))],
                     leading={"optimizer": ["aten::_fused_sgd_"]}, seed=seed).to_dict()


REF = bd(100.0, convolution=50.0, layout=20.0, batch_norm=15.0, other=15.0)
NHWC = bd(80.0, convolution=48.0, layout=3.0, batch_norm=18.0, other=11.0)


def test_words_name_the_largest_changes_in_points():
    ref, nhwc = Breakdown.from_dict(REF), Breakdown.from_dict(NHWC)
    assert describe(ref, 2) == "convolution 50%, copies and layout conversions 20% (+2 more)"
    # shares: layout 20% -> 3.75%, convolution 50% -> 60%, batch norm 15% -> 22.5%
    assert change_words(ref, nhwc) == "copies and layout conversions -16 pt, convolution +10 pt"
    assert most_cut(ref, nhwc) == "copies and layout conversions (-17 ms)"
    assert most_cut(None, nhwc) == "-"


def _run(fake_runs, name: str, *, nhwc: dict | None = NHWC, ref: dict | None = REF, device: str | None = None):
    b = fake_runs.bench
    extra = {} if device is None else {"device": device}
    benches = [b("memory_format", "nchw", [10.0, 10.2], reference=True, breakdown=ref, **extra),
               b("memory_format", "nhwc", [8.0, 8.1], breakdown=nhwc, **extra),
               b("tricks", "baseline", [40.0, 40.0], ladder=True, step=0, reference=True, breakdown=REF, **extra),
               b("tricks", "nhwc", [30.0, 30.0], ladder=True, step=1, breakdown=NHWC, **extra)]
    return fake_runs.write(name, fake_runs.run(benches))


def test_the_breakdown_survives_merge_reload_and_to_dataframe(fake_runs):
    a = _run(fake_runs, "a.json")
    b = _run(fake_runs, "b.json", device="NVIDIA A100-SXM4-40GB")
    merged = fake_runs.write("merged.json", merge_runs([str(a), str(b)]))
    cases = load_run(merged).cases
    assert [c.record.breakdown for c in cases[:2]] == [Breakdown.from_dict(REF), Breakdown.from_dict(NHWC)]
    again = CaseRecord.from_extra_info(json.loads(json.dumps(cases[1].record.to_extra_info())))
    assert again.breakdown == Breakdown.from_dict(NHWC)
    frame = to_dataframe(merged)
    row = frame[(frame["case"] == "nhwc") & (frame["section"] == "memory_format") & frame["breakdown_seed"]]
    assert len(row) == 2  # one per machine, on the seed that was profiled
    assert row["breakdown_step_ms"].tolist() == [80.0, 80.0]
    assert row["breakdown_layout_ms"].tolist() == [3.0, 3.0]
    assert row["breakdown_pooling_ms"].tolist() == [0.0, 0.0]
    others = frame[(frame["case"] == "nhwc") & ~frame["breakdown_seed"]]
    assert others["breakdown_step_ms"].isna().all()


def test_a_malformed_breakdown_is_a_problem_of_the_record_not_a_crash():
    rec = CaseRecord.from_extra_info({"section": "s", "case": "c", "breakdown": {"steps": "three"}})
    assert rec.breakdown is None and "breakdown" in rec.problems


def test_the_report_shows_the_chart_the_words_and_the_cut_of_each_step(fake_runs, tmp_path):
    out = tmp_path / "rep" / "REPORT.md"
    build_report([str(_run(fake_runs, "run.json"))], str(out))
    text = out.read_text()
    assert re.search(r"step breakdown +\|", text) and re.search(r"cut most \(ms/step\) +\|", text)
    assert "copies and layout conversions -16 pt, convolution +10 pt" in text
    assert "convolution 50%, copies and layout conversions 20% (+2 more)" in text  # the reference's own
    assert "copies and layout conversions (-17 ms)" in text  # the ladder's "cut most"
    assert (out.parent / "REPORT-memory_format-breakdown.png").stat().st_size > 10_000
    assert "REPORT-memory_format-breakdown.png" in text


def test_an_older_run_without_breakdowns_still_renders(fake_runs, tmp_path):
    old = _run(fake_runs, "old.json")
    data = json.loads(old.read_text())
    for bench in data["benchmarks"]:
        del bench["extra_info"]["breakdown"]  # as a run saved before issue 20
    old.write_text(json.dumps(data))
    out = tmp_path / "OLD.md"
    build_report([str(old)], str(out))
    assert not (tmp_path / "OLD-memory_format-breakdown.png").exists()
    text = out.read_text()  # no breakdown column, legend or "cut most": as before issue 20
    assert "| case" in text and "step breakdown" not in text and "cut most" not in text


def test_compare_breakdown_names_the_change_of_each_category(fake_runs, capsys):
    old = _run(fake_runs, "old.json", nhwc=REF)
    new = _run(fake_runs, "new.json")
    b = fake_runs.bench  # make nhwc 20% faster with several seeds: a "faster" verdict
    data = json.loads(old.read_text())
    data["benchmarks"][1] = b("memory_format", "nhwc", [10.0, 10.1, 9.9, 10.0, 10.2], breakdown=REF)
    old.write_text(json.dumps(data))
    data = json.loads(new.read_text())
    data["benchmarks"][1] = b("memory_format", "nhwc", [8.0, 8.1, 7.9, 8.0, 8.05], breakdown=NHWC)
    new.write_text(json.dumps(data))
    assert main(["compare", str(old), str(new), "--breakdown"]) == 0
    changes = capsys.readouterr().out.split("step breakdown of the cases that changed")[1]
    line = next(x for x in changes.splitlines() if x.startswith("test_memory_format[nhwc]"))
    assert "(faster): step 100 ms -> 80 ms" in line
    assert "copies and layout conversions -16.2 pt (20 ms -> 3 ms)" in line
    assert "test_memory_format[nchw]" not in changes  # unchanged: not listed


def test_compare_breakdown_with_baselines_is_refused_in_one_line(fake_runs, capsys, tmp_path):
    run = _run(fake_runs, "run.json")
    assert main(["compare", "--baselines", str(tmp_path / "b.json"), str(run), "--breakdown"]) == 2
    assert "stored baselines keep no breakdowns" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--breakdown", "-1"], "breakdown_steps must be a whole number of steps from 0 (off) to 100"),
    (["train", "--breakdown", "0", "--trace", "t.json"], "--trace writes the breakdown's profile"),
])
def test_train_refuses_bad_breakdown_options_before_training(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_takes_breakdown_as_the_short_spelling_of_breakdown_steps():
    from speedtrain.cli.main import build_parser

    assert build_parser().parse_args(["train", "--breakdown", "5"]).breakdown_steps == 5
    assert build_parser().parse_args(["train", "--breakdown-steps", "0"]).breakdown_steps == 0
