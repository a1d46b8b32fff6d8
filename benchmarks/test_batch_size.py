"""Batch size 128 to 2048 with the learning rate scaled linearly from 0.4 at 512 (myrtle.ai).
Measured: epoch time, throughput, accuracy (large batches trade steps for speed)."""

import pytest

from speedtrain import Section


SECTION = Section("Batch size", parameter="batch size", unit="images per step", order=20)
REFERENCE = {"batch_size": 512}  # the myrtle.ai recipe's batch


@pytest.mark.parametrize("batch_size", [128, 256, 512, 1024, 2048])
def test_batch_size(run_case, batch_size):
    run_case(batch_size=batch_size, lr=0.4 * batch_size / 512)
