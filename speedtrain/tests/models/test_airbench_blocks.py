"""The airbench building blocks, each on the CPU with tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.data import augment
from speedtrain.models.airbench import (
    airbench_net, dirac_init_, init_whitening, set_whitening_bias_trainable, whitening_filters,
)
from speedtrain.data.airbench_augment import alternating_flip, alternating_flip_mask, flip_bits, multicrop_logits
from speedtrain.recipes.airbench import AIRBENCH_MOMENTUM, trainer_units
from speedtrain.tests.airbench_reference import airbench_sgd
from speedtrain.train.optimizers import build_optimizer, set_lr, split_bn_biases
from speedtrain.train.schedule import epoch_steps
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.flops import count_flops, train_flops_per_image
from speedtrain.train.lookahead import Lookahead
from speedtrain.models.registry import build_model, count_parameters


def correlated_images(n: int = 64, side: int = 16, seed: int = 0) -> torch.Tensor:
    """Zero-mean images whose neighbouring pixels and channels are strongly correlated."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.randn(n, 3, side + 2, side + 2, generator=g), 3, stride=1)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    return torch.einsum("dc,nchw->ndhw", mix, x) * 3


def patch_second_moment(features: torch.Tensor) -> torch.Tensor:
    f = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    return f.T @ f / f.shape[0]


# --- the network ----------------------------------------------------------------------------


def test_network_shapes_and_size() -> None:
    net = airbench_net()
    assert list(dict(net.named_children())) == ["whiten", "block1", "block2", "block3", "head"]
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert net.whiten.conv.weight.shape == (24, 3, 2, 2)  # 2 signs x 3 channels x 2 x 2
    assert count_parameters(net) == 1_972_792  # the paper's "1.97 million parameters"
    assert airbench_net((8, 16, 32), num_classes=7, in_channels=1)(torch.zeros(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(ValueError, match="three block widths"):
        airbench_net((64, 256))


def test_frozen_flags_and_batch_norm_settings() -> None:
    net = airbench_net()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6
    assert all(not bn.weight.requires_grad and bn.bias.requires_grad for bn in bns)
    assert all(bn.momentum == 0.4 and bn.eps == 1e-12 and torch.all(bn.weight == 1) for bn in bns)
    assert not net.whiten.conv.weight.requires_grad and net.whiten.conv.bias.requires_grad
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)][1:]
    assert all(c.bias is None and c.weight.requires_grad for c in convs)
    assert net.head.linear.bias is None and net.head.scale.factor == pytest.approx(1 / 9)
    set_whitening_bias_trainable(net, False)
    assert not net.whiten.conv.bias.requires_grad
    assert airbench_net(freeze_whiten=False).whiten.conv.weight.requires_grad


def test_dirac_init_is_the_identity_on_the_first_channels() -> None:
    torch.manual_seed(0)
    net = airbench_net((8, 16, 16))
    for conv in [m for m in net.modules() if isinstance(m, nn.Conv2d)][1:]:
        x = torch.randn(2, conv.in_channels, 5, 5)
        y = conv(x)
        k = min(conv.in_channels, conv.out_channels)  # block1.conv1 here: 24 -> 8 channels
        assert torch.allclose(y[:, :k], x[:, :k], atol=1e-6)  # implicit residual
        assert conv.out_channels == k or y[:, k:].abs().sum() > 0  # the rest keep their random init
    # Off, the same convs are not the identity; the whitening conv is never dirac-initialised.
    plain = airbench_net((8, 16, 16), dirac=False)
    assert not torch.equal(plain.block1.conv2(x := torch.randn(1, 8, 5, 5))[:, :8], x)
    assert dirac_init_(build_model(TrainConfig(width=0.125))) == 8  # any network: ResNet-9's 8 convs


