"""Evaluation figures beyond top-1: top-k accuracy and the confusion matrix.

The optimiser-grid study reports top-1, top-2 and top-3 accuracy and per-class confusion
matrices. Both are counted on the device, batch by batch, and read back to the host once per
evaluation (:meth:`EvalAccumulator.result`), so evaluating adds no host sync per batch.

Ties are broken as ``torch.argmax`` breaks them, by the lower class index: a class ranks ahead
of the label if its logit is larger, or equal with a lower index. Top-1 therefore agrees with
``logits.argmax(1) == labels`` and with the confusion matrix's diagonal, on every device
(``torch.topk`` does not promise an order among equal values). NaN ranks as +inf.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from speedtrain.records.evaluation import EvalMetrics

TOP_KS = (1, 2, 3)  # what the optimiser-grid study reports


def label_rank(logits: Tensor, labels: Tensor) -> Tensor:
    """0-based rank of each label among its row's logits (0 = the argmax), long ``(N,)``."""
    key = torch.nan_to_num(logits.float(), nan=float("inf"))
    own = key.gather(1, labels[:, None])
    classes = torch.arange(key.shape[1], device=key.device)
    ahead = (key > own) | ((key == own) & (classes < labels[:, None]))
    return ahead.sum(1)


def topk_hits(logits: Tensor, labels: Tensor, ks: Sequence[int] | Tensor = TOP_KS) -> Tensor:
    """How many labels are within the top k, for each k in ``ks``: long ``(len(ks),)`` on the device.

    ``ks`` as a tensor on the logits' device saves a host-to-device copy (a blocking one, from
    pageable memory) per call; :class:`EvalAccumulator` builds it once (issue 19)."""
    rank = label_rank(logits, labels)
    k = ks if isinstance(ks, Tensor) else torch.tensor(ks, device=rank.device)
    return (rank[None, :] < k[:, None]).sum(1)


def topk_correct(logits: Tensor, labels: Tensor, ks: Sequence[int] = TOP_KS) -> dict[int, int]:
    """``{k: number of labels within the top k}`` for one batch (reads back to the host)."""
    return dict(zip(ks, topk_hits(logits, labels, ks).tolist()))


def confusion_matrix(pred: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Counts ``[true class, predicted class]``, long ``(K, K)`` on the labels' device.

    ``index_add_`` rather than ``torch.bincount``, which reads the largest value back to the
    host on CUDA. Values outside ``[0, num_classes)`` are not checked (that would sync).
    """
    counts = torch.zeros(num_classes * num_classes, dtype=torch.long, device=labels.device)
    counts.index_add_(0, labels * num_classes + pred, torch.ones_like(labels, dtype=torch.long))
    return counts.view(num_classes, num_classes)


class EvalAccumulator:
    """Top-k counts and the confusion matrix over the batches of one evaluation, on the device.

    ``update(logits, labels)`` per batch (logits after any test-time augmentation), then
    ``result()`` once: the only read-back to the host.
    """

    def __init__(self, num_classes: int, device: torch.device | str, ks: Sequence[int] = TOP_KS) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers; got {tuple(ks)}")
        self.num_classes, self.ks = num_classes, tuple(ks)
        self.ks_tensor = torch.tensor(self.ks, device=device)  # copied to the device once, not per batch
        self.hits = torch.zeros(len(self.ks), dtype=torch.long, device=device)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
        self.total = 0  # from shapes, so no sync

    def update(self, logits: Tensor, labels: Tensor) -> None:
        self.hits += topk_hits(logits, labels, self.ks_tensor)
        self.confusion += confusion_matrix(logits.argmax(1), labels, self.num_classes)
        self.total += labels.numel()

    def result(self) -> EvalMetrics:
        return EvalMetrics(self.total, self.ks, tuple(self.hits.tolist()), self.confusion.tolist())
