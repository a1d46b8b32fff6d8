"""The weight EMA (speedtrain.train.ema) against cifar10-fast's update_ema, and against lookahead."""

import copy
from itertools import count

import torch
from torch import nn

from speedtrain.train.hooks import RunHooks
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.ema import WeightEMA
from speedtrain.train.lookahead import Lookahead


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def update_ema(momentum, update_freq=1):
    """cifar10-fast torch_backend.py's update_ema, verbatim but for the state keys."""
    n = iter(count())
    rho = momentum**update_freq

    def step(model, valid_model):
        if (next(n) % update_freq) != 0:
            return
        for v, ema_v in zip(model.state_dict().values(), valid_model.state_dict().values()):
            if not v.dtype.is_floating_point:
                continue
            ema_v *= rho
            ema_v += (1 - rho) * v
    return step


def perturb(model, k):
    """A stand-in optimiser step: every float tensor moves, BN running stats included."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.sin(torch.arange(t.numel(), dtype=t.dtype) + k).view_as(t) * 0.1)


def test_matches_update_ema_over_two_epochs_with_its_counter_restarting():
    model = net()
    valid_model = copy.deepcopy(model)  # VALID_MODEL: copy.deepcopy(model) before training
    ema = WeightEMA(model, every=5, momentum=0.99)
    updated = []
    for epoch in range(2):
        theirs = update_ema(momentum=0.99, update_freq=5)  # built anew for each epoch, as in cell 78
        ema.start_epoch()
        for i in range(13):
            perturb(model, 13 * epoch + i)
            theirs(model, valid_model)
            updated.append(ema.step())
    assert [i for i, u in enumerate(updated) if u] == [0, 5, 10, 13, 18, 23]  # 0, 5, 10 of each epoch
    for a, b in zip(ema.average.state_dict().values(), valid_model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_ema_leaves_the_model_alone_and_lookahead_copies_back():
    model, twin = net(), net()
    ema = WeightEMA(model, every=1, momentum=0.9)
    look = Lookahead(twin, total_steps=10, every=1)
    for k in range(4):
        perturb(model, k)
        perturb(twin, k)
        before_model = [t.clone() for t in model.state_dict().values()]
        before_twin = [t.clone() for t in twin.state_dict().values()]
        ema.step()
        look.step(k + 1)
        assert all(torch.equal(a, b) for a, b in zip(before_model, model.state_dict().values()))  # untouched
        if k:  # lookahead's first call only takes its copy; afterwards it writes the average into the model
            assert not all(torch.equal(a, b) for a, b in zip(before_twin, twin.state_dict().values()))
    # the EMA is a different network from the model, which trains on from its own weights
    assert not torch.equal(ema.average[0].weight, model[0].weight)
    assert not ema.average[0].weight.requires_grad


def test_the_run_evaluates_the_average_only_with_ema_every():
    model = net()
    hooks = RunHooks(TrainConfig(ema_every=5), model, total_steps=100)
    assert hooks.evaluated(model) is hooks.ema.average
    plain = RunHooks(TrainConfig(), model, total_steps=100)
    assert plain.ema is None and plain.evaluated(model) is model


def test_a_run_with_ema_reports_the_averages_accuracy():
    from speedtrain.train.loop import train

    base = dict(synthetic=True, train_subset=64, test_subset=64, batch_size=32, width=0.125, epochs=2,
                device="cpu", warmup_steps=0, cutout=0)
    with_ema = train(TrainConfig(**base, ema_every=1, ema_momentum=0.5))
    without = train(TrainConfig(**base))
    assert with_ema.status == without.status == "ok"
    # Same seed, same training: the losses agree, the evaluated networks do not.
    assert [e.train_loss for e in with_ema.epochs] == [e.train_loss for e in without.epochs]


def test_the_timer_policy_counts_the_ema_updates_as_training():
    from speedtrain.hw.timing import timer_policy

    assert any("weight EMA" in line for line in timer_policy(TrainConfig(ema_every=5), "perf_counter")["includes"])
    assert not any("EMA" in line for line in timer_policy(TrainConfig(), "perf_counter")["includes"])
