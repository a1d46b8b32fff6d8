import json
import subprocess
import sys

import pytest

from speedtrain.tests import conftest
from speedtrain.cli.main import main
from speedtrain.tests.conftest import ROOT, cli_args

TINY = cli_args(dict(conftest.TINY, warmup_steps=0))


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words", [
    (["train", "--batch-size", "two"], ["--batch-size", "whole number", "'two'"]),
    (["train", "--precision", "fp8"], ["--precision", "fp32, tf32, fp16, bf16, half", "'fp8'"]),
    (["train", "--global-pool", "min"], ["--global-pool", "max, avg, or none", "'min'"]),
    (["train", "--lr", "nan"], ["lr", "finite number", "nan"]),
    (["train", "--weight-decay", "inf"], ["weight_decay", "finite number", "inf"]),
    (["train", "--target-acc", "nan"], ["target_acc", "finite number"]),
    (["train", "--loader", "torch", "--workers", "100000"], ["workers", "0 to 256"]),
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
    lines = err.strip().splitlines()  # the run's header and warnings come first, before the data is read
    assert lines[0].startswith("speedtrain train: resnet9") and [line for line in lines if "error" in line] == lines[-1:]
    assert lines[-1].startswith("error: ") and "nowhere" in lines[-1]


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


@pytest.mark.slow
def test_console_script_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "speedtrain.cli.main", "train", "--batch-size", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: batch_size must be a whole number of at least 1; got 0"


def test_help_lists_every_config_field(capsys):
    from speedtrain.config.trainconfig import field_names

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for name in field_names():
        assert "--" + name.replace("_", "-") in out


