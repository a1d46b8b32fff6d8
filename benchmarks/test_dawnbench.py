"""End-to-end recipes timed to their target accuracy, DAWNBench style (run with --st-profile
full for time to target over several seeds; the report gives the fraction of seeds that
reached it). The 24-epoch ResNet-9 is myrtle.ai's; the bag-of-tricks epoch count is our
first guess, to be calibrated on a GPU. airbench94 is Keller Jordan's 2024 recipe (9.9 epochs;
speedtrain.airbench_recipe), whose paper reports 94% in 3.29 s on an A100. The cases that are
named recipes take their values from speedtrain.recipes, as `speedtrain train --recipe` does."""

import pytest

from speedtrain.recipes import recipe_values

RECIPE = recipe_values("myrtle-24ep")  # in fp16 ("half"); the bf16 case overrides it
TRICKS = dict(pool_before_bn=True, label_smoothing=0.2, activation="celu", ghost_bn_splits=16,
              freeze_bn_scale=True, tta_flip=True)

REFERENCE = {"recipe": RECIPE}  # myrtle.ai's 24-epoch recipe


@pytest.mark.parametrize("recipe", [
    pytest.param(RECIPE, id="resnet9-24ep-half"),  # recipe myrtle-24ep
    pytest.param(dict(RECIPE, precision="bf16"), id="resnet9-24ep-bf16"),
    pytest.param(dict(RECIPE, **TRICKS, epochs=18), id="resnet9-tricks-18ep-half"),
    pytest.param(recipe_values("airbench94"), id="airbench94-9.9ep-half"),  # recipe airbench94
])
def test_dawnbench(run_case, recipe):
    run_case(**recipe)
