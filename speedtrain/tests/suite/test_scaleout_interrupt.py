"""Ctrl-C under pytest-xdist keeps the serial session's promise (issue 22): one speedtrain line,
the finished cases saved as a run marked partial, no baselines written, exit code 2.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the controller and
every worker. The test does the same: the suite runs in a session of its own, and the worker
that finishes the first case sends SIGINT to that process group (a conftest hook), so the
signal arrives at a known point, after one case finished and while others wait or train.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CASES = 6

CONFTEST = """
import os, signal

def pytest_runtest_teardown(item):
    # the first case to finish, on any worker, presses Ctrl-C for the whole process group
    try:
        fd = os.open(os.path.join(os.environ["ST_TEST_DIR"], "pressed"), os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    os.close(fd)
    os.killpg(os.getpgid(0), signal.SIGINT)
"""

CASE_FILE = f"""
import time
import pytest

@pytest.mark.parametrize("i", range({CASES}))
def test_case(run_case, i):
    if i:  # the later cases start late: Ctrl-C lands while they wait, as in a long session
        time.sleep(2)
    run_case(label_smoothing=0.1 + i / 100)
"""


def test_ctrl_c_under_xdist_saves_the_finished_cases_as_a_partial_run(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(CASE_FILE))
    storage, baselines = tmp_path / "store", tmp_path / "baselines.json"
    env = {**os.environ, "ST_TEST_DIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--st-profile", "smoke",
         "--st-device", "cpu", "--st-threads", "1", "--st-baselines", "update", f"--st-baselines-file={baselines}",
         f"--benchmark-storage={storage}", "--benchmark-save=cut", "test_cases.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        start_new_session=True)  # its own process group: the SIGINT must not reach this test run
    out = proc.stdout + proc.stderr
    assert (tmp_path / "pressed").exists(), out[-3000:]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert out.count("speedtrain: interrupted: stopping after the current seed") == 1, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    (saved,) = storage.glob("*/0001_cut.json")
    run = json.loads(saved.read_text())
    assert "interrupted" in run["machine_info"]["speedtrain"]["partial"]
    names = [b["name"] for b in run["benchmarks"]]
    assert 1 <= len(names) < CASES and len(set(names)) == len(names), names
    assert not baselines.exists()
    assert "session interrupted: baselines left unchanged" in out
