"""How the smoke profile shrinks a case: batches scaled down, never below its floor, a multiple
of the ghost batch-norm splits, and a train subset of exactly its steps."""

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.recipes.profiles import PROFILES

SMOKE = PROFILES["smoke"]


@pytest.mark.parametrize("batch, splits, expected", [
    (512, 1, 32),  # x1/16
    (20, 1, SMOKE.min_batch),  # the 100-image study: 1.25 images would be one class
    (512, 16, 32),  # a multiple of the ghost BN splits
    (256, 16, 16),
])
def test_the_smoke_batch_is_scaled_floored_and_split(batch: int, splits: int, expected: int) -> None:
    cfg = SMOKE.apply(TrainConfig(batch_size=batch, ghost_bn_splits=splits, device="cpu"), 0)
    assert cfg.batch_size == expected
    assert cfg.train_subset == SMOKE.steps_per_epoch * expected
    assert SMOKE.min_batch >= 2 and cfg.test_subset == SMOKE.test_images
