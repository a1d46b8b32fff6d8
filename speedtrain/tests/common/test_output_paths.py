"""Outputs that would clobber each other or an input are refused before any work (issue 22)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from speedtrain.common.errors import OutputError
from speedtrain.common.output_paths import check_outputs
from speedtrain.tests.cli.test_cli import TINY, run_cli


def test_two_outputs_naming_one_file_are_refused_however_spelled(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "f.json", tmp_path / "link.json")
    for other in ("f.json", "./f.json", "sub/../f.json", str(tmp_path / "f.json"), "link.json"):
        with pytest.raises(OutputError, match="--json and --mllog both name"):
            check_outputs({"--json": "f.json", "--mllog": other})
    check_outputs({"--json": "f.json", "--mllog": "g.log", "--x": None})  # distinct, or not given


def test_an_output_naming_an_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"-o .*a.json would overwrite its input \(RUN.json .*a.json\)"):
        check_outputs({"-o": tmp_path / "a.json"}, {"RUN.json": [str(tmp_path / "b.json"), str(tmp_path / "a.json")]})
    with pytest.raises(OutputError, match="--baselines"):
        check_outputs({"--json": "b.json"}, {"RUN": ["a.json"], "--baselines": "b.json"})
    check_outputs({"--json": "-"}, {"RUN": ["-"]})  # stdout is no file
    check_outputs({"-o": "c.json"}, {"RUN": ["a.json"], "--baselines": None})


def test_train_refuses_json_and_mllog_on_one_file_before_training(capsys, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, stdout, err = run_cli(capsys, "train", *TINY, "--json", str(out), "--mllog", str(out))
    assert code == 2 and err.startswith("error: --json and --mllog both name") and len(err.splitlines()) == 1
    assert stdout == "" and not out.exists()  # refused before training: no summary, no file


def test_merge_refuses_to_write_over_one_of_its_runs(capsys, fake_runs, tmp_path: Path) -> None:
    a = fake_runs.write("a.json", fake_runs.run([fake_runs.bench("precision", "fp32", [1.0, 1.1])]))
    b = fake_runs.write("b.json", fake_runs.run([fake_runs.bench("precision", "fp16", [1.0, 1.1])]))
    before = a.read_bytes()
    code, _, err = run_cli(capsys, "merge", str(a), str(b), "-o", str(a))
    assert code == 2 and "would overwrite its input" in err and len(err.splitlines()) == 1
    assert a.read_bytes() == before
    code, _, err = run_cli(capsys, "report", str(a), "-o", str(a))  # the same check, the same words
    assert code == 2 and "would overwrite its input" in err


def test_compare_json_must_not_overwrite_a_compared_run(capsys, fake_runs) -> None:
    a = fake_runs.write("a.json", fake_runs.run([fake_runs.bench("precision", "fp32", [1.0, 1.1])]))
    b = fake_runs.write("b.json", fake_runs.run([fake_runs.bench("precision", "fp32", [1.0, 1.1])]))
    before = json.loads(b.read_text())
    code, _, err = run_cli(capsys, "compare", str(a), str(b), "--json", str(b))
    assert code == 2 and "--json" in err and "would overwrite its input" in err
    assert json.loads(b.read_text()) == before
