"""The trainer's evaluation: top-k and the confusion matrix, and the best epoch by validation.

Every evaluation counts top-1/2/3 hits and the confusion matrix on the device
(:class:`speedtrain.train.metrics.EvalAccumulator`, one read-back per evaluation). With held-out
validation images (``val_split``) the epoch with the best validation top-1 is remembered with
its training and test figures, as the optimiser-grid study chose its epoch on validation and
reported it on test. :class:`~speedtrain.records.evaluation.EvalSummary` is what a run keeps (``RunResult.evaluation``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from speedtrain.data.airbench_augment import multicrop_logits
from speedtrain.records.evaluation import EvalMetrics, EvalSummary
from speedtrain.train.metrics import EvalAccumulator


def evaluate(model: nn.Module, batches: list, num_classes: int, tta_flip: bool,
             autocast: Callable[[], Any], tta_translate: int = 0) -> EvalMetrics:
    """Top-k hits and the confusion matrix of ``model`` over ``batches`` (flip TTA if asked;
    ``tta_translate`` pixels: airbench's multi-crop, :func:`airbench_augment.multicrop_logits`)."""
    model.eval()
    acc: Optional[EvalAccumulator] = None
    with torch.no_grad(), autocast():
        for x, y in batches:
            logits = multicrop_logits(model, x, flip=tta_flip, translate=tta_translate)
            if acc is None:
                acc = EvalAccumulator(num_classes, y.device)
            acc.update(logits, y)
    return acc.result() if acc is not None else EvalAccumulator(num_classes, "cpu").result()


class BestEpoch:
    """Follows the epochs' evaluations; the first epoch with the highest validation top-1 wins."""

    def __init__(self) -> None:
        self.summary: Optional[EvalSummary] = None

    def update(self, epoch: int, train_acc: float, val: Optional[EvalMetrics], test: EvalMetrics) -> None:
        if self.summary is None:
            self.summary = EvalSummary(final=test)
        self.summary.final = test
        if val is not None and (self.summary.best_val_acc is None or val.accuracy(1) > self.summary.best_val_acc):
            self.summary.best_epoch, self.summary.best_val_acc = epoch, val.accuracy(1)
            self.summary.best_train_acc, self.summary.best = train_acc, test
