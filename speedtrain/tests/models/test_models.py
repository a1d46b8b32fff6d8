"""Tests of speedtrain.models.resnets: shapes, parameter counts and every model knob, on the CPU."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.models.blocks import GhostBatchNorm2d
from speedtrain.models.registry import build_model, count_parameters, prepare_for_precision

RESNET9_PARAMS = 6_573_120  # width 1, 3 input channels, 10 classes, residual (1, 3)
RESNET18_PARAMS = 11_173_962  # CIFAR stem, 10 classes: the well-known CIFAR ResNet-18 size


def make(**kw) -> TrainConfig:
    return TrainConfig(**kw)


def bn_modules(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def conv_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are tiny: one thread is as fast, and does not spin against parallel test runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- shapes -----------------------------------------------------------------------------------

ARCHS = [("resnet9", "cifar", d) for d in ("maxpool", "strided", "strided1x1")] + [
    ("resnet18", s, d) for s in ("cifar", "imagenet") for d in ("maxpool", "strided")
]


@pytest.mark.parametrize("model,stem,downsample", ARCHS)
@pytest.mark.parametrize("dataset", ["cifar10", "fashion-mnist"])
def test_output_shape_for_every_architecture_channels_and_side(model, stem, downsample, dataset):
    # Shapes do not depend on the width, so a narrow network keeps the grid fast.
    for side in (8, 9, 24, 28, 32, 48, 96):
        cfg = make(model=model, stem=stem, downsample=downsample, dataset=dataset, image_size=side,
                   width=0.125, crop_padding=0, cutout=0)
        net = build_model(cfg)
        x = torch.randn(2, *cfg.input_shape)
        assert cfg.input_shape[0] == (1 if dataset == "fashion-mnist" else 3)
        with torch.no_grad():
            assert net(x).shape == (2, 10)  # training mode: BN statistics over even a 1x1 map
            net.eval()
            assert net(x).shape == (2, 10)


def test_full_width_models_give_logits():
    for cfg in (make(), make(model="resnet18", downsample="strided"), make(model="resnet18", stem="imagenet")):
        out = build_model(cfg)(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("model", ["resnet9", "resnet18"])
@pytest.mark.parametrize("side", [28, 32])
def test_strided_and_maxpool_give_the_same_feature_map_shape(model, side):
    shapes = []
    for downsample in ("maxpool", "strided") + (("strided1x1",) if model == "resnet9" else ()):
        cfg = make(model=model, downsample=downsample, image_size=side, width=0.125)
        net = build_model(cfg)
        x = torch.randn(2, 3, side, side)
        shapes.append((net[:-1](x).shape, net(x).shape))
    assert all(s == shapes[0] for s in shapes)
    assert shapes[0][0][-1] == side // 8 + (side % 8 > 0)  # three halvings, rounding up


def test_strided1x1_is_refused_for_resnet18():
    with pytest.raises(ConfigError, match="strided1x1"):
        build_model(make(model="resnet18", downsample="strided1x1"))


# --- parameter counts -------------------------------------------------------------------------


def resnet9_params_by_hand(c_in=3, classes=10, widths=(64, 128, 256, 512), residual=(1, 3), layer_convs=1):
    conv = lambda a, b: a * b * 3 * 3  # noqa: E731 - 3x3 conv without bias
    bn = lambda c: 2 * c  # noqa: E731 - scale and shift
    total = conv(c_in, widths[0]) + bn(widths[0])
    for i in (1, 2, 3):
        c = widths[i]
        total += conv(widths[i - 1], c) + bn(c)
        total += (layer_convs - 1) * (conv(c, c) + bn(c))
        if i in residual:
            total += 2 * (conv(c, c) + bn(c))
    return total + widths[3] * classes  # linear without bias


def test_resnet9_parameter_count_matches_the_layer_formula():
    assert resnet9_params_by_hand() == RESNET9_PARAMS
    assert count_parameters(build_model(make())) == RESNET9_PARAMS
    assert count_parameters(build_model(make(dataset="fashion-mnist"))) == resnet9_params_by_hand(c_in=1)
    assert count_parameters(build_model(make(residual=()))) == resnet9_params_by_hand(residual=())
    assert count_parameters(build_model(make(layer_convs=2))) == resnet9_params_by_hand(layer_convs=2)


def test_resnet18_parameter_counts():
    assert count_parameters(build_model(make(model="resnet18", downsample="strided"))) == RESNET18_PARAMS
    # The maxpool variant keeps the same convs (1x1 shortcuts included), only the strides change.
    assert count_parameters(build_model(make(model="resnet18", downsample="maxpool"))) == RESNET18_PARAMS
    # ImageNet stem: a 7x7 instead of a 3x3 conv from 3 to 64 channels.
    imagenet = count_parameters(build_model(make(model="resnet18", stem="imagenet", downsample="strided")))
    assert imagenet == RESNET18_PARAMS + 3 * 64 * (49 - 9)


@pytest.mark.parametrize("model", ["resnet9", "resnet18"])
def test_channel_halving_quarters_the_conv_parameters(model):
    full = conv_params(build_model(make(model=model)))
    half = conv_params(build_model(make(model=model, width=0.5)))
    assert half / full == pytest.approx(0.25, rel=0.01)


def test_fewer_residual_branches_fewer_parameters():
    counts = [count_parameters(build_model(make(residual=r))) for r in ((), (1,), (1, 3), (1, 2, 3))]
    assert counts == sorted(counts) and len(set(counts)) == 4


def test_count_parameters_trainable_only_skips_frozen_bn_scales():
    net = build_model(make(freeze_bn_scale=True))
    scales = sum(bn.weight.numel() for bn in bn_modules(net))
    assert count_parameters(net) == RESNET9_PARAMS
    assert count_parameters(net, trainable_only=True) == RESNET9_PARAMS - scales


# --- ghost batch norm -------------------------------------------------------------------------


def _randomise_affine(*bns: nn.BatchNorm2d) -> None:
    w, b = torch.rand(bns[0].num_features) + 0.5, torch.randn(bns[0].num_features)
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(w)
            bn.bias.copy_(b)


def test_ghost_bn_with_one_split_is_plain_bn():
    ghost, plain = GhostBatchNorm2d(5, splits=1), nn.BatchNorm2d(5)
    _randomise_affine(ghost, plain)
    for _ in range(3):
        x = torch.randn(8, 5, 4, 4) * 3 + 1
        torch.testing.assert_close(ghost(x), plain(x))
    torch.testing.assert_close(ghost.running_mean, plain.running_mean)
    torch.testing.assert_close(ghost.running_var, plain.running_var)
    ghost.eval(), plain.eval()
    x = torch.randn(3, 5, 4, 4)
    torch.testing.assert_close(ghost(x), plain(x))
    assert ghost.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("channels_last", [False, True])
def test_ghost_bn_normalises_each_sub_batch_and_averages_running_stats(channels_last):
    splits, n, c = 4, 12, 3
    ghost = GhostBatchNorm2d(c, splits=splits)
    subs = [nn.BatchNorm2d(c) for _ in range(splits)]
    _randomise_affine(ghost, *subs)
    x = torch.randn(n, c, 5, 5) * 2 + torch.arange(n).view(n, 1, 1, 1)  # sub-batches differ
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = ghost(x)
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    # Sub-batch s holds images s, s+S, s+2S...; each is normalised by its own statistics.
    for s, bn in enumerate(subs):
        torch.testing.assert_close(y[s::splits], bn(x[s::splits]))
    # ... which are not the whole batch's.
    assert not torch.allclose(y, F.batch_norm(x, None, None, ghost.weight, ghost.bias, True))
    mean = torch.stack([bn.running_mean for bn in subs]).mean(0)
    var = torch.stack([bn.running_var for bn in subs]).mean(0)
    torch.testing.assert_close(ghost.running_mean, mean)
    torch.testing.assert_close(ghost.running_var, var)
    assert int(ghost.num_batches_tracked) == 1
    # Evaluation normalises with the averaged running statistics.
    ghost.eval()
    x = torch.randn(5, c, 5, 5)  # any batch size in eval
    torch.testing.assert_close(ghost(x), F.batch_norm(x, mean, var, ghost.weight, ghost.bias, False))


class _ReferenceGhostBatchNorm(nn.BatchNorm2d):
    """The implementation before NHWC statistics: reshape to (N/S, C*S, H, W) (a copy for an
    NHWC batch), one F.batch_norm, reshape back and restore the layout (a second copy)."""

    def __init__(self, num_features: int, splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.splits = splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.splits
        n, c, h, w = x.shape
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        mean, var = self.running_mean.repeat(s), self.running_var.repeat(s)
        weight = self.weight.repeat(s) if self.weight is not None else None
        bias = self.bias.repeat(s) if self.bias is not None else None
        y = F.batch_norm(x.reshape(n // s, c * s, h, w), mean, var, weight, bias, True, momentum, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(mean.view(s, c).mean(0))
            self.running_var.copy_(var.view(s, c).mean(0))
        y = y.reshape(n, c, h, w)
        if x.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous(memory_format=torch.channels_last)
        return y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16-input"])
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_ghost_bn_matches_the_reference_in_both_memory_formats(channels_last, affine, momentum, dtype):
    """Same outputs, input/weight/bias gradients and running statistics as the copying
    implementation, over several steps, and the output keeps the input's memory format."""
    splits, n, c = 4, 16, 6
    kw = dict(affine=affine, momentum=momentum)
    ghost, ref = GhostBatchNorm2d(c, splits, **kw), _ReferenceGhostBatchNorm(c, splits, **kw)
    if affine:
        _randomise_affine(ghost, ref)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-3, atol=2e-3)
    for step in range(3):
        x = (torch.randn(n, c, 5, 7) * 3 + torch.arange(n).view(n, 1, 1, 1)).to(dtype).contiguous(memory_format=fmt)
        grad = torch.randn(n, c, 5, 7).to(dtype).contiguous(memory_format=fmt)
        xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
        ys = [bn(xi) for bn, xi in zip((ghost, ref), xs)]
        assert ys[0].dtype == dtype and ys[0].is_contiguous(memory_format=fmt)
        torch.testing.assert_close(ys[0], ys[1], **tol)
        for y in ys:
            y.backward(grad)
        torch.testing.assert_close(xs[0].grad, xs[1].grad, **tol)
        if affine:
            torch.testing.assert_close(ghost.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(ghost.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-3)
            ghost.zero_grad(), ref.zero_grad()
        torch.testing.assert_close(ghost.running_mean, ref.running_mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ghost.running_var, ref.running_var, rtol=1e-5, atol=1e-5)
    assert int(ghost.num_batches_tracked) == 3


def test_ghost_bn_refuses_a_batch_it_cannot_split():
    with pytest.raises(ValueError, match="divisible by 4"):
        GhostBatchNorm2d(3, splits=4)(torch.randn(6, 3, 2, 2))


def test_ghost_bn_in_the_model_trains():
    net = build_model(make(ghost_bn_splits=2, width=0.125))
    bns = bn_modules(net)
    assert bns and all(isinstance(bn, GhostBatchNorm2d) and bn.splits == 2 for bn in bns)
    net(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(bn.weight.grad is not None for bn in bns)


# --- batch-norm scales ------------------------------------------------------------------------


def test_frozen_bn_scale_is_not_trained():
    net = build_model(make(freeze_bn_scale=True, bn_scale_init=0.5, width=0.125))
    bns = bn_modules(net)
    assert all(not bn.weight.requires_grad and bn.bias.requires_grad for bn in bns)
    before = [(bn.weight.clone(), bn.bias.clone()) for bn in bns]
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    F.cross_entropy(net(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    for bn, (w, b) in zip(bns, before):
        assert torch.equal(bn.weight, w) and torch.all(bn.weight == 0.5)
        assert not torch.equal(bn.bias, b)  # the shifts still train


def test_bn_scale_init():
    weights = torch.cat([bn.weight for bn in bn_modules(build_model(make(bn_scale_init=None)))])
    assert weights.min() >= 0 and weights.max() < 1 and weights.unique().numel() > 100
    assert all(torch.all(bn.weight == 1) for bn in bn_modules(build_model(make())))
    assert all(torch.all(bn.weight == 0.25) for bn in bn_modules(build_model(make(bn_scale_init=0.25))))
    assert all(torch.all(bn.bias == 0) for bn in bn_modules(build_model(make(bn_scale_init=None))))


# --- layouts, activations, layer options -------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(ghost_bn_splits=2), dict(downsample="strided1x1"),
     dict(model="resnet18", stem="imagenet", downsample="maxpool")],
)
def test_channels_last_gives_the_same_output(kw):
    net = build_model(make(width=0.25, **kw))
    x = torch.randn(4, 3, 32, 32)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    for train in (True, False):
        net.train(train), net_cl.train(train)
        torch.testing.assert_close(net_cl(x.contiguous(memory_format=torch.channels_last)), net(x),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,cls", [("relu", nn.ReLU), ("celu", nn.CELU), ("gelu", nn.GELU)])
@pytest.mark.parametrize("model", ["resnet9", "resnet18"])
def test_activation_is_the_one_asked_for(model, name, cls):
    net = build_model(make(model=model, activation=name, celu_alpha=0.3))
    kinds = {type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.CELU, nn.GELU))}
    assert kinds == {cls}
    if name == "celu":
        assert all(m.alpha == 0.3 for m in net.modules() if isinstance(m, nn.CELU))


def _layer1_order(**kw) -> list[type]:
    first = build_model(make(**kw)).layer1[0]
    return [type(m) for m in first]


def test_pool_position():
    assert _layer1_order() == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert _layer1_order(pool_before_bn=True) == [nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, nn.ReLU]
    assert _layer1_order(downsample="strided") == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    conv = build_model(make(downsample="strided1x1")).layer1[0].conv
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert build_model(make(pool_before_bn=True, width=0.125))(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_global_pool_and_logit_scale():
    net = build_model(make())
    assert isinstance(net.head.pool, nn.AdaptiveMaxPool2d) and net.head.scale.factor == 0.125
    assert net.head.linear.bias is None
    net = build_model(make(model="resnet18"))
    assert isinstance(net.head.pool, nn.AdaptiveAvgPool2d) and net.head.scale.factor == 1.0
    assert net.head.linear.bias is not None
    net = build_model(make(global_pool="avg", output_scale=2.0, width=0.125))
    assert isinstance(net.head.pool, nn.AdaptiveAvgPool2d)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x), 2.0 * net.head.linear(net.head.flatten(net.head.pool(net[:-1](x)))))


