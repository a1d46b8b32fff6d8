"""End-to-end recipes timed to their target accuracy, DAWNBench style (run with --st-profile
full for time to target over several seeds; the report gives the fraction of seeds that
reached it). The 24-epoch ResNet-9 is myrtle.ai's; the bag-of-tricks epoch count is our
first guess, to be calibrated on a GPU. airbench94 is Keller Jordan's 2024 recipe (9.9 epochs;
speedtrain.suite.airbench_recipe), whose paper reports 94% in 3.29 s on an A100."""

import pytest

from speedtrain.suite.airbench_recipe import AIRBENCH94
from speedtrain import Section

RECIPE = dict(model="resnet9", batch_size=512, epochs=24, lr=0.4, crop_padding=4, flip=True,
              cutout=8, channels_last=True, loader="gpu")
TRICKS = dict(pool_before_bn=True, label_smoothing=0.2, activation="celu", ghost_bn_splits=16,
              freeze_bn_scale=True, tta_flip=True)

SECTION = Section("DAWNBench: time to target accuracy", parameter="recipe (epochs and precision)", order=140)
REFERENCE = {"recipe": dict(RECIPE, precision="half")}  # myrtle.ai's 24-epoch recipe


@pytest.mark.parametrize("recipe", [
    pytest.param(dict(RECIPE, precision="half"), id="resnet9-24ep-half"),
    pytest.param(dict(RECIPE, precision="bf16"), id="resnet9-24ep-bf16"),
    pytest.param(dict(RECIPE, precision="half", **TRICKS, epochs=18), id="resnet9-tricks-18ep-half"),
    pytest.param(AIRBENCH94, id="airbench94-9.9ep-half"),
])
def test_dawnbench(run_case, recipe):
    run_case(**recipe)
