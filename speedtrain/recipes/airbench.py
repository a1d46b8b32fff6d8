"""The airbench94 recipe as a ladder of ``TrainConfig`` changes, from myrtle.ai's ResNet-9.

One list read by ``benchmarks/test_airbench.py`` (each step cumulatively, and alone on the
ResNet-9 recipe where it applies), ``benchmarks/test_dawnbench.py`` (the whole recipe timed
to 94%) and the tests. Starting point: the ``TrainConfig`` defaults, myrtle.ai's 24-epoch
ResNet-9 (batch 512, LR 0.4 piecewise, crop 4 + flip + cutout 8). Airbench94's values
(KellerJordan/cifar10-airbench, arXiv 2404.00498) in the trainer's units: its decoupled
``lr`` 11.5 and ``weight_decay`` 0.0153 per 1024 examples at momentum 0.85 are the mean-loss
``lr`` 1.50 and ``weight_decay`` 0.0153 / 11.5 = 0.0013304... here, derived by
:func:`trainer_units`, not rounded.
"""

from __future__ import annotations

from typing import Any

from speedtrain.recipes.ladder import cumulative as merge

Step = tuple[str, dict[str, Any]]

# airbench94's hyperparameters as it states them (decoupled: per 1024 examples, summed loss).
AIRBENCH_BATCH, AIRBENCH_MOMENTUM = 1024, 0.85


def trainer_units(lr: float, weight_decay: float, momentum: float, batch_size: int) -> tuple[float, float]:
    """Airbench's decoupled ``lr`` and ``weight_decay`` (per 1024 examples) as the trainer's
    mean-loss ``(lr, weight_decay)`` at ``batch_size``: the same torch SGD update.

    torch's rate is ``lr / kilostep`` in both, and the trainer's is ``its lr / batch_size``; torch's
    ``weight_decay`` is airbench's ``decay / torch_lr = weight_decay * batch_size / lr`` and
    the trainer's ``its weight_decay * batch_size``.
    """
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    return lr * batch_size / kilostep, weight_decay / lr


AIRBENCH_LR, AIRBENCH_WD = trainer_units(11.5, 0.0153, AIRBENCH_MOMENTUM, AIRBENCH_BATCH)

LADDER: list[Step] = [
    ("resnet9-myrtle", {}),
    ("airbench-net", dict(model="airbench")),
    ("patch-whitening", dict(whiten=True)),
    ("dirac-init", dict(dirac_init=True)),
    ("frozen-bn-64x-shift-lr", dict(freeze_bn_scale=True, bn_bias_lr_scale=64.0)),
    ("nesterov-decoupled-hyperparameters", dict(batch_size=AIRBENCH_BATCH, lr=AIRBENCH_LR, momentum=AIRBENCH_MOMENTUM,
                                                nesterov=True, weight_decay=AIRBENCH_WD, label_smoothing=0.2, schedule="triangle",
                                                warmup_frac=0.23)),
    ("lookahead", dict(lookahead_every=5)),
    ("alternating-flip-translate-2", dict(alt_flip=True, crop_padding=2, cutout=0)),
    ("multicrop-tta", dict(tta_flip=True, tta_translate=1)),
    ("9.9-epochs", dict(epochs=9.9)),
]

# Steps that are a property of the airbench network itself: not run alone on ResNet-9.
AIRBENCH_ONLY = ("airbench-net", "patch-whitening")
ALONE: list[Step] = [step for step in LADDER[1:] if step[0] not in AIRBENCH_ONLY]


# The whole recipe: every step, in airbench's precision (fp16 weights, fp32 batch norm) and layout.
AIRBENCH94: dict[str, Any] = dict(merge(LADDER, len(LADDER) - 1), precision="half", channels_last=True, loader="gpu")
