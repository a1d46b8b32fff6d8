"""The myrtle.ai architecture ladder (part 4), cumulative: each step keeps the ones before.
Measured per step: time and accuracy, for the journey table."""

import pytest

from speedtrain.recipes.profiles import cumulative
from speedtrain import Section

LADDER = [
    ("backbone", dict(layer_convs=2, downsample="strided1x1", global_pool="avg", output_scale=1.0,
                      bn_scale_init=None, residual=())),
    ("no-repeat-bn-relu", dict(layer_convs=1)),
    ("3x3-strided-downsampling", dict(downsample="strided")),
    ("maxpool-downsampling", dict(downsample="maxpool")),
    ("global-max-pool", dict(global_pool="max")),
    ("bn-scale-init-and-0.125-output", dict(bn_scale_init=1.0, output_scale=0.125)),
    ("residual-layers-1-and-3", dict(residual=(1, 3))),
]


SECTION = Section("Architecture ladder (cumulative)", parameter="ladder step (changes add up left to right)", order=90)
REFERENCE = {"step": 0}  # the backbone: each step's speed-up is against it


@pytest.mark.parametrize("step", range(len(LADDER)), ids=[name for name, _ in LADDER])
def test_architecture(run_case, step):
    run_case(step=step, **cumulative(LADDER, step))
