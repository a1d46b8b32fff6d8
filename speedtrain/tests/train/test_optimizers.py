"""The optimiser switch changes the optimiser: its state and its update, checked by hand, all
through the trainer's one builder (``build_optimizer``)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.common.errors import ConfigError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.optimizers import OPTIMIZERS, build_optimizer, make_adam, set_lr
from speedtrain.train.schedule import StepSchedule

LR, WD, MOMENTUM, EPS = 0.1, 0.01, 0.9, 1e-8


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def batch(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=gen), torch.randint(0, 2, (n,), generator=gen)


def trainer_optimizer(model: nn.Module, name: str, batch_size: int, lr: float = LR,
                      nesterov: bool = False) -> torch.optim.Optimizer:
    """What the trainer steps for ``name``, for a loss summed over ``batch_size`` images (1: a mean loss)."""
    cfg = TrainConfig(optimizer=name, lr=lr, weight_decay=WD, momentum=MOMENTUM, nesterov=nesterov,
                      batch_size=batch_size, device="cpu")
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    set_lr(opt, lr)  # as the schedule does before every step
    return opt


def one_step(name: str, nesterov: bool = False) -> tuple[nn.Module, dict, dict, torch.optim.Optimizer]:
    """One mean-loss step; returns the model, its weights and gradients before the step, the optimiser."""
    model = tiny_model()
    opt = trainer_optimizer(model, name, 1, nesterov=nesterov)
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
    opt = trainer_optimizer(model, name, summed_over, nesterov=name == "sgd")
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


def test_sgd_is_torchs_sgd_in_the_summed_loss_units():
    # torch's SGD at lr / batch and weight decay * batch, stepped on the summed loss: the
    # trainer's convention (myrtle.ai's), checked against torch's own for-loop SGD.
    bsz, lr = 16, 0.4
    ours, theirs = tiny_model(), tiny_model()
    opt = trainer_optimizer(ours, "sgd", bsz, lr=lr, nesterov=True)
    ref = torch.optim.SGD(theirs.parameters(), lr=lr / bsz, momentum=MOMENTUM, nesterov=True, weight_decay=WD * bsz)
    for i in range(2):
        x, y = batch(seed=i, n=bsz)
        for model, o in ((ours, opt), (theirs, ref)):
            F.cross_entropy(model(x), y, reduction="sum").backward()
            o.step()
            o.zero_grad(set_to_none=True)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["nesterov"]) == (lr / bsz, WD * bsz, MOMENTUM, True)


def test_make_adam_builds_only_adam_and_adamw():
    with pytest.raises(ConfigError, match="adam or adamw"):
        make_adam("sgd", tiny_model().parameters(), 0.1, 0.0)  # type: ignore[arg-type]


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
