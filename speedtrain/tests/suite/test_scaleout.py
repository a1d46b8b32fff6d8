"""pytest-xdist workers pinned to GPUs, one saved run from many workers, shards.

The end-to-end tests run the smoke suite in a fresh interpreter on the CPU, as a user would;
GPU pinning is checked with the GPU count faked in the controller only, so the workers' real
environment shows what a CUDA machine's workers would get, before anything imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from speedtrain.suite.gpupin import pin_gpus
from speedtrain.suite.scaleout import SavedBenchmark, Shard, assign_shards, parse_gpus
from speedtrain.tests.conftest import run_suite

pytest_plugins = ["pytester"]
ARCHITECTURE, LADDER = "benchmarks/test_architecture.py", "test_architecture["


def names(run: dict, prefix: str = "test_precision[") -> list[str]:
    return [b["name"] for b in run["benchmarks"] if b["name"].startswith(prefix)]


# --- pure functions ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_is_a_usage_error(text):
    with pytest.raises(pytest.UsageError, match="K/N"):
        Shard.parse(text)


def test_shards_cover_every_case_once_and_are_deterministic():
    ids = [f"t.py::test_x[{i}]" for i in range(11)]
    for durations in (None, {i: float(n) for n, i in enumerate(ids)}):
        owner = assign_shards(ids, 3, durations)
        assert owner == assign_shards(list(ids), 3, durations)
        assert len(owner) == len(ids) and set(owner) == {0, 1, 2}  # one shard per case, none empty


def test_shards_balance_by_duration_when_given():
    ids = ["a", "b", "c", "d", "e"]
    durations = {"a": 10.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 7.0}
    owner = assign_shards(ids, 2, durations)
    load = [sum(durations[i] for i, s in zip(ids, owner) if s == k) for k in (0, 1)]
    assert sorted(load) == [10.0, 10.0]  # by count it would be a+c+e=18 vs b+d=2
    assert assign_shards(ids, 2) == [0, 1, 0, 1, 0]
    # a case the previous run lacks costs the median of the known ones, not nothing
    assert assign_shards(["a", "new"], 2, {"a": 5.0}) == [0, 1]


class NoNvml:
    def nvmlInit(self):
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")


def test_without_nvml_the_pins_are_indices_following_the_parents_visible_list():
    def values(gpus, parent):
        return [p.value for p in pin_gpus(gpus, parent, nvml=NoNvml())]
    assert values([0, 1, 3], None) == ["0", "1", "3"]
    # torch's GPU i under CUDA_VISIBLE_DEVICES is the list's i-th entry: indices or UUIDs
    assert values([0, 1], "2,3") == ["2", "3"]
    assert values([1], "GPU-aaa, GPU-bbb") == ["GPU-bbb"]
    pin = pin_gpus([0], None, nvml=NoNvml())[0]
    assert pin.kind == "index" and "NVML init failed" in (pin.reason or "")


@pytest.mark.parametrize("text", ["0,0", "4", "x", "", "-1"])
def test_bad_gpu_list_is_a_usage_error(text):
    with pytest.raises(pytest.UsageError, match="--st-gpus"):
        parse_gpus(text, visible=4)
    assert parse_gpus("3,0", visible=4) == [3, 0]


def test_saved_benchmark_reads_like_pytest_benchmarks_metadata():
    entry = {"group": None, "name": "n", "fullname": "f::n", "params": None, "param": None, "extra_info": {},
             "options": {}, "stats": {"min": 1.0, "max": 2.0, "data": [1.0, 2.0], "iterations": 1}}
    bench = SavedBenchmark(entry)
    assert bench.as_dict() == entry
    assert "data" not in bench.as_dict(include_data=False)["stats"]
    flat = bench.as_dict(include_data=False, flat=True)
    assert flat["min"] == 1.0 and "stats" not in flat
    assert bench["max"] == 2.0 and bench["fullname"] == "f::n" and bench.get("nope") is None


# --- sessions ------------------------------------------------------------------------------


def test_xdist_run_saves_one_run_with_the_serial_runs_cases(smoke_data, tmp_path):
    """The issue's command, with the saved run read back by pytest-benchmark itself."""
    storage = tmp_path / "store"
    proc = run_suite("benchmarks", "-k", "precision", "-n", "2", "--benchmark-save=par",
                     f"--benchmark-storage={storage}", f"--benchmark-json={tmp_path / 'par.json'}",
                     "--st-baselines", "update",
                     f"--st-baselines-file={tmp_path / 'b.json'}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (saved,) = storage.glob("*/0001_par.json")  # one saved run (its stats without the raw data)
    assert names(json.loads(saved.read_text())) == names(smoke_data)
    par = json.loads((tmp_path / "par.json").read_text())  # with the data, as smoke_data
    assert names(par) == names(smoke_data)  # same cases, in collection order
    serial = {b["name"]: b for b in smoke_data["benchmarks"]}
    for bench in par["benchmarks"]:
        twin = serial[bench["name"]]
        assert set(bench) == set(twin) and set(bench["stats"]) == set(twin["stats"])
        assert set(bench["extra_info"]) - {"placement"} == set(twin["extra_info"])
        assert bench["extra_info"]["placement"]["worker"] in {"gw0", "gw1"}
        assert bench["stats"]["rounds"] == len(bench["extra_info"]["seeds"])
    assert set(par["machine_info"]) - {"speedtrain_scaleout"} == set(smoke_data["machine_info"])
    assert par["machine_info"]["speedtrain_scaleout"]["workers"] == 2
    # what a serial run saves of the machine, the workers' doctor and threads included
    assert set(par["machine_info"]["speedtrain"]) == set(smoke_data["machine_info"]["speedtrain"])
    assert par["machine_info"]["speedtrain"]["doctor"]["ok"] is True
    assert par["machine_info"]["speedtrain"]["torch_threads"] == 1
    # verdicts and the baselines update happen once, at the controller, for every case
    assert proc.stdout.count("baselines for 4 cases") == 1
    stored = json.loads((tmp_path / "b.json").read_text())
    (machine,) = stored["machines"].values()
    assert set(machine["smoke"]) == set(names(par))
    compare = subprocess.run([str(Path(sys.executable).parent / "pytest-benchmark"), "compare", str(saved)],
                             capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stderr
    assert all(name in compare.stdout for name in names(par))


def test_two_shards_cover_the_selection_once_and_merge_into_the_whole_run(smoke_data, tmp_path):
    """The architecture ladder's seven cases: fp32 on the CPU, the suite's cheapest file to train."""
    runs = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.json"
        proc = run_suite(ARCHITECTURE, "--st-shard", f"{k}/2", "--st-baselines", "off", f"--benchmark-json={out}")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(json.loads(out.read_text()))
    first, second = names(runs[0], LADDER), names(runs[1], LADDER)
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == sorted(names(smoke_data, LADDER))
    from speedtrain.cli.main import main

    merged = tmp_path / "merged.json"
    assert main(["merge", str(tmp_path / "shard1.json"), str(tmp_path / "shard2.json"), "-o", str(merged)]) == 0
    assert sorted(names(json.loads(merged.read_text()), LADDER)) == sorted(names(smoke_data, LADDER))


def test_shards_of_the_whole_suite_partition_its_selection():
    """Collection only (nothing trains): every selected case of every benchmark file, once."""
    def collected(*args: str) -> list[str]:
        proc = run_suite("benchmarks", "--collect-only", "-q", *args, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return [line for line in proc.stdout.splitlines() if "::" in line]

    whole = collected()
    shards = [collected("--st-shard", f"{k}/3") for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(whole) and len(whole) > 30


@pytest.fixture
def fake_gpu_suite(pytester: pytest.Pytester):
    """A session whose controller believes in two GPUs; each worker writes what it was given."""
    pytester.makeconftest("""
        import os, json, pathlib
        import speedtrain.suite.scaleout
        # what this process had at its first import of pytest's conftest, before any test or torch call
        SEEN = os.environ.get("CUDA_VISIBLE_DEVICES")
        speedtrain.suite.scaleout.visible_gpu_count = lambda: 2
    """)
    pytester.makepyfile(test_where="""
        import os, pathlib, conftest
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_where(i):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            pathlib.Path(worker).write_text(str(conftest.SEEN))
    """)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "speedtrain.pytest_plugin",
                                             "--st-profile", "smoke", *args, timeout=300)
    return run


def test_each_worker_is_pinned_to_its_own_gpu_before_it_starts(fake_gpu_suite, pytester):
    result = fake_gpu_suite("-n", "2")
    result.assert_outcomes(passed=4)
    assert {pytester.path.joinpath(w).read_text() for w in ("gw0", "gw1")} == {"0", "1"}
    result = fake_gpu_suite("-n", "2", "--st-gpus", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*2 xdist workers for 1 GPUs*"])


def test_n_auto_means_one_worker_per_gpu(fake_gpu_suite, pytester):
    result = fake_gpu_suite("-n", "auto", "--st-gpus", "1")
    result.assert_outcomes(passed=4)
    assert pytester.path.joinpath("gw0").read_text() == "1" and not pytester.path.joinpath("gw1").exists()
