"""Inside a data-parallel rank (``TrainConfig.nproc > 1``): the process group, the DDP wrapper,
each rank's share of the global batch and its own random draws, and the reductions over ranks.
The trainer and the loaders call these; with one process each is a no-op. How the ranks are
started and how their failures come back is :mod:`speedtrain.train.distributed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist

from speedtrain.config.trainconfig import TrainConfig


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


def device_type(cfg: TrainConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


# --- inside a rank -----------------------------------------------------------------------------


def init(cfg: TrainConfig) -> None:
    """Join the process group: nccl on CUDA (this rank's GPU made current first), else gloo."""
    if device_type(cfg) == "cuda":
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
