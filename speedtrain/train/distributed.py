"""Data-parallel training (``TrainConfig.nproc > 1``): DDP, launched through torchrun.

``train(cfg)`` with ``nproc = N`` does not train in the calling process: :func:`launch` starts
``torchrun --standalone --nproc-per-node N -m speedtrain.train.rank_worker`` (so ``speedtrain train
--nproc 4`` and a benchmark case run the same way), the ranks run the one shared trainer, and
rank 0's result comes back as the call's result. torchrun is the ecosystem's launcher: it
picks a free port, sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and one thread per process.

What changes inside the trainer, each a line calling this module:

* the process group: nccl on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``), gloo on the CPU;
* the model is wrapped in DDP whose gradient all-reduce *sums* (:func:`_sum_gradients`): the
  trainer's loss is summed over the batch with ``lr / batch_size``, so the summed gradient of
  the N shares is exactly the single-process gradient of the global batch;
* ``batch_size`` stays the global batch: every rank draws the same shuffle and augmentation
  (same seeds) and keeps its ``1/N`` share of each batch (:func:`share`, :class:`BatchShare`);
* the epoch time is the slowest rank's, loss and accuracy counts are summed over ranks, and the
  telemetry of every rank's GPU is gathered at rank 0 (:func:`gather_telemetry`), so time,
  throughput and energy cover all ranks; rank 0 writes the result.

Evaluation runs the whole test set on every rank (the replicas are identical): simple, and
outside the training clock.

Failure (issue 19): a rank that runs out of memory writes its ``oom`` result beside rank 0's
(``RESULT.json.rank<r>``) and exits with :data:`OOM_EXIT`, skipping the process group's
shutdown. torchrun's agent checks its workers every 0.1 s (``--monitor-interval``) and, a
worker having failed with no restarts allowed, stops the others, which were waiting in a
collective for the missing rank. :func:`launch` then returns the ``oom`` result. So the ranks
agree on a failure through the launcher, with no collective or host sync added to a step.
:func:`launch` also stops torchrun after ``cfg.launch_timeout_s`` with an error of its own.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Callable, Optional

import torch

from speedtrain.common.errors import ConfigError, SpeedtrainError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.records.result import RunResult
from speedtrain.train.ddp import device_type

Log = Callable[[str], None]
OOM_EXIT = 3  # a rank's exit code when it ran out of memory (its result is saved beside rank 0's)
KILL_GRACE_S = 10.0  # after the launch timeout: SIGTERM to torchrun's process group, SIGKILL this much later
_EXCEPTION_LINE = re.compile(r"(?:\[rank\d+\]:\s*)?([\w.]*(?:Error|Exception): .*)")


class DistributedError(SpeedtrainError):
    """A data-parallel run that torchrun could not start or finish."""


def launch(cfg: TrainConfig, *, monitor: bool, log: Optional[Log] = None,
           module: str = "speedtrain.train.rank_worker") -> RunResult:
    """Run ``cfg`` on ``cfg.nproc`` ranks through torchrun; rank 0's result, its log lines passed on.

    A rank that ran out of memory makes the result that rank's ``oom`` one (the lowest such
    rank's). ``module`` is what torchrun runs in each rank (tests inject failures through it)."""
    device = device_type(cfg)
    if device == "cuda" and torch.cuda.device_count() < cfg.nproc:
        raise ConfigError(f"nproc {cfg.nproc} needs {cfg.nproc} GPUs (one per rank); this process sees "
                          f"{torch.cuda.device_count()}")
    with tempfile.TemporaryDirectory(prefix="speedtrain-ddp-") as tmp:
        cfg_path, out_path, err_path = (os.path.join(tmp, n) for n in ("config.json", "result.json", "stderr"))
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(cfg.to_dict(), f)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={cfg.nproc}",
               "-m", module, cfg_path, out_path, "monitor" if monitor else "no-monitor"]
        with open(err_path, "w+", encoding="utf-8") as err:
            # stderr to a file, not a pipe: a full pipe would stall the ranks while we read stdout.
            # A session of its own, so the timeout can stop torchrun and its ranks together.
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
            watchdog = _Watchdog(proc, cfg.launch_timeout_s)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:  # rank 0's progress lines, as they come
                    (log or (lambda _: None))(line.rstrip("\n"))
                code = proc.wait()
            finally:
                watchdog.cancel()
            err.seek(0)
            errors = err.read().splitlines()
        if watchdog.fired:
            raise DistributedError(f"torchrun with {cfg.nproc} ranks did not finish within launch_timeout_s "
                                   f"{cfg.launch_timeout_s:g} s and was stopped with its ranks; raise "
                                   "--launch-timeout-s for a longer run")
        oom = _oom_result(out_path)
        if oom is not None:
            return oom
        if code != 0 or not os.path.exists(out_path):
            said = next((line for line in reversed(errors) if line.startswith("error: ")), None)
            # else the first rank's exception line (torchrun's own summary comes after it)
            crash = next((m.group(1) for m in map(_EXCEPTION_LINE.match, errors) if m), None)
            raise DistributedError(said[len("error: "):] if said else
                                   f"torchrun with {cfg.nproc} ranks failed (exit {code}): {crash or 'no message'}")
        with open(out_path, encoding="utf-8") as f:
            return RunResult.from_dict(json.load(f))


class _Watchdog:
    """Stops ``proc``'s process group (torchrun and its ranks) after ``seconds``: SIGTERM, then
    SIGKILL ``KILL_GRACE_S`` later. A timer thread, because the launcher blocks reading stdout."""

    def __init__(self, proc: subprocess.Popen, seconds: float) -> None:
        self.proc, self.fired = proc, False
        self.timer = threading.Timer(seconds, self._stop)
        self.timer.daemon = True
        self.timer.start()

    def _stop(self) -> None:
        self.fired = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=KILL_GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue

    def cancel(self) -> None:
        self.timer.cancel()


def oom_path(out_path: str, rank: int) -> str:
    return f"{out_path}.rank{rank}"


def _oom_result(out_path: str) -> Optional[RunResult]:
    """The lowest rank's ``oom`` result, if any rank ran out of memory (named in its error)."""
    found = sorted(glob.glob(glob.escape(out_path) + ".rank*"), key=lambda p: int(p.rsplit("rank", 1)[1]))
    if not found:
        return None
    with open(found[0], encoding="utf-8") as f:
        result = RunResult.from_dict(json.load(f))
    rank = found[0].rsplit("rank", 1)[1]
    result.error = f"rank {rank} of {result.config.get('nproc')} ran out of memory: {result.error}"
    return result
