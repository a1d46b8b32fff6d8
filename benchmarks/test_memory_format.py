"""Memory format: NCHW against NHWC (channels_last) for each reduced precision, where tensor
cores want NHWC. Measured: epoch time and throughput."""

import pytest

from speedtrain import Section


# One section per precision: NHWC against NCHW at the same precision.
SECTION_BY = ("precision",)
SECTION = Section("Memory format", parameter="precision and memory format", order=50)
REFERENCE = {"channels_last": False}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("precision", ["fp16", "bf16", "half"])
def test_memory_format(run_case, precision, channels_last):
    run_case(precision=precision, channels_last=channels_last)
