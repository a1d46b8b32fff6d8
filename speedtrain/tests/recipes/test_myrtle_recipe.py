"""myrtle.ai's journey (speedtrain.recipes.myrtle) against bag_of_tricks.ipynb's own numbers and
schedules, and the validation of its fields (speedtrain.myrtle_config)."""

import numpy as np
import pytest
import torch
from torch import nn

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.models.blocks import GhostBatchNorm2d
from speedtrain.models.registry import build_model
from speedtrain.recipes.myrtle import JOURNEY, MYRTLE_FINAL, PUBLISHED, journey
from speedtrain.train.schedule import lr_schedule

STEPS = 50_000 // 512  # the notebook's len(train_batches(512)): drop_last, 97 batches an epoch


def notebook_lr(knots, vals, batch_size=512):
    """bag_of_tricks.ipynb: lr_schedule = PiecewiseLinear(knots * len(train_batches), vals / batch_size),
    read at opt_step's step_number, which counts from 1."""
    return lambda step: float(np.interp(step, np.array(knots) * STEPS, np.array(vals) / batch_size))


def trainer_lrs(cfg):
    """What the trainer sets per step: schedule(epoch - 1 + (i + 1) / steps) times SGD's 1 / batch."""
    schedule = lr_schedule(cfg)
    return [schedule(e + (i + 1) / STEPS) / cfg.batch_size for e in range(int(cfg.epochs)) for i in range(STEPS)]


@pytest.mark.parametrize("name, knots, vals", [
    ("baseline-24ep", [0, 5, 24], [0.0, 0.4, 0.0]),  # dawn.py / cell 27
    ("label-smoothing-23ep", [0, 23 / 5, 23], [0.0, 0.4, 0.0]),  # cell 44's form at 23 epochs
    ("ghost-bn-18ep", [0, 18 / 5, 18], [0.0, 0.6, 0.0]),  # cell 58
    ("patch-whitening-14ep", [0, 14 / 5, 14], [0.0, 1.0, 0.0]),  # cell 75
    ("ema-13ep", [0, 13 / 5, 13 - 2], [0.0, 1.0, 0.1]),  # cell 78
    ("final-10ep-no-cutout", [0, 10 / 5, 10 - 2], [0.0, 1.0, 0.1]),  # cell 85
])
def test_schedules_step_for_step(name, knots, vals):
    cfg = TrainConfig(**journey([n for n, _ in JOURNEY].index(name)))
    theirs = notebook_lr(knots, vals)
    ours = trainer_lrs(cfg)
    assert len(ours) == int(knots[-1] if vals[-1] == 0 else cfg.epochs) * STEPS
    np.testing.assert_allclose(ours, [theirs(s) for s in range(1, len(ours) + 1)], rtol=1e-12, atol=1e-15)


def test_the_floor_holds_for_the_last_two_epochs():
    lrs = trainer_lrs(TrainConfig(**MYRTLE_FINAL))
    assert lrs[-2 * STEPS:] == [0.1 / 512] * (2 * STEPS)
    assert max(lrs) == pytest.approx(1.0 / 512)


def test_bias_group_rate_and_decay_are_the_notebooks():
    """cells 66-85: opt_params_bias = lr x 64, weight decay 5e-4 * batch / 64, on the parameters
    whose name holds 'bias' (ResNet-9's only biases are the batch norms')."""
    from speedtrain.train.optimizers import make_sgd, param_groups, scale_groups

    cfg = TrainConfig(**{**MYRTLE_FINAL, "width": 0.125})
    net = build_model(cfg)
    named_bias = {id(p) for n, p in net.named_parameters() if "bias" in n and p.requires_grad}
    opt = scale_groups(make_sgd(param_groups(net, cfg), cfg, torch.device("cpu")), cfg)
    shifts = [g for g in opt.param_groups if g.get("bn_shift")][0]
    assert {id(p) for p in shifts["params"]} == named_bias
    assert shifts["lr_scale"] * 1.0 == pytest.approx(1.0 * 64 / 512)
    assert shifts["weight_decay"] == pytest.approx(5e-4 * 512 / 64)


def test_frozen_bn_scale_is_the_notebooks_four_parts():
    step = [n for n, _ in JOURNEY].index("frozen-bn-scale-17ep")
    cfg = TrainConfig(**journey(step), width=0.125)
    net = build_model(cfg)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, GhostBatchNorm2d) and m.splits == 16 for m in bns)
    assert all(not m.weight.requires_grad and torch.all(m.weight == 1) for m in bns)  # scales frozen at 1
    celus = [m for m in net.modules() if isinstance(m, nn.CELU)]
    assert celus and all(m.alpha == 0.3 for m in celus)  # CELU alpha 0.075 x 4
    assert net.head.scale.factor == 1 / 16  # logit scale 1/16
    assert cfg.bn_bias_lr_scale == 64  # biases at 64x the rate, 1/64 the decay (above)


def test_every_step_is_valid_published_and_in_order():
    names = [n for n, _ in JOURNEY]
    assert list(PUBLISHED) == names
    epochs = [TrainConfig(**journey(i)).epochs for i in range(len(JOURNEY))]
    assert epochs == [24, 24, 25, 23, 20, 18, 17, 14, 13, 13, 10]
    seconds = [PUBLISHED[n].seconds for n in names if PUBLISHED[n].seconds is not None]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] == 75 and seconds[-1] == 26
    final = TrainConfig(**MYRTLE_FINAL)
    assert (final.cutout, final.tta_flip, final.whiten, final.ema_every, final.sgd_form) == (0, True, True, 5, "cifar10-fast")


def test_the_final_recipe_trains_on_the_cpu():
    from speedtrain.train.loop import train

    cfg = TrainConfig(**{**MYRTLE_FINAL, "precision": "fp32", "channels_last": False, "epochs": 3}, synthetic=True,
                      train_subset=256, test_subset=64, batch_size=64, width=0.125, device="cpu", warmup_steps=1)
    result = train(cfg)
    assert result.status == "ok" and result.whiten_s is not None and result.optimizer_impl == "foreach"
    assert [round(e.lr, 6) for e in result.epochs][-2:] == [0.1, 0.1]  # floored for the last 2 epochs


@pytest.mark.parametrize("changes, message", [
    (dict(ema_every=-1), "ema_every must be"),
    (dict(ema_every=5, ema_momentum=1.0), "ema_momentum must be"),
    (dict(ema_every=5, lookahead_every=5), "two weight averages"),
    (dict(lr_floor=1.0), "lr_floor must be"),
    (dict(lr_floor_epochs=-1.0), "lr_floor_epochs must be"),
    (dict(lr_floor=0.1, schedule="onecycle"), "apply to schedule 'piecewise' only"),
])
def test_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_a_floor_past_the_peak_drops_to_it_at_the_peak():
    # The smoke profile trains 2 epochs, leaving the 2 floor epochs reaching back past the peak.
    cfg = TrainConfig(epochs=2, warmup_frac=0.2, lr=1.0, lr_floor=0.1, lr_floor_epochs=2.0)
    s = lr_schedule(cfg)
    assert s(0.2) == pytest.approx(0.5) and s(0.41) == pytest.approx(0.1) and s(2.0) == pytest.approx(0.1)  # peak at 0.4
