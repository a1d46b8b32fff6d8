"""myrtle.ai's bag of tricks to its end: the journey from the 75 s DAWNBench recipe to 26 s.

One list read by ``benchmarks/test_tricks.py`` (each step with its own epochs),
``benchmarks/test_dawnbench.py`` (the final recipe timed to 94%) and the tests. Every value is
the notebook's: davidcpage/cifar10-fast ``bag_of_tricks.ipynb`` ("How to train your ResNet 8:
Bag of tricks", https://myrtle.ai/how-to-train-your-resnet-8-bag-of-tricks/), cell numbers as
the notebook's JSON counts them (0-based). Its units are speedtrain's: ``lr_schedule(knots,
vals, batch_size)`` divides the rate by the batch and the weight decay is ``5e-4 * batch_size``,
which is the trainer's summed-loss convention with ``lr`` and ``weight_decay`` 5e-4.

Each step is cumulative and trains for the epochs the notebook gave it once the step's gain was
cashed in ("we reduce training by one epoch for each 0.1% of test accuracy improvement", cell 45),
with the peak at ``epochs / 5`` from label smoothing on (cells 44-85; ``[0, 5, 24]`` before).
:data:`PUBLISHED` holds each step's V100 time and test accuracy as the notebook states them
(mean of 50 runs where it says so); None where it states none. Starting point: ``TrainConfig``'s
defaults, myrtle.ai's 24-epoch ResNet-9 (batch 512, LR 0.4 peaking at epoch 5, momentum 0.9
Nesterov, weight decay 5e-4, crop 4 + flip + 8x8 cutout), as ``dawn.py`` runs it: fp16 weights
(``Network(...).half()``), CPU augmentation in a DataLoader with no workers, and cifar10-fast's
SGD (:mod:`speedtrain.train.sgd_forms`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from speedtrain.recipes.ladder import cumulative as merge

Step = tuple[str, dict[str, Any]]


class Published(NamedTuple):
    seconds: Optional[float]  # training time on one V100 (DAWNBench rules: evaluation excluded)
    accuracy: Optional[float]  # test accuracy (fraction), flip TTA from the flip-tta step on
    source: str  # where in bag_of_tricks.ipynb


JOURNEY: list[Step] = [
    # dawn.py: 24 epochs, PiecewiseLinear([0, 5, 24], [0, 0.4, 0]), DataLoader(num_workers=0), .half()
    ("baseline-24ep", dict(loader="torch", workers=0, precision="half", sgd_form="cifar10-fast")),
    ("gpu-preprocessing", dict(loader="gpu")),  # cells 18-27: the whole dataset augmented on the GPU
    # cells 38-40: conv-pool-norm-act costs 0.1% (94.0%), bought back with a 25th epoch
    ("pool-before-bn-25ep", dict(pool_before_bn=True, epochs=25, warmup_frac=0.2)),
    ("label-smoothing-23ep", dict(label_smoothing=0.2, epochs=23)),  # cell 44: alpha 0.2
    ("celu-20ep", dict(activation="celu", celu_alpha=0.075, epochs=20)),  # cells 50-51
    ("ghost-bn-18ep", dict(ghost_bn_splits=16, lr=0.6, epochs=18)),  # cell 58: num_splits 16, lr 0.6
    # cells 63 and 66: scales frozen at 1, CELU alpha 0.3, logits x 1/16, biases at 64x the lr
    # and 1/64 the weight decay (16x first, cell 64: 94.2% at 18 epochs)
    ("frozen-bn-scale-17ep", dict(freeze_bn_scale=True, celu_alpha=0.3, output_scale=1 / 16,
                                  bn_bias_lr_scale=64.0, epochs=17)),
    # cells 70-75: 3x3 whitening of 10,000 images' patches, eps 1e-2; then lr 1.0 and 5x5 cutout
    ("patch-whitening-14ep", dict(whiten=True, whiten_images=10_000, lr=1.0, cutout=5, epochs=14)),
    # cell 78: update_ema(momentum=0.99, update_freq=5), lr_schedule([0, epochs/5, epochs - 2], [0, 1.0, 0.1])
    ("ema-13ep", dict(ema_every=5, ema_momentum=0.99, lr_floor=0.1, lr_floor_epochs=2.0, epochs=13)),
    ("flip-tta-13ep", dict(tta_flip=True)),  # cells 82-83: forward_tta([identity, flip_lr])
    ("final-10ep-no-cutout", dict(cutout=0, epochs=10)),  # cell 85: transforms (Crop, FlipLR)
]

PUBLISHED: dict[str, Published] = {
    "baseline-24ep": Published(75.0, 0.941, "cells 13-15 ('still runs in 75 seconds'); 94.1% baseline, cell 40"),
    "gpu-preprocessing": Published(70.0, None, "cell 28 ('under 70s'), heading 'Preprocessing on the GPU (70s)'"),
    "pool-before-bn-25ep": Published(64.0, None, "cell 40 ('brings our time to 64s'); 24 epochs gave 94.0%"),
    "label-smoothing-23ep": Published(59.0, 0.941, "cell 45 ('23 epochs of training is 94.1%'), heading (cell 41) 59s"),
    "celu-20ep": Published(52.0, 0.941, "cell 52 ('20 epoch time of 52s for 94.1% accuracy')"),
    "ghost-bn-18ep": Published(46.0, 0.941, "cell 57 ('94.1% accuracy in 18 epochs and a training time of 46s')"),
    "frozen-bn-scale-17ep": Published(43.0, 0.941, "cell 67 ('17 epochs. The new test accuracy is 94.1% ... 43s')"),
    "patch-whitening-14ep": Published(36.0, 0.941, "cell 74 ('reach 94.1% test accuracy in 36s')"),
    "ema-13ep": Published(33.5, 0.941, "cell 77 ('13 epoch training reaches ... 94.1%'), heading (cell 76) 33.5s"),
    "flip-tta-13ep": Published(None, 0.946, "cell 81 ('the test accuracy with TTA rises to 94.6%')"),
    "final-10ep-no-cutout": Published(26.0, 0.941, "cell 84 ('10 epochs (!) and achieve a TTA test accuracy of 94.1% in 26s')"),
}


def journey(step: int) -> dict[str, Any]:
    """The config changes of steps 0..``step`` merged (profiles.cumulative on the journey)."""
    return merge(JOURNEY, step)


# The final recipe, in myrtle.ai's layout on the GPU (NHWC, as the suite's other ResNet-9 cases).
MYRTLE_FINAL: dict[str, Any] = dict(journey(len(JOURNEY) - 1), channels_last=True)
