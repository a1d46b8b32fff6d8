"""The study fields wired into the trainer (issue 14): class subsets, validation split, the
extra augmentations on both loaders, image mixing, the optimiser switch, top-k and the confusion
matrix through the trainer's evaluation, the best epoch. Tiny synthetic runs, CPU."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.tests import conftest
from speedtrain.data import augment
from speedtrain.data.augment import ExtraAugment
from speedtrain.data.datasets import holdout
from speedtrain.data.selection import select_classes
from speedtrain.train import mixing, optimizers
from speedtrain.train import loop as train_module
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.data.datasets import load_dataset
from speedtrain.train.loaders import make_train_loader
from speedtrain.common.errors import ConfigError
from speedtrain.train.evaluation import BestEpoch
from speedtrain.records.evaluation import EvalMetrics
from speedtrain.records.result import RunResult
from speedtrain.train.schedule import lr_schedule
from speedtrain.train.loop import train

TINY = dict(conftest.TINY, batch_size=16)  # 4 steps an epoch


# --- data: class subset, images per class, held-out validation images ------------------------


def test_select_classes_keeps_the_first_per_class_in_order_and_renumbers():
    labels = torch.tensor([0, 5, 3, 5, 3, 1, 3, 5])
    images = torch.arange(8).view(8, 1, 1, 1)
    x, y = select_classes(images, labels, (5, 3), per_class=2)
    assert x.flatten().tolist() == [1, 2, 3, 4]  # dataset order kept: 5, 3, 5, 3
    assert y.tolist() == [0, 1, 0, 1]  # class 5 -> 0, class 3 -> 1, in the order named


def test_select_classes_refuses_a_class_without_images():
    with pytest.raises(Exception, match="no images of class 7"):
        select_classes(torch.zeros(3, 1, 1, 1), torch.tensor([0, 1, 2]), (1, 7), None)


def test_the_dataset_has_the_chosen_classes_and_counts():
    data = load_dataset(TrainConfig(**{**TINY, "train_subset": None, "classes": (3, 5), "per_class": 50}))
    assert len(data.train_labels) == 100 and torch.bincount(data.train_labels).tolist() == [50, 50]
    assert set(data.test_labels.tolist()) == {0, 1}
    assert TrainConfig(classes=(3, 5)).num_classes == 2


def test_holdout_takes_the_last_training_images_as_the_validation_set():
    data = load_dataset(TrainConfig(**TINY))
    train_part, val = holdout(data, 16)
    assert torch.equal(train_part.train_images, data.train_images[:48])
    assert torch.equal(val.test_images, data.train_images[48:]) and torch.equal(val.test_labels, data.train_labels[48:])
    assert holdout(data, 0) == (data, None)


@pytest.mark.parametrize("changes, words", [
    (dict(val_split=64), "val_split"),  # nothing left to train on
    (dict(val_split=56), "batch_size"),  # 8 images left, batch 16
    (dict(classes=(3,)), "at least two classes"),
    (dict(classes=(3, 3)), "distinct"),
    (dict(dropout=0.1), "resnet20 only"),
    (dict(milestones=(2,)), "schedule 'step'"),
    (dict(patch_shuffle=5), "divides the image side"),
    (dict(model="resnet20", global_pool="max"), "does not apply to resnet20"),
])
def test_study_fields_are_validated(changes, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**{**TINY, **changes})


def test_lists_from_json_become_tuples():
    cfg = TrainConfig.from_dict({**TINY, "classes": [1, 2], "milestones": [1], "schedule": "step"})
    assert cfg.classes == (1, 2) and cfg.milestones == (1,)


def test_the_step_schedule_is_wired():
    schedule = lr_schedule(TrainConfig(**{**TINY, "epochs": 4, "lr": 0.1, "schedule": "step", "milestones": (1, 3)}))
    assert [round(schedule(t), 6) for t in (0.5, 1.0, 1.5, 3.0, 3.5)] == [0.1, 0.1, 0.01, 0.01, 0.001]


# --- augmentations on both loaders -----------------------------------------------------------


@pytest.mark.parametrize("loader", ["gpu", "torch"])
def test_both_loaders_rotate_training_images_by_quarter_turns(loader):
    cfg = TrainConfig(**{**TINY, "loader": loader, "crop_padding": 0, "flip": False, "cutout": 0, "rotate90": True})
    data = load_dataset(cfg)
    normal = augment.normalize(data.train_images, torch.tensor(data.mean), torch.tensor(data.std))
    candidates = torch.stack([torch.rot90(normal, k, dims=(2, 3)) for k in range(4)], 1)  # (N, 4, C, H, W)
    turns = set()
    for x, _ in make_train_loader(data, cfg, torch.device("cpu")):
        for image in x:
            hit = (candidates - image).abs().flatten(2).amax(2) < 1e-5  # (N, 4)
            assert hit.any(), "a training image is not a quarter turn of any dataset image"
            turns |= set(hit.nonzero()[:, 1].tolist())
    assert turns == {0, 1, 2, 3}


def test_the_extra_augmentations_are_off_by_default_and_applied_when_asked():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    assert ExtraAugment()(images, torch.Generator()) is images
    isolated = ExtraAugment(isolate_channel=True)(images, torch.Generator().manual_seed(0))
    zeroed = (isolated.flatten(2).amax(2) == 0).sum(1)  # channels blacked out per image
    assert set(zeroed.tolist()) <= {0, 2} and 10 < int((zeroed == 2).sum()) < 54
    shuffled = ExtraAugment(patch_grid=2)(images, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.flatten(1).sort(1).values, images.flatten(1).sort(1).values)  # same pixels
    assert not torch.equal(shuffled, images)


def test_mixed_loss_equals_the_soft_target_loss():
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    mixed = augment.mix_images(torch.randn(8, 3, 4, 4), 0.3, torch.Generator().manual_seed(1))
    soft = F.cross_entropy(logits, mixed.targets(labels, 3), reduction="sum")
    assert torch.allclose(mixing.cross_entropy(logits, labels, mixed, 0.0), soft, atol=1e-5)
    assert torch.equal(mixing.cross_entropy(logits, labels, None, 0.0), F.cross_entropy(logits, labels, reduction="sum"))


def test_a_mixing_run_is_the_same_with_and_without_the_warm_up():
    runs = [train(TrainConfig(**{**TINY, "mix_ratio": 0.4, "warmup_steps": w})) for w in (0, 2)]
    assert runs[0].status == "ok" and [e.train_loss for e in runs[0].epochs] == [e.train_loss for e in runs[1].epochs]


# --- the optimiser switch ---------------------------------------------------------------------


def _trained_optimizer(monkeypatch, **changes):
    made = []
    real = optimizers.build_optimizer
    monkeypatch.setattr(train_module, "build_optimizer", lambda *a: made.append(real(*a)) or made[-1])
    result = train(TrainConfig(**{**TINY, **changes}))
    assert result.status == "ok"
    return made[-1], result  # the last one made is the timed run's (the warm-up's comes first)


@pytest.mark.parametrize("name, kind, state", [
    ("sgd", torch.optim.SGD, {"momentum_buffer"}),
    ("adam", torch.optim.Adam, {"step", "exp_avg", "exp_avg_sq"}),
    ("adamw", torch.optim.AdamW, {"step", "exp_avg", "exp_avg_sq"}),
])
def test_the_optimizer_switch_changes_the_optimizer_that_trained(monkeypatch, name, kind, state):
    lr = 0.4 if name == "sgd" else 1e-3
    opt, result = _trained_optimizer(monkeypatch, optimizer=name, lr=lr, schedule="step")
    assert type(opt) is kind
    states = list(opt.state.values())
    assert states and all(set(s) == state for s in states)
    if name != "sgd":  # Adam counted every timed step (4 steps x 2 epochs), with the schedule's own lr
        assert all(int(s["step"]) == 8 for s in states)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr)
        assert opt.param_groups[0]["weight_decay"] == pytest.approx(5e-4 * (16 if name == "adam" else 1))
    else:  # the default path: the fused SGD of make_sgd with lr / batch
        assert result.optimizer_impl == "fused" and opt.param_groups[0]["lr"] == pytest.approx(0.4 / 16)


def test_the_default_sgd_path_is_unchanged(monkeypatch):
    made = []
    monkeypatch.setattr(optimizers, "make_sgd", lambda *a: made.append(a) or torch.optim.SGD(a[0], lr=0.0))
    train(TrainConfig(**TINY))
    assert len(made) == 2  # warm-up and timed run, both through the trainer's make_sgd


# --- evaluation: top-k and the confusion matrix through the trainer, best epoch --------------


class _Lookup(nn.Module):
    """Logits looked up by the image's first pixel (its index): a model with known outputs."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0, 0, 0].long()]


