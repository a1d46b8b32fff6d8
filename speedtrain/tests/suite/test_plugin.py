"""The suite's pytest plugin, exercised by real smoke sessions in a subprocess (pytester).

The shared session-scoped ``smoke_data`` fixture (conftest.py) covers what every case saves;
the other tests run their own small session in a pytester folder.
"""

import json
import os
import statistics
import subprocess
import sys
import textwrap

import pytest

from speedtrain.records import baselines as bl
from speedtrain.tests.conftest import ROOT

pytest_plugins = ["pytester"]

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
        # one figure: pytest-benchmark's statistics are the compared per-seed times...
        assert bench["stats"]["median"] == pytest.approx(statistics.median(info["train_time_s"]))
        assert bench["group"] == info["section"]
        # ... and the whole call (data, warm-up, evaluation included) is kept apart
        assert len(info["call_time_s"]) == len(info["seeds"])
        assert all(c >= t for c, t in zip(info["call_time_s"], info["train_time_s"]))
        cond = info["conditions"]
        assert cond["torch_threads"] == 1 and cond["cpus"] >= 1 and cond["physical_cores"] >= 1
        assert len(cond["load_before"]) == len(cond["load_after"]) == 3
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
    assert info["doctor"]["ok"] is True and info["doctor"]["counts"]["FAIL"] == 0
    assert info["base_precision"]["precision"] == "fp32" and info["torch_threads"] == 1


@pytest.fixture
def suite(pytester: pytest.Pytester):
    """``suite(*args)``: the smoke suite of ``benchmarks/test_precision.py`` (plus any test files
    the test adds to ``pytester.path``) in a fresh interpreter, on the CPU. No conftest: the
    plugin comes from its pytest11 entry point, as in a user's own repository."""
    pytester.makepyfile(test_precision=(ROOT / "benchmarks" / "test_precision.py").read_text())

    def run(*args: str, profile: str = "smoke", inprocess: bool = False) -> pytest.RunResult:
        common = ("-p", "no:cacheprovider", "--st-profile", profile, "--st-device", "cpu", "--st-threads", "1")
        if inprocess:  # a session that stops in pytest_configure: no fresh interpreter (4 s) needed
            return pytester.runpytest_inprocess(*common, *args)
        return pytester.runpytest_subprocess(*common, *args, timeout=600)
    return run


def test_header_skip_reason_and_verdict_table(suite, pytester):
    # the smoke profile trains on synthetic data: --st-download with no dataset downloads nothing
    result = suite("test_precision.py", "-k", "fp32 or tf32", "-rs", "--st-baselines", "update",
                   "--st-download", "--st-data-dir", "no-such-folder")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["speedtrain: profile smoke*",
                                 "speedtrain: --st-download: nothing downloaded: the smoke profile trains on synthetic data*",
                                 "*speedtrain verdicts*", "nothing to judge yet: 1 cases, 1 without a baseline*",
                                 "baselines for 1 cases on * (smoke) written to *", "SKIPPED*tf32*CUDA*"])
    assert not (pytester.path / "no-such-folder").exists()
    data = bl.load(pytester.path / "baselines.json")  # the default file: at the root
    (machine,) = data["machines"]
    assert set(data["machines"][machine]["smoke"]) == {"test_precision[fp32]"}
    assert data["machines"][machine]["smoke"]["test_precision[fp32]"]["source"]["profile"] == "smoke"

    # a second session compares with what the first stored: one seed a side is not judged, so
    # the verdicts are one line, no table of meaningless changes ...
    result = suite("test_precision.py", "-k", "fp32")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*speedtrain verdicts*", "nothing to judge yet: 1 cases, 1 with one seed on a side*"])
    assert "this run against the baseline" not in result.stdout.str()
    # ... and -v shows the table
    result = suite("test_precision.py", "-k", "fp32", "-v")
    result.stdout.fnmatch_lines(["*speedtrain verdicts*", "*this run against the baseline (times: + = slower*",
                                 "test_precision[[]fp32[]]*train_time_s*s*s*not judged*one seed*"])
    assert "no baseline" not in result.stdout.str().split("speedtrain verdicts")[1]