def test_whitening_decorrelates_patches() -> None:
    images = correlated_images()
    conv = airbench_net((8, 8, 8)).whiten.conv
    before = patch_second_moment(F.conv2d(images, conv.weight[:12]))
    seconds = init_whitening(conv, images, eps=1e-6)
    out = F.conv2d(images, conv.weight)
    after = patch_second_moment(out[:, :12])
    assert (before - torch.eye(12)).abs().max() > 0.1  # random filters do not whiten
    assert torch.allclose(after, torch.eye(12), atol=1e-3)
    assert torch.equal(out[:, 12:], -out[:, :12])  # the second half: the same filters negated
    assert 0 <= seconds < 5
    # The larger eps of airbench (5e-4) damps only directions whose variance is near eps.
    filters = whitening_filters(images, eps=5e-4)
    assert filters.shape == (12, 3, 2, 2)
    with pytest.raises(ValueError, match="needs 24 filters"):
        init_whitening(nn.Conv2d(3, 12, 2), images)


def test_airbench_flops_are_a_third_of_resnet9() -> None:
    with torch.device("meta"):
        net = airbench_net()
    count = count_flops(net, (3, 32, 32))

    def conv(c_in: int, c_out: int, side: int, k: int = 3) -> int:
        return 2 * c_in * c_out * k * k * side * side

    # 32 -> 31 (2x2 conv, no padding) -> pools floor to 15, 7, 3.
    whiten, first = conv(3, 24, 31, k=2), conv(24, 64, 31)
    forward = (whiten + first + conv(64, 64, 15) + conv(64, 256, 15) + conv(256, 256, 7)
               + conv(256, 256, 7) + conv(256, 256, 3) + 2 * 256 * 10)
    assert count.forward == forward
    # Frozen whitening weight and no gradient for the images: the whitening conv has no backward.
    assert count.backward == 2 * (forward - whiten)
    assert count.train == pytest.approx(0.708e9, rel=1e-3)
    assert train_flops_per_image(TrainConfig()) / count.train == pytest.approx(3.21, abs=0.01)
    # Once the whitening bias is frozen too (after epoch 3), the first block's input gradient goes.
    with torch.device("meta"):
        net = airbench_net()
    set_whitening_bias_trainable(net, False)
    assert count_flops(net, (3, 32, 32)).backward == 2 * (forward - whiten) - first


# --- optimiser ------------------------------------------------------------------------------


def trainer_sgd(net: nn.Module, batch_size: int, lr: float = 11.5) -> torch.optim.Optimizer:
    """The trainer's optimiser for airbench's decoupled ``lr`` (and its weight decay 0.0153) at
    ``batch_size``, through the trainer's units, at the schedule's peak."""
    mean_lr, wd = trainer_units(lr, 0.0153, AIRBENCH_MOMENTUM, batch_size)
    cfg = TrainConfig(model="airbench", batch_size=batch_size, lr=mean_lr, weight_decay=wd, momentum=AIRBENCH_MOMENTUM,
                      nesterov=True, bn_bias_lr_scale=64.0, device="cpu")
    opt = build_optimizer(net, cfg, torch.device("cpu"))
    set_lr(opt, cfg.lr)
    return opt


def test_the_trainers_groups_are_airbenchs_batch_norm_shifts_and_rates() -> None:
    net = airbench_net((8, 16, 16))
    shifts, others = split_bn_biases(net)
    assert len(shifts) == 6 and all(p.ndim == 1 for p in shifts)
    assert len(shifts) + len(others) == len(list(net.parameters()))
    opt = trainer_sgd(net, batch_size=1024)
    kilostep = 1024 * (1 + 1 / 0.15)
    shift_group = next(g for g in opt.param_groups if g.get("bn_shift"))
    other_group = next(g for g in opt.param_groups if not g.get("bn_shift"))
    assert {id(p) for p in shift_group["params"]} == {id(p) for p in shifts}
    assert other_group["lr"] == pytest.approx(11.5 / kilostep)
    assert shift_group["lr"] == pytest.approx(64 * 11.5 / kilostep)
    # Decoupled: the decay per step (torch lr x wd) is the same in both groups, whatever the lr.
    for group in opt.param_groups:
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.0153 * 1024 / kilostep)
        assert group["nesterov"] and group["momentum"] == 0.85


