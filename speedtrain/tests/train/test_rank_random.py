"""Data-parallel random draws (issue 19, item 6): each rank's share of a global batch gets its own
cutout squares and mixing partners, while the shuffle and crops, which must agree, stay shared;
one process draws exactly what it drew before."""

from __future__ import annotations

import pytest
import torch

from speedtrain.train import ddp
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.data.datasets import load_dataset
from speedtrain.train.ddp import Ranks
from speedtrain.train.loaders import make_train_loader
from speedtrain.train.loop import _Step

CFG = dict(synthetic=True, width=0.125, batch_size=32, train_subset=64, test_subset=32, device="cpu",
           crop_padding=0, flip=False, cutout=8)


def as_rank(monkeypatch, rank: int, world: int = 2) -> None:
    monkeypatch.setattr(ddp, "ranks", lambda: Ranks(rank, world, rank))


def cutout_masks(cfg: TrainConfig) -> torch.Tensor:
    """Where the first batch was cut out (cutout fills exactly 0 in normalised space)."""
    x, _ = next(iter(make_train_loader(load_dataset(cfg), cfg, torch.device("cpu"))))
    return (x == 0).all(dim=1)


def test_each_rank_cuts_out_its_own_squares(monkeypatch):
    cfg = TrainConfig(**CFG, nproc=2)
    masks = []
    for rank in (0, 1):
        as_rank(monkeypatch, rank)
        masks.append(cutout_masks(cfg))
    assert masks[0].any() and masks[1].any()
    assert not torch.equal(masks[0], masks[1])  # the same seed on both ranks drew the same squares


def test_one_process_draws_what_it_drew_before(monkeypatch):
    cfg = TrainConfig(**CFG)
    loader = make_train_loader(load_dataset(cfg), cfg, torch.device("cpu"))
    assert loader.share_generator is loader.generator  # one stream, as before issue 19
    assert ddp.rank_seed(7) == 7


def test_ranks_agree_on_the_shuffle_and_the_crops(monkeypatch):
    cfg = TrainConfig(**{**CFG, "cutout": 0, "crop_padding": 4}, nproc=2)
    loaders = []
    for rank in (0, 1):
        as_rank(monkeypatch, rank)
        loaders.append(make_train_loader(load_dataset(cfg), cfg, torch.device("cpu")))
    assert torch.equal(loaders[0].generator.get_state(), loaders[1].generator.get_state())
    assert loaders[0].share_generator.initial_seed() != loaders[1].share_generator.initial_seed()


@pytest.mark.parametrize("rank", [0, 1])
def test_each_rank_mixes_with_its_own_partners(monkeypatch, rank):
    cfg = TrainConfig(**CFG, nproc=2, mix_ratio=0.3)
    as_rank(monkeypatch, rank)
    mix = _Step(cfg, torch.device("cpu"), torch.nn.Identity(), torch.nn.Identity()).mix
    assert mix.seed == ddp.rank_seed(cfg.seed) == cfg.seed + rank * ddp.RANK_SEED_STRIDE
