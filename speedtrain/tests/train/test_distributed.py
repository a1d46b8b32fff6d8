"""Data-parallel training (nproc > 1): sharding by rank, and real DDP runs on the CPU (gloo).

The end-to-end runs go through ``speedtrain train --nproc 2`` (torchrun, two CPU ranks) on a
tiny *learnable* Fashion-MNIST written as idx files (each class a bright row band), so the
accuracy of a two-rank run can be held against a one-process run's.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from speedtrain.train import ddp, distributed
from speedtrain.cli.main import main
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.ddp import BatchShare, Ranks
from speedtrain.common.errors import ConfigError


@pytest.mark.parametrize("world", [1, 2, 4])
def test_the_ranks_shares_make_up_each_global_batch_once(monkeypatch, world):
    batch = torch.arange(16)
    parts = []
    for rank in range(world):
        monkeypatch.setattr(ddp, "ranks", lambda rank=rank: Ranks(rank, world, rank))
        parts.append(ddp.share(batch))
        assert ddp.local_batch(16) == 16 // world
    assert torch.equal(torch.cat(parts), batch)


def test_batch_share_sampler_splits_every_global_batch_and_drops_the_last_partial_one(monkeypatch):
    class Sampler:
        generator = torch.Generator()

        def __iter__(self):
            return iter(range(10))

        def __len__(self):
            return 10

    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(ddp, "ranks", lambda rank=rank: Ranks(rank, 2, rank))
        sampler = BatchShare(Sampler(), batch_size=4)
        shares.append(list(sampler))
        assert len(sampler) == len(shares[-1]) == 4
        assert sampler.generator is Sampler.generator  # the loader's warm-up restores it
    assert shares == [[0, 1, 4, 5], [2, 3, 6, 7]]  # batches [0..3], [4..7]; 8, 9 dropped


def test_nproc_must_divide_the_global_batch():
    with pytest.raises(ConfigError, match="nproc must be a whole number of at least 1 that divides batch_size 96"):
        TrainConfig(nproc=5, batch_size=96)
    with pytest.raises(ConfigError, match="nproc"):
        TrainConfig(nproc=0)
    assert TrainConfig(nproc=4, batch_size=96).nproc == 4


def test_more_ranks_than_gpus_is_refused_before_launching(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="nproc 4 needs 4 GPUs"):
        distributed.launch(TrainConfig(nproc=4, device="cuda", batch_size=512), monitor=False)


def test_telemetry_of_one_rank_is_left_as_it_is():
    summary = {"energy_j": 3.0}
    assert ddp.gather_telemetry(summary) is summary  # no process group: one rank


def write_learnable_fashion_mnist(folder: Path, n_train: int = 512, n_test: int = 256) -> None:
    """Fashion-MNIST-shaped idx files where class k is noise plus a bright band at rows 2k..2k+2."""
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 4:2 * k + 7, :] = 255
        (folder / f"{stem}-images-idx3-ubyte").write_bytes(bytes((0, 0, 8, 3)) + struct.pack(">3I", n, 28, 28) + images.tobytes())
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(bytes((0, 0, 8, 1)) + struct.pack(">I", n) + labels.tobytes())


@pytest.mark.slow
def test_two_cpu_ranks_train_like_one_process(tmp_path, capsys):
    """``speedtrain train --nproc 2 --device cpu``: gloo, the data sharded, rank 0 reports."""
    write_learnable_fashion_mnist(tmp_path)
    common = ["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--device", "cpu", "--width", "0.125",
              "--batch-size", "64", "--epochs", "3", "--cutout", "0", "--crop-padding", "0", "--no-flip",
              "--warmup-steps", "1", "--lr", "0.2", "--quiet"]
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"nproc{nproc}.json"
        assert main([*common, "--nproc", str(nproc), "--json", str(out)]) == 0
        results[nproc] = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "final test accuracy" in printed and f"result written to {tmp_path / 'nproc2.json'}" in printed
    one, two = results[1], results[2]
    assert two["config"]["nproc"] == 2 and two["status"] == "ok" and len(two["epochs"]) == 3
    # every image of every global batch was seen once per epoch: the counts add up over ranks
    assert two["images_per_s"] == pytest.approx(3 * (512 // 64) * 64 / two["train_time_s"])
    assert one["final_acc"] > 0.9, one["epochs"]  # the task is learnable in three epochs...
    # ... and the two ranks learn it as one process does (per-rank batch norm statistics differ)
    assert abs(two["final_acc"] - one["final_acc"]) <= 0.05, (one["final_acc"], two["final_acc"])
    assert abs(two["epochs"][-1]["train_loss"] - one["epochs"][-1]["train_loss"]) <= 0.5 * one["epochs"][0]["train_loss"]


@pytest.mark.slow
def test_a_rank_error_comes_back_as_one_line(tmp_path, capsys):
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none"), "--device", "cpu",
                 "--nproc", "2", "--batch-size", "64", "--epochs", "1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no Fashion-MNIST found")  # after the header
