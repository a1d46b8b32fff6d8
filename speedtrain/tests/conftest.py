"""Shared fixtures: real saved runs made by running the smoke suite (not hand-written JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Small but covering: plain sections, a cumulative ladder, time-to-target recipes, a skipped case.
SMOKE_FILES = ["benchmarks/test_precision.py", "benchmarks/test_architecture.py", "benchmarks/test_dawnbench.py"]


def run_suite(*args: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """The benchmark suite in a fresh interpreter, exactly as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--st-profile", "smoke", "--st-device", "cpu", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pytest-benchmark JSON saved by a real smoke run of part of the suite."""
    out = tmp_path_factory.mktemp("smoke") / "smoke.json"
    proc = run_suite(*SMOKE_FILES, "--st-baselines", "off", f"--benchmark-json={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def smoke_data(smoke_run: Path) -> dict:
    return json.loads(smoke_run.read_text())
