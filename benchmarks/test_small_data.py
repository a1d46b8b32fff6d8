"""The 100-image regime: 50 training images from each of 2 CIFAR-10 classes (airplane and
automobile), each augmentation alone against none, 10 seeds per case by default (as the
study reported mean +/- standard deviation over 10 seeds; ``--st-seeds`` overrides, and the
smoke profile keeps its one seed). The report gives each augmentation's mean +/- std test
accuracy, its difference from no augmentation and whether that difference is beyond the
seeds' noise (the verdicts' Mann-Whitney rule). The compared figure is accuracy (``final_acc``).
"""

import pytest

from speedtrain import Section

SEEDS = 10
# No augmentation at all is the reference: no crop, no flip, no cutout.
NONE = dict(model="resnet9", width=0.5, classes=(0, 1), per_class=50, batch_size=20, epochs=30,
            lr=0.2, crop_padding=0, flip=False, cutout=0, target_acc=0.9)
AUGMENTATIONS = [
    ("none", {}),
    ("flip", dict(flip=True)),
    ("rotate90", dict(rotate90=True)),
    ("patch-shuffle", dict(patch_shuffle=4)),
    ("mixing", dict(mix_ratio=0.3)),
    ("channel-isolation", dict(channel_isolation=True)),
]
SECTION = Section("100 training images: each augmentation alone (accuracy study)", parameter="augmentation (each alone)", order=180)
REFERENCE = {"augmentation": {}}


@pytest.mark.parametrize("augmentation", [a for _, a in AUGMENTATIONS], ids=[n for n, _ in AUGMENTATIONS])
def test_small_data(run_case, augmentation):
    run_case(metric="final_acc", seeds=SEEDS, **{**NONE, **augmentation})
