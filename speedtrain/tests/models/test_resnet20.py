"""ResNet-20 (speedtrain.models.resnets.resnet20): He et al.'s layout, its published size, dropout, knobs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.models.registry import count_parameters
from speedtrain.models.resnets import resnet20


def expected_parameters(c_in: int = 3, classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> int:
    """ResNet-20 counted by hand: 3x3 convs without bias, BN scale + shift, two 1x1 projections."""
    a, b, c = widths
    convs = 9 * (c_in * a + 6 * a * a + (a * b + 5 * b * b) + (b * c + 5 * c * c))
    projections = a * b + b * c
    bns = 2 * (7 * a + 6 * b + 6 * c + b + c)  # one per conv, projections included
    return convs + projections + bns + c * classes + classes


def test_parameter_count_is_the_published_027m():
    n = count_parameters(resnet20(3, 10))
    assert n == expected_parameters() == 272_474
    assert round(n / 1e6, 2) == 0.27  # He et al. 2016, table 6: ResNet-20, 0.27M
    assert count_parameters(resnet20(3, 10, width=0.5)) == expected_parameters(widths=(8, 16, 32))


def test_layout_is_twenty_weighted_layers_in_three_stages():
    model = resnet20(3, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 19  # + the classifier = 20 layers
    assert [(m.in_channels, m.out_channels, m.stride) for m in convs if m.kernel_size == (1, 1)] == [
        (16, 32, (2, 2)), (32, 64, (2, 2))]  # the two projection shortcuts
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [3, 3, 3]
    x = torch.randn(2, 3, 32, 32)
    assert model[:-1](x).shape == (2, 64, 8, 8)  # 32 -> 16 -> 8 by the stride-2 stages
    assert model(x).shape == (2, 10)
    assert [type(m) for m in model.head] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Linear]


def test_one_channel_28_pixel_inputs():
    assert resnet20(1, 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_dropout_acts_in_training_only(p):
    torch.manual_seed(0)
    model, x = resnet20(3, 10, width=0.25, dropout=p), torch.randn(4, 3, 16, 16)
    assert model.head.dropout.p == p
    assert torch.equal(model(x), model(x)) == (p == 0)  # batch norm in training mode is deterministic
    model.eval()
    assert torch.equal(model(x), model(x))


def test_batch_norm_and_activation_knobs_come_from_the_config():
    model = resnet20(3, 10, width=0.25, cfg=TrainConfig(activation="celu", bn_scale_init=0.5))
    assert any(isinstance(m, nn.CELU) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert all(torch.all(m.weight == 0.5) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_it_fits_a_small_batch():
    torch.manual_seed(0)
    model = resnet20(3, 2, width=0.25)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 2
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
