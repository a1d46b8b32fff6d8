"""Process-wide state a run changes, put back when it ends, and the compiler's (issue 19).

A run sets ``torch.backends.cudnn.benchmark`` and the TF32 flags of cuBLAS and cuDNN for its
precision; without :class:`BackendFlags` they stayed so for the rest of the process, and a later
case (or the user's own code after ``train()``) ran with another case's settings.

Dynamo's caches are process-wide too: each compiled case adds graphs, and after
``torch._dynamo.config.recompile_limit`` (8) recompiles of a frame, Dynamo silently runs it
eagerly. A compiled run therefore starts with :func:`reset_compiler`, and records how many
graphs it compiled in all and after its warm-up (:func:`graphs_compiled` is Dynamo's own
``counters["stats"]["unique_graphs"]``, which ``torch._dynamo.reset`` does not clear, so the
figures are differences).
"""

from __future__ import annotations

from types import TracebackType
from typing import Optional

import torch


class BackendFlags:
    """``with BackendFlags():`` restores cudnn.benchmark and the cuBLAS/cuDNN TF32 flags on exit,
    through the same setters the trainer uses (in torch 2.14 ``allow_tf32`` also moves the
    newer ``fp32_precision`` setting, so one restore puts back both)."""

    def __enter__(self) -> "BackendFlags":
        self.saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                      torch.backends.cudnn.allow_tf32)
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        benchmark, matmul_tf32, cudnn_tf32 = self.saved
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.backends.cudnn.allow_tf32 = cudnn_tf32


def reset_compiler() -> None:
    """Dynamo as in a fresh process: no earlier case's graphs, guards or recompile counts."""
    torch._dynamo.reset()


def graphs_compiled() -> int:
    """Graphs Dynamo has compiled in this process so far (recompiles and graph breaks each add)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