def test_seeds_survive_benchmark_disable_and_a_planted_regression_fails_the_session(suite, pytester):
    file = pytester.path / "baselines.json"
    result = suite("test_precision.py", "-k", "fp32", "--st-seeds", "2", "--benchmark-disable", "--st-baselines", "update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pytest-benchmark is off*speedtrain runs every seed itself*"])
    data = json.loads(file.read_text())
    (machine,) = data["machines"]
    entry = data["machines"][machine]["smoke"]["test_precision[fp32]"]
    assert len(entry["time_s"]) == 2  # --benchmark-disable did not drop the second seed
    entry["time_s"] = [t / 100 for t in entry["time_s"]]  # the baseline was 100x faster
    entry["median_s"] = entry["median_s"] / 100
    entry["spread_s"] = entry["spread_s"] / 100
    file.write_text(json.dumps(data))
    result = suite("test_precision.py", "-k", "fp32", "--st-seeds", "2", "--st-fail-on-regression")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["test_precision[[]fp32[]]*slower*noise*detects*",
                                 "regression against the baselines: failing*"])


def test_a_malformed_baselines_file_stops_the_session_before_any_case(suite, pytester):
    file = pytester.path / "baselines.json"
    file.write_text('{"schema": 1, "machines": [')
    result = suite("test_precision.py", "-k", "fp32", "--st-baselines", "update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *baselines.json: not valid JSON*before its first case*"])
    assert "passed" not in result.stdout.str() and "speedtrain verdicts" not in result.stdout.str()
    assert file.read_text() == '{"schema": 1, "machines": ['


def test_a_missing_dataset_stops_the_session_with_one_line(suite, pytester):
    (pytester.path / "empty").mkdir()
    result = suite("test_precision.py", "-k", "fp32", "--st-data-dir", "empty", profile="quick")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: no CIFAR-10 found")
    assert "--st-download" in errors[0] and "--st-data-dir" in errors[0]
    assert "passed" not in result.stdout.str()


def test_the_data_checked_is_the_selected_cases_own(suite, pytester):
    # -k image_size selects Fashion-MNIST cases: the check before the first case asks for that, not CIFAR-10
    pytester.makepyfile(test_image_size=(ROOT / "benchmarks" / "test_image_size.py").read_text())
    (pytester.path / "empty").mkdir()
    result = suite("test_precision.py", "test_image_size.py", "-k", "image_size", "--st-data-dir", "empty",
                   profile="quick")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and "Fashion-MNIST" in errors[0] and "CIFAR-10" not in errors[0], errors
    # the estimate counted the 4 selected cases
    result.stdout.fnmatch_lines(["speedtrain: 4 cases of the quick profile take roughly*"])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_data_dir_stops_the_session_with_one_line(suite, pytester):
    folder = pytester.path / "locked"
    (folder / "cifar-10-batches-py").mkdir(parents=True)
    folder.chmod(0)
    try:
        result = suite("test_precision.py", "-k", "fp32", "--st-data-dir", str(folder), profile="quick")
    finally:
        folder.chmod(0o755)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot read CIFAR-10*"])


