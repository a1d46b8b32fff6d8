"""airbench94 step for step (issue 21): the trainer's schedule, weight decay and lookahead
against the arithmetic of airbench's own file (KellerJordan/cifar10-airbench,
``legacy/airbench94.py``), re-stated here from that file; and airbench's timer figure."""

from math import ceil

import pytest
import torch
from torch import nn

from speedtrain.recipes.airbench import trainer_units
from speedtrain.train.schedule import epoch_steps
from speedtrain.recipes.airbench import AIRBENCH94
from speedtrain.train.airbench_schedule import StepTriangle, airbench_factor
from speedtrain.records.airbench_time import PUBLISHED, airbench_time_s, report_notes
from speedtrain.train.hooks import RunHooks
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.records.record import CaseRecord
from speedtrain.records.result import EpochStats, RunResult
from speedtrain.train.schedule import lr_schedule

STEPS_PER_EPOCH = 50_000 // 1024  # airbench's loader drops the last partial batch: 48


def airbench_lambda_lr(peak: float, epochs: float = 9.9) -> list[float]:
    """The learning rate of each optimiser step as airbench94 gets it: ``LambdaLR`` over its
    ``get_lr``, read from the optimiser before each ``optimizer.step(); scheduler.step()``."""
    total = ceil(STEPS_PER_EPOCH * epochs)

    def get_lr(step: int) -> float:  # airbench94's, verbatim in its arithmetic
        warmup_steps = int(total * 0.23)
        warmdown_steps = total - warmup_steps
        if step < warmup_steps:
            frac = step / warmup_steps
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup_steps) / warmdown_steps
        return 1.0 * (1 - frac) + 0.07 * frac

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak, momentum=0.85, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, get_lr)
    rates = []
    for _ in range(total):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return rates


def trainer_rates(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The rate of each step as speedtrain.train.loop asks its schedule for it."""
    schedule = lr_schedule(cfg, steps_per_epoch)
    return [schedule(epoch - 1 + (i + 1) / steps_per_epoch)
            for epoch, n in enumerate(epoch_steps(cfg.epochs, steps_per_epoch), start=1) for i in range(n)]


def test_the_whole_476_step_schedule_is_airbenchs_lambda_lr():
    cfg = TrainConfig(**AIRBENCH94)
    ours = trainer_rates(cfg, STEPS_PER_EPOCH)
    theirs = airbench_lambda_lr(cfg.lr)
    assert len(ours) == len(theirs) == 476
    assert ours == pytest.approx(theirs, rel=1e-12, abs=0)
    assert ours[0] / cfg.lr == pytest.approx(0.2) and ours[-1] / cfg.lr == pytest.approx(0.07253, abs=1e-5)
    assert max(ours) == pytest.approx(cfg.lr) and ours.index(max(ours)) == 109  # int(476 * 0.23)


@pytest.mark.parametrize("epochs, steps_per_epoch", [(9.9, 48), (3.9, 48), (2, 7), (1.5, 3)])
def test_the_schedule_matches_at_other_lengths(epochs, steps_per_epoch):
    # the profiles shorten the recipe (quick: 3.9 epochs); the rule holds at any length
    cfg = TrainConfig(**{**AIRBENCH94, "epochs": epochs})
    total = ceil(round(epochs * steps_per_epoch, 9))
    expected = [cfg.lr * airbench_factor(k, total) for k in range(total)]
    assert trainer_rates(cfg, steps_per_epoch) == pytest.approx(expected, rel=1e-12)


def test_step_triangle_clamps_and_refuses():
    tri = StepTriangle(1.0, 0.23, 2, 5)
    assert tri(0.0) == tri(0.2) == pytest.approx(0.2) and tri(99.0) == tri(2.0)
    with pytest.raises(ValueError):
        StepTriangle(1.0, 0.23, 2, 0)


def test_weight_decay_and_lr_are_derived_as_airbench_derives_them():
    cfg = TrainConfig(**AIRBENCH94)
    assert cfg.weight_decay == 0.0153 / 11.5  # 0.0013304..., not 0.00133
    # The torch SGD the trainer builds: lr / batch and weight_decay * batch; airbench's: below.
    kilostep_scale = 1024 * (1 + 1 / (1 - 0.85))
    lr = 11.5 / kilostep_scale
    wd = 0.0153 * 1024 / kilostep_scale
    assert cfg.lr / cfg.batch_size == pytest.approx(lr, rel=1e-14)
    assert cfg.weight_decay * cfg.batch_size == pytest.approx(wd / lr, rel=1e-14)
    assert trainer_units(11.5, 0.0153, 0.85, 512)[0] == pytest.approx(0.75)  # the rate scales with the batch


class AirbenchLookahead:
    """airbench94's LookaheadState and its use in the training loop, re-stated."""

    def __init__(self, net: nn.Module, total: int) -> None:
        self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}
        self.alpha = 0.95**5 * (torch.arange(total + 1) / total) ** 3
        self.total, self.steps = total, 0

    def update(self, net: nn.Module, decay: float) -> None:
        for ema_param, net_param in zip(self.net_ema.values(), net.state_dict().values()):
            if net_param.dtype in (torch.half, torch.float):
                ema_param.lerp_(net_param, 1 - decay)
                net_param.copy_(ema_param)

    def after_step(self, net: nn.Module) -> None:
        self.steps += 1
        if self.steps % 5 == 0:
            self.update(net, decay=self.alpha[self.steps].item())
        if self.steps >= self.total:
            self.update(net, decay=1.0)


