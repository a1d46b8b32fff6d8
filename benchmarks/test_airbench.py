"""The airbench-era ladder (arXiv 2404.00498): from myrtle.ai's ResNet-9 to airbench94, each
step cumulative (like test_architecture.py), and each step that is not a property of the
airbench network alone on the ResNet-9 recipe. The steps are speedtrain.recipes.airbench.LADDER.
Measured per step: time, accuracy, and the training FLOPs (does a step save work, or run the
same work faster?)."""

import pytest

from speedtrain.recipes.airbench import ALONE, LADDER
from speedtrain.recipes.profiles import cumulative
from speedtrain import Section


SECTIONS = {
    "airbench": Section("Airbench ladder (cumulative, ResNet-9 to airbench94)", parameter="ladder step (airbench's changes add up left to right)", order=120),
    "airbench_alone": Section("Airbench steps, each alone on ResNet-9", parameter="airbench step (each alone on the ResNet-9 recipe)", order=130),
}


@pytest.mark.parametrize("step", range(len(LADDER)), ids=[name for name, _ in LADDER])
def test_airbench(run_case, step):
    run_case(step=step, **cumulative(LADDER, step))


@pytest.mark.parametrize("change", [{}] + [c for _, c in ALONE], ids=["resnet9-myrtle"] + [n for n, _ in ALONE])
def test_airbench_alone(run_case, change):
    run_case(**change)
