"""The suite's pytest plugin, exercised by running real smoke sessions in a subprocess."""

import json
import shutil
import textwrap

import pytest

from speedtrain import baselines as bl
from speedtrain.tests.conftest import ROOT, run_suite

REQUIRED = ["section", "case", "reference", "ladder", "profile", "synthetic", "dataset", "device", "seeds",
            "status", "metric", "train_time_s", "time_to_target_s", "reached_target", "final_acc",
            "images_per_s", "epoch_time_s", "eval_time_s", "peak_mem_allocated_bytes", "diverged", "timer",
            "config", "gpu", "curves"]


def test_every_case_records_its_figures(smoke_data):
    cases = {b["name"]: b for b in smoke_data["benchmarks"]}
    assert "test_precision[fp32]" in cases and "test_architecture[backbone]" in cases
    assert "test_precision[tf32]" not in cases  # skipped on the CPU, with its reason
    for bench in cases.values():
        info = bench["extra_info"]
        assert set(REQUIRED) <= set(info), bench["name"]
        assert info["synthetic"] is True and info["profile"] == "smoke"
        assert info["status"] == "ok"
        assert len(info["train_time_s"]) == bench["stats"]["rounds"] == len(info["seeds"])
        assert all(t > 0 for t in info["train_time_s"])
        assert [p["epoch"] for p in info["curves"][0]] == [1, 2]
        assert info["timer"]["clock"] == "perf_counter"
        # whole-run time (pytest-benchmark) covers the timed training and more
        assert bench["stats"]["max"] >= max(info["train_time_s"])
    assert cases["test_precision[fp32]"]["extra_info"]["reference"] is True
    assert cases["test_precision[bf16]"]["extra_info"]["reference"] is False
    ladder = sorted((b["extra_info"]["step"], b["name"]) for b in cases.values() if b["extra_info"]["ladder"])
    assert [s for s, _ in ladder] == list(range(7))
    gpu = cases["test_precision[half]"]["extra_info"]["gpu"]
    assert gpu["available"] is False and gpu["reason"]  # no GPU here: says why, does not fail
    config = cases["test_precision[half]"]["extra_info"]["config"]
    assert config["precision"] == "half" and config["synthetic"] is True and config["epochs"] == 2


def test_machine_info_names_the_software(smoke_data):
    info = smoke_data["machine_info"]["speedtrain"]
    assert info["profile"] == "smoke" and info["synthetic"] is True
    assert info["torch"] and info["device"].startswith("cpu")
    assert "gpu" in info and "cuda" in info and "cudnn" in info


