"""Top-k accuracy and the confusion matrix against hand-counted cases, ties included."""

import json

import pytest
import torch

from speedtrain.train.metrics import EvalAccumulator, confusion_matrix, label_rank, topk_correct
from speedtrain.records.evaluation import EvalMetrics

# Five images, three classes. Label rank by hand (ties go to the lower class index, as argmax):
LOGITS = torch.tensor([
    [2.0, 1.0, 0.5],  # label 0: the largest -> rank 0, predicted 0
    [0.1, 0.3, 0.2],  # label 2: class 1 ahead -> rank 1, predicted 1
    [3.0, 2.0, 1.0],  # label 2: classes 0, 1 ahead -> rank 2, predicted 0
    [1.0, 1.0, 0.0],  # label 1: tied with class 0, which has the lower index -> rank 1, predicted 0
    [1.0, 1.0, 0.0],  # label 0: tied with class 1, its own index is lower -> rank 0, predicted 0
])
LABELS = torch.tensor([0, 2, 2, 1, 0])
# [true][predicted]: true 0 -> predicted 0 twice; true 1 -> 0 once; true 2 -> 1 once and 0 once.
CONFUSION = [[2, 0, 0], [1, 0, 0], [1, 1, 0]]


def test_label_rank_and_topk_by_hand_with_ties_broken_as_argmax():
    assert label_rank(LOGITS, LABELS).tolist() == [0, 1, 2, 1, 0]
    assert topk_correct(LOGITS, LABELS) == {1: 2, 2: 4, 3: 5}
    assert topk_correct(LOGITS, LABELS, ks=(1,))[1] == int((LOGITS.argmax(1) == LABELS).sum())


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(LOGITS.argmax(1), LABELS, 3)
    assert cm.dtype == torch.long and cm.tolist() == CONFUSION


def test_topk_agrees_with_torch_topk_when_there_are_no_ties():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(500, 10, generator=gen), torch.randint(0, 10, (500,), generator=gen)
    top = logits.topk(3, dim=1).indices
    expected = {k: int((top[:, :k] == labels[:, None]).any(1).sum()) for k in (1, 2, 3)}
    assert topk_correct(logits, labels) == expected
    assert 0 < expected[1] < expected[2] < expected[3] < 500


def test_nan_logits_rank_first_as_in_argmax():
    logits = torch.tensor([[0.0, float("nan"), 1.0], [float("nan"), 0.0, 1.0]])
    assert logits.argmax(1).tolist() == [1, 0]
    assert label_rank(logits, torch.tensor([2, 0])).tolist() == [1, 0]


def test_accumulator_over_batches_equals_the_whole_and_reads_back_once():
    acc = EvalAccumulator(3, "cpu")
    for i in range(0, 5, 2):  # batches of 2, 2 and 1
        acc.update(LOGITS[i:i + 2], LABELS[i:i + 2])
    m = acc.result()
    assert (m.total, m.ks, m.correct, m.confusion) == (5, (1, 2, 3), (2, 4, 5), CONFUSION)
    assert m.accuracy(1) == pytest.approx(0.4) and m.accuracy(3) == 1.0
    assert m.accuracy(1) == sum(m.confusion[i][i] for i in range(3)) / m.total  # top-1 is the diagonal
    assert m.per_class_accuracy() == [1.0, 0.0, 0.0]
    assert EvalMetrics.from_dict(json.loads(json.dumps(m.__dict__))) == m  # survives the results JSON


def test_accumulator_update_never_reads_back_to_the_host():
    # Meta tensors have no values: any .item()/.tolist()/bool() in update would raise.
    acc = EvalAccumulator(10, "meta")
    acc.update(torch.empty(8, 10, device="meta"), torch.empty(8, dtype=torch.long, device="meta"))
    assert acc.total == 8 and acc.hits.device.type == "meta"


def test_empty_evaluation_and_bad_ks():
    assert EvalAccumulator(2, "cpu").result().accuracy(2) == 0.0
    with pytest.raises(ValueError, match="positive"):
        EvalAccumulator(2, "cpu", ks=(0, 1))
