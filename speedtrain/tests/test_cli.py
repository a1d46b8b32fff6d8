import json
import subprocess
import sys

import pytest

from speedtrain.cli import main

TINY = ["--synthetic", "--width", "0.125", "--batch-size", "32", "--train-subset", "64", "--test-subset", "64",
        "--epochs", "2", "--device", "cpu", "--warmup-steps", "0"]


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "two"], ["--epochs", "whole number", "'two'"]),
    (["train", "--precision", "fp8"], ["precision", "fp32, tf32, fp16, bf16, half", "'fp8'"]),
    (["train", "--width", "0"], ["width", "(0, 4]"]),
    (["train", "--stem", "imagenet"], ["stem", "resnet18"]),
    (["train", "--workers", "4"], ["workers", "loader 'torch'"]),
    (["train", "--residual", "1,x"], ["--residual", "comma-separated"]),
    (["train", "--no-such-option"], ["unrecognized arguments", "--no-such-option"]),
    (["train", "--synthetic", "--device", "cpu", "--precision", "tf32"], ["tf32", "CUDA"]),
    (["frobnicate"], ["invalid choice", "frobnicate"]),
    (["report", "missing.json", "-o", "out.md"], ["missing.json"]),
    (["report", "missing.json"], ["-o REPORT.md", "--dawnbench"]),
    (["compare", "only-one.json"], ["two runs"]),
])
def test_bad_input_is_one_error_line_and_exit_code_2(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


def test_missing_dataset_names_where_it_looked(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data-dir", str(tmp_path / "nowhere"), "--device", "cpu")
    assert code == 2
    assert err.startswith("error: ") and "nowhere" in err and len(err.strip().splitlines()) == 1


def test_train_prints_progress_and_writes_json(capsys, tmp_path):
    out_json = tmp_path / "run.json"
    code, out, err = run_cli(capsys, "train", *TINY, "--json", str(out_json))
    assert code == 0
    assert "epoch" in err and len([l for l in err.splitlines() if l.strip().startswith(("1 ", "2 "))]) == 2
    assert "SYNTHETIC" in out and "train time" in out and str(out_json) in out
    data = json.loads(out_json.read_text())
    assert data["status"] == "ok" and data["synthetic"] and len(data["epochs"]) == 2
    assert data["config"]["width"] == 0.125


def test_quiet_prints_only_the_summary(capsys):
    code, out, err = run_cli(capsys, "train", *TINY, "--quiet")
    assert code == 0 and err == "" and "train time" in out


def test_console_script_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "speedtrain.cli", "train", "--batch-size", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: batch_size must be a whole number of at least 1; got 0"


def test_help_lists_every_config_field(capsys):
    from speedtrain.config import field_names

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for name in field_names():
        assert "--" + name.replace("_", "-") in out
