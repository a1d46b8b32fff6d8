"""The optimiser switch changes the optimiser: its state and its update, checked by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.common.errors import ConfigError
from speedtrain.train.optimizers import OPTIMIZERS, make_optimizer, set_lr
from speedtrain.train.schedule import StepSchedule

LR, WD, MOMENTUM, EPS = 0.1, 0.01, 0.9, 1e-8


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def batch(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=gen), torch.randint(0, 2, (n,), generator=gen)


def one_step(name: str, **kw) -> tuple[nn.Module, dict, dict, torch.optim.Optimizer]:
    """One mean-loss step; returns the model, its weights and gradients before the step, the optimiser."""
    model = tiny_model()
    opt = make_optimizer(name, model.parameters(), LR, WD, momentum=MOMENTUM, eps=EPS, **kw)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    return model, before, grads, opt


def hand_update(name: str, p: torch.Tensor, g: torch.Tensor, nesterov: bool) -> torch.Tensor:
    """The first step of each optimiser, written out (Adam's bias-corrected moments are g and g**2)."""
    if name == "sgd":  # momentum buffer = g + wd p; Nesterov steps along g' + m * buffer
        d = g + WD * p
        return p - LR * (1 + MOMENTUM) * d if nesterov else p - LR * d
    if name == "adam":  # L2 joins the gradient before the moments
        d = g + WD * p
        return p - LR * d / (d.abs() + EPS)
    return p * (1 - LR * WD) - LR * g / (g.abs() + EPS)  # adamw: decay on the weights


@pytest.mark.parametrize("name,nesterov", [("sgd", False), ("sgd", True), ("adam", False), ("adamw", False)])
def test_one_update_matches_the_hand_computed_one(name, nesterov):
    model, before, grads, _ = one_step(name, nesterov=nesterov)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), hand_update(name, before[n], grads[n], nesterov))


def test_the_three_optimisers_give_three_different_updates():
    weights = [one_step(name)[0].weight.detach() for name in OPTIMIZERS]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(weights[i], weights[j])


@pytest.mark.parametrize("name,state_keys", [
    ("sgd", {"momentum_buffer"}),
    ("adam", {"step", "exp_avg", "exp_avg_sq"}),
    ("adamw", {"step", "exp_avg", "exp_avg_sq"}),
])
def test_optimizer_state_is_the_optimisers_own(name, state_keys):
    model, _, _, opt = one_step(name)
    for p in model.parameters():
        assert set(opt.state[p]) == state_keys


def train_steps(name: str, summed_over: int, steps: int = 3) -> nn.Module:
    model = tiny_model()
    opt = make_optimizer(name, model.parameters(), 0.0, WD, nesterov=name == "sgd", summed_over=summed_over)
    for i in range(steps):
        set_lr(opt, LR * (i + 1) / steps)  # a changing rate, as a schedule gives it
        x, y = batch(seed=i, n=16)
        F.cross_entropy(model(x), y, reduction="sum" if summed_over > 1 else "mean").backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_summed_loss_with_summed_over_batch_is_the_mean_loss_update(name):
    mean, summed = train_steps(name, 1), train_steps(name, 16)
    assert not torch.allclose(mean.weight, tiny_model().weight)  # it did train
    for a, b in zip(mean.parameters(), summed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sgd_path_is_the_trainers_previous_set_up_exactly():
    # Before this module the trainer built SGD(lr=0, momentum, nesterov, weight_decay=wd * batch)
    # and set group["lr"] = lr / batch each step; the same step must come out bit for bit.
    bsz, lr = 16, 0.4
    ours, theirs = tiny_model(), tiny_model()
    opt = make_optimizer("sgd", ours.parameters(), 0.0, 5e-4, momentum=0.9, nesterov=True, summed_over=bsz)
    ref = torch.optim.SGD(theirs.parameters(), lr=0.0, momentum=0.9, nesterov=True, weight_decay=5e-4 * bsz)
    for i in range(2):
        set_lr(opt, lr)
        for g in ref.param_groups:
            g["lr"] = lr / bsz
        x, y = batch(seed=i, n=bsz)
        for model, o in ((ours, opt), (theirs, ref)):
            F.cross_entropy(model(x), y, reduction="sum").backward()
            o.step()
            o.zero_grad(set_to_none=True)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["nesterov"]) == (lr / bsz, 5e-4 * bsz, 0.9, True)


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="sgd, adam, adamw"):
        make_optimizer("lamb", tiny_model().parameters(), 0.1, 0.0)  # type: ignore[arg-type]


# --- the study's step schedule (speedtrain.train.schedule.StepSchedule) -----------------------------


def test_step_schedule_decays_after_each_milestone_epoch_as_the_trainer_steps():
    s = StepSchedule(0.1, (2, 4), 0.1)
    steps = 5  # the trainer's progress at the end of step i of epoch e: e - 1 + (i + 1) / steps
    by_epoch = [[s(e - 1 + (i + 1) / steps) for i in range(steps)] for e in range(1, 7)]
    expected = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]  # epoch 3 is the first after milestone 2
    assert by_epoch == [[pytest.approx(lr)] * steps for lr in expected]
    assert s(0.0) == 0.1 and StepSchedule(1.0, ())(100.0) == 1.0


def test_step_schedule_rejects_bad_milestones_and_factors():
    for milestones, factor in (((3, 2), 0.1), ((-1,), 0.1), ((2,), 0.0)):
        with pytest.raises(ValueError, match="StepSchedule"):
            StepSchedule(0.1, milestones, factor)
