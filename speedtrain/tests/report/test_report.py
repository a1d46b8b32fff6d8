"""The markdown report of saved runs, built from hand-made pytest-benchmark JSON files
(the ``fake_runs`` fixture of conftest.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from speedtrain.common.errors import BaselineError, OutputError, ReportError
from speedtrain.report.markdown import SMOKE_BANNER, build_report
from speedtrain.records.runs import load_run

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table line in ``text``."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def _table_row(text: str, first_cell: str) -> list[str]:
    """Cells of the first markdown table row whose first cell is ``first_cell``."""
    row = next((cells for cells in _table_rows(text) if cells[0] == first_cell), None)
    assert row is not None, f"no table row starting with {first_cell!r}"
    return row


def _header(text: str, after: str) -> list[str]:
    """Cells of the first table header after the line ``after``."""
    lines = text.splitlines()
    start = lines.index(after)
    line = next(ln for ln in lines[start:] if ln.startswith("|"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.usefixtures("no_plots")
def test_report_has_environment_sections_tables_and_no_banner(quick_run: Path, tmp_path: Path) -> None:
    out = build_report([str(quick_run)], str(tmp_path / "out" / "REPORT.md"))
    text = Path(out).read_text()
    assert out == str(tmp_path / "out" / "REPORT.md")
    assert SMOKE_BANNER not in text
    for heading in ("## Environment", "## Summary", "## Batch size", "## Numeric precision",
                    "## Bag of tricks", "### Cumulative journey"):
        assert heading in text
    # Sections in the journey's order, not the file's.
    assert text.index("## Batch size") < text.index("## Numeric precision") < text.index("## Bag of tricks")
    assert _table_row(text, "GPU")[1] == "Tesla V100-SXM2-16GB"
    assert _table_row(text, "commit")[1] == "0123456789ab (branch main)"
    assert "evaluation" in _table_row(text, "not timed (excludes)")[1]
    assert _header(text, "## Numeric precision")[0] == "case"  # a single run has no run column


@pytest.mark.usefixtures("no_plots")
def test_speedup_against_reference(quick_run: Path, tmp_path: Path) -> None:
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"))).read_text()
    header = _header(text, "## Numeric precision")
    fp16 = dict(zip(header, _table_row(text, "fp16")))
    assert fp16["train s (median)"] == "5.00"
    assert fp16["speed-up"] == "2.00x"
    assert fp16["spread (min-max)"] == "4.80-5.20 (3 seeds)"
    assert fp16["final acc"] == "94.10%"
    assert dict(zip(header, _table_row(text, "fp32 (ref)")))["speed-up"] == "1.00x"


@pytest.mark.usefixtures("no_plots")
def test_failed_and_incomplete_cases_show_dashes(quick_run: Path, tmp_path: Path) -> None:
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"))).read_text()
    bf16 = dict(zip(_header(text, "## Numeric precision"), _table_row(text, "bf16")))
    assert bf16["status"] == "oom"
    assert bf16["train s (median)"] == "-" and bf16["speed-up"] == "-"
    assert "**oom**: CUDA out of memory" in text
    big = dict(zip(_header(text, "## Batch size"), _table_row(text, "1024")))
    assert big["final acc"] == big["images/s"] == big["energy J"] == big["time to target s"] == "-"
    assert big["speed-up"] == "1.33x"


@pytest.mark.usefixtures("no_plots")
def test_ladder_table_orders_steps_and_chains_speedups(quick_run: Path, tmp_path: Path) -> None:
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"))).read_text()
    journey = text[text.index("### Cumulative journey"):]
    header = _header(journey, "### Cumulative journey")
    rows = [dict(zip(header, _table_row(journey, str(step)))) for step in (0, 1, 2)]
    assert [r["case"] for r in rows] == ["baseline", "nesterov", "celu"]
    assert [r["vs previous"] for r in rows] == ["-", "1.33x", "1.50x"]
    assert [r["vs first"] for r in rows] == ["1.00x", "1.33x", "2.00x"]


def test_plots_exist_and_are_linked(quick_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "REPORT.md"
    text = Path(build_report([str(quick_run)], str(out))).read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "REPORT-precision-time.png" in links
    assert "REPORT-precision-accuracy.png" in links
    assert "REPORT-tricks-time.png" in links
    for link in links:
        png = out.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.usefixtures("no_plots")
@pytest.mark.parametrize("profile, synthetic", [("smoke", False), ("quick", True)])
def test_smoke_or_synthetic_run_gets_banner_first(fake_runs: FakeRuns, tmp_path: Path, profile: str, synthetic: bool) -> None:
    run = fake_runs.write("smoke.json", fake_runs.run(fake_runs.sample(profile), profile=profile, synthetic=synthetic))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    banner = next(i for i, line in enumerate(text.splitlines()) if SMOKE_BANNER in line)
    assert banner < text.splitlines().index("## Environment")


@pytest.mark.usefixtures("no_plots")
def test_run_without_speedtrain_machine_info_falls_back_to_extra_info(fake_runs: FakeRuns, tmp_path: Path) -> None:
    run = fake_runs.run(fake_runs.sample(profile="smoke"))
    del run["machine_info"]["speedtrain"], run["commit_info"], run["datetime"]
    text = Path(build_report([str(fake_runs.write("old.json", run))], str(tmp_path / "R.md"))).read_text()
    assert SMOKE_BANNER in text  # the profile came from extra_info
    assert _table_row(text, "device")[1] == "Tesla V100-SXM2-16GB"
    assert "\n| commit" not in text  # a row no run has a value for is left out


@pytest.mark.usefixtures("no_plots")
def test_several_runs_get_a_run_column(fake_runs: FakeRuns, quick_run: Path, tmp_path: Path) -> None:
    other = fake_runs.write("other.json", fake_runs.run([fake_runs.bench("precision", "fp32", [12.0], reference=True),
                                                         fake_runs.bench("precision", "fp16", [3.0])]))
    text = Path(build_report([str(quick_run), str(other)], str(tmp_path / "R.md"))).read_text()
    header = _header(text, "## Numeric precision")
    assert header[:2] == ["run", "case"]
    rows = [dict(zip(header, cells)) for cells in _table_rows(text[text.index("## Numeric precision"):])]
    other_fp16 = next(r for r in rows if r["run"] == "other" and r["case"] == "fp16")
    assert other_fp16["speed-up"] == "4.00x"  # against the other run's own reference
    assert _header(text, "## Environment")[1:] == ["quick", "other"]


@pytest.mark.usefixtures("no_plots")
def test_several_runs_with_the_same_stem_get_distinct_labels(fake_runs: FakeRuns, quick_run: Path, tmp_path: Path) -> None:
    twin = fake_runs.write("b/quick.json", fake_runs.run(fake_runs.sample()))
    text = Path(build_report([str(quick_run), str(twin)], str(tmp_path / "R.md"))).read_text()
    assert _header(text, "## Environment")[1:] == ["quick", "quick#2"]


GARBAGE = {
    "not_json.json": "{not json",
    "no_benchmarks.json": json.dumps({"machine_info": {}, "version": "5.1.0"}),
    "a_list.json": "[1, 2]",
    "empty.json": "",
    "empty_benchmarks.json": json.dumps({"benchmarks": []}),
    "not_speedtrain.json": json.dumps({"benchmarks": [{"name": "test_x", "stats": {}, "extra_info": {}}]}),
}


@pytest.mark.parametrize("name", [*GARBAGE, "missing.json"])
def test_garbage_input_is_a_one_line_error_and_leaves_output_alone(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    if name in GARBAGE:
        bad.write_text(GARBAGE[name])
    out = tmp_path / "REPORT.md"
    out.write_text("previous report\n")
    with pytest.raises(ReportError) as err:
        build_report([str(bad)], str(out))
    message = str(err.value)
    assert "\n" not in message and str(bad) in message
    assert out.read_text() == "previous report\n"
    assert list(tmp_path.glob("*.png")) == []


@pytest.mark.parametrize("name, words", [
    ("not_json.json", "not JSON"), ("no_benchmarks.json", "no 'benchmarks' list"),
    ("empty.json", "empty"), ("not_speedtrain.json", "no speedtrain cases"),
    ("missing.json", "no such file"),
])
def test_load_run_says_what_is_wrong(tmp_path: Path, name: str, words: str) -> None:
    bad = tmp_path / name
    if name in GARBAGE:
        bad.write_text(GARBAGE[name])
    with pytest.raises(ReportError, match=re.escape(words)):
        load_run(bad)


def test_output_equal_to_input_is_refused(quick_run: Path) -> None:
    before = quick_run.read_bytes()
    with pytest.raises(OutputError, match="overwrite its input"):  # the check every command uses
        build_report([str(quick_run)], str(quick_run))
    assert quick_run.read_bytes() == before


@pytest.mark.usefixtures("no_plots")
def test_baseline_verdict_column(fake_runs: FakeRuns, quick_run: Path, tmp_path: Path) -> None:
    from speedtrain.records import baselines
    from speedtrain.records.record import CaseRecord

    data = baselines.empty()
    base = CaseRecord.from_extra_info(fake_runs.bench("precision", "fp16", [2.5, 2.5, 2.6])["extra_info"])
    baselines.record(data, "Tesla V100-SXM2-16GB", "quick", "test_precision[fp16]", base, {"commit": "abc"})
    baselines.save(tmp_path / "baselines.json", data)
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"), str(tmp_path / "baselines.json"))).read_text()
    header = _header(text, "## Numeric precision")
    assert dict(zip(header, _table_row(text, "fp16")))["verdict"] == "slower (2.00x)"
    assert dict(zip(header, _table_row(text, "fp32 (ref)")))["verdict"] == "no baseline"


def test_missing_baselines_file_is_an_error(quick_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no such baselines file"):
        build_report([str(quick_run)], str(tmp_path / "R.md"), str(tmp_path / "nope.json"))
    assert not (tmp_path / "R.md").exists()


@pytest.mark.usefixtures("no_plots")
def test_throttling_is_noted(fake_runs: FakeRuns, tmp_path: Path) -> None:
    bench = fake_runs.bench("precision", "fp32", [10.0], reference=True)
    bench["extra_info"]["gpu"]["throttle_reasons"] = ["gpu_idle", "sw_thermal"]
    run = fake_runs.write("hot.json", fake_runs.run([bench]))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    assert "GPU clocks throttled (sw_thermal)" in text


def test_bare_and_malformed_fields_never_crash(fake_runs: FakeRuns, tmp_path: Path) -> None:
    """An older or broken run: only the section, or fields of the wrong type, give dashes."""
    bare = {"name": "test_precision[fp32]", "extra_info": {"section": "precision"}}
    junk = fake_runs.bench("precision", "fp16", [5.0])
    junk["extra_info"].update(train_time_s="fast", final_acc=[None, "x"], gpu=5, curves=[["x"], None],
                              time_to_target_s=[None], timer="perf_counter", step="first")
    odd = fake_runs.bench("some new|section", "a", [1.0], ladder=True, step=None)
    run = fake_runs.write("odd.json", {"benchmarks": [bare, junk, odd, "not a benchmark"]})
    out = tmp_path / "R.md"
    text = Path(build_report([str(run)], str(out))).read_text()
    row = dict(zip(_header(text, "## Numeric precision"), _table_row(text, "fp16")))
    # no case of the section has these: the columns are left out
    assert not {"train s (median)", "final acc", "energy J"} & set(row)
    assert "time to target s" not in row  # reached, by the record, but no time to show: no column
    assert _table_row(text, "fp32")[1] == "ok"
    assert "## some new\\|section" not in text and "## some new|section" in text  # headings need no escape
    assert (tmp_path / "R-some-new-section-time.png").exists()


def test_output_folder_is_refused(quick_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="must be a file path"):
        build_report([str(quick_run)], str(tmp_path))


@pytest.mark.usefixtures("no_plots")
def test_noise_detectable_change_and_noisy_machine(fake_runs: FakeRuns, tmp_path: Path) -> None:
    """Each case with 2+ seeds shows its noise and the change its seeds can detect (its own
    seeds without baselines, pooled with the baseline's with them); a case whose load exceeded
    the CPUs is marked noisy in its verdict and in the notes; an accuracy case speaks points."""
    from speedtrain.records import baselines
    from speedtrain.stats.noise import case_noise
    from speedtrain.records.record import CaseRecord

    busy = {"cpus": 2, "load_before": [3.5, 1, 1], "load_after": [2.0, 1, 1]}
    times = [10.0, 10.4, 9.6, 10.2]
    benches = [fake_runs.bench("precision", "fp32", times, reference=True, conditions=busy),
               fake_runs.bench("precision", "fp16", [5.0]),
               fake_runs.bench("small_data", "flip", [1.0, 1.0, 1.0], metric="final_acc",
                               final_acc=[0.40, 0.42, 0.41])]
    run = fake_runs.write("noisy.json", fake_runs.run(benches))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    own = case_noise(CaseRecord.from_extra_info(benches[0]["extra_info"]).summary())
    fp32 = dict(zip(_header(text, "## Numeric precision"), _table_row(text, "fp32 (ref)")))
    assert fp32["noise"] == own.spread_text() == "3.4%" and fp32["detects"] == own.detectable_text()
    assert dict(zip(_header(text, "## Numeric precision"), _table_row(text, "fp16")))["noise"] == "-"  # 1 seed
    assert "`test_precision[fp32]`: **noisy machine** (load 3.5 > 2 CPUs)" in text
    flip = dict(zip(_header(text, "## 100 training images: each augmentation alone (accuracy study)"),
                    _table_row(text, "flip")))
    assert flip["noise"] == "1.00 pt" and flip["detects"].endswith(" pt+")

    data = baselines.empty()
    for bench, figures in ((benches[0], {"train_time_s": [10.0, 10.1, 9.9]}),
                           (benches[2], {"final_acc": [0.45, 0.46, 0.44]})):
        info = {**bench["extra_info"], **figures}
        baselines.record(data, info["device"], "quick", f"test_{info['section']}[{info['case']}]",
                         CaseRecord.from_extra_info(info), {"commit": "abc"})
    baselines.save(tmp_path / "baselines.json", data)
    text = Path(build_report([str(run)], str(tmp_path / "R.md"), str(tmp_path / "baselines.json"))).read_text()
    fp32 = dict(zip(_header(text, "## Numeric precision"), _table_row(text, "fp32 (ref)")))
    assert fp32["verdict"] == "unchanged (1.01x), noisy machine"
    assert fp32["noise"] != own.spread_text()  # pooled with the baseline's quieter seeds
    flip = dict(zip(_header(text, "## 100 training images: each augmentation alone (accuracy study)"),
                    _table_row(text, "flip")))
    assert flip["verdict"] == "accuracy lost (-4.00 pt)"


@pytest.mark.usefixtures("no_plots")
def test_mfu_against_the_measured_peak_beside_the_datasheet(fake_runs: FakeRuns, tmp_path: Path) -> None:
    measured = fake_runs.bench("precision", "fp16", [5.0, 5.0], flops_per_image=2.3e9, train_flops=[6e15, 6e15],
                               achieved_flops_per_s=[1.2e14, 1.2e14], mfu=[0.4, 0.4], peak_flops_per_s=3e14,
                               measured_peak_flops_per_s=2.4e14, measured_peak_matmul_n=8192)
    datasheet_only = fake_runs.bench("precision", "fp32", [9.0, 9.0], reference=True, flops_per_image=2.3e9,
                                     achieved_flops_per_s=[6e13, 6e13], mfu=[0.2, 0.2], peak_flops_per_s=3e14)
    run = fake_runs.write("mfu.json", fake_runs.run([datasheet_only, measured]))
    assert load_run(run).cases[1].record.measured_peak_flops_per_s == 2.4e14
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    header = _header(text, "## Numeric precision")
    fp16 = dict(zip(header, _table_row(text, "fp16")))
    assert fp16["MFU"] == "40.00%" and fp16["MFU (measured peak)"] == "50.00%"
    assert dict(zip(header, _table_row(text, "fp32 (ref)")))["MFU (measured peak)"] == "-"
    assert load_run(run).cases[1].record.measured_peak_matmul_n == 8192
    assert ("`speedtrain doctor` measured on this GPU at the session's start, at the case's precision "
            "(240 TFLOP/s at 8192^3;") in text  # the size beside the figure (issue 19, item 9)


def test_a_journey_step_shows_what_its_source_published(fake_runs: FakeRuns, tmp_path: Path) -> None:
    """The myrtle.ai journey's cases carry the notebook's figures (extra_info["published"]): the
    ladder table sets them beside the measured step; a run without them has no such column."""
    steps = [fake_runs.bench("tricks_journey", "baseline-24ep", [10.0, 10.2], ladder=True, step=0, reference=True,
                             published={"seconds": 75.0, "accuracy": 0.941, "source": "cell 15"}),
             fake_runs.bench("tricks_journey", "ghost-bn-18ep", [8.0, 8.1], ladder=True, step=1,
                             published={"seconds": 46.0, "accuracy": None, "source": "cell 57"})]
    run = fake_runs.write("journey.json", fake_runs.run(steps))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    ladder = text[text.index("### Cumulative journey"):]
    header = _header(ladder, "### Cumulative journey")
    assert "published (source's GPU)" in header
    first = dict(zip(header, _table_row(ladder, "0")))
    second = dict(zip(header, _table_row(ladder, "1")))
    assert first["published (source's GPU)"] == "75 s, 94.1%" and second["published (source's GPU)"] == "46 s"
    plain = fake_runs.write("plain.json", fake_runs.run([fake_runs.bench("architecture", "a", [1.0, 1.1], ladder=True, step=0)]))
    assert "published" not in Path(build_report([str(plain)], str(tmp_path / "P.md"))).read_text()
