"""The markdown report of saved runs, built from hand-made pytest-benchmark JSON files.

``make_bench`` / ``make_run`` / ``write_run`` build runs shaped like those the benchmark
suite saves; test_compare.py and test_dawnbench.py import them from here.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from speedtrain import report
from speedtrain.errors import BaselineError, ReportError
from speedtrain.report import SMOKE_BANNER, build_report, load_run


def make_curves(train_times: list[float], epochs: int = 4, final: float = 0.94) -> list[list[dict]]:
    """One accuracy curve per seed, epochs evenly spread over the seed's training time."""
    return [
        [
            {"epoch": e, "train_s": t * e / epochs, "test_acc": final * (0.6 + 0.4 * e / epochs),
             "train_loss": 2.0 / e}
            for e in range(1, epochs + 1)
        ]
        for t in train_times
    ]


def make_bench(section: str, case: str, times: list[float] | None, *, test: str | None = None,
               reference: bool = False, ladder: bool = False, step: int | None = None,
               status: str = "ok", profile: str = "quick", synthetic: bool = False,
               drop: tuple[str, ...] = (), **extra: Any) -> dict:
    """One benchmark entry; ``drop`` removes extra_info fields, as an older run would lack them."""
    test = test or f"test_{section}"
    times = times or []
    seeds = list(range(len(times))) or [0]
    info: dict[str, Any] = {
        "section": section, "case": case, "reference": reference, "ladder": ladder, "step": step,
        "profile": profile, "synthetic": synthetic, "dataset": "cifar10", "device": "Tesla V100-SXM2-16GB",
        "seeds": seeds, "status": status, "error": None if status == "ok" else "CUDA out of memory",
        "metric": "train_time_s", "train_time_s": times,
        "time_to_target_s": [t * 0.9 for t in times], "reached_target": [True] * len(times),
        "reached_fraction": 1.0, "target_acc": 0.94, "final_acc": [0.941] * len(times),
        "images_per_s": [50_000 * 24 / t for t in times], "epoch_time_s": [t / 24 for t in times],
        "eval_time_s": [0.5] * len(times), "peak_mem_allocated_bytes": 2**30,
        "peak_mem_reserved_bytes": 2**31, "diverged": status == "diverged",
        "timer": {"clock": "cuda_events", "includes": ["forward", "backward", "step"],
                  "excludes": ["evaluation", "data upload"]},
        "config": {"model": "resnet9", "epochs": 24, "batch_size": 512, "precision": "fp16"},
        "gpu": {"available": True, "reason": None, "gpu_name": "Tesla V100-SXM2-16GB", "util_mean_pct": 97.0,
                "power_mean_w": 250.0, "energy_j": 250.0 * sum(times), "throttle_reasons": []},
        "curves": make_curves(times),
    }
    info.update(extra)
    for key in drop:
        info.pop(key, None)
    stats = {"min": min(times), "max": max(times), "mean": statistics.mean(times),
             "median": statistics.median(times), "rounds": len(times), "iterations": 1} if times else {}
    return {
        "group": section, "name": f"{test}[{case}]", "fullname": f"benchmarks/{test}.py::{test}[{case}]",
        "params": {"case": case}, "param": case, "extra_info": info, "options": {}, "stats": stats,
    }


def make_run(benches: list[dict], *, profile: str = "quick", synthetic: bool = False,
             device: str = "Tesla V100-SXM2-16GB") -> dict:
    return {
        "machine_info": {
            "node": "gpu-box", "python_version": "3.11.9", "cpu": {"brand_raw": "Intel Xeon"},
            "speedtrain": {
                "profile": profile, "device": device,
                "gpu": {"name": device, "count": 1, "driver": "550.54", "cuda": "12.4", "cudnn": 90100},
                "torch": "2.4.0", "cuda": "12.4", "cudnn": 90100, "dataset": "cifar10",
                "synthetic": synthetic, "seeds": [0, 1, 2],
                "timer": {"clock": "cuda_events", "includes": ["forward", "backward", "step"],
                          "excludes": ["evaluation"]},
            },
        },
        "commit_info": {"id": "0123456789abcdef0123", "branch": "main", "dirty": False, "project": "speedtrain"},
        "benchmarks": benches,
        "datetime": "2024-05-01T12:34:56.789+00:00",
        "version": "5.1.0",
    }


def sample_benches(profile: str = "quick") -> list[dict]:
    """Two plain sections (one 2x-faster case, one oom, one with fields missing) and a ladder."""
    return [
        make_bench("precision", "fp32", [10.0, 10.5, 9.5], reference=True, profile=profile),
        make_bench("precision", "fp16", [5.0, 5.2, 4.8], profile=profile),
        make_bench("precision", "bf16", [], status="oom", profile=profile, drop=("curves", "gpu")),
        make_bench("batch_size", "512", [8.0, 8.0, 8.0], reference=True, profile=profile),
        make_bench("batch_size", "1024", [6.0], profile=profile,
                   drop=("final_acc", "images_per_s", "gpu", "time_to_target_s", "curves", "timer")),
        make_bench("tricks", "baseline", [40.0, 40.0], ladder=True, step=0, reference=True, profile=profile),
        make_bench("tricks", "celu", [20.0, 20.0], ladder=True, step=2, profile=profile),
        make_bench("tricks", "nesterov", [30.0, 30.0], ladder=True, step=1, profile=profile),
    ]


def write_run(path: Path, run: dict) -> Path:
    path.write_text(json.dumps(run))
    return path


