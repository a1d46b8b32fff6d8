"""The myrtle.ai bag of tricks (part 7), each alone on the plain baseline and as the
cumulative ladder. The baseline augments on the CPU with a 4-worker DataLoader and has no
cutout, so that "GPU preprocessing" and "cutout" are tricks like the others.
Measured: time and accuracy (time to target in the full profile)."""

import pytest

from speedtrain.suite.profiles import cumulative
from speedtrain import Section

BASELINE = dict(loader="torch", workers=4, cutout=0)
TRICKS = [
    ("gpu-preprocessing", dict(loader="gpu", workers=0)),
    ("pool-before-bn", dict(pool_before_bn=True)),
    ("label-smoothing", dict(label_smoothing=0.2)),
    ("celu", dict(activation="celu")),
    ("ghost-bn", dict(ghost_bn_splits=16)),
    ("frozen-bn-scale", dict(freeze_bn_scale=True)),
    ("cutout", dict(cutout=8)),
    ("flip-tta", dict(tta_flip=True)),
]

# Each section against the plain baseline.
SECTIONS = {
    "tricks": Section("Bag of tricks, each alone", parameter="trick (each alone)", order=100),
    "tricks_cumulative": Section("Bag of tricks (cumulative)", parameter="ladder step (tricks add up left to right)", order=110),
}
REFERENCE = {"tricks": {"trick": {}}, "tricks_cumulative": {"step": 0}}


@pytest.mark.parametrize("trick", [{}] + [t for _, t in TRICKS], ids=["baseline"] + [n for n, _ in TRICKS])
def test_tricks(run_case, trick):
    run_case(**{**BASELINE, **trick})


@pytest.mark.parametrize("step", range(len(TRICKS) + 1), ids=["baseline"] + [n for n, _ in TRICKS])
def test_tricks_cumulative(run_case, step):
    run_case(step=step, **{**BASELINE, **cumulative(TRICKS, step - 1)})
