"""What report and compare say of a saved run beyond its figures: interrupted, noisy on either side."""

from pathlib import Path

from speedtrain.cli.main import main
from speedtrain.report.compare import compare_runs
from speedtrain.report.markdown import build_report

BUSY = {"torch_threads": 1, "cpus": 2, "physical_cores": 2, "load_before": [5.0, 1, 1], "load_after": [4.0, 1, 1]}
QUIET = {"torch_threads": 1, "cpus": 2, "physical_cores": 2, "load_before": [0.5, 1, 1], "load_after": [0.6, 1, 1]}


def _run(fake_runs, name, conditions, partial=None):
    run = fake_runs.run([fake_runs.bench("precision", "fp32", [10.0, 10.2, 9.8], reference=True, conditions=conditions)])
    if partial:
        run["machine_info"]["speedtrain"]["partial"] = partial
    return fake_runs.write(name, run)


def test_an_interrupted_run_says_so_in_the_report_and_in_compare(fake_runs, tmp_path, capsys, no_plots):
    why = "interrupted (Ctrl-C): only the cases that finished are in this run"
    old, new = _run(fake_runs, "old.json", QUIET), _run(fake_runs, "new.json", QUIET, partial=why)
    text = Path(build_report([str(new)], str(tmp_path / "R.md"))).read_text()
    header = text.split("## Environment")[0]
    assert "PARTIAL RUN, interrupted" in header and "only the cases that finished" in header
    assert "PARTIAL" not in Path(build_report([str(old)], str(tmp_path / "S.md"))).read_text()
    code = main(["compare", str(old), str(new)])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0] == f"new.json: partial run, interrupted: {why}"


def test_compare_marks_a_noisy_machine_from_either_run(fake_runs):
    (row,), _ = compare_runs(str(_run(fake_runs, "old.json", BUSY)), str(_run(fake_runs, "new.json", QUIET)))
    assert row.noisy_machine == "old run: load 5.0 > 2 CPUs"
    assert row.detail.startswith("noisy machine (old run: load 5.0 > 2 CPUs)")
    (row,), _ = compare_runs(str(_run(fake_runs, "a.json", QUIET)), str(_run(fake_runs, "b.json", QUIET)))
    assert row.noisy_machine is None
    (row,), _ = compare_runs(str(_run(fake_runs, "c.json", BUSY)), str(_run(fake_runs, "d.json", BUSY)))
    assert row.noisy_machine == "new run: load 5.0 > 2 CPUs; old run: load 5.0 > 2 CPUs"
