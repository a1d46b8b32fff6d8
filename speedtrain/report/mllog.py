"""An MLPerf-style event log of one training run (``speedtrain train --mllog FILE``).

Each line is what MLCommons' ``mlperf_logging.mllog`` writes, so MLPerf tooling can read it::

    :::MLLOG {"namespace": "", "time_ms": 1716560000123, "event_type": "INTERVAL_START",
              "key": "epoch_start", "value": null, "metadata": {"file": "train.py", "lineno": 220, "epoch_num": 1}}

Keys: ``init_start``/``init_stop`` (set-up: data, model, warm-up), configuration points
(``global_batch_size``, ``opt_base_learning_rate``, ``seed``, ``train_samples`` ...),
``run_start``, ``epoch_start``/``epoch_stop``, ``eval_accuracy`` (fraction) and ``run_stop``
(status ``success`` when the target was reached, else ``aborted``). Every ``time_ms`` is the
wall clock (ms since the epoch) read when the trainer reached that point: the trainer calls
:meth:`MlLog.event` from its loop (``train(events=...)``), nothing is reconstructed.

The timer rule differs from MLPerf's: MLPerf's score is run_stop - run_start, evaluation
included, and a run stops at the first evaluation that reaches the target; speedtrain's
``train_time_s`` leaves evaluation out and the run goes on to its last epoch, so run_stop
comes after the last epoch. ``time_to_target_s`` (training seconds up to the first epoch at
the target) is neither.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Optional

from speedtrain.config.trainconfig import TrainConfig

# The trainer's keys that open or close an interval, as mllog's start()/end() log them.
INTERVAL_START = ("init_start", "run_start", "epoch_start")
INTERVAL_END = ("init_stop", "run_stop", "epoch_stop")


def encode(key: str, value: Any, time_ms: int, metadata: dict[str, Any]) -> str:
    """One log line, fields in mllog's order."""
    event_type = ("INTERVAL_START" if key in INTERVAL_START else
                  "INTERVAL_END" if key in INTERVAL_END else "POINT_IN_TIME")
    body = {"namespace": "", "time_ms": time_ms, "event_type": event_type, "key": key,
            "value": value, "metadata": metadata}
    return ":::MLLOG " + json.dumps(body)


class MlLog:
    """Writes events to ``path`` as they happen; use as a context manager around ``train``.

    Opening logs ``init_start`` and the configuration; the first ``run_start`` is preceded by
    ``init_stop``; closing without a ``run_stop`` (a crash, out of memory) logs one with
    status ``aborted``, so the log always closes its intervals."""

    def __init__(self, path: str | Path, cfg: TrainConfig) -> None:
        self.path = Path(path)
        self._file: IO[str] = open(self.path, "w", encoding="utf-8", buffering=1)  # line-buffered
        self._run_started = self._run_stopped = False
        self.event("init_start", {})
        samples = {"train_samples": cfg.train_subset, "eval_samples": cfg.test_subset}
        for key, value in {"submission_benchmark": f"speedtrain-{cfg.model}-{cfg.dataset}",
                           "global_batch_size": cfg.batch_size, "opt_base_learning_rate": cfg.lr,
                           "seed": cfg.seed, "epoch_count": cfg.epochs, "target_accuracy": cfg.target,
                           **{k: v for k, v in samples.items() if v is not None}}.items():
            self.event(key, {"value": value})

    def event(self, key: str, meta: dict[str, Any]) -> None:
        """The trainer's ``events`` callback: log ``key`` now, at the caller's file and line."""
        now_ms = int(time.time() * 1000)
        meta = dict(meta)
        value = meta.pop("value", None)
        if key == "run_start" and not self._run_started:
            self._run_started = True
            self._write("init_stop", None, now_ms, {})
        if key == "run_stop":
            self._run_stopped = True
            reached = meta.pop("reached_target", False)
            meta["status"] = "success" if reached and meta.get("status") == "ok" else "aborted"
        self._write(key, value, now_ms, meta)

    def _write(self, key: str, value: Any, time_ms: int, meta: dict[str, Any]) -> None:
        caller = sys._getframe(2)  # who called event(): the trainer's loop, or this class
        where = {"file": Path(caller.f_code.co_filename).name, "lineno": caller.f_lineno}
        self._file.write(encode(key, value, time_ms, {**where, **meta}) + "\n")

    def close(self) -> None:
        if self._file.closed:
            return
        if not self._run_stopped:
            self._write("run_stop", None, int(time.time() * 1000), {"status": "aborted"})
        self._file.close()

    def __enter__(self) -> "MlLog":
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()
