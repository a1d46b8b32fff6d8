"""Data-parallel training (``TrainConfig.nproc > 1``): DDP, launched through torchrun.

``train(cfg)`` with ``nproc = N`` does not train in the calling process: :func:`launch` starts
``torchrun --standalone --nproc-per-node N -m speedtrain.train.distributed`` (so ``speedtrain train
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

import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError, SpeedtrainError, one_line
from speedtrain.hw.gpumonitor import GpuMonitor
from speedtrain.records.result import RunResult

if TYPE_CHECKING:
    from speedtrain.records.result import RunResult

Log = Callable[[str], None]
OOM_EXIT = 3  # a rank's exit code when it ran out of memory (its result is saved beside rank 0's)
KILL_GRACE_S = 10.0  # after the launch timeout: SIGTERM to torchrun's process group, SIGKILL this much later
_EXCEPTION_LINE = re.compile(r"(?:\[rank\d+\]:\s*)?([\w.]*(?:Error|Exception): .*)")


class DistributedError(SpeedtrainError):
    """A data-parallel run that torchrun could not start or finish."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0


def ranks() -> Ranks:
    """This process's place in the process group (rank 0 of 1 outside one)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Ranks()


def inside_rank() -> bool:
    """Are we one of torchrun's ranks (rather than the process that launches them)?"""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


# --- the launching process -------------------------------------------------------------------


def launch(cfg: TrainConfig, *, monitor: bool, log: Optional[Log] = None,
           module: str = "speedtrain.train.distributed") -> RunResult:
    """Run ``cfg`` on ``cfg.nproc`` ranks through torchrun; rank 0's result, its log lines passed on.

    A rank that ran out of memory makes the result that rank's ``oom`` one (the lowest such
    rank's). ``module`` is what torchrun runs in each rank (tests inject failures through it)."""
    device = _device_type(cfg)
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


def _oom_path(out_path: str, rank: int) -> str:
    return f"{out_path}.rank{rank}"


def _oom_result(out_path: str) -> Optional["RunResult"]:
    """The lowest rank's ``oom`` result, if any rank ran out of memory (named in its error)."""
    from speedtrain.records.result import RunResult

    found = sorted(glob.glob(glob.escape(out_path) + ".rank*"), key=lambda p: int(p.rsplit("rank", 1)[1]))
    if not found:
        return None
    with open(found[0], encoding="utf-8") as f:
        result = RunResult.from_dict(json.load(f))
    rank = found[0].rsplit("rank", 1)[1]
    result.error = f"rank {rank} of {result.config.get('nproc')} ran out of memory: {result.error}"
    return result


