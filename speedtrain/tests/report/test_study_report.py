"""The accuracy studies downstream of the trainer: per-case record fields, the accuracy verdict,
the study tables and the confusion heat map of the report (hand-made figures, no training)."""

import pytest

from speedtrain.records.evaluation import EvalSummary
from speedtrain.records.evaluation import EvalMetrics
from speedtrain.records.record import CaseRecord, study_figures
from speedtrain.records.saved_run import RunCase, RunMeta
from speedtrain.stats.samples import CaseSummary
from speedtrain.verdicts.rule import compare
from speedtrain.report.study_tables import augmentation_table, grid_table, study_parts


def _summary(top1: int, best_epoch=None, confusion=((3, 1), (0, 4))) -> EvalSummary:
    final = EvalMetrics(8, (1, 2, 3), (top1, 8, 8), [list(r) for r in confusion])
    best = EvalMetrics(8, (1, 2, 3), (top1 + 1, 8, 8), [[4, 0], [1, 3]]) if best_epoch else None
    return EvalSummary(final, best_epoch, 0.75 if best_epoch else None, 0.9 if best_epoch else None, best)


def test_the_record_sums_confusion_over_seeds_and_keeps_top_k_per_seed():
    figures = study_figures([_summary(7, best_epoch=3), _summary(5, best_epoch=2), None])
    assert figures["confusion"] == [[6, 2], [0, 8]] and figures["best_confusion"] == [[8, 0], [2, 6]]
    assert figures["top2_acc"] == [1.0, 1.0, None] and figures["best_epoch"] == [3, 2, None]
    assert figures["best_test_acc"] == [1.0, 0.75, None] and figures["val_acc"] == [0.75, 0.75, None]


def _record(case: str, accs: list[float], *, reference: bool = False, section: str = "small_data", **extra) -> CaseRecord:
    record = CaseRecord(section=section, case=case, reference=reference, seeds=list(range(len(accs))),
                        metric="final_acc", final_acc=accs, train_time_s=[1.0] * len(accs),
                        reached_target=[False] * len(accs), **extra)
    return CaseRecord.from_extra_info(record.to_extra_info())  # what a report reads back


def test_study_fields_survive_the_saved_record():
    r = _record("a", [0.5, 0.6], best_epoch=[3, 4], confusion=[[1, 2], [3, 4]], top3_acc=[0.9, 1.0])
    assert r.best_epoch == [3, 4] and r.confusion == [[1, 2], [3, 4]] and r.top3_acc == [0.9, 1.0]
    assert r.summary().time_s == [0.5, 0.6]  # the compared figure is the accuracy
    broken = CaseRecord.from_extra_info({**r.to_extra_info(), "confusion": [[1, 2], [3]]})
    assert broken.confusion is None and "confusion" in broken.problems


def _acc(values: list[float]) -> CaseSummary:
    return CaseSummary(metric="final_acc", time_s=values, acc=values, reached=[], images_per_s=None)


@pytest.mark.parametrize("new, label", [
    ([0.60, 0.61, 0.62, 0.63, 0.64], "more accurate"),
    ([0.40, 0.41, 0.42, 0.43, 0.44], "accuracy lost"),
    ([0.50, 0.52, 0.48, 0.51, 0.49], "unchanged"),  # within 0.5 pt... of a noisy baseline
    ([0.45, 0.60, 0.47, 0.58, 0.53], "unchanged"),  # a bigger change inside the seeds' noise
    ([0.60], "not judged"),
])
def test_accuracy_is_compared_with_the_noise_rule_higher_is_better(new, label):
    base = _acc([0.50, 0.51, 0.49, 0.52, 0.48])
    assert compare(base, _acc(new)).label == label


def _cases(records: list[CaseRecord]) -> list[RunCase]:
    return [RunCase(run="r", name=f"test_x[{r.case}]", record=r, meta=RunMeta(), index=i) for i, r in enumerate(records)]


def test_the_augmentation_table_gives_mean_std_difference_and_noise():
    table = augmentation_table(_cases([
        _record("none", [0.70, 0.72, 0.71, 0.69], reference=True),
        _record("flip", [0.80, 0.82, 0.81, 0.79]),
        _record("mixing", [0.71, 0.69, 0.73, 0.70]),
    ]))
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "70.50 ± 1.29%" in lines["none"] and "reference" in lines["none"]
    assert "+10.00 pt" in lines["flip"] and "| yes" in lines["flip"]
    assert "+0.25 pt" in lines["mixing"] and "| no" in lines["mixing"]


def test_the_grid_table_reads_the_config_and_the_best_epoch():
    cfg = dict(optimizer="adam", batch_size=64, lr=0.001, weight_decay=1e-4, dropout=0.1)
    table = grid_table(_cases([_record("adam", [0.80, 0.82], section="optimizer_grid", config=cfg, best_epoch=[20, 22],
                                       val_acc=[0.83, 0.85], best_test_acc=[0.81, 0.83], best_train_acc=[0.9, 0.92])]))
    row = table.splitlines()[2]
    for cell in ("adam", " 64 |", "0.001", "0.0001", " 20 |", "84.00%", "82.00%", "81.00%", "91.00%"):
        assert cell in row, (cell, row)


def test_a_study_section_gets_its_table_and_a_confusion_heat_map():
    records = [_record("none", [0.7, 0.72], reference=True, confusion=[[70, 30], [10, 90]]),
               _record("flip", [0.8, 0.82], confusion=[[80, 20], [12, 88]], config={"classes": [0, 1]})]
    parts, pngs = study_parts("small_data", _cases(records), "REPORT", smoke=False)
    text = "\n".join(parts)
    assert "### Study table" in text and "`flip` (highest median test top-1)" in text
    assert list(pngs) == ["REPORT-small_data-confusion.png"] and pngs["REPORT-small_data-confusion.png"][:4] == b"\x89PNG"
    assert study_parts("precision", _cases(records), "REPORT", smoke=False) == ([], {})
