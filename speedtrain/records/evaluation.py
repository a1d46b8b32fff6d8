"""What an evaluation measured, in JSON-friendly types: :class:`EvalMetrics` (top-k hits and the
confusion matrix of one evaluation) and :class:`EvalSummary` (a run's last and best-by-validation
evaluations). Counted on the device by :mod:`speedtrain.train.metrics`; kept here, torch-free, so
readers of saved results need not import the trainer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class EvalMetrics:
    """One evaluation's figures, in JSON-friendly types (stored with a run's results)."""

    total: int  # images evaluated
    ks: tuple[int, ...]
    correct: tuple[int, ...]  # images whose label is within the top k, per k in ks
    confusion: list[list[int]]  # [true class][predicted class] counts

    def accuracy(self, k: int = 1) -> float:
        """Top-k accuracy (fraction); 0 when nothing was evaluated."""
        return self.correct[self.ks.index(k)] / max(self.total, 1)

    def per_class_accuracy(self) -> list[float]:
        """Recall of each true class (fraction; 0 for a class with no images)."""
        return [row[i] / max(sum(row), 1) for i, row in enumerate(self.confusion)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalMetrics":
        return cls(data["total"], tuple(data["ks"]), tuple(data["correct"]), [list(r) for r in data["confusion"]])


@dataclass
class EvalSummary:
    """A run's evaluation beyond the per-epoch top-1: the last epoch's test figures, and the best
    epoch by validation top-1 with its figures (None without validation images)."""

    final: EvalMetrics  # test set, last epoch
    best_epoch: Optional[int] = None
    best_val_acc: Optional[float] = None  # fraction
    best_train_acc: Optional[float] = None  # training top-1 of that epoch (augmented batches)
    best: Optional[EvalMetrics] = None  # test set at that epoch

    @property
    def best_test_acc(self) -> Optional[float]:
        return None if self.best is None else self.best.accuracy(1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalSummary":
        best = data.get("best")
        return cls(EvalMetrics.from_dict(data["final"]), data.get("best_epoch"), data.get("best_val_acc"),
                   data.get("best_train_acc"), EvalMetrics.from_dict(best) if best else None)