def test_choices_and_defaults_in_help_are_as_users_type_them(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "{cifar10,fashion-mnist}" in out and "{max,avg,none}" in out
    assert "[default: cifar10]" in out and "[default: 1,3]" in out and "[default: none]" in out
    assert "[default: off]" in out and "[default: on]" in out
    assert "'cifar10'" not in out and "(1, 3)" not in out and "None]" not in out


def test_cli_choices_are_the_config_choices():
    from speedtrain.cli.main import build_parser
    from speedtrain.config.trainconfig import choices

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    by_dest = {a.dest: a for a in train._actions}
    assert tuple(by_dest["dataset"].choices) == choices("dataset")
    assert tuple(by_dest["global_pool"].choices) == (*choices("global_pool"), None)
    args = build_parser().parse_args(["train", "--global-pool", "none", "--image-size", "none", "--residual", ""])
    assert args.global_pool is None and args.image_size is None and args.residual == ()


def one_error_line(err: str) -> str:
    # the run's header and its warnings come before the data is read: the error is the one other line
    lines = [line for line in err.strip().splitlines() if not line.startswith(("speedtrain train: ", "warning: "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_an_unwritable_json_path_is_refused_before_training(capsys, tmp_path, monkeypatch):
    # On the start commit the run trained, then died on the write with a traceback.
    from speedtrain.train import loop as train_module

    def must_not_train(*a, **k):
        raise AssertionError("trained although the output path cannot be written")

    monkeypatch.setattr(train_module, "train", must_not_train)
    (tmp_path / "a-file").write_text("x")
    for target in (tmp_path / "a-file" / "run.json", tmp_path):
        code, _, err = run_cli(capsys, "train", *TINY, "--json", str(target))
        assert code == 2
        assert str(target) in one_error_line(err)


def test_a_write_that_fails_at_the_end_goes_to_a_fallback_file(capsys, tmp_path, monkeypatch):
    from speedtrain.common import atomic
    from speedtrain.train.loop import RunResult

    out_json = tmp_path / "run.json"
    real_save = RunResult.save_json

    def save_json(self, path):
        if path == str(out_json):  # the disk filled up during training
            raise OSError(28, "No space left on device")
        real_save(self, path)

    monkeypatch.setattr(RunResult, "save_json", save_json)
    monkeypatch.setattr(atomic.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, out, err = run_cli(capsys, "train", *TINY, "--quiet", "--json", str(out_json))
    assert code == 2 and "train time" in out
    line = one_error_line(err)
    assert "No space left on device" in line and str(out_json) in line
    [fallback] = (tmp_path / "tmp").iterdir()
    assert str(fallback) in line and fallback.name.endswith("run.json")
    assert json.loads(fallback.read_text())["status"] == "ok"


@pytest.mark.parametrize("option", [["-o", "{bad}/REPORT.md"], ["--dawnbench", "{bad}"]])
def test_report_outputs_are_checked_before_reporting(capsys, tmp_path, option):

    run = ROOT / "reports" / "smoke-cpu"
    runs = sorted(run.glob("*.json")) if run.is_dir() else []
    bad = tmp_path / "a-file"
    bad.write_text("x")
    argv = ["report", str(runs[0]) if runs else str(tmp_path / "missing.json")]
    code, _, err = run_cli(capsys, *argv, *[o.format(bad=bad) for o in option])
    assert code == 2
    assert str(bad) in one_error_line(err)


def test_a_multiline_library_message_is_printed_on_one_line(capsys, monkeypatch):
    from speedtrain.cli import main as cli
    from speedtrain.common.errors import SpeedtrainError

    class Custom(SpeedtrainError):
        def __str__(self):
            return "first\n- method gz: bad\n\n- method xz: bad"

    def fail(args):
        raise Custom("x")

    monkeypatch.setattr(cli, "_cmd_train", fail)
    code, _, err = run_cli(capsys, "train")
    assert code == 2 and one_error_line(err) == "error: first; - method gz: bad; - method xz: bad"


def test_an_unreadable_data_folder_is_one_error_line(capsys, tmp_path, monkeypatch):
    # Root reads anything, so the refusal is simulated where the reader opens the folder.
    from pathlib import Path

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", denied)
    code, _, err = run_cli(capsys, "train", "--data-dir", str(tmp_path), "--device", "cpu")
    assert code == 2
    line = one_error_line(err)
    assert "Permission denied" in line and str(tmp_path) in line


def test_resource_warnings_come_before_training(capsys, monkeypatch):
    from speedtrain.hw import resources
    from speedtrain.train import loop as train_module
    from speedtrain.common.errors import SpeedtrainError

    def stop(*a, **k):
        raise SpeedtrainError("stopped where training would start")

    monkeypatch.setattr(train_module, "train", stop)
    monkeypatch.setattr(resources, "machine_limits", lambda cfg: resources.MachineLimits(2, 8 * 10**9, None))
    code, _, err = run_cli(capsys, "train", "--synthetic", "--device", "cpu", "--loader", "torch", "--workers", "3",
                           "--image-size", "512")
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1] == "error: stopped where training would start"
    assert lines[0].startswith("speedtrain train: ") and lines[1].startswith("warning: a GPU-scale run on a CPU")
    lines = [line for line in lines if not line.startswith(("speedtrain train: ", "warning: a GPU-scale"))]
    assert lines[0].startswith("warning: workers 3 is more than the 2 CPUs")
    gb = 60_000 * 3 * 512 * 512 / 1e9  # CIFAR-10 train + test, uint8, at 512 px
    assert lines[1].startswith(f"warning: the dataset at 512 px takes about {gb:.1f} GB") and "image_size" in lines[1]


def test_gpu_memory_warning_counts_the_padded_copy():
    from speedtrain.config.trainconfig import TrainConfig
    from speedtrain.hw.resources import MachineLimits, dataset_bytes, resource_warnings

    cfg = TrainConfig(image_size=256)
    host, device = dataset_bytes(cfg)
    assert host == 60_000 * 3 * 256 * 256
    assert device == 50_000 * 3 * (264 * 264 + 256 * 256) + 10_000 * 3 * 256 * 256
    [line] = resource_warnings(cfg, MachineLimits(64, None, 16 * 10**9))
    assert "on the GPU" in line and "16.0 GB" in line
    assert resource_warnings(cfg.replace(loader="torch"), MachineLimits(64, None, 16 * 10**9)) == []
    assert resource_warnings(TrainConfig(), MachineLimits(64, 64 * 10**9, 16 * 10**9)) == []
