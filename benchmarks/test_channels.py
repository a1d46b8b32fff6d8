"""Channel counts. Halving: ResNet-18 at full and half width (the student reports). Reduction:
ResNet-9 at widths 1, 0.75, 0.5 and 0.25: time against accuracy."""

import pytest

from speedtrain import Section


SECTIONS = {
    "channel_halving": Section("Channel halving (ResNet-18)", parameter="channel width multiplier", unit="x ResNet-18's", order=60),
    "channel_reduction": Section("Channel reduction (ResNet-9)", parameter="channel width multiplier", unit="x ResNet-9's", order=70),
}
REFERENCE = {"width": 1.0}  # full width, in both sections


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_channel_halving(run_case, width):
    run_case(model="resnet18", width=width)


@pytest.mark.parametrize("width", [1.0, 0.75, 0.5, 0.25])
def test_channel_reduction(run_case, width):
    run_case(model="resnet9", width=width)
