"""Channel counts. Halving: ResNet-18 at full and half width (the student reports). Reduction:
ResNet-9 at widths 1, 0.75, 0.5 and 0.25: time against accuracy."""

import pytest


REFERENCE = {"width": 1.0}  # full width, in both sections


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_channel_halving(run_case, width):
    run_case(model="resnet18", width=width)


@pytest.mark.parametrize("width", [1.0, 0.75, 0.5, 0.25])
def test_channel_reduction(run_case, width):
    run_case(model="resnet9", width=width)