def test_top_k_and_the_confusion_matrix_through_the_trainers_evaluation():
    table = torch.tensor([[3.0, 2.0, 1.0],   # label 0: rank 0
                          [3.0, 2.0, 1.0],   # label 1: rank 1
                          [3.0, 2.0, 1.0],   # label 2: rank 2
                          [1.0, 1.0, 0.0],   # label 1: tie with class 0 -> class 0 wins, rank 1
                          [0.0, 0.0, 5.0]])  # label 2: rank 0
    labels = torch.tensor([0, 1, 2, 1, 2])
    images = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 3, 2, 2)
    cfg = TrainConfig(**{**TINY, "classes": (0, 1, 2)})
    batches = [(images[:3], labels[:3]), (images[3:], labels[3:])]
    m = train_module._evaluate(_Lookup(table), batches, cfg, lambda: torch.autocast("cpu", enabled=False))
    assert (m.total, m.correct) == (5, (2, 4, 5))  # top-1 2/5, top-2 4/5, top-3 5/5 by hand
    assert m.confusion == [[1, 0, 0], [2, 0, 0], [1, 0, 1]]  # rows true, columns predicted
    assert m.accuracy(2) == 0.8 and m.per_class_accuracy() == [1.0, 0.0, 0.5]


def _metrics(top1: int) -> EvalMetrics:
    return EvalMetrics(10, (1, 2, 3), (top1, top1, top1), [[top1]])


