"""One data-parallel rank: ``python -m speedtrain.train.rank_worker CONFIG.json RESULT.json
monitor|no-monitor``, as torchrun runs it (:func:`speedtrain.train.distributed.launch`). It runs
the one shared trainer; rank 0 writes the result, a rank that ran out of memory leaves at once."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import torch
import torch.distributed as dist

from speedtrain.common.errors import SpeedtrainError, one_line
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.gpumonitor import GpuMonitor
from speedtrain.records.result import RunResult
from speedtrain.train.ddp import device_type, init, rank_device, ranks
from speedtrain.train.distributed import OOM_EXIT, oom_path
from speedtrain.train.loop import train


def main(argv: Optional[Sequence[str]] = None) -> int:
    """One rank: ``python -m speedtrain.train.rank_worker CONFIG.json RESULT.json monitor|no-monitor`` (torchrun runs it)."""
    parser = argparse.ArgumentParser(prog="speedtrain.train.rank_worker")
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
        device = rank_device(torch.device(device_type(cfg)))
        monitor = GpuMonitor(device) if args.monitor == "monitor" and device.type == "cuda" else None
        result = train(cfg, monitor=monitor, log=(lambda line: print(line, flush=True)) if me.rank == 0 else None)
        if result.status == "oom":
            _fail_fast(result, oom_path(args.result, me.rank))
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
