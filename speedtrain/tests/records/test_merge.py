"""``speedtrain merge``: saved runs of shards and GPU types joined into one saved run."""

from __future__ import annotations

import json

import pytest

from speedtrain.cli.main import main
from speedtrain.records.merge import merge_runs
from speedtrain.records.runs import load_run

T4 = "Tesla T4"


def test_shards_merge_into_one_run_that_reads_like_a_serial_one(fake_runs, capsys):
    sample = fake_runs.sample()
    a = fake_runs.write("a.json", fake_runs.run(sample[:5]))
    b = fake_runs.write("b.json", fake_runs.run(sample[5:]))
    out = fake_runs.folder / "out" / "merged.json"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    assert f"8 cases from 2 runs written to {out}" in capsys.readouterr().out
    merged = json.loads(out.read_text())
    assert [x["name"] for x in merged["benchmarks"]] == [x["name"] for x in sample]
    assert merged["benchmarks"] == sample  # each case exactly as its run saved it
    assert merged["machine_info"]["speedtrain"]["device"] == sample[0]["extra_info"]["device"]
    assert [r["file"] for r in merged["machine_info"]["merged_runs"]] == [str(a), str(b)]
    assert merged["machine_info"]["merged_runs"][1]["cases"] == [x["fullname"] for x in sample[5:]]
    run = load_run(str(out))  # the suite's own reader takes it like any saved run
    assert len(run.cases) == 8 and run.meta.profile == "quick"


def test_the_same_case_on_two_gpu_models_is_kept_apart(fake_runs):
    """Each GPU model is its own machine: its cases keep their device, for baselines too."""
    v100 = fake_runs.bench("precision", "fp16", [5.0, 5.1])
    t4 = fake_runs.bench("precision", "fp16", [9.0, 9.1], device=T4)
    merged = merge_runs([str(fake_runs.write("v100.json", fake_runs.run([v100]))),
                         str(fake_runs.write("t4.json", fake_runs.run([t4], device=T4)))])
    assert [b["extra_info"]["device"] for b in merged["benchmarks"]] == [v100["extra_info"]["device"], T4]
    # no single run-level device: readers use each case's own
    assert merged["machine_info"]["speedtrain"]["device"] is None
    path = fake_runs.write("merged.json", merged)
    assert [c.machine for c in load_run(str(path)).cases] == [v100["extra_info"]["device"], T4]
    # ... and the T4's machine information is kept whole
    assert merged["machine_info"]["merged_runs"][1]["machine_info"]["speedtrain"]["device"] == T4


def test_a_clashing_case_is_refused_in_one_line(fake_runs, capsys):
    a = fake_runs.write("a.json", fake_runs.run(fake_runs.sample()[:2]))
    b = fake_runs.write("b.json", fake_runs.run(fake_runs.sample()[1:3]))
    out = fake_runs.folder / "merged.json"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: case benchmarks/test_precision.py::test_precision[fp16]" in err
    assert str(a) in err and str(b) in err
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    ('{"benchmarks": []}', "not a saved benchmark run"),
    ("not json", "not valid JSON"),
    (None, "cannot read"),
])
def test_unreadable_inputs_are_named(fake_runs, capsys, content, message):
    bad = fake_runs.folder / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = fake_runs.write("good.json", fake_runs.run(fake_runs.sample()[:1]))
    assert main(["merge", str(good), str(bad), "-o", str(fake_runs.folder / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}") and message in err


def test_runs_of_different_profiles_are_refused(fake_runs, capsys):
    quick = fake_runs.write("quick.json", fake_runs.run(fake_runs.sample()[:2]))
    smoke = fake_runs.write("smoke.json", fake_runs.run(fake_runs.sample("smoke")[2:4], profile="smoke"))
    assert main(["merge", str(quick), str(smoke), "-o", str(fake_runs.folder / "m.json")]) == 2
    assert "quick.json is quick, smoke.json is smoke" in capsys.readouterr().err
