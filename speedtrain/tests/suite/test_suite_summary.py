"""The suite's first screen: one line when nothing can be judged, one line for a noisy machine."""

from speedtrain.verdicts import rule as stats
from speedtrain.stats.samples import CaseSummary
from speedtrain.suite.summary import can_judge, failed_line, noisy_line, verdict_lines


def _row(base, new, name="test_precision[fp32]"):
    def summary(times):
        return CaseSummary(metric="train_time_s", time_s=times, acc=[0.5] * len(times), reached=[False] * len(times),
                           images_per_s=None)
    return stats.verdict_row(name, None if base is None else summary(base), summary(new))


def test_a_first_run_with_nothing_comparable_is_one_line():
    rows = [_row(None, [1.0], "a"), _row([0.1], [4.3], "b"), _row([0.1], [0.2], "c")]  # +4190%, one seed a side
    assert [r.verdict for r in rows] == ["no baseline", "not judged", "not judged"]
    assert not can_judge(rows)
    (line,) = verdict_lines(rows, verbose=False)
    assert line.startswith("nothing to judge yet: 3 cases, 1 without a baseline") and "2 with one seed" in line
    assert "%" not in line  # no meaningless change figures
    # -v still lists every case
    assert len(verdict_lines(rows, verbose=True)) == 2 and "+4200.0%" in verdict_lines(rows, verbose=True)[1]


def test_a_run_that_can_be_judged_keeps_its_table():
    rows = [_row([1.0, 1.01, 0.99], [2.0, 2.02, 1.98]), _row(None, [1.0], "new case")]
    assert rows[0].verdict == "slower" and can_judge(rows)
    header, table = verdict_lines(rows, verbose=False)
    assert header.startswith("changes: this run against the baseline")
    assert "slower" in table and "new case" in table


def test_noisy_cases_collapse_into_one_line():
    busy = {"load_before": [3.0, 1, 1], "load_after": [5.2, 1, 1], "cpus": 2}
    quiet = {"load_before": [0.5, 1, 1], "load_after": [0.7, 1, 1], "cpus": 2}
    conditions = {f"case{i}": busy for i in range(99)} | {"calm": quiet}
    line = noisy_line(conditions)
    assert line.startswith("noisy machine: 99 of 100 cases") and "load 5.2 > 2 CPUs" in line
    assert line.count("case") < 10  # names a few, not 99
    assert noisy_line({"calm": quiet}) is None


def test_failed_cases_are_one_line_from_the_records():
    line = failed_line({"a": ("ok", None), "b": ("oom", "CUDA out of memory.\n Tried to allocate"),
                        "c": ("diverged", None)})
    assert line == "not ok: 2 of 3 cases: b (oom: CUDA out of memory. Tried to allocate); c (diverged)"
    assert failed_line({"a": ("ok", None)}) is None
