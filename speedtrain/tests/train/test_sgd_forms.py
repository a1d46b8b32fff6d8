"""cifar10-fast's SGD form (speedtrain.train.sgd_forms) against its nesterov_update, and against torch's SGD."""

import pytest
import torch

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.train.sgd_forms import LrInBufferSGD

LRS = [0.0, 0.1, 0.3, 0.5, 0.4, 0.2, 0.05, 0.0]  # a warm-up and a decay to 0, as the piecewise schedule


def nesterov_update(w, dw, v, lr, weight_decay, momentum):
    """cifar10-fast torch_backend.py, with today's add_(other, alpha=) signature."""
    dw.add_(w, alpha=weight_decay).mul_(-lr)
    v.mul_(momentum).add_(dw)
    w.add_(dw.add_(v, alpha=momentum))


def grads(k, shape):
    return torch.cos(torch.arange(torch.Size(shape).numel(), dtype=torch.float64) * (k + 1)).view(shape)


def run(opt_factory, lrs):
    w = torch.nn.Parameter(torch.linspace(-1, 1, 12, dtype=torch.float64).view(3, 4))
    opt = opt_factory([w])
    for k, lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = lr
        w.grad = grads(k, w.shape) + w.detach() ** 2  # depends on w: the paths must agree step by step
        opt.step()
    return w.detach()


def reference(lrs, wd=5e-4 * 512, m=0.9):
    w = torch.linspace(-1, 1, 12, dtype=torch.float64).view(3, 4)
    v = torch.zeros_like(w)
    for k, lr in enumerate(lrs):
        dw = grads(k, w.shape) + w**2
        nesterov_update(w, dw, v, lr, wd, m)
    return w


def test_matches_nesterov_update_step_for_step():
    ours = run(lambda p: LrInBufferSGD(p, momentum=0.9, weight_decay=5e-4 * 512), LRS)
    torch.testing.assert_close(ours, reference(LRS), rtol=0, atol=1e-12)


def test_equals_torch_sgd_at_a_constant_rate_and_differs_while_it_changes():
    mine = lambda p: LrInBufferSGD(p, momentum=0.9, weight_decay=1e-3)
    torchs = lambda p: torch.optim.SGD(p, lr=0.0, momentum=0.9, nesterov=True, weight_decay=1e-3)
    torch.testing.assert_close(run(mine, [0.2] * 6), run(torchs, [0.2] * 6), rtol=1e-12, atol=1e-12)
    assert (run(mine, LRS) - run(torchs, LRS)).abs().max() > 1e-3


def test_a_zero_rate_still_moves_the_weights_by_the_buffer():
    # The schedule's last step has lr 0: torch's SGD stands still, cifar10-fast coasts on m * v.
    w_mine = run(lambda p: LrInBufferSGD(p, momentum=0.9), LRS)
    w_mine_stop = run(lambda p: LrInBufferSGD(p, momentum=0.9), LRS[:-1])
    assert not torch.equal(w_mine, w_mine_stop)


def test_the_trainer_uses_it_with_sgd_form_and_the_shift_group_scaling():
    from speedtrain.models.registry import build_model
    from speedtrain.train.optimizers import make_sgd, optimizer_impl, param_groups, scale_groups

    cfg = TrainConfig(sgd_form="cifar10-fast", freeze_bn_scale=True, bn_bias_lr_scale=64.0, width=0.125)
    net = build_model(cfg)
    opt = scale_groups(make_sgd(param_groups(net, cfg), cfg, torch.device("cpu")), cfg)
    assert isinstance(opt, LrInBufferSGD) and optimizer_impl(opt) == "foreach"
    shifts, rest = opt.param_groups
    assert shifts["lr_scale"] == 64 / 512 and shifts["weight_decay"] == pytest.approx(5e-4 * 512 / 64)
    assert rest["lr_scale"] == 1 / 512 and rest["weight_decay"] == pytest.approx(5e-4 * 512)


def test_sgd_form_needs_sgd():
    with pytest.raises(ConfigError, match="sgd_form applies to optimizer sgd"):
        TrainConfig(sgd_form="cifar10-fast", optimizer="adam")


def test_the_step_difference_over_the_final_recipes_schedule():
    """The figures the README and the module quote: a constant gradient through both optimisers
    over MYRTLE_FINAL's 970 steps (97 a epoch): steps differ by up to 31%, the sums by 0.1%."""
    from speedtrain.recipes.myrtle import MYRTLE_FINAL
    from speedtrain.train.schedule import lr_schedule

    cfg = TrainConfig(**MYRTLE_FINAL)
    schedule = lr_schedule(cfg)
    lrs = [schedule(e + (i + 1) / 97) for e in range(10) for i in range(97)]
    ours = run_constant(lambda p: LrInBufferSGD(p, momentum=0.9), lrs)
    torchs = run_constant(lambda p: torch.optim.SGD(p, lr=0.0, momentum=0.9, nesterov=True), lrs)
    ratio = max(abs(a / b - 1) for a, b in zip(ours, torchs))
    assert 0.30 < ratio < 0.32
    assert abs(sum(ours) / sum(torchs) - 1) < 0.002


def run_constant(opt_factory, lrs):
    """Each step's displacement of one weight under a constant unit gradient."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = opt_factory([w])
    steps = []
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr
        before = float(w.detach())
        w.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        steps.append(before - float(w.detach()))
    return steps
