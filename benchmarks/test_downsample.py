"""Downsampling: conv + 2x2 max-pool against a 3x3 stride-2 convolution, in both models.
Measured: epoch time, throughput, accuracy."""

import pytest

from speedtrain import Section


# One section per model: a strided ResNet-18 is compared with a max-pool ResNet-18, never
# with a ResNet-9.
SECTION_BY = ("model",)
SECTION = Section("Downsampling", parameter="model and downsampling layer", order=80)
REFERENCE = {"downsample": "maxpool"}


@pytest.mark.parametrize("downsample", ["maxpool", "strided"])
@pytest.mark.parametrize("model", ["resnet9", "resnet18"])
def test_downsample(run_case, model, downsample):
    run_case(model=model, downsample=downsample)
