"""Ctrl-C stops a run within a step, and stops decoding a dataset without decoding the rest first."""

import time

import pytest

from speedtrain.data import imagetree
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.progress import NoSteps
from speedtrain.train.loop import train


class InterruptAt(NoSteps):
    """A progress hook that presses Ctrl-C at its ``at``-th step and counts the steps after it."""

    def __init__(self, at: int) -> None:
        self.at, self.steps = at, 0

    def step(self) -> None:
        self.steps += 1
        if self.steps == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_in_an_epoch_stops_the_trainer_at_once():
    cfg = TrainConfig(synthetic=True, width=0.125, batch_size=8, train_subset=8 * 40, test_subset=16, epochs=3,
                      warmup_steps=1, device="cpu", precision="fp32", channels_last=False)
    hook = InterruptAt(3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, steps=hook)
    assert hook.steps == 3  # no step ran after the interrupt, and no later epoch


def _slow_chunk(chunk):
    time.sleep(1.0)
    return imagetree.np.zeros((len(chunk), 32, 32, 3), dtype=imagetree.np.uint8)


def test_ctrl_c_while_decoding_does_not_wait_for_the_queued_images(monkeypatch):
    monkeypatch.setattr(imagetree, "_DECODE_CHUNK", 1)
    monkeypatch.setattr(imagetree, "_decode_chunk", _slow_chunk)  # forked workers inherit the patch
    monkeypatch.setattr(imagetree, "_decode_workers", lambda: 2)

    def entries():
        for i in range(20):  # 20 chunks of one image, a second each: 10 s on two workers
            yield ("train", "cat", f"{i}.jpg", b"")
        raise KeyboardInterrupt  # Ctrl-C while the archive is still being read

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        imagetree._decode_tree(entries(), "tree")
    assert time.perf_counter() - start < 5  # the running chunks at most, not the 20 queued