@pytest.mark.parametrize("plan", [[6, 6, 5], [5, 5]])  # 17 steps: the last 2 dropped; 10: none
def test_lookahead_copies_back_only_after_the_last_step_as_airbench(plan):
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    nets = []
    for mine in (True, False):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.85, nesterov=True)
        hooks = RunHooks(TrainConfig(model="airbench", lookahead_every=5), net, sum(plan)) if mine else None
        theirs = None if mine else AirbenchLookahead(net, sum(plan))
        live_after_epoch = []
        for epoch, n in enumerate(plan):
            if mine:
                hooks.start_epoch(epoch)
            for _ in range(n):
                nn.functional.cross_entropy(net(x), y, reduction="sum").backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                hooks.after_step() if mine else theirs.after_step(net)
            if mine:
                hooks.end_epoch()
            live_after_epoch.append({k: v.clone() for k, v in net.state_dict().items()})
        nets.append(live_after_epoch)
    for ours, airbench in zip(*nets):  # every epoch's evaluated model, and the final one
        for k in ours:
            assert torch.allclose(ours[k], airbench[k], rtol=1e-6, atol=1e-7), k


def _result(**changes) -> RunResult:
    base = dict(config={}, env={}, device="cpu", whiten_s=0.25, train_time_s=3.0,
                epochs=[EpochStats(epoch=1, lr=0.1, train_loss=1.0, train_acc=0.5, test_acc=0.5, epoch_s=1.5,
                                   eval_s=0.5, train_s=1.5),
                        EpochStats(epoch=2, lr=0.1, train_loss=1.0, train_acc=0.5, test_acc=0.6, epoch_s=1.5,
                                   eval_s=0.75, train_s=3.0)])
    return RunResult(**{**base, **changes})


def test_airbench_time_adds_whitening_and_the_final_evaluation_only():
    cfg = TrainConfig(**AIRBENCH94)
    assert airbench_time_s(cfg, _result()) == 0.25 + 3.0 + 0.75  # not the first epoch's evaluation
    assert airbench_time_s(TrainConfig(), _result()) is None  # not an airbench run
    assert airbench_time_s(cfg, _result(status="diverged")) is None
    assert airbench_time_s(cfg.replace(whiten=False), _result(whiten_s=None)) == 3.75


def test_airbench_time_travels_into_the_record_and_the_report_notes():
    results = [_result(airbench_time_s=4.0), _result(airbench_time_s=5.0)]
    record = CaseRecord.from_results(results, section="dawnbench", case="x", reference=False, step=None,
                                     profile="full", metric="train_time_s", seeds=[0, 1], target_acc=0.94,
                                     config={})
    back = CaseRecord.from_extra_info(record.to_extra_info())
    assert back.airbench_time_s == [4.0, 5.0]

    class Case:  # what report_notes reads of a runs.RunCase
        name, record = "test_dawnbench[airbench94-9.9ep-half]", back

    (note,) = report_notes([Case()])
    assert "4.50 s (median of 2)" in note and "3.29 s" in note and "3.83 s" in note
    assert set(PUBLISHED.values()) == {3.29, 3.83}
