"""Report, compare and DAWNBench export on runs the test makes by running the smoke suite."""

import json
import re
import shutil

import pytest

from speedtrain.cli.main import main
from speedtrain.tests.conftest import GOLDEN


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_of_a_real_smoke_run(capsys, smoke_run, tmp_path):
    out = tmp_path / "report" / "REPORT.md"
    code, stdout, err = run_cli(capsys, "report", smoke_run, "-o", out)
    assert code == 0, err
    text = out.read_text()
    assert "WARNING" in text.split("\n## ")[0]  # the smoke banner comes first
    for title in ("Numeric precision", "Architecture ladder", "DAWNBench"):
        assert title in text
    assert "resnet9-24ep-half" in text and "residual-layers-1-and-3" in text
    assert "torch" in text and "perf_counter" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert images and all((out.parent / name).is_file() for name in images)


def test_report_with_fields_missing(capsys, smoke_data, tmp_path):
    """A run from an older version, or a failed case, lacks fields: the report still renders."""
    data = json.loads(json.dumps(smoke_data))
    for i, bench in enumerate(data["benchmarks"]):
        for key in list(bench["extra_info"])[i % 5::3]:
            if key != "section":
                del bench["extra_info"][key]
    del data["machine_info"]["speedtrain"]
    run = tmp_path / "partial.json"
    run.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "report", run, "-o", tmp_path / "partial.md")
    assert code == 0, err
    assert "Numeric precision" in (tmp_path / "partial.md").read_text()


def verdicts(out: str) -> set[str]:
    """The verdict column of compare's table."""
    lines = out.splitlines()
    start = lines[0].index("verdict")
    return {line[start:].split("  ")[0] for line in lines[2:] if not line.startswith("regression:")}


def test_compare_a_run_with_itself_finds_no_regression(capsys, smoke_run):
    code, out, err = run_cli(capsys, "compare", smoke_run, smoke_run)
    assert code == 0, err
    assert verdicts(out) == {"not judged"} and "regression: none" in out  # one seed a case: noise unknown


def three_seeds(data: dict, scale: float) -> dict:
    """The smoke run as if each case had run three seeds (1% apart), its times scaled."""
    out = json.loads(json.dumps(data))
    for bench in out["benchmarks"]:
        info = bench["extra_info"]
        t = info["train_time_s"][0]
        info["train_time_s"] = [t * scale, t * scale * 1.01, t * scale * 0.99]
        info["seeds"], info["final_acc"] = [0, 1, 2], info["final_acc"] * 3
        info["reached_target"] = info["reached_target"] * 3
    return out


def test_compare_flags_a_planted_slowdown(capsys, smoke_data, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(three_seeds(smoke_data, 1.0)))
    b.write_text(json.dumps(three_seeds(smoke_data, 1.5)))
    code, out, _ = run_cli(capsys, "compare", a, b)
    assert code == 1 and verdicts(out) == {"slower"} and "regression: yes" in out


def test_compare_against_baselines_recorded_from_the_run(capsys, smoke_run, smoke_data, tmp_path):
    from speedtrain.records import baselines as bl
    from speedtrain.records.record import CaseRecord

    data = bl.empty()
    machine = smoke_data["machine_info"]["speedtrain"]["device"]
    for bench in smoke_data["benchmarks"]:
        bl.record(data, machine, "smoke", bench["name"], CaseRecord.from_extra_info(bench["extra_info"]), {"date": "2026-11-23", "gpu": machine,
                  "commit": None, "torch": "x", "cuda": None, "driver": None, "profile": "smoke",
                  "dataset": "cifar10", "synthetic": True, "run": "test"})
    file = tmp_path / "baselines.json"
    bl.save(file, data)
    code, out, err = run_cli(capsys, "compare", "--baselines", file, smoke_run, "--require-baselines")
    assert code == 0, err
    assert verdicts(out) == {"not judged"}  # every case found its baseline; one seed: not judged


def test_dawnbench_export_of_a_real_smoke_run(capsys, smoke_run, tmp_path):
    code, out, err = run_cli(capsys, "report", smoke_run, "--dawnbench", tmp_path / "dawn")
    assert code == 0, err
    tsv = next((tmp_path / "dawn").glob("*.tsv")).read_text().splitlines()
    assert tsv[0].startswith("# WARNING: smoke profile")  # a smoke entry is no entry, in the table too
    assert tsv[1].split("\t") == ["epoch", "hours", "top1Accuracy"]
    hours = [float(line.split("\t")[1]) for line in tsv[2:]]
    assert len(hours) == 2 and hours == sorted(hours)
    entry = json.loads(next((tmp_path / "dawn").glob("*.json")).read_text())
    assert entry["framework"].startswith("PyTorch")


@pytest.mark.parametrize("content", ["", "not json", '{"benchmarks": 3}', '{"machine_info": {}}'])
def test_garbage_input_is_a_clear_error_and_overwrites_nothing(capsys, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "REPORT.md"
    out.write_text("previous report")
    code, _, err = run_cli(capsys, "report", bad, "-o", out)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "bad.json" in err
    assert out.read_text() == "previous report"
    code, _, err = run_cli(capsys, "compare", bad, bad)
    assert code == 2 and err.startswith("error: ")


# --- golden: a saved smoke run of an older version renders exactly as it did ----------------
# The run (recorded at 5d098fa, before the typed record) and what it rendered are kept here, so
# reports/smoke-cpu can be re-recorded with today's suite while old saved runs stay readable.

OLD_RUN = GOLDEN / "smoke-cpu-run.json"


@pytest.fixture
def in_golden_folder(tmp_path, monkeypatch):
    """A folder holding the baselines the golden outputs were rendered with, as ./baselines.json
    (the report names the path it was given); plots are drawn but not rendered to PNG."""
    from speedtrain.report import plots

    shutil.copy(GOLDEN / "smoke-cpu-baselines.json", tmp_path / "baselines.json")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plots, "_png", lambda fig: b"\x89PNG")
    return tmp_path


@pytest.mark.parametrize("args, golden", [
    ([], GOLDEN / "smoke-cpu-REPORT.md"),
    (["--baselines", "baselines.json"], GOLDEN / "smoke-cpu-REPORT-with-baselines.md"),
])
def test_committed_smoke_run_renders_the_golden_report(capsys, in_golden_folder, args, golden):
    code, _, err = run_cli(capsys, "report", OLD_RUN, "-o", "REPORT.md", *args)
    assert code == 0, err
    assert (in_golden_folder / "REPORT.md").read_bytes() == golden.read_bytes()


@pytest.mark.parametrize("args, golden", [
    (["--baselines", "baselines.json", OLD_RUN], "smoke-cpu-compare-baselines.txt"),
    ([OLD_RUN, OLD_RUN], "smoke-cpu-compare-itself.txt"),
])
def test_committed_smoke_run_compares_as_before(capsys, in_golden_folder, args, golden):
    code, out, err = run_cli(capsys, "compare", *args)
    assert code == 0, err
    assert out == (GOLDEN / golden).read_text()


def test_committed_smoke_run_exports_the_committed_dawnbench_entry(capsys, in_golden_folder):
    code, _, err = run_cli(capsys, "report", OLD_RUN, "--dawnbench", "dawn")
    assert code == 0, err
    for committed in (GOLDEN / "smoke-cpu-dawnbench").iterdir():
        assert (in_golden_folder / "dawn" / committed.name).read_bytes() == committed.read_bytes()