def test_header_skip_reason_and_verdict_table(tmp_path):
    file = tmp_path / "baselines.json"
    proc = run_suite("benchmarks/test_precision.py", "-rs", "--st-baselines", "update", f"--st-baselines-file={file}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "speedtrain: profile smoke" in proc.stdout
    assert "tf32" in proc.stdout and "CUDA" in proc.stdout  # the skip reason
    assert "speedtrain verdicts" in proc.stdout and "no baseline" in proc.stdout
    data = bl.load(file)
    (machine,) = data["machines"]
    cases = data["machines"][machine]["smoke"]
    assert set(cases) == {"test_precision[fp32]", "test_precision[fp16]", "test_precision[bf16]", "test_precision[half]"}
    assert cases["test_precision[fp32]"]["source"]["profile"] == "smoke"

    # a second session compares with what the first stored
    proc = run_suite("benchmarks/test_precision.py", f"--st-baselines-file={file}")
    assert proc.returncode == 0
    table = proc.stdout.split("speedtrain verdicts")[1]
    assert "no baseline" not in table
    assert any(label in table for label in ("unchanged", "faster", "slower"))


def test_a_planted_regression_fails_the_session_when_asked(tmp_path):
    file = tmp_path / "baselines.json"
    run_suite("benchmarks/test_precision.py", "-k", "fp32", "--st-baselines", "update", f"--st-baselines-file={file}")
    data = json.loads(file.read_text())
    (machine,) = data["machines"]
    entry = data["machines"][machine]["smoke"]["test_precision[fp32]"]
    entry["time_s"] = [t / 100 for t in entry["time_s"]]  # the baseline was 100x faster
    entry["median_s"] = entry["median_s"] / 100
    entry["spread_s"] = entry["spread_s"] / 100
    file.write_text(json.dumps(data))
    proc = run_suite("benchmarks/test_precision.py", "-k", "fp32", f"--st-baselines-file={file}")
    assert proc.returncode == 0 and "slower" in proc.stdout
    proc = run_suite("benchmarks/test_precision.py", "-k", "fp32", f"--st-baselines-file={file}", "--st-fail-on-regression")
    assert proc.returncode == 1 and "slower" in proc.stdout


def test_a_malformed_baselines_file_is_a_clear_error_and_is_kept(tmp_path):
    file = tmp_path / "baselines.json"
    file.write_text('{"schema": 1, "machines": [')
    proc = run_suite("benchmarks/test_precision.py", "-k", "fp32", f"--st-baselines-file={file}", "--st-baselines", "update")
    assert proc.returncode != 0
    assert "error:" in proc.stdout and "baselines.json" in proc.stdout
    assert file.read_text() == '{"schema": 1, "machines": ['


@pytest.mark.parametrize("args, words", [
    (["--st-seeds", "0"], ["--st-seeds"]),
    (["--st-profile", "huge"], ["--st-profile", "huge"]),
    (["--st-threshold", "2"], ["--st-threshold"]),
])
def test_bad_suite_options_are_usage_errors(args, words):
    proc = run_suite("benchmarks/test_precision.py", *args)
    assert proc.returncode == 4
    for word in words:
        assert word in proc.stderr


def test_oom_and_divergence_are_recorded_and_the_suite_goes_on(tmp_path):
    """A fake trainer raises OOM for one case and diverges for another; the third still runs."""
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "conftest.py").write_text(textwrap.dedent('''
        import torch
        import speedtrain.train as train_module
        pytest_plugins = ["speedtrain.pytest_plugin"]
        real_build = train_module.build_model

        class NaNLogits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))
            def forward(self, x):
                return (x.flatten(1)[:, :10] * self.w) * float("nan")

        def build(cfg):
            if cfg.celu_alpha == 0.5:  # the "diverges" case
                return NaNLogits()
            if cfg.width > 0.4:  # the case asked for width 4 (x1/8 in smoke)
                class Boom(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.w = torch.nn.Parameter(torch.zeros(1))
                    def forward(self, x):
                        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
                return Boom()
            return real_build(cfg)

        train_module.build_model = build
    '''))
    (tmp_path / "test_faults.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.parametrize("case", [dict(width=4.0), dict(celu_alpha=0.5), dict()], ids=["oom", "diverges", "fine"])
        def test_faults(run_case, case):
            run_case(**case)
    '''))
    out = tmp_path / "run.json"
    proc = run_suite(str(tmp_path / "test_faults.py"), "--rootdir", str(tmp_path), "--st-baselines", "off",
                     f"--benchmark-json={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    status = {b["name"]: b["extra_info"]["status"] for b in json.loads(out.read_text())["benchmarks"]}
    assert status == {"test_faults[oom]": "oom", "test_faults[diverges]": "diverged", "test_faults[fine]": "ok"}
    assert "out of memory" in proc.stdout and "non-finite" in proc.stdout  # warnings summary


def test_telemetry_of_a_case_is_the_median_time_seeds_run():
    from types import SimpleNamespace

    from speedtrain.pytest_plugin import _merge_gpu

    def run(seed, train_s, energy):
        return SimpleNamespace(config={"seed": seed}, train_time_s=train_s,
                               gpu={"available": True, "energy_j": energy, "power_mean_w": energy / 10})

    runs = [run(0, 12.0, 300.0), run(1, 10.0, 250.0), run(2, 11.0, 280.0)]
    merged = _merge_gpu(runs)
    assert merged["seed"] == 2 and merged["energy_j"] == 280.0 and merged["power_mean_w"] == 28.0
    assert merged["energy_j_per_seed"] == [300.0, 250.0, 280.0]  # in seed order
    # a failed seed (no time) ranks last; with two left the lower median is taken
    merged = _merge_gpu([run(0, None, 999.0), run(1, 10.0, 250.0)])
    assert merged["seed"] == 1
    assert _merge_gpu([SimpleNamespace(config={"seed": 0}, train_time_s=1.0, gpu=None)]) is None