def _one_step(lr: float, zero_loss: bool) -> nn.Module:
    torch.manual_seed(0)
    net = airbench_net((4, 8, 8))
    opt = trainer_sgd(net, batch_size=8, lr=lr)
    loss = net(torch.randn(8, 3, 16, 16)).sum() * (0.0 if zero_loss else 1.0)
    loss.backward()
    opt.step()
    return net


def test_weight_decay_does_not_depend_on_the_learning_rate() -> None:
    slow, fast = _one_step(lr=1.0, zero_loss=True), _one_step(lr=20.0, zero_loss=True)
    for a, b in zip(slow.parameters(), fast.parameters()):
        assert torch.allclose(a, b)
    moved = _one_step(lr=1.0, zero_loss=False)
    assert not torch.allclose(moved.block1.conv1.weight, slow.block1.conv1.weight)
    assert all(torch.all(bn.weight == 1) for bn in moved.modules() if isinstance(bn, nn.BatchNorm2d))


@pytest.mark.parametrize(
    ("epochs", "per_epoch", "expected"),
    [(9.9, 48, [48] * 9 + [44]), (2, 10, [10, 10]), (0.1, 30, [3]), (0.05, 10, [1]), (2.5, 4, [4, 4, 2])],
)
def test_fractional_epochs(epochs: float, per_epoch: int, expected: list[int]) -> None:
    assert epoch_steps(epochs, per_epoch) == expected
    assert sum(expected) == math.ceil(round(epochs * per_epoch, 9))


def test_fractional_epochs_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        epoch_steps(0, 10)


# --- lookahead ------------------------------------------------------------------------------


def test_lookahead_averages_and_syncs_every_k_steps() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    la = Lookahead(net, total_steps=10, start_step=2, every=2)
    w = net[0].weight
    assert not la.step(2)  # not after start_step
    assert la.step(4) and la.ema is not None  # first update: snapshot, model unchanged
    snapshot = w.detach().clone()
    with torch.no_grad():
        w.add_(1.0)  # what the optimiser would do
        net[1].num_batches_tracked.add_(7)
    assert not la.step(5) and torch.equal(w, snapshot + 1)  # between updates: untouched
    assert la.step(6)
    rho = 0.95**2 * (6 / 10) ** 3
    expected = rho * snapshot + (1 - rho) * (snapshot + 1)
    assert torch.allclose(w, expected) and torch.allclose(la.ema[0], expected)  # moved toward the EMA
    assert int(net[1].num_batches_tracked) == 7  # integer buffers are left alone
    with torch.no_grad():
        w.add_(5.0)
    la.sync()
    assert torch.allclose(w, expected)
    assert la.decay(10) == pytest.approx(0.95**2)


def test_lookahead_starts_from_the_model_it_was_built_on() -> None:
    # airbench's LookaheadState copies the model when built: a sync before any update restores it.
    net = nn.Linear(2, 2)
    before = net.weight.detach().clone()
    la = Lookahead(net, total_steps=5)
    with torch.no_grad():
        net.weight.add_(1.0)
    la.sync()
    assert torch.equal(net.weight, before)
    # start_step > 0: no EMA until the first scheduled step after it, so nothing to copy back.
    late = Lookahead(net, total_steps=5, start_step=2, every=1)
    with torch.no_grad():
        net.weight.add_(1.0)
    late.sync()
    assert torch.equal(net.weight, before + 1)


# --- augmentation ---------------------------------------------------------------------------


def test_alternating_flip_flips_every_image_on_alternate_epochs() -> None:
    images = torch.arange(6 * 4 * 4, dtype=torch.float32).view(6, 1, 4, 4)
    bits = flip_bits(6, torch.Generator().manual_seed(1), images.device)
    assert 0 < int(bits.sum()) < 6
    for epoch in range(4):
        mask = alternating_flip_mask(epoch, bits)
        assert torch.equal(mask, bits if epoch % 2 == 0 else ~bits)
        out = alternating_flip(images, epoch, bits)
        assert torch.equal(out[mask], images[mask].flip(-1)) and torch.equal(out[~mask], images[~mask])
    # Over any two consecutive epochs, each image is seen once each way.
    assert torch.all(alternating_flip_mask(3, bits) ^ alternating_flip_mask(4, bits))


