"""Every shell block of the README runs as written on a CPU machine, or says it needs a GPU
(issue 22).

Each command line of each ```bash block is one test, run in order in one sandbox (a copy of
the project's benchmarks, baselines and configuration, as a fresh clone has them), so a line
may use what an earlier one saved (``.benchmarks/*/*_first.json``). A line whose comment
says "needs a GPU" is not run here. Python blocks that name their file in a first-line comment
(``# test_mine.py``) are written into the sandbox first, as a reader would save them.

What the test changes, and why, so that "as written" stays honest:
* the set-up commands' ``python3 -m venv .venv`` and ``pip install`` are not run (a test must
  not install packages); ``.venv/bin/`` then means this interpreter's folder, where the
  project is installed the same way; the install targets are checked against pyproject.toml;
* the project's test command (:data:`TEST_COMMAND`, many minutes) is collected, not run: this
  test is part of it;
* a ``pytest benchmarks`` line without ``-k`` gets :data:`SUBSET` (2 smoke cases rather than
  115: a plain case and a DAWNBench one, enough for every later line that reads its saved run),
  and every suite line gets ``--st-threads 1`` (the test machine's cores are shared).
A line passes with exit code 0; 1 also counts where its comment says the command exits 1 or
reports a FAIL (``compare  # exit 1 on regression``, ``doctor --device cuda  # ... is a FAIL``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GPU_MARK = "needs a gpu"
NETWORK_MARK = "needs the network"
SUBSET = '-k "test_precision and fp32 or test_dawnbench and 24ep-half"'
BIN = Path(sys.executable).parent
# The project's test command (README "Run the tests", .ci/run): two xdist workers, each test file
# on one worker in order (this file's lines depend on each other; module fixtures are made once).
TEST_COMMAND = "pytest -n 2 --dist loadfile"


def shell_blocks(text: str) -> list[list[str]]:
    """The README's ```bash blocks, each as its command lines (blank lines dropped)."""
    return [[line for line in block.splitlines() if line.strip()]
            for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M)]


def named_python_blocks(text: str) -> dict[str, str]:
    """Python blocks whose first line is ``# NAME.py``: files a reader saves before running them."""
    out = {}
    for block in re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        first = block.splitlines()[0].strip()
        if re.fullmatch(r"# [\w-]+\.py", first):
            out[first[2:]] = block
    return out


def split_comment(line: str) -> tuple[str, str]:
    command, _, comment = line.partition("  #")
    return command.strip(), comment.strip().lower()


def runnable(line: str) -> str:
    """The line as this test runs it (see the module docstring for each change)."""
    command, _ = split_comment(line)
    parts = [p.strip() for p in command.split("&&")]
    parts = [p for p in parts if not p.startswith("python3 -m venv") and "pip install" not in p]
    parts = [p.replace(".venv/bin/", "") for p in parts]
    out = []
    for part in parts:
        if part in ("pytest", TEST_COMMAND):
            part = "pytest --collect-only -q"
        elif part.startswith("pytest "):
            if part.startswith("pytest benchmarks") and " -k " not in f" {part} ":
                part += f" {SUBSET}"
            part += " --st-threads 1"
        out.append(part)
    return " && ".join(out)


LINES = [(f"block{b + 1}-line{i + 1}", line) for b, block in enumerate(shell_blocks(README.read_text()))
         for i, line in enumerate(block)]


def test_the_readme_has_shell_blocks_and_each_line_is_marked_or_run() -> None:
    assert len(LINES) >= 10
    for _, line in LINES:
        command, comment = split_comment(line)
        assert command, line
        if re.search(r"--st-profile (quick|full)", command):
            assert GPU_MARK in comment, f"{line}: trains for hours on a CPU and does not say it needs a GPU"
        if "pip install" in command:  # the install targets exist
            extras = re.findall(r"\.\[(\w+)\]", command)
            pyproject = (ROOT / "pyproject.toml").read_text()
            assert all(re.search(rf"^{e} = ", pyproject, flags=re.M) for e in extras), line


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = [line for _, line in LINES if "'.[test]'" in line]
    assert len(readme) == 1 and readme[0].endswith(f".venv/bin/{TEST_COMMAND}")
    assert readme[0] in ci  # .ci/run calls the README's command, as written


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone's files the commands read: benchmarks, baselines, configuration."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "benchmarks", root / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("baselines.json", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, root / name)
    for name, text in named_python_blocks(README.read_text()).items():
        (root / name).write_text(text)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("line", [line for _, line in LINES], ids=[name for name, _ in LINES])
def test_readme_line_runs_on_a_cpu(sandbox: Path, line: str) -> None:
    command, comment = split_comment(line)
    if GPU_MARK in comment:
        pytest.skip("the README says it needs a GPU")
    if NETWORK_MARK in comment:
        pytest.skip("the README says it needs the network (a download), which the test machine does not have")
    # a measuring profile trains for hours on a CPU: such a line must say it needs a GPU
    assert not re.search(r"--st-profile (quick|full)", command), f"{line}: hours on a CPU, and says nothing of a GPU"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(["bash", "-c", runnable(line)], cwd=sandbox, env=env, capture_output=True, text=True,
                          timeout=1800)
    allowed = {0, 1} if ("exit 1" in comment or "fail" in comment) else {0}
    assert proc.returncode in allowed, f"{line}\n-> {runnable(line)}\n{proc.stdout[-2500:]}\n{proc.stderr[-2500:]}"
