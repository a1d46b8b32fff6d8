"""myrtle.ai's final recipe (speedtrain.recipes.myrtle.MYRTLE_FINAL) on real CIFAR-10, on the CPU.

Slow. Needs the CIFAR-10 JPEG archive (``$SPEEDTRAIN_TEST_DATA/cifar10-jpeg.tar.xz``); skipped
with the reason when it is absent. Reduced to run on a CPU: ResNet-9 at width 0.25, the first
5,000 training images (whitening computed from them), batch 256 (16 ghost splits of 16), fp32,
the recipe's 10 epochs, 1,000 test images.
"""

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.recipes.myrtle import MYRTLE_FINAL
from speedtrain.tests.conftest import SHARED_DATA
from speedtrain.train.loop import train

pytestmark = pytest.mark.slow

REDUCED = dict(precision="fp32", channels_last=False, device="cpu", width=0.25, train_subset=5000,
               test_subset=1000, batch_size=256, warmup_steps=1)


def test_reduced_final_recipe_learns_cifar10_on_cpu(capsys):
    """Measured on this project's shared 2-core CPU (heavily loaded: 44 min wall, ~11 CPU min):
    51.1% top-1 on the 1000 test images (chance 10%); the floor of 40% leaves room for other
    numerics. The figure is printed by the test."""
    archive = SHARED_DATA / "cifar10-jpeg.tar.xz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 not found at {archive} (set SPEEDTRAIN_TEST_DATA to the folder holding cifar10-jpeg.tar.xz)")
    cfg = TrainConfig(**{**MYRTLE_FINAL, **REDUCED, "data_dir": str(archive)})
    result = train(cfg)
    with capsys.disabled():
        print(f"\nmyrtle final recipe, reduced (width 0.25, 5000 images, 10 epochs, flip TTA on the EMA): "
              f"test top-1 {result.final_acc:.2%} on 1000 images, whitening {result.whiten_s:.2f} s")
    assert result.status == "ok" and not result.synthetic and result.whiten_s is not None
    assert result.final_acc >= MEASURED_FLOOR, f"test accuracy after 10 epochs: {result.final_acc:.4f}"


MEASURED_FLOOR = 0.40  # well above chance (10%); measured 51.1% (see the test's docstring)
