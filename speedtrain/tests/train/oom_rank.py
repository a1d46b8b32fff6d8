"""A rank for tests (torchrun runs it through ``distributed.launch(..., module=...)``): the
ordinary rank, except that the rank named by ``SPEEDTRAIN_TEST_OOM_RANK`` runs out of memory
at its ``SPEEDTRAIN_TEST_OOM_STEP``-th training step (warm-up steps counted; the wall-clock time
written to ``SPEEDTRAIN_TEST_OOM_STAMP``), while the other
ranks are inside DDP's collectives for that step."""

import os
import sys
import time

import torch

from speedtrain.train import rank_worker
from speedtrain.train import loop as train


def _inject() -> None:
    rank, at = int(os.environ["SPEEDTRAIN_TEST_OOM_RANK"]), int(os.environ.get("SPEEDTRAIN_TEST_OOM_STEP", "1"))
    if int(os.environ.get("RANK", "0")) != rank:
        return
    real, calls = train._Step.__call__, [0]

    def step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == at:
            with open(os.environ["SPEEDTRAIN_TEST_OOM_STAMP"], "w", encoding="utf-8") as f:
                f.write(repr(time.time()))  # when the failure happened, for the test's "within seconds"
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by the test)")
        return real(self, *args, **kwargs)

    train._Step.__call__ = step  # type: ignore[method-assign]


if __name__ == "__main__":
    _inject()
    sys.exit(rank_worker.main())
