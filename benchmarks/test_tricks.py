"""The myrtle.ai bag of tricks (part 8), each alone on the plain baseline and as the
cumulative ladder. The baseline augments on the CPU with a 4-worker DataLoader and has no
cutout, so that "GPU preprocessing" and "cutout" are tricks like the others.
Measured: time and accuracy (time to target in the full profile).

``test_tricks_journey`` is the notebook's own journey to its end, 75 s -> 26 s on a V100
(speedtrain.recipes.myrtle): each step cumulative, with the epochs, learning rate and peak the
notebook gave it, and its published time and accuracy beside it (speedtrain.recipes.myrtle.PUBLISHED, saved in the case's
``extra_info['published']``).
Run it with ``--st-profile full`` to compare time to 94% with those figures."""

import pytest

from speedtrain import Section
from speedtrain.recipes.myrtle import JOURNEY, PUBLISHED, journey
from speedtrain.recipes.profiles import cumulative

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
    "tricks_journey": Section("myrtle.ai's bag of tricks to its end (cumulative, 75 s to 26 s on a V100)", parameter="journey step (the notebook's steps add up left to right)", order=115),
}
REFERENCE = {"tricks": {"trick": {}}, "tricks_cumulative": {"step": 0}, "tricks_journey": {"step": 0}}


@pytest.mark.parametrize("trick", [{}] + [t for _, t in TRICKS], ids=["baseline"] + [n for n, _ in TRICKS])
def test_tricks(run_case, trick):
    run_case(**{**BASELINE, **trick})


@pytest.mark.parametrize("step", range(len(TRICKS) + 1), ids=["baseline"] + [n for n, _ in TRICKS])
def test_tricks_cumulative(run_case, step):
    run_case(step=step, **{**BASELINE, **cumulative(TRICKS, step - 1)})


@pytest.mark.parametrize("step", range(len(JOURNEY)), ids=[name for name, _ in JOURNEY])
def test_tricks_journey(run_case, benchmark, step):
    # Beside the measurement in the saved run: the step's published V100 seconds and accuracy.
    benchmark.extra_info["published"] = PUBLISHED[JOURNEY[step][0]]._asdict()
    run_case(step=step, **journey(step))
