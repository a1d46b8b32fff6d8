"""The two accuracy studies on real data, on the CPU (slow: about a minute together on an idle
2-core machine, one thread each).

Needs the CIFAR-10 JPEG archive (``$SPEEDTRAIN_TEST_DATA/cifar10-jpeg.tar.xz``, by default the
shared data folder next to the repository); skipped with the reason when it is absent.
"""

import statistics

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.stats.samples import beyond_noise
from speedtrain.train.loop import train

pytestmark = pytest.mark.slow


# The 100-image regime, made short (~3 s a run): 2 classes x 50 images, a 1/8-width ResNet-9, 10 epochs.
# No profiled breakdown (breakdown_steps=0) here or below: these tests measure accuracy, not time.
SMALL = dict(classes=(0, 1), per_class=50, test_subset=300, model="resnet9", width=0.125, batch_size=20,
             epochs=10, lr=0.2, crop_padding=0, flip=False, cutout=0, device="cpu", warmup_steps=0, breakdown_steps=0)


SEEDS = 5  # enough to see the seeds differ and to judge flip against their noise


def test_100_images_no_augmentation_and_flip_over_5_seeds(cifar10_archive, capsys):
    accs = {}
    for name, changes in (("none", {}), ("flip", {"flip": True})):
        results = [train(TrainConfig(data_dir=str(cifar10_archive), seed=seed, **{**SMALL, **changes})) for seed in range(SEEDS)]
        assert all(r.status == "ok" and not r.synthetic for r in results)
        assert all(len(r.evaluation.final.confusion) == 2 for r in results)  # 2 classes, relabelled 0 and 1
        accs[name] = [r.final_acc for r in results]
    with capsys.disabled():
        for name, acc in accs.items():
            print(f"\n100 images, {name}: test top-1 {100 * statistics.fmean(acc):.2f} ± {100 * statistics.stdev(acc):.2f}% "
                  f"({SEEDS} seeds: {', '.join(f'{100 * a:.1f}' for a in acc)})")
        diff = statistics.fmean(accs["flip"]) - statistics.fmean(accs["none"])
        print(f"flip vs none: {100 * diff:+.2f} pt, beyond the seeds' noise: {beyond_noise(accs['none'], accs['flip'])}")
    for name, acc in accs.items():  # airplane vs automobile: well above the 50% of a coin
        assert statistics.fmean(acc) > 0.6, (name, acc)
        assert statistics.stdev(acc) > 0  # the seeds really differ


def test_resnet20_learns_cifar10_above_chance_on_the_cpu(cifar10_archive, capsys):
    cfg = TrainConfig(data_dir=str(cifar10_archive), model="resnet20", dropout=0.1, optimizer="adam", lr=2e-3, weight_decay=1e-4,
                      schedule="step", milestones=(2,), train_subset=1500, val_split=500, test_subset=500,
                      batch_size=50, epochs=3, cutout=0, device="cpu", warmup_steps=0, breakdown_steps=0)
    result = train(cfg)
    ev = result.evaluation
    with capsys.disabled():
        print(f"\nResNet-20, 1000 images, 3 epochs, Adam: test top-1 {result.final_acc:.1%}, top-2 {ev.final.accuracy(2):.1%}, "
              f"top-3 {ev.final.accuracy(3):.1%}; best epoch {ev.best_epoch} (val {ev.best_val_acc:.1%}, "
              f"test {ev.best_test_acc:.1%}); {result.train_time_s:.1f} s training")
    assert result.status == "ok" and result.n_params == 272_474
    assert result.final_acc > 0.2 and ev.best_test_acc > 0.2  # chance is 10%
    assert ev.final.accuracy(3) > ev.final.accuracy(1)
