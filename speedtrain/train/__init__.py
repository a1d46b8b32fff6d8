"""The shared trainer: loop, loaders, evaluation, optimisers, schedules, per-step hooks, FLOPs, data-parallel.

``speedtrain.train.train`` (the one trainer) and its result types stay importable from here as
before the move; they load lazily, so importing a light module of this package (``schedule``)
does not import the loop and everything it needs.
"""

from typing import Any

_LOOP_NAMES = ("train", "RunResult", "EpochStats", "format_summary", "is_oom", "initial_grad_scale")


def __getattr__(name: str) -> Any:
    if name in _LOOP_NAMES:
        from speedtrain.train import loop  # torch and the whole trainer: only when asked for

        return getattr(loop, name)
    raise AttributeError(f"module 'speedtrain.train' has no attribute {name!r}")
