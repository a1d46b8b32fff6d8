"""The MLPerf log against the rules of MLPerf's compliance checker (issue 21).

The rules below are those of mlperf-logging 4.1.68's checker, ruleset training 4.1.0
(``mlperf_logging/compliance_checker/training_4.1.0/common.yaml``, ``closed_common.yaml``,
``open_common.yaml``; line parsing as ``mlp_parser/ruleset_410.py``), re-stated in Python:
each line is checked in order against a shared state, then the occurrence counts. Only the
per-benchmark files (``closed_<benchmark>.yaml``) are left out: speedtrain's benchmark is
not an MLPerf benchmark, and the name check says so (the one failure these tests expect).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from speedtrain.cli.main import main
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.report.mllog import MlLog, Submission, samples
from speedtrain.tests.cli.test_cli import TINY

TOKEN = ":::MLLOG "
CLOSED_BENCHMARKS = ["resnet", "ssd", "stable_diffusion", "maskrcnn", "gpt3", "dlrm_dcnv2", "bert", "rnnt", "unet3d",
                     "gnn", "llama2_70b_lora"]
OPEN_BENCHMARKS = ["retinanet", "stable_diffusion", "dlrm_dcnv2", "unet3d", "gnn", "llama2_70b_lora"]


def check(lines: list[str]) -> list[str]:
    """Every rule the checker would report for ``lines``, one string each (empty: compliant)."""
    failures: list[str] = []
    s = dict(init_started=False, init_stopped=False, run_started=False, first_init_start=9e99, compile_time_mins=0,
             division=None)
    seen: Counter[str] = Counter()
    for n, line in enumerate(lines):
        if not line.startswith(TOKEN):
            failures.append(f"line {n}: does not start with {TOKEN!r}")
            continue
        m = json.loads(line[len(TOKEN):])
        ts, key, v = float(m["time_ms"]), m["key"], {"value": m["value"], "metadata": m["metadata"]}
        seen[key] += 1
        meta = v["metadata"]
        checks: list[tuple[bool, str]] = []
        if key in ("submission_org", "submission_platform", "train_samples", "eval_samples"):
            checks = [(v["value"] != "", "v['value'] != ''")]
        elif key == "submission_division":
            checks = [(v["value"] in ("closed", "open"), "division in closed/open")]
            s["division"] = v["value"]
            s["compile_time_mins"] = 240 if v["value"] == "open" else 30
        elif key == "cache_clear":
            checks = [("value" in v, "'value' in v")]
        elif key == "init_start":
            checks = [(not s["init_stopped"], "not init_stopped"), (not s["run_started"], "not run_started")]
            s["init_started"], s["first_init_start"] = True, min(s["first_init_start"], ts)
        elif key == "init_stop":
            checks = [(s["init_started"], "init_started"), (not s["run_started"], "not run_started"),
                      (ts - s["first_init_start"] < s["compile_time_mins"] * 60 * 1e3, "init within compile time")]
            s["init_stopped"] = True
        elif key == "run_start":
            checks = [(s["init_stopped"], "init_stopped")]
            s["run_started"] = True
        elif key == "run_stop":
            checks = [(s["run_started"], "run_started"), ("status" in meta, "'status' in metadata")]
        elif key in ("epoch_start", "epoch_stop"):
            checks = [("epoch_num" in meta, "'epoch_num' in metadata")]
        elif key in ("eval_start", "eval_stop", "eval_accuracy"):
            checks = [("epoch_num" in meta or "samples_count" in meta, "epoch_num or samples_count in metadata")]
        elif key == "submission_benchmark":
            allowed = OPEN_BENCHMARKS if s["division"] == "open" else CLOSED_BENCHMARKS
            checks = [(v["value"] in allowed, "submission_benchmark is an MLPerf benchmark")]
        elif key == "gradient_accumulation_steps" and s["division"] == "closed":
            checks = [(v["value"] > 0, "v['value'] > 0")]
        failures += [f"CHECK for {key!r} failed: {what}" for ok, what in checks if not ok]
    exactly_one = ["submission_org", "submission_platform", "submission_division", "init_stop", "run_start", "run_stop",
                   "train_samples", "eval_samples", "submission_benchmark"]
    if s["division"] == "closed":
        exactly_one.append("gradient_accumulation_steps")
    failures += [f"Required EXACTLY_ONE occurrence of {k!r} but found {seen[k]}" for k in exactly_one if seen[k] != 1]
    failures += [f"Required AT_LEAST_ONE occurrence of {k!r}" for k in ("cache_clear", "init_start", "eval_accuracy")
                 if not seen[k]]
    for key, alternative in (("epoch_start", "block_start"), ("epoch_stop", "block_stop"),
                             ("eval_start", "block_start"), ("eval_stop", "block_stop")):
        if not seen[key] and not seen[alternative]:
            failures.append(f"Required AT_LEAST_ONE occurrence of {key!r} or {alternative!r}")
    return failures


BENCHMARK_ONLY = ["CHECK for 'submission_benchmark' failed: submission_benchmark is an MLPerf benchmark"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, list[str]]:
    """A tiny real run's log with the submission options (closed), and one without."""
    folder = tmp_path_factory.mktemp("mllog")
    out = {}
    for name, extra in (("closed", ["--mllog-org", "speedtrain", "--mllog-platform", "cpu-box",
                                    "--mllog-division", "closed"]), ("plain", [])):
        path = folder / f"{name}.mllog"
        assert main(["train", *TINY, "--quiet", "--no-monitor", "--mllog", str(path), *extra]) == 0
        out[name] = path.read_text().splitlines()
    return out


