"""airbench94's run time, computed airbench's way, beside speedtrain's training clock (issue 21).

speedtrain's rule (``speedtrain.train.loop``) times training only: the patch whitening
(``whiten_s``) and every evaluation (``eval_s``) are figures of their own. airbench94
(KellerJordan/cifar10-airbench, ``legacy/airbench94.py``, ``total_time_seconds``) adds three
CUDA-event-timed spans: the whitening initialisation, each epoch's training (its per-epoch
validation is left out), and the final multi-crop TTA evaluation. Its published figures
(3.29 s in arXiv 2404.00498; 3.83 s in the header of the uncompiled ``airbench94.py``; both on
an A100) are that sum. :func:`airbench_time_s` is the same sum from a speedtrain run:
``whiten_s + train_time_s + eval_s of the last epoch`` (the last epoch's evaluation is the
final one; with ``tta_flip``/``tta_translate`` it is airbench's TTA). It is recorded as
``airbench_time_s`` (RunResult, CaseRecord, the runs frame) and shown in the report's notes
beside the published figures; verdicts keep comparing speedtrain's own figure.

What differs inside the sum: speedtrain's evaluation also counts top-k and the confusion
matrix (a few tensor ops on the logits), and the clock reads per epoch are the trainer's
(CUDA events or a synchronised host clock, ``speedtrain.hw.timing``).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from speedtrain.config.trainconfig import TrainConfig
    from speedtrain.records.result import RunResult
    from speedtrain.records.runs import RunCase

__all__ = ["PUBLISHED", "airbench_time_s", "report_notes"]

# airbench94's published times to 94% on an A100 (seconds), timed as airbench_time_s is.
PUBLISHED = {
    "arXiv 2404.00498": 3.29,
    "the uncompiled airbench94.py's header": 3.83,
}


def airbench_time_s(cfg: "TrainConfig", result: "RunResult") -> Optional[float]:
    """whitening + training + the final evaluation, for an ``airbench``-network run that
    finished (None otherwise: a partial run's sum is not airbench's figure)."""
    if cfg.model != "airbench" or result.status != "ok" or not result.epochs or result.train_time_s is None:
        return None
    return (result.whiten_s or 0.0) + result.train_time_s + result.epochs[-1].eval_s


def report_notes(members: "list[RunCase]") -> list[str]:
    """One note per case that has the figure: its median beside airbench's published times."""
    out = []
    for c in members:
        values = [v for v in c.record.airbench_time_s if v is not None]
        if not values:
            continue
        median = statistics.median(values)
        published = "; ".join(f"{s:.2f} s in {where}" for where, s in PUBLISHED.items())
        out.append(f"- `{c.name}`: timed airbench's way (whitening + training + final TTA evaluation), "
                   f"{median:.2f} s (median of {len(values)}) on {c.record.device}; airbench94 on an A100: {published}.")
    return out
