"""Data-parallel runs that used to crash or hang (issue 19): the whitening bias frozen mid-run
under DDP, an out-of-memory error on one rank, a launch that does not finish. Two CPU ranks
under gloo through torchrun, so the end-to-end tests are slow."""

from __future__ import annotations

import time

import pytest

from speedtrain.train import distributed
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError

TINY_DDP = dict(model="airbench", synthetic=True, width=0.125, batch_size=32, train_subset=96, test_subset=32,
                device="cpu", nproc=2, warmup_steps=1, cutout=0)


@pytest.mark.slow
def test_two_ranks_freeze_the_whitening_bias_without_a_ddp_error():
    """Freezing by requires_grad mid-run crashed DDP ("Expected to have finished reduction in the
    prior iteration"); the run must complete past whiten_bias_epochs."""
    cfg = TrainConfig(**TINY_DDP, epochs=3, whiten=True, whiten_images=64, whiten_bias_epochs=1)
    result = distributed.launch(cfg, monitor=False)
    assert result.status == "ok" and len(result.epochs) == 3


@pytest.mark.slow
def test_an_oom_on_rank_1_is_the_runs_oom_within_seconds(monkeypatch, tmp_path):
    """Rank 1 fails at its third step (the second timed one) while rank 0 waits for it in DDP's
    all-reduce; gloo's own timeout is 30 minutes, so a result at all shows the ranks agreed."""
    monkeypatch.setenv("SPEEDTRAIN_TEST_OOM_RANK", "1")
    monkeypatch.setenv("SPEEDTRAIN_TEST_OOM_STEP", "3")
    monkeypatch.setenv("SPEEDTRAIN_TEST_OOM_STAMP", str(tmp_path / "oom-at"))
    cfg = TrainConfig(**TINY_DDP, epochs=2)
    result = distributed.launch(cfg, monitor=False, module="speedtrain.tests.train.oom_rank")
    took = time.time() - float((tmp_path / "oom-at").read_text())
    assert result.status == "oom"
    assert result.error.startswith("rank 1 of 2 ran out of memory: CUDA out of memory") and "injected" in result.error
    assert result.config["nproc"] == 2
    # from rank 1's failure to the launcher's result: torchrun's agent polls every 0.1 s; a hang is 30 min
    assert took < 15, took


@pytest.mark.slow
def test_a_launch_past_its_timeout_is_stopped_with_a_clear_error():
    cfg = TrainConfig(**TINY_DDP, epochs=50, launch_timeout_s=2.0)  # torchrun alone needs longer to start
    start = time.monotonic()
    with pytest.raises(distributed.DistributedError, match=r"did not finish within launch_timeout_s 2 s and was "
                                                           r"stopped with its ranks; raise --launch-timeout-s"):
        distributed.launch(cfg, monitor=False)
    assert time.monotonic() - start < 2.0 + 2 * distributed.KILL_GRACE_S + 5


@pytest.mark.parametrize("value", [0, -1.0])
def test_launch_timeout_must_be_positive_seconds(value):
    with pytest.raises(ConfigError, match="launch_timeout_s must be a number of seconds above 0"):
        TrainConfig(launch_timeout_s=value)
