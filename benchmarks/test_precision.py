"""Numeric precision: fp32 (TF32 off), tf32, fp16 autocast with gradient scaling, bf16 autocast,
and half (fp16 weights, batch norm kept in fp32, as myrtle.ai). Measured: epoch time,
throughput, accuracy, peak memory. tf32 needs a CUDA GPU and is skipped elsewhere."""

import pytest

from speedtrain import Section


SECTION = Section("Numeric precision", parameter="numeric precision", order=40)
REFERENCE = {"precision": "fp32"}


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16", "half"])
def test_precision(run_case, precision):
    run_case(precision=precision)