@pytest.fixture
def quick_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "quick.json", make_run(sample_benches()))


@pytest.fixture
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the plots (about half a second each) in tests that only read the markdown."""
    monkeypatch.setattr(report, "PLOTS", ())


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
    assert _table_row(text, "commit")[1].startswith("0123456789ab (main")
    assert "evaluation" in _table_row(text, "not timed (excludes)")[1]
    assert _header(text, "## Numeric precision")[0] == "case"  # a single run has no run column


@pytest.mark.usefixtures("no_plots")
def test_speedup_against_reference(quick_run: Path, tmp_path: Path) -> None:
    text = Path(build_report([str(quick_run)], str(tmp_path / "R.md"))).read_text()
    header = _header(text, "## Numeric precision")
    fp16 = dict(zip(header, _table_row(text, "fp16")))
    assert fp16["train s (median)"] == "5.00"
    assert fp16["speed-up"] == "2.00x"
    assert fp16["spread (min-max)"] == "4.80-5.20 (n=3)"
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
def test_smoke_or_synthetic_run_gets_banner_first(tmp_path: Path, profile: str, synthetic: bool) -> None:
    run = write_run(tmp_path / "smoke.json",
                    make_run(sample_benches(profile), profile=profile, synthetic=synthetic))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    banner = next(i for i, line in enumerate(text.splitlines()) if SMOKE_BANNER in line)
    assert banner < text.splitlines().index("## Environment")


@pytest.mark.usefixtures("no_plots")
def test_run_without_speedtrain_machine_info_falls_back_to_extra_info(tmp_path: Path) -> None:
    run = make_run(sample_benches(profile="smoke"))
    del run["machine_info"]["speedtrain"], run["commit_info"], run["datetime"]
    text = Path(build_report([str(write_run(tmp_path / "old.json", run))], str(tmp_path / "R.md"))).read_text()
    assert SMOKE_BANNER in text  # the profile came from extra_info
    assert _table_row(text, "device")[1] == "Tesla V100-SXM2-16GB"
    assert _table_row(text, "commit")[1] == "-"


@pytest.mark.usefixtures("no_plots")
def test_several_runs_get_a_run_column(quick_run: Path, tmp_path: Path) -> None:
    other = write_run(tmp_path / "other.json", make_run([make_bench("precision", "fp32", [12.0], reference=True),
                                                         make_bench("precision", "fp16", [3.0])]))
    text = Path(build_report([str(quick_run), str(other)], str(tmp_path / "R.md"))).read_text()
    header = _header(text, "## Numeric precision")
    assert header[:2] == ["run", "case"]
    rows = [dict(zip(header, cells)) for cells in _table_rows(text[text.index("## Numeric precision"):])]
    other_fp16 = next(r for r in rows if r["run"] == "other" and r["case"] == "fp16")
    assert other_fp16["speed-up"] == "4.00x"  # against the other run's own reference
    assert _header(text, "## Environment")[1:] == ["quick", "other"]


@pytest.mark.usefixtures("no_plots")
def test_several_runs_with_the_same_stem_get_distinct_labels(quick_run: Path, tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    twin = write_run(tmp_path / "b" / "quick.json", make_run(sample_benches()))
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
    with pytest.raises(ReportError, match="overwrite"):
        build_report([str(quick_run)], str(quick_run))
    assert quick_run.read_bytes() == before


@pytest.mark.usefixtures("no_plots")
def test_baseline_verdict_column(quick_run: Path, tmp_path: Path) -> None:
    from speedtrain import baselines

    data = baselines.empty()
    base = make_bench("precision", "fp16", [2.5, 2.5, 2.6])["extra_info"]
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
def test_throttling_is_noted(tmp_path: Path) -> None:
    bench = make_bench("precision", "fp32", [10.0], reference=True)
    bench["extra_info"]["gpu"]["throttle_reasons"] = ["gpu_idle", "sw_thermal"]
    run = write_run(tmp_path / "hot.json", make_run([bench]))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    assert "GPU clocks throttled (sw_thermal)" in text


def test_bare_and_malformed_fields_never_crash(tmp_path: Path) -> None:
    """An older or broken run: only the section, or fields of the wrong type, give dashes."""
    bare = {"name": "test_precision[fp32]", "extra_info": {"section": "precision"}}
    junk = make_bench("precision", "fp16", [5.0])
    junk["extra_info"].update(train_time_s="fast", final_acc=[None, "x"], gpu=5, curves=[["x"], None],
                              time_to_target_s=[None], timer="perf_counter", step="first")
    odd = make_bench("some new|section", "a", [1.0], ladder=True, step=None)
    run = write_run(tmp_path / "odd.json", {"benchmarks": [bare, junk, odd, "not a benchmark"]})
    out = tmp_path / "R.md"
    text = Path(build_report([str(run)], str(out))).read_text()
    row = dict(zip(_header(text, "## Numeric precision"), _table_row(text, "fp16")))
    assert row["train s (median)"] == row["final acc"] == row["energy J"] == "-"
    assert row["time to target s"] == "not reached (0/1 seeds)"
    assert _table_row(text, "fp32")[1] == "ok"
    assert "## some new\\|section" not in text and "## some new|section" in text  # headings need no escape
    assert (tmp_path / "R-some-new-section-time.png").exists()


def test_output_folder_is_refused(quick_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="must be a file path"):
        build_report([str(quick_run)], str(tmp_path))
