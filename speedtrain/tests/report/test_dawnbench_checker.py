"""DAWNBench entries as dawn-bench-entries' own checks read them, the cases of one run side by
side, and no entry overwritten by another case's (issue 21).

The checks are those of stanford-futuredata/dawn-bench-entries ``tests/test_submissions.py``
(commit 013ec26), re-stated for a CIFAR-10 training entry: the JSON parses and has version,
author, authorEmail, framework, model, hardware and a ``%Y-%m-%d`` timestamp; a TSV of the
same name exists, read by pandas with ``sep='\\t'`` its columns are exactly epoch, hours,
top1Accuracy, and it has rows. Added: costPerHour, where present, is a number (the entries'
own practice).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from speedtrain.cli.main import main
from speedtrain.report.dawnbench import Entrant, export_dawnbench
from speedtrain.common.errors import ReportError

if TYPE_CHECKING:
    from speedtrain.tests.conftest import FakeRuns

CASES = ("resnet9-24ep-half", "resnet9-24ep-bf16", "resnet9-tricks-18ep-half", "airbench94-9.9ep-half")


def dawnbench_problems(folder: Path) -> list[str]:
    """What test_submissions.py would fail on, for every CIFAR-10 training entry in ``folder``."""
    problems = []
    for path in glob(str(folder / "*.json")):
        try:
            with open(path) as f:
                record = json.load(f)
        except ValueError as e:
            problems.append(f"{path}: not valid JSON ({e})")
            continue
        for field in ("version", "author", "authorEmail", "framework", "model", "hardware", "timestamp"):
            if field not in record:
                problems.append(f"{path}: {field} is a required field")
        try:
            datetime.strptime(record.get("timestamp", ""), "%Y-%m-%d")
        except ValueError:
            problems.append(f"{path}: timestamp {record.get('timestamp')!r} is not %Y-%m-%d")
        if "costPerHour" in record and not isinstance(record["costPerHour"], (int, float)):
            problems.append(f"{path}: costPerHour {record['costPerHour']!r} is not a number")
        data_path = os.path.splitext(path)[0] + ".tsv"
        if not os.path.exists(data_path):
            problems.append(f"{path}: the TSV file doesn't exist")
            continue
        df = pd.read_csv(data_path, sep="\t")
        if sorted(df.columns) != sorted(["epoch", "hours", "top1Accuracy"]):
            problems.append(f"{data_path}: incorrect columns {list(df.columns)}")
        if len(df) == 0:
            problems.append(f"{data_path}: the TSV file shouldn't be empty")
    return problems


@pytest.fixture
def suite_run(fake_runs: "FakeRuns") -> Path:
    """A run of test_dawnbench.py's four cases on one V100."""
    benches = []
    for case in CASES:
        model = "airbench" if case.startswith("airbench") else "resnet9"
        benches.append(fake_runs.bench("dawnbench", case, [26.0, 24.0], test="test_dawnbench",
                                       metric="time_to_target_s", config={"model": model}))
    return fake_runs.write("run.json", fake_runs.run(benches))


def test_the_cases_of_one_run_export_side_by_side_and_pass_the_checks(suite_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "CIFAR10" / "train"
    names = []
    for case in CASES:
        paths = export_dawnbench(str(suite_run), str(out), case=case)
        names.append(Path(paths[0]).name)
    assert names == [f"speedtrain_{c}_1v100_pytorch.json" for c in CASES]
    assert len(glob(str(out / "*.json"))) == len(CASES) and len(glob(str(out / "*.tsv"))) == len(CASES)
    assert dawnbench_problems(out) == []
    for case in CASES:  # each file holds its own case
        entry = json.loads((out / f"speedtrain_{case}_1v100_pytorch.json").read_text())
        assert entry["misc"]["case"] == f"test_dawnbench[{case}]" and "costPerHour" not in entry


def test_the_checks_can_fail(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"version": "v1.0", "timestamp": "01/05/2024", "costPerHour": None}))
    (tmp_path / "a.tsv").write_text("epoch\thours\n")
    problems = "\n".join(dawnbench_problems(tmp_path))
    assert "author is a required field" in problems and "not %Y-%m-%d" in problems
    assert "costPerHour None is not a number" in problems and "incorrect columns" in problems


def test_a_cost_is_written_as_a_number(suite_run: Path, tmp_path: Path) -> None:
    paths = export_dawnbench(str(suite_run), str(tmp_path / "out"), case=CASES[0], entrant=Entrant(cost_per_hour=3.06))
    assert json.loads(Path(paths[0]).read_text())["costPerHour"] == 3.06
    assert dawnbench_problems(tmp_path / "out") == []


def test_another_cases_entry_is_not_overwritten(suite_run: Path, tmp_path: Path, capsys) -> None:
    paths = export_dawnbench(str(suite_run), str(tmp_path), case=CASES[0])
    before = Path(paths[0]).read_text()
    export_dawnbench(str(suite_run), str(tmp_path), case=CASES[0])  # the same case again: replaced
    # a different case whose file name collides (another author prefix cannot; forge the clash)
    other = tmp_path / "speedtrain_resnet9-24ep-bf16_1v100_pytorch.json"
    other.write_text(before)  # holds resnet9-24ep-half's entry under bf16's name
    with pytest.raises(ReportError, match=r"holds the entry of case 'test_dawnbench\[resnet9-24ep-half\]', not "
                                          r"'test_dawnbench\[resnet9-24ep-bf16\]'"):
        export_dawnbench(str(suite_run), str(tmp_path), case=CASES[1])
    assert other.read_text() == before and not (tmp_path / "speedtrain_resnet9-24ep-bf16_1v100_pytorch.tsv").exists()
    (tmp_path / "speedtrain_airbench94-9.9ep-half_1v100_pytorch.tsv").write_text("not ours\n")
    with pytest.raises(ReportError, match="holds no speedtrain entry of a case"):
        export_dawnbench(str(suite_run), str(tmp_path), case=CASES[3])

    # through the CLI: one line, exit 2, and no report written first
    report = tmp_path / "R.md"
    code = main(["report", str(suite_run), "-o", str(report), "--dawnbench", str(tmp_path), "--case", CASES[1]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "holds the entry of case" in err
    assert not report.exists()
