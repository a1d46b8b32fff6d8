"""What a report calls things: accuracy studies by accuracy, what smoke changed, a train result's label and commit."""

from pathlib import Path

import pytest

from speedtrain.report.markdown import build_report
from speedtrain.report.tables import environment_table
from speedtrain.records.trainrun import case_id

from speedtrain.tests.report.test_report import _header, _table_row


def _study(fake_runs, profile="quick"):
    b = fake_runs.bench
    return [b("precision", "fp32", [10.0, 10.2], reference=True, profile=profile),
            b("precision", "fp16", [5.0, 5.1], profile=profile),
            b("small_data", "none", [1.0, 1.1], reference=True, metric="final_acc", final_acc=[0.70, 0.71],
              reached_target=[False, False], time_to_target_s=[None, None], profile=profile),
            b("small_data", "flip", [1.2, 1.3], metric="final_acc", final_acc=[0.80, 0.81],
              reached_target=[False, False], time_to_target_s=[None, None], profile=profile)]


@pytest.mark.usefixtures("no_plots")
def test_an_accuracy_study_is_ranked_and_described_by_accuracy(fake_runs, tmp_path):
    run = fake_runs.write("q.json", fake_runs.run(_study(fake_runs)))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    study = "## 100 training images: each augmentation alone (accuracy study)"
    summary = dict(zip(_header(text, "## Summary"), _table_row(text, study[3:])))
    assert summary["best case"] == "flip (most accurate)" and summary["figure"] == "80.50%"
    assert summary["speed-up vs reference"] == "-"
    speed = dict(zip(_header(text, "## Summary"), _table_row(text, "Numeric precision")))
    assert speed["best case"] == "fp16 (fastest)" and speed["speed-up vs reference"] == "2.00x"
    columns = _header(text, study)
    assert "time to target s" not in columns and "speed-up" not in columns
    section = text.split(study)[1]
    assert "ranked by final test accuracy" in section and "not reached" not in section.split("##")[0]
    assert section.index("| flip") < section.index("| none (ref)")  # most accurate first


@pytest.mark.usefixtures("no_plots")
def test_a_smoke_report_says_what_smoke_changed_and_leaves_out_speed_ups(fake_runs, tmp_path):
    run = fake_runs.write("s.json", fake_runs.run(_study(fake_runs, profile="smoke"), profile="smoke", synthetic=True))
    text = Path(build_report([str(run)], str(tmp_path / "R.md"))).read_text()
    # a run saved before runs kept the profile's scales: the values smoke had then
    assert "*Smoke profile:* every case trained 2 epochs of 1 batch, at 0.125x its width and 0.25x its batch " \
           "(a case named `b64` trained batches of 16)" in text
    assert "speed-up" not in _header(text, "## Numeric precision")
    assert "speed-up vs reference" not in _header(text, "## Summary")  # empty for every section: left out


def test_a_train_result_is_labelled_with_width_and_dataset():
    config = {"model": "resnet9", "width": 0.25, "dataset": "fashion-mnist", "precision": "fp32",
              "batch_size": 512, "epochs": 2}
    assert case_id(config) == "resnet9 x0.25 fashion-mnist fp32 bs512 2ep"
    assert case_id({**config, "width": 1.0, "synthetic": True}) == "resnet9 fashion-mnist (synthetic) fp32 bs512 2ep"


def test_a_commit_without_a_branch_shows_no_question_mark(fake_runs, tmp_path, capsys):
    from speedtrain.records.runs import load_run

    data = fake_runs.run(_study(fake_runs))
    data["commit_info"] = {"id": "7cdd52a89745aaaa", "dirty": True}  # as a train --json result records it
    run = load_run(fake_runs.write("c.json", data))
    row = _table_row(environment_table([run]), "commit")
    assert row[1] == "7cdd52a89745 (uncommitted changes)"
    data["commit_info"] = {"id": "7cdd52a89745aaaa", "dirty": False}
    assert _table_row(environment_table([load_run(fake_runs.write("d.json", data))]), "commit")[1] == "7cdd52a89745"


@pytest.mark.usefixtures("no_plots")
def test_a_smoke_report_describes_the_shrink_the_run_recorded(fake_runs, tmp_path):
    from speedtrain.recipes.profiles import PROFILES

    saved = fake_runs.run(_study(fake_runs, profile="smoke"), profile="smoke", synthetic=True)
    saved["machine_info"]["speedtrain"]["profile_scales"] = PROFILES["smoke"].scales()
    text = Path(build_report([str(fake_runs.write("s.json", saved))], str(tmp_path / "R.md"))).read_text()
    smoke = PROFILES["smoke"]
    assert (f"every case trained {smoke.epochs} epochs of 1 batch, at {smoke.width_scale:g}x its width and "
            f"{smoke.batch_scale:g}x its batch ({smoke.min_batch} images at least) (a case named `b64` trained "
            f"batches of {max(smoke.min_batch, round(64 * smoke.batch_scale))})") in text
    assert smoke.batch_scale != 0.25 and "0.25x its batch" not in text  # not the older runs' description
