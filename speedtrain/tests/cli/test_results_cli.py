"""The CLI's result commands as users of pytest-benchmark and MLPerf expect them: run numbers
and ``latest``, --only-common, --threshold, --json, --require-baselines; a ``train --json``
result as a run; the MLPerf event log of ``train --mllog``; --version and grouped --help."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from speedtrain.records import baselines
from speedtrain.records.benchstore import machine_id
from speedtrain.cli.main import main
from speedtrain.records.record import CaseRecord
from speedtrain.tests.cli.test_cli import TINY, run_cli

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns

GPU = "Tesla V100-SXM2-16GB"


def benches(fake_runs: "FakeRuns", scale: float = 1.0, cases: tuple[str, ...] = ("fp32", "fp16")) -> list[dict]:
    return [fake_runs.bench("precision", c, [t * scale for t in (10.0, 10.1, 9.9)], reference=c == "fp32")
            for c in cases]


@pytest.fixture
def storage(fake_runs: "FakeRuns", tmp_path: Path, monkeypatch) -> Path:
    """pytest-benchmark's storage with runs 0001_base (this machine), 0002_slow (this machine),
    0003_other (another machine's folder); the test runs in tmp_path."""
    monkeypatch.chdir(tmp_path)
    here = tmp_path / ".benchmarks" / machine_id()
    fake_runs.write(str(here / "0001_base.json"), fake_runs.run(benches(fake_runs)))
    fake_runs.write(str(here / "0002_slow.json"), fake_runs.run(benches(fake_runs, 1.2, ("fp32", "fp16", "bf16"))))
    fake_runs.write(str(tmp_path / ".benchmarks" / "Other-Machine" / "0003_other.json"), fake_runs.run(benches(fake_runs)))
    return tmp_path


@pytest.mark.parametrize("old, new", [("1", "latest"), ("0001", "0002"), ("base", "slow"), ("0001_base", "2")])
def test_runs_by_number_name_or_latest(capsys, storage, old, new) -> None:
    code, out, err = run_cli(capsys, "compare", old, new)
    assert code == 1, err  # 0002 is 20% slower
    assert "slower" in out and "regression: yes" in out


def test_a_name_not_in_this_machines_folder_is_looked_up_in_all(capsys, storage) -> None:
    code, out, err = run_cli(capsys, "compare", "other", "base")
    assert code == 0, err


@pytest.mark.parametrize("spec, words", [("7", "no saved run in .benchmarks matches it"),
                                         ("0", "no saved run"), ("nothing.json", "no such file")])
def test_an_unknown_run_is_one_error_line(capsys, storage, spec, words) -> None:
    code, _, err = run_cli(capsys, "compare", "1", spec)
    assert code == 2 and words in err and len(err.splitlines()) == 1


def test_ambiguous_and_missing_storage(capsys, storage, fake_runs) -> None:
    here = storage / ".benchmarks" / machine_id()
    fake_runs.write(str(here / "0004_base-again.json"), fake_runs.run(benches(fake_runs)))
    code, _, err = run_cli(capsys, "compare", "base", "latest")
    assert code == 2 and "matches 2 saved runs" in err
    code, _, err = run_cli(capsys, "compare", "1", "latest", "--storage", "elsewhere")
    assert code == 2 and "no pytest-benchmark storage folder elsewhere" in err


def test_only_common_threshold_and_json(capsys, storage) -> None:
    code, out, _ = run_cli(capsys, "compare", "1", "2")
    assert "bf16" in out  # only in the new run: listed by default
    code, out, _ = run_cli(capsys, "compare", "1", "2", "--only-common", "--threshold", "0.25", "--json", "v.json")
    assert code == 0 and "bf16" not in out and "regression: none" in out  # +20% is within 25%
    data = json.loads((storage / "v.json").read_text())
    assert data["regressed"] is False
    assert [r["case"] for r in data["rows"]] == ["test_precision[fp32]", "test_precision[fp16]"]
    assert data["rows"][0]["ratio"] == pytest.approx(1.2) and data["rows"][0]["change_pct"] == pytest.approx(20.0)
    code, out, _ = run_cli(capsys, "compare", "1", "2", "--json", "-")
    assert code == 1 and json.loads(out)["regressed"] is True  # stdout is the JSON alone


@pytest.mark.parametrize("value", ["5", "-0.1", "x", "0", "1", "nan"])
def test_threshold_is_a_fraction(capsys, storage, value) -> None:
    code, _, err = run_cli(capsys, "compare", "1", "2", "--threshold", value)
    assert code == 2 and "strictly between 0 and 1 (0.05 = 5%)" in err  # the rule of --st-threshold


def test_only_common_with_no_case_in_common_fails_in_one_line(capsys, storage, fake_runs) -> None:
    """A CI step must not pass having compared nothing."""
    here = storage / ".benchmarks" / machine_id()
    fake_runs.write(str(here / "0004_bf16.json"), fake_runs.run(benches(fake_runs, cases=("bf16",))))
    code, out, err = run_cli(capsys, "compare", "1", "4", "--only-common")
    assert code == 1 and err == ""
    (line,) = out.splitlines()
    assert line.startswith("FAIL: no case in common between ") and line.endswith(": nothing was compared")
    code, out, err = run_cli(capsys, "compare", "1", "4", "--only-common", "--json", "-")
    assert code == 1 and json.loads(out)["failures"] and err.startswith("FAIL: no case in common")
    code, out, _ = run_cli(capsys, "compare", "1", "4")  # without --only-common: listed, nothing judged
    assert code == 0 and "bf16" in out and "fp32" in out


def test_require_baselines_fails_loudly_when_this_gpu_has_none(capsys, storage, fake_runs) -> None:
    data = baselines.empty()
    for bench in benches(fake_runs):
        baselines.record(data, "another GPU", "quick", bench["name"], CaseRecord.from_extra_info(bench["extra_info"]), {})
    baselines.save(storage / "baselines.json", data)
    code, out, err = run_cli(capsys, "compare", "--baselines", "baselines.json", "1")
    assert code == 0 and "no baseline" in out  # without the flag: a pass, every case "no baseline"
    code, out, err = run_cli(capsys, "compare", "--baselines", "baselines.json", "1", "--require-baselines")
    assert code == 1 and err == ""
    # one verdict, the exit code's: the FAIL line where "regression: none" would have been
    assert out.splitlines()[-1] == (f"FAIL: baselines.json holds no baselines for '{GPU}' with profile 'quick': "
                                    "record them first (pytest benchmarks --st-profile quick --st-baselines update)")
    assert "regression: none" not in out
    for bench in benches(fake_runs):
        baselines.record(data, GPU, "quick", bench["name"], CaseRecord.from_extra_info(bench["extra_info"]), {})
    baselines.save(storage / "baselines.json", data)
    code, out, err = run_cli(capsys, "compare", "--baselines", "baselines.json", "1", "--require-baselines")
    assert code == 0 and err == "" and out.splitlines()[-1] == "regression: none"
    code, _, err = run_cli(capsys, "compare", "1", "2", "--require-baselines")
    assert code == 2 and "needs --baselines" in err


# --- a train --json result as a run, and the MLPerf event log ----------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """One tiny real training run with --json and --mllog; (result, log, stdout)."""
    folder = tmp_path_factory.mktemp("train")
    result, log = folder / "result.json", folder / "run.mllog"
    code = main(["train", *TINY, "--quiet", "--json", str(result), "--mllog", str(log)])
    assert code == 0
    return result, log, ""


def test_a_train_result_is_a_one_case_run_for_report_and_compare(capsys, trained, tmp_path) -> None:
    result = trained[0]
    slower = json.loads(result.read_text())
    slower["train_time_s"] *= 2
    (tmp_path / "slower.json").write_text(json.dumps(slower))
    code, out, err = run_cli(capsys, "compare", str(result), str(tmp_path / "slower.json"))
    assert code == 0, err  # one seed a side: not judged, never "slower"
    row = out.splitlines()[2]
    assert row.startswith("train ") and "+100.0" in row and "not judged" in row
    code, _, err = run_cli(capsys, "report", str(result), "-o", str(tmp_path / "R.md"))
    assert code == 0, err
    text = (tmp_path / "R.md").read_text()
    assert "resnet9 x0.125 cifar10 (synthetic) fp32 bs32 2ep" in text and "WARNING" in text  # synthetic data is marked


def test_mllog_lines_are_mlperf_events_in_time_order(trained) -> None:
    lines = trained[1].read_text().splitlines()
    assert all(line.startswith(":::MLLOG {") for line in lines)
    events = [json.loads(line[len(":::MLLOG "):]) for line in lines]
    assert all(list(e) == ["namespace", "time_ms", "event_type", "key", "value", "metadata"] for e in events)
    keys = [e["key"] for e in events]
    assert keys[0] == "init_start" and "global_batch_size" in keys
    run = keys[keys.index("init_stop"):]
    assert run == ["init_stop", "run_start", "epoch_start", "epoch_stop", "eval_start", "eval_stop", "eval_accuracy",
                   "epoch_start", "epoch_stop", "eval_start", "eval_stop", "eval_accuracy", "run_stop"]
    times = [e["time_ms"] for e in events]
    assert times == sorted(times) and times[-1] - times[0] < 600_000 and times[0] > 1.6e12  # real ms since 1970
    by_key = {e["key"]: e for e in events}
    assert by_key["run_start"]["event_type"] == "INTERVAL_START" and by_key["run_stop"]["event_type"] == "INTERVAL_END"
    assert by_key["eval_accuracy"]["event_type"] == "POINT_IN_TIME" and 0 <= by_key["eval_accuracy"]["value"] <= 1
    assert by_key["eval_accuracy"]["metadata"]["epoch_num"] == 2
    assert by_key["epoch_start"]["metadata"]["file"] == "loop.py"  # where the trainer logged it
    assert by_key["run_stop"]["metadata"]["status"] == "aborted"  # synthetic data never reaches 94%
    result = json.loads(trained[0].read_text())
    assert [e["value"] for e in events if e["key"] == "eval_accuracy"] == [ep["test_acc"] for ep in result["epochs"]]


def test_mllog_closes_a_crashed_run(tmp_path) -> None:
    from speedtrain.config.trainconfig import TrainConfig
    from speedtrain.report.mllog import MlLog

    with pytest.raises(RuntimeError):
        with MlLog(tmp_path / "x.mllog", TrainConfig(synthetic=True)) as log:
            log.event("run_start", {})
            raise RuntimeError("out of memory")
    last = json.loads((tmp_path / "x.mllog").read_text().splitlines()[-1][len(":::MLLOG "):])
    assert last["key"] == "run_stop" and last["metadata"]["status"] == "aborted"


# --- version and help ---------------------------------------------------------------------------


def test_version(capsys) -> None:
    from importlib.metadata import version

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"speedtrain {version('speedtrain')}"


def test_train_help_groups_the_options(capsys) -> None:
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    titles = [line for line in out.splitlines() if line.endswith("options:") and line != "options:"]
    assert titles == ["data options:", "model options:", "augmentation and test-time augmentation options:",
                      "optimiser and schedule options:", "precision, memory format and compilation options:",
                      "data loader options:", "run options:", "data-parallel training options:"]
    section = {t: out.split(t)[1].split("\n\n")[0] for t in titles}
    assert "--dataset" in section["data options:"] and "--cutout" in section["augmentation and test-time augmentation options:"]
    assert "--precision" in section["precision, memory format and compilation options:"]
    assert "--lr " in section["optimiser and schedule options:"] and "--mllog" in section["run options:"]