def test_a_run_with_the_submission_keys_fails_only_the_benchmark_name(logs):
    assert check(logs["closed"]) == BENCHMARK_ONLY


def test_the_rules_can_fail():
    # the encoded checker is not vacuous: a log missing its evaluations and samples fails it
    broken = [line for line in (TOKEN + json.dumps(dict(namespace="", time_ms=1, event_type="POINT_IN_TIME",
                                                        key="run_stop", value=None, metadata={})),)]
    failures = check(broken)
    assert "CHECK for 'run_stop' failed: run_started" in failures
    assert "CHECK for 'run_stop' failed: 'status' in metadata" in failures
    assert any("'train_samples'" in f for f in failures) and any("'eval_start'" in f for f in failures)


def test_evaluations_are_bracketed_and_samples_always_logged(logs):
    keys = [json.loads(line[len(TOKEN):])["key"] for line in logs["plain"]]
    assert keys.count("train_samples") == keys.count("eval_samples") == 1  # a full-data run too (below)
    for i, key in enumerate(keys):
        if key == "eval_accuracy":
            assert keys[i - 2:i] == ["eval_start", "eval_stop"]
    # without the submission options: the submission keys, cache_clear and the init time limit are missing
    assert set(check(logs["plain"])) - set(BENCHMARK_ONLY) == {
        "Required EXACTLY_ONE occurrence of 'submission_org' but found 0",
        "Required EXACTLY_ONE occurrence of 'submission_platform' but found 0",
        "Required EXACTLY_ONE occurrence of 'submission_division' but found 0",
        "Required AT_LEAST_ONE occurrence of 'cache_clear'",
        "CHECK for 'init_stop' failed: init within compile time",
    }


def test_samples_are_the_images_trained_and_evaluated():
    assert samples(TrainConfig()) == (50_000, 10_000)
    assert samples(TrainConfig(train_subset=1000, test_subset=200, val_split=100, batch_size=32)) == (900, 200)
    assert samples(TrainConfig(classes=(0, 1), batch_size=32)) == (10_000, 2_000)


def test_open_division_checks_the_open_list(tmp_path):
    path = tmp_path / "open.mllog"
    with MlLog(path, TrainConfig(synthetic=True), Submission("org", "box", "open")) as log:
        log.event("run_start", {})
        log.event("epoch_start", {"epoch_num": 1})
        log.event("epoch_stop", {"epoch_num": 1})
        log.event("eval_start", {"epoch_num": 1})
        log.event("eval_stop", {"epoch_num": 1})
        log.event("eval_accuracy", {"value": 0.5, "epoch_num": 1})
        log.event("run_stop", {"status": "ok", "reached_target": False})
    assert check(path.read_text().splitlines()) == BENCHMARK_ONLY


def test_a_run_that_fails_before_run_start_logs_no_run_stop(tmp_path):
    path = tmp_path / "early.mllog"
    with pytest.raises(RuntimeError):
        with MlLog(path, TrainConfig(synthetic=True)):
            raise RuntimeError("no data")
    keys = [json.loads(line[len(TOKEN):])["key"] for line in path.read_text().splitlines()]
    assert "run_stop" not in keys and "run_start" not in keys and keys[0] == "init_start"
    assert not any(f.startswith("CHECK for 'run_stop'") for f in check(path.read_text().splitlines()))  # no orphan stop


@pytest.mark.parametrize("argv, words", [
    (["--mllog", "x.mllog", "--mllog-org", "a"], "missing --mllog-platform, --mllog-division"),
    (["--mllog-org", "a", "--mllog-platform", "b", "--mllog-division", "closed"], "give --mllog PATH"),
    (["--mllog", "x.mllog", "--mllog-org", "a", "--mllog-platform", "b", "--mllog-division", "mine"],
     "--mllog-division must be one of closed, open"),
    (["--mllog", "x.mllog", "--mllog-org", " ", "--mllog-platform", "b", "--mllog-division", "open"],
     "--mllog-org must be a non-empty name"),
])
def test_submission_options_are_refused_in_one_line(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--quiet", "--no-monitor", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "x.mllog").exists()  # refused before the log was opened
