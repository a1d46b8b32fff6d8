"""Shared fixtures: real saved runs made by running the smoke suite, and hand-made runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"  # committed outputs of an older version, read byte for byte
# The real datasets (a CIFAR-10 JPEG copy, Fashion-MNIST) beside the checkout; the tests that
# read them skip without them.
SHARED_DATA = Path(os.environ.get("SPEEDTRAIN_TEST_DATA", ROOT.parent / "shared" / "data"))
# The one tiny training config the tests train: seconds on a CPU, every stage of a real run.
TINY: dict[str, Any] = dict(synthetic=True, width=0.125, batch_size=32, train_subset=64, test_subset=64, epochs=2,
                            device="cpu", warmup_steps=1, breakdown_steps=0)  # profiled where a test asks


def cli_args(fields: dict[str, Any]) -> list[str]:
    """The ``speedtrain train`` options that give ``fields``."""
    args: list[str] = []
    for name, value in fields.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, str(value)]
    return args


# Small but covering: plain sections, a cumulative ladder, a time-to-target recipe, a skipped case.
# One DAWNBench case is all its readers need (the export, the report's section); the file's
# other four run anyway where the test run collects benchmarks/.
SMOKE_FILES = ["benchmarks/test_precision.py", "benchmarks/test_architecture.py", "benchmarks/test_dawnbench.py"]
SMOKE_SELECTION = "not test_dawnbench or resnet9-24ep-half"
GPU = "Tesla V100-SXM2-16GB"


def shared_folder(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> Path:
    """The test session's temporary folder, the same for every xdist worker (each worker's own
    basetemp is a folder inside it)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if hasattr(config, "workerinput") else root  # workerinput: an xdist worker


