"""The DataLoader path's warm-up (issue 19, item 8): persistent workers are left with nothing
prefetched, as after any epoch, so the first timed epoch does not drain the warm-up's batches on
the clock; and the epochs still draw what they would have drawn without the warm-up."""

from __future__ import annotations

import pytest
import torch

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.data.datasets import load_dataset
from speedtrain.train.loaders import make_train_loader

CFG = dict(synthetic=True, batch_size=16, train_subset=64, test_subset=16, device="cpu", loader="torch")


def in_flight(loader) -> tuple[int, int]:
    """(tasks sent to the workers and not yet returned, batches fetched and not yet yielded)."""
    it = loader.loader._iterator
    return it._tasks_outstanding, it._send_idx - it._rcvd_idx


@pytest.mark.parametrize("workers", [1, 2])
def test_the_first_epoch_starts_from_the_state_of_every_later_epoch(workers):
    cfg = TrainConfig(**CFG, workers=workers)
    loader = make_train_loader(load_dataset(cfg), cfg, torch.device("cpu"))
    loader.warm_up()
    after_warm_up = in_flight(loader)
    for _ in zip(range(len(loader)), loader):  # one epoch, as the trainer iterates it
        pass
    assert after_warm_up == in_flight(loader) == (0, 0)


def test_the_warm_up_leaves_no_trace_in_the_batches():
    cfg = TrainConfig(**CFG, workers=1)
    data = load_dataset(cfg)
    epochs = []
    for warm in (False, True):
        loader = make_train_loader(data, cfg, torch.device("cpu"))
        first = loader.warm_up() if warm else None
        epochs.append([x for x, _ in loader])
        if warm:
            assert torch.equal(first[0], epochs[0][0])  # the warm-up drew epoch 1's first batch
    assert len(epochs[0]) == len(epochs[1]) == 4
    assert all(torch.equal(a, b) for a, b in zip(*epochs))