def _device_type(cfg: TrainConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


# --- inside a rank -----------------------------------------------------------------------------


def init(cfg: TrainConfig) -> None:
    """Join the process group: nccl on CUDA (this rank's GPU made current first), else gloo."""
    if _device_type(cfg) == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def rank_device(device: torch.device) -> torch.device:
    """On CUDA, this rank's own GPU; otherwise ``device`` unchanged."""
    if device.type == "cuda" and ranks().world > 1:
        return torch.device("cuda", ranks().local_rank)
    return device


def _sum_gradients(group, bucket):  # type: ignore[no-untyped-def]
    """DDP communication hook: all-reduce by sum (DDP's default divides by the world size).

    No annotations: DDP checks that ``bucket``'s is the class ``dist.GradBucket`` itself, and
    this module's postponed annotations would be strings."""
    work = dist.all_reduce(bucket.buffer(), group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in DDP when there is more than one rank, else ``net`` itself."""
    if ranks().world == 1:
        return net
    ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    ddp.register_comm_hook(None, _sum_gradients)
    return ddp


RANK_SEED_STRIDE = 1_000_003  # a prime: rank r draws its own random numbers from seed + stride * r


def rank_seed(seed: int) -> int:
    """The seed of this rank's own random draws (cutout squares, mixing partners: drawn per rank
    share, so the same seed on every rank repeated them in every share); ``seed`` with one rank,
    so a one-process run draws what it always drew. The shuffle and the dataset-wide crops keep
    ``seed`` on every rank: they must agree across ranks."""
    r = ranks()
    return seed if r.world == 1 else (seed + RANK_SEED_STRIDE * r.rank) % 2**63


def batch_norm_policy() -> Optional[str]:
    """How batch norm behaves across ranks, for the result: each rank normalises by the
    statistics of its own share of the global batch (DDP broadcasts rank 0's running statistics
    at every forward: ``forward_sync_buffers``, on by default), so a data-parallel run is not exactly the global
    batch in one process. None with one rank."""
    if ranks().world == 1:
        return None
    return (f"per-rank statistics: each of {ranks().world} ranks normalises by its own share of the global batch; "
            "running statistics broadcast from rank 0 at every forward (DDP forward_sync_buffers, on by default)")


def share(index: torch.Tensor) -> torch.Tensor:
    """This rank's share of one global batch's indices (all of them with one rank)."""
    r = ranks()
    return index if r.world == 1 else index.tensor_split(r.world)[r.rank]


def local_batch(batch_size: int) -> int:
    return batch_size // ranks().world


class BatchShare(torch.utils.data.Sampler):
    """A sampler yielding this rank's share of every global batch of ``sampler`` (the same
    order on every rank), for a DataLoader whose batch is ``batch_size // world``."""

    def __init__(self, sampler: Any, batch_size: int) -> None:
        self.sampler, self.batch_size, self.ranks = sampler, batch_size, ranks()
        self.generator = getattr(sampler, "generator", None)  # the loader's warm-up restores it

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size * (self.batch_size // self.ranks.world)

    def __iter__(self) -> Iterator[Any]:
        part = self.batch_size // self.ranks.world
        start = self.ranks.rank * part
        batch: list[Any] = []
        for item in self.sampler:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from batch[start:start + part]
                batch = []


def shard_sampler(sampler: Any, batch_size: int) -> Any:
    return sampler if ranks().world == 1 else BatchShare(sampler, batch_size)


def slowest(seconds: float) -> float:
    """The slowest rank's time: the step that waits for everyone."""
    if ranks().world == 1:
        return seconds
    on = torch.device("cuda", ranks().local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([seconds], dtype=torch.float64, device=on)  # nccl reduces CUDA tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def sum_over_ranks(*tensors: torch.Tensor) -> None:
    """In place: each tensor summed over the ranks (loss sums, correct counts)."""
    if ranks().world > 1:
        for t in tensors:
            dist.all_reduce(t)


def gather_telemetry(summary: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """Every rank's telemetry at rank 0: rank 0's summary, every rank's in ``ranks``, and the
    energy of all GPUs used in ``energy_j``."""
    if ranks().world == 1:
        return summary
    everyone: list[Any] = [None] * ranks().world
    dist.all_gather_object(everyone, summary)
    if summary is None:
        return None
    merged = dict(summary)
    merged["ranks"] = everyone
    energies = [s.get("energy_j") for s in everyone if isinstance(s, dict)]
    if energies and all(isinstance(e, (int, float)) for e in energies):
        merged["energy_j"] = float(sum(energies))
    return merged


def main(argv: Optional[Sequence[str]] = None) -> int:
    """One rank: ``python -m speedtrain.train.distributed CONFIG.json RESULT.json monitor|no-monitor`` (torchrun runs it)."""
    from speedtrain.train.loop import train

    parser = argparse.ArgumentParser(prog="speedtrain.train.distributed")
    parser.add_argument("config")
    parser.add_argument("result")
    # positional: torchrun would take an option such as --monitor for an abbreviation of its own
    parser.add_argument("monitor", choices=("monitor", "no-monitor"))
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as f:
            cfg = TrainConfig.from_dict(json.load(f))
        init(cfg)
        me = ranks()
        device = rank_device(torch.device(_device_type(cfg)))
        monitor = GpuMonitor(device) if args.monitor == "monitor" and device.type == "cuda" else None
        result = train(cfg, monitor=monitor, log=(lambda line: print(line, flush=True)) if me.rank == 0 else None)
        if result.status == "oom":
            _fail_fast(result, _oom_path(args.result, me.rank))
        if me.rank == 0:
            result.save_json(args.result)
    except SpeedtrainError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _fail_fast(result: "RunResult", path: str) -> None:
    """Save this rank's ``oom`` result and leave at once with :data:`OOM_EXIT`.

    ``os._exit``, not a return: a graceful ``destroy_process_group`` could wait on collectives
    the other ranks will never finish; torchrun's agent sees the failed worker and stops them."""
    result.save_json(path)
    print(f"rank {ranks().rank}: out of memory: {result.error}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(OOM_EXIT)


if __name__ == "__main__":
    sys.exit(main())