def test_translation_is_the_existing_reflect_pad_and_crop() -> None:
    # Airbench's translate=2: a shift uniform over [-2, 2] on each axis, as random_crop gives.
    n, pad = 2500, 2
    images = torch.arange(8 * 8).view(1, 1, 8, 8).expand(n, 1, 8, 8)
    out = augment.random_crop(augment.reflect_pad(images, pad), (8, 8), torch.Generator().manual_seed(0))
    centre = out[:, 0, 3, 3]  # value 27 (row 3, col 3) moved by the shift
    dy, dx = 3 - (centre // 8 - 0), 3 - centre % 8
    shifts = torch.stack((dy, dx), 1)
    counts = torch.unique(shifts, dim=0, return_counts=True)[1]
    assert len(counts) == 25 and shifts.abs().max() == pad
    assert counts.min() > 0.6 * n / 25 and counts.max() < 1.4 * n / 25


def test_tta_weights_the_six_views() -> None:
    x = torch.randn(2, 3, 6, 6)
    got = multicrop_logits(nn.Identity(), x)
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    views = [x, p[..., :6, :6], p[..., 2:, 2:]]
    mirrored = [(v + v.flip(-1)) / 2 for v in views]
    assert torch.allclose(got, 0.5 * mirrored[0] + 0.25 * mirrored[1] + 0.25 * mirrored[2])
    assert torch.allclose(multicrop_logits(nn.Identity(), x, translate=0), mirrored[0])
    assert torch.equal(multicrop_logits(nn.Identity(), x, flip=False, translate=0), x)


def test_tta_equals_the_plain_output_on_images_it_cannot_change() -> None:
    # Spatially constant images are unchanged by mirroring and reflect-padded shifts.
    torch.manual_seed(0)
    net = airbench_net((4, 8, 8)).eval()
    x = torch.randn(3, 3, 1, 1).expand(3, 3, 16, 16).contiguous()
    with torch.no_grad():
        assert torch.allclose(multicrop_logits(net, x), net(x), atol=1e-6)
        asymmetric = torch.randn(3, 3, 16, 16)
        assert not torch.allclose(multicrop_logits(net, asymmetric), net(asymmetric), atol=1e-4)


# --- together -------------------------------------------------------------------------------


def test_the_blocks_train_a_tiny_network() -> None:
    torch.manual_seed(0)
    net = airbench_net((8, 16, 16))
    x, y = correlated_images(32, 16), torch.arange(32) % 10
    init_whitening(net.whiten.conv, x)
    # A high lr: airbench's 11.5 is per 1024 examples, and this batch is 32 images.
    opt = trainer_sgd(net, batch_size=32, lr=100.0)
    la = Lookahead(net, total_steps=30, start_step=10, every=5)
    losses = []
    for step in range(1, 31):
        loss = F.cross_entropy(net(x), y, reduction="sum")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        la.step(step)
        losses.append(float(loss.detach()) / 32)
    assert losses[-1] < 0.75 * losses[0]  # measured: 2.30 -> 1.43


def test_the_trainers_step_is_airbenchs_step() -> None:
    # The same update, two spellings: airbench's own (the test reference) and the trainer's units.
    torch.manual_seed(0)
    ours, theirs = airbench_net((4, 8, 8)), airbench_net((4, 8, 8))
    theirs.load_state_dict(ours.state_dict())
    start = ours.block1.conv1.weight.detach().clone()
    x, y = correlated_images(16, 16), torch.arange(16) % 10
    for net, opt in ((ours, trainer_sgd(ours, 16)), (theirs, airbench_sgd(theirs, 16))):
        for _ in range(3):
            F.cross_entropy(net(x), y, reduction="sum").backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    assert not torch.allclose(ours.block1.conv1.weight, start)  # it stepped
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