def test_width_rounds_and_keeps_at_least_one_channel():
    net = build_model(make(width=0.001))
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)][:2] == [1, 1]
    net = build_model(make(width=0.3))
    assert net.prep.conv.out_channels == round(64 * 0.3)


# --- precision --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [dict(), dict(ghost_bn_splits=2), dict(model="resnet18", downsample="strided")]
)
def test_half_keeps_bn_in_fp32_and_trains_on_cpu(kw):
    net = build_model(make(width=0.125, **kw))
    assert prepare_for_precision(net, "half") is net
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert all(t.dtype == torch.float32 for t in (m.weight, m.bias, m.running_mean, m.running_var))
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.weight.dtype == torch.float16
    out = net(torch.randn(4, 3, 32, 32, dtype=torch.float16))
    assert out.dtype == torch.float16
    F.cross_entropy(out.float(), torch.tensor([0, 1, 2, 3])).backward()
    for p in net.parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype and torch.isfinite(p.grad).all()
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(torch.randn(2, 3, 32, 32, dtype=torch.float16)).float()).all()


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_other_precisions_leave_the_model_alone(precision):
    net = build_model(make(width=0.125))
    state = copy.deepcopy(net.state_dict())
    assert prepare_for_precision(net, precision) is net
    assert all(torch.equal(v, state[k]) and v.dtype == state[k].dtype for k, v in net.state_dict().items())


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        prepare_for_precision(nn.Linear(2, 2), "fp8")


def test_build_is_deterministic_under_a_seed():
    torch.manual_seed(1)
    a = build_model(make(width=0.125, bn_scale_init=None))
    torch.manual_seed(1)
    b = build_model(make(width=0.125, bn_scale_init=None))
    assert all(torch.equal(p, q) for p, q in itertools.zip_longest(a.parameters(), b.parameters()))
