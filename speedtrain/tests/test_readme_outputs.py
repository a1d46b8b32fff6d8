"""Housekeeping: the README's commands leave nothing untracked in a checkout, and the tests nothing in ~/.cache."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Options whose value is a file or folder a command writes.
WRITES = re.compile(r"(?:--json|-o|--output|--dawnbench|--mllog|--benchmark-json)[ =](\S+)")


def readme_outputs() -> list[str]:
    """Every path the README's shell blocks write (not placeholders such as FILE or '-')."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    paths = [m for block in blocks for m in WRITES.findall(block)]
    return sorted({p for p in paths if p != "-" and not p.isupper() and "$" not in p})


def test_the_readme_writes_somewhere():
    outputs = readme_outputs()
    assert "run.json" in outputs and "doctor.json" in outputs and "reports/first/REPORT.md" in outputs


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_what_the_readme_writes_is_ignored():
    outputs = readme_outputs()
    proc = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=ROOT, capture_output=True, text=True)
    ignored = set(proc.stdout.split())
    assert ignored == set(outputs), f"not ignored: {sorted(set(outputs) - ignored)}"
    # the shipped report stays tracked
    proc = subprocess.run(["git", "check-ignore", "--no-index", "reports/smoke-cpu/REPORT.md", "reports/README.md"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout == ""


def test_the_tests_decode_into_a_temporary_cache(tmp_path_factory):
    from speedtrain.data.imagetree import cache_dir

    home_cache = Path.home() / ".cache" / "speedtrain"
    assert cache_dir() != home_cache
    assert cache_dir().is_relative_to(tmp_path_factory.getbasetemp()) or cache_dir().exists()