def test_the_best_epoch_is_the_first_with_the_highest_validation_accuracy():
    best = BestEpoch()
    for epoch, (val, test) in enumerate([(3, 5), (7, 4), (7, 9), (5, 8)], start=1):
        best.update(epoch, epoch / 10, _metrics(val), _metrics(test))
    s = best.summary
    assert (s.best_epoch, s.best_val_acc, s.best_train_acc, s.best_test_acc) == (2, 0.7, 0.2, 0.4)
    assert s.final.accuracy(1) == 0.8


def test_a_run_records_top_k_the_confusion_matrix_and_the_best_epoch(tmp_path):
    result = train(TrainConfig(**{**TINY, "model": "resnet20", "dropout": 0.2, "val_split": 16,
                                  "classes": (2, 4, 6), "train_subset": None, "per_class": 24}))
    ev = result.evaluation
    assert result.status == "ok" and result.n_params > 0
    assert ev.final.ks == (1, 2, 3) and ev.final.accuracy(1) == result.final_acc and ev.final.accuracy(3) == 1.0
    assert len(ev.final.confusion) == 3 and sum(map(sum, ev.final.confusion)) == ev.final.total
    assert ev.best_epoch in (1, 2) and ev.best_val_acc == max(e.val_acc for e in result.epochs)
    assert ev.best_test_acc == result.epochs[ev.best_epoch - 1].test_acc
    path = tmp_path / "r.json"
    result.save_json(str(path))
    import json

    assert RunResult.from_dict(json.loads(path.read_text())).evaluation == ev