def test_a_cpu_session_imports_torch_only_to_train(tmp_path):
    """The plugin is loaded into every pytest session of the environment: collecting the whole
    suite, or a session refused before its first case, must not pay for torch (2-3 s a process)."""
    (tmp_path / "baselines.json").write_text('{"schema": 1, "machines": [')
    code = textwrap.dedent(f"""
        import sys, pytest
        common = ["-q", "-p", "no:cacheprovider", "--st-device", "cpu", "--st-profile", "smoke"]
        collected = pytest.main([*common, "--collect-only", {str(ROOT / "benchmarks")!r}])
        refused = pytest.main([*common, "--st-baselines", "update", "--rootdir", {str(tmp_path)!r},
                               "-k", "fp32", {str(ROOT / "benchmarks" / "test_precision.py")!r}])
        print(int(collected), int(refused), "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.stdout.splitlines()[-1] == f"0 {int(pytest.ExitCode.USAGE_ERROR)} False", out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.parametrize("args, words", [
    (["--st-seeds", "0"], "*--st-seeds*"),
    (["--st-seeds", "many"], "*--st-seeds*auto*"),
    (["--st-profile", "huge"], "*--st-profile*huge*"),
    (["--st-threshold", "2"], "*--st-threshold*"),
    (["--st-threshold", "0"], "*--st-threshold must be a fraction strictly between 0 and 1*"),  # compare's rule
    (["--st-seeds", "1000"], "*--st-seeds must be a whole number from 1 to 20*"),
    (["--benchmark-json", "baselines.json"], "*--benchmark-json baselines.json would overwrite its input*"),
    (["--st-threads", "0"], "*--st-threads*"),
    (["--st-fail-on-regression"], "*--st-fail-on-regression needs 2+ seeds*"),  # smoke: one seed
    (["--st-breakdown-steps", "-1"], "*--st-breakdown-steps must be a whole number of steps from 0 (off) to 100*"),
    (["--st-trace", "traces", "--st-breakdown-steps", "0"], "*--st-trace*needs --st-breakdown-steps above 0*"),
])
def test_bad_suite_options_are_usage_errors(suite, args, words):
    # each is refused while the session configures, before anything runs; the exit code and the
    # one line a user sees from a real process are checked by the subprocess tests above
    result = suite("test_precision.py", *args, inprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([words])


FAKE_CUDA = """
import torch
import speedtrain.hw.env
torch.cuda.is_available = lambda: True
speedtrain.hw.env.device_name = lambda device: "FakeGPU 80GB"
"""


def test_bare_pytest_on_a_cuda_machine_runs_the_smoke_profile(pytester):
    """testpaths collect the benchmarks: a bare `pytest` must not start real-data training,
    while `pytest benchmarks` (named on the command line) measures."""
    pytester.makeconftest(FAKE_CUDA)
    pytester.makeini("[pytest]\ntestpaths = test_precision.py\n")
    pytester.makepyfile(test_precision=(ROOT / "benchmarks" / "test_precision.py").read_text())
    bare = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", timeout=300)
    bare.stdout.fnmatch_lines(["speedtrain: profile smoke*", "speedtrain: device FakeGPU 80GB, synthetic data*"])
    named = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "test_precision.py", timeout=300)
    named.stdout.fnmatch_lines(["speedtrain: profile quick*", "speedtrain: device FakeGPU 80GB, dataset cifar10*"])


def test_ctrl_c_stops_after_the_seed_and_keeps_a_partial_run(suite, pytester):
    """A real SIGINT arrives while the first case trains: one line, that case kept, the next
    not started, the saved run marked partial, no baselines written, exit code 2."""
    pytester.makeconftest(textwrap.dedent("""
        import os, signal
        import speedtrain.train.loop as train_module
        real_train = train_module.train

        def train(cfg, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return real_train(cfg, **kwargs)

        train_module.train = train
    """))
    out = pytester.path / "run.json"
    result = suite("test_precision.py", "-k", "fp32 or fp16", "--st-baselines", "update", f"--benchmark-json={out}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*speedtrain: interrupted: stopping after the current seed*",
                                 "*session interrupted: baselines left unchanged*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    saved = json.loads(out.read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_precision[fp32]"]
    assert "interrupted" in saved["machine_info"]["speedtrain"]["partial"]
    assert not (pytester.path / "baselines.json").exists()


def test_oom_and_divergence_are_recorded_and_the_suite_goes_on(suite, pytester):
    """A fake trainer raises OOM for one case and diverges for another; the third still runs."""
    pytester.makeconftest(textwrap.dedent('''
        import torch
        import speedtrain.train.loop as train_module
        real_build = train_module.build_model

        class NaNLogits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))
            def forward(self, x):
                return (x.flatten(1)[:, :10] * self.w) * float("nan")

        class Boom(NaNLogits):
            def forward(self, x):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

        def build(cfg):
            if cfg.celu_alpha == 0.5:  # the "diverges" case
                return NaNLogits()
            if cfg.width > 0.4:  # the case asked for width 4 (x1/8 in smoke)
                return Boom()
            return real_build(cfg)

        train_module.build_model = build
    '''))
    pytester.makepyfile(test_faults=textwrap.dedent('''
        import pytest

        @pytest.mark.parametrize("case", [dict(width=4.0), dict(celu_alpha=0.5), dict()], ids=["oom", "diverges", "fine"])
        def test_faults(run_case, case):
            run_case(**case)
    '''))
    out = pytester.path / "run.json"
    result = suite("test_faults.py", "--st-baselines", "off", f"--benchmark-json={out}")
    result.assert_outcomes(passed=3)  # warnings: the two failures, and any noisy-machine marks
    result.stdout.fnmatch_lines(["*test_faults[[]oom[]]: oom: *out of memory*", "*test_faults[[]diverges[]]: diverged: *non-finite*"])
    saved = {b["name"]: b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]}
    assert {name: info["status"] for name, info in saved.items()} == {
        "test_faults[oom]": "oom", "test_faults[diverges]": "diverged", "test_faults[fine]": "ok"}
    assert saved["test_faults[fine]"]["benchmark_stats"] == "train_time_s"
    assert saved["test_faults[oom]"]["benchmark_stats"].startswith("call_time_s (no seed produced")