@pytest.fixture(scope="session", autouse=True)
def temporary_cache(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Any:
    """Decoded datasets go to a temporary cache (speedtrain.data.imagetree.cache_dir), not the user's
    ~/.cache/speedtrain: the tests would leave 185 MB there. A SPEEDTRAIN_CACHE the user set is
    kept (a developer may want the slow tests to reuse one); the suites the tests start in
    subprocesses inherit the variable."""
    if os.environ.get("SPEEDTRAIN_CACHE"):
        yield
        return
    folder = shared_folder(tmp_path_factory, pytestconfig) / "speedtrain-cache"  # one for all xdist workers
    folder.mkdir(exist_ok=True)
    os.environ["SPEEDTRAIN_CACHE"] = str(folder)
    try:
        yield
    finally:
        del os.environ["SPEEDTRAIN_CACHE"]


XDIST_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(scope="session", autouse=True)
def not_an_xdist_worker_below() -> Any:
    """Under ``pytest -n 2`` (the test command) xdist names this process a worker in the
    environment; the suites the tests start (subprocesses, pytester) would inherit that and
    pytest-benchmark would take them for workers too. Their sessions are their own."""
    saved = {name: os.environ.pop(name) for name in XDIST_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def run_suite(*args: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """The benchmark suite in a fresh interpreter, exactly as a user runs it: without the
    PYTEST_ADDOPTS of the test run around it (``-v`` there changed what --collect-only prints)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--st-profile", "smoke", "--st-device", "cpu",
         "--st-threads", "1", *args],  # one thread: the test machine's cores are shared
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """A pytest-benchmark JSON saved by a real smoke run of part of the suite: one run for the
    whole test session, shared by the xdist workers (the first to need it makes it)."""
    from filelock import FileLock

    out = shared_folder(tmp_path_factory, pytestconfig) / "smoke-run" / "smoke.json"
    out.parent.mkdir(exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not out.exists():
            partial = out.with_suffix(".partial.json")
            proc = run_suite(*SMOKE_FILES, "-k", SMOKE_SELECTION, "--st-baselines", "off", f"--benchmark-json={partial}")
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            partial.replace(out)
    return out


@pytest.fixture(scope="session")
def cifar10_archive(temporary_cache: None) -> Path:
    """The real CIFAR-10 JPEG archive, decoded once for the whole test run into the cache that
    ``temporary_cache`` shares between the xdist workers (the first worker to need it decodes,
    about 20 s; the others wait and read the cache).
    Skips, naming the path, where the archive is absent."""
    from filelock import FileLock

    from speedtrain.data.imagetree import cache_dir, read_tree_cached

    archive = SHARED_DATA / "cifar10-jpeg.tar.xz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 not found at {archive} (set SPEEDTRAIN_TEST_DATA to the folder holding it)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir() / "cifar10-decode.lock")):
        read_tree_cached(archive)
    return archive


@pytest.fixture(scope="session")
def fashion_mnist_folder() -> Path:
    """The real Fashion-MNIST folder (its four idx files); skips, naming the path, where it is absent."""
    folder = SHARED_DATA / "fashion-mnist"
    if not folder.is_dir():
        pytest.skip(f"real Fashion-MNIST not found at {folder} (set SPEEDTRAIN_TEST_DATA to the folder holding fashion-mnist/)")
    return folder


@pytest.fixture(scope="session")
def smoke_data(smoke_run: Path) -> dict:
    return json.loads(smoke_run.read_text())


class FakeRuns:
    """Saved runs shaped like those the benchmark suite writes, for tests that need figures
    a smoke run cannot produce (GPU telemetry, several seeds, chosen times)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def curves(train_times: list[float], epochs: int = 4, final: float = 0.94) -> list[list[dict]]:
        """One accuracy curve per seed, epochs evenly spread over the seed's training time."""
        return [[{"epoch": e, "train_s": t * e / epochs, "test_acc": final * (0.6 + 0.4 * e / epochs),
                  "train_loss": 2.0 / e} for e in range(1, epochs + 1)] for t in train_times]

    def bench(self, section: str, case: str, times: Optional[list[float]], *, test: Optional[str] = None,
              reference: bool = False, ladder: bool = False, step: Optional[int] = None, status: str = "ok",
              profile: str = "quick", synthetic: bool = False, drop: tuple[str, ...] = (), **extra: Any) -> dict:
        """One benchmark entry, saved the way the plugin saves one (``CaseRecord.to_extra_info``).

        ``extra`` sets record fields to raw saved values (a malformed one tests the tolerant
        reader); a key the record does not have is refused, so this fixture cannot drift from
        the schema. ``drop`` removes saved keys, as an older run would lack them."""
        from speedtrain.records.record import CaseRecord, CurvePoint

        test = test or f"test_{section}"
        times = times or []
        n = len(times)
        record = CaseRecord(
            section=section, case=case, reference=reference, ladder=ladder, step=step, profile=profile,
            synthetic=synthetic, dataset="cifar10", device=GPU, seeds=list(range(n)) or [0], status=status,
            error=None if status == "ok" else "CUDA out of memory", train_time_s=list(times),
            time_to_target_s=[t * 0.9 for t in times], reached_target=[True] * n, target_acc=0.94,
            final_acc=[0.941] * n, images_per_s=[50_000 * 24 / t for t in times],
            epoch_time_s=[t / 24 for t in times], eval_time_s=[0.5] * n, peak_mem_allocated_bytes=2**30,
            peak_mem_reserved_bytes=2**31, diverged=status == "diverged",
            timer={"clock": "cuda_events", "includes": ["forward", "backward", "step"],
                   "excludes": ["evaluation", "data upload"]},
            config={"model": "resnet9", "epochs": 24, "batch_size": 512, "precision": "fp16"},
            gpu={"available": True, "reason": None, "gpu_name": GPU, "util_mean_pct": 97.0,
                 "power_mean_w": 250.0, "energy_j": 250.0 * sum(times), "throttle_reasons": []},
            curves=[[CurvePoint(**p) for p in curve] for curve in self.curves(times)],
        )
        info = record.to_extra_info()
        unknown = set(extra) - set(info)
        assert not unknown, f"not fields of a CaseRecord: {sorted(unknown)}"
        info.update(extra)
        for key in drop:
            info.pop(key, None)
        stats = {"min": min(times), "max": max(times), "mean": statistics.mean(times),
                 "median": statistics.median(times), "rounds": n, "iterations": 1} if times else {}
        return {"group": section, "name": f"{test}[{case}]", "fullname": f"benchmarks/{test}.py::{test}[{case}]",
                "params": {"case": case}, "param": case, "extra_info": info, "options": {}, "stats": stats}

    @staticmethod
    def run(benches: list[dict], *, profile: str = "quick", synthetic: bool = False, device: str = GPU) -> dict:
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

    def sample(self, profile: str = "quick") -> list[dict]:
        """Two plain sections (one 2x-faster case, one oom, one with fields missing) and a ladder."""
        b = self.bench
        return [
            b("precision", "fp32", [10.0, 10.5, 9.5], reference=True, profile=profile),
            b("precision", "fp16", [5.0, 5.2, 4.8], profile=profile),
            b("precision", "bf16", [], status="oom", profile=profile, drop=("curves", "gpu")),
            b("batch_size", "512", [8.0, 8.0, 8.0], reference=True, profile=profile),
            b("batch_size", "1024", [6.0], profile=profile,
              drop=("final_acc", "images_per_s", "gpu", "time_to_target_s", "curves", "timer")),
            b("tricks", "baseline", [40.0, 40.0], ladder=True, step=0, reference=True, profile=profile),
            b("tricks", "celu", [20.0, 20.0], ladder=True, step=2, profile=profile),
            b("tricks", "nesterov", [30.0, 30.0], ladder=True, step=1, profile=profile),
        ]

    def write(self, name: str, run: dict) -> Path:
        """``run`` saved as ``name`` (a path relative to the test's folder)."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
        return path


@pytest.fixture
def fake_runs(tmp_path: Path) -> FakeRuns:
    return FakeRuns(tmp_path)


@pytest.fixture
def quick_run(fake_runs: FakeRuns) -> Path:
    return fake_runs.write("quick.json", fake_runs.run(fake_runs.sample()))


@pytest.fixture
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the plots (about half a second each) in tests that only read the markdown."""
    from speedtrain.report import markdown as report

    monkeypatch.setattr(report, "PLOTS", ())
