"""FLOP counts against hand calculations from the layer shapes, and the MFU arithmetic.

FlopCounterMode counts convolutions and matmuls only, at 2 FLOPs per multiply-accumulate; a
convolution costs 2 * Cin * Cout * k * k * Hout * Wout per image (padding not discounted).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speedtrain.train import flops
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.flops import MfuFigure, count_flops, flop_count, forward_flops_per_image, train_flops_per_image


def conv(c_in: int, c_out: int, side: int, k: int = 3) -> int:
    """Forward FLOPs of one conv producing a side x side map."""
    return 2 * c_in * c_out * k * k * side * side


def resnet9_forward_by_hand(width: float = 1.0, side: int = 32) -> tuple[int, int]:
    """(forward FLOPs, first conv's FLOPs) of myrtle.ai's ResNet-9 from its layer shapes."""
    c = [round(64 * width), round(128 * width), round(256 * width), round(512 * width)]
    s1, s2, s3 = side // 2, side // 4, side // 8  # after each 2x2 max-pool
    prep = conv(3, c[0], side)
    total = (
        prep
        + conv(c[0], c[1], side) + 2 * conv(c[1], c[1], s1)  # layer1 at full size, pool, residual
        + conv(c[1], c[2], s1)  # layer2 at 16, then pool
        + conv(c[2], c[3], s2) + 2 * conv(c[3], c[3], s3)  # layer3 at 8, pool, residual at 4
        + 2 * c[3] * 10  # linear 512 -> 10
    )
    return total, prep


def test_resnet9_forward_matches_the_hand_calculation() -> None:
    by_hand, _ = resnet9_forward_by_hand()
    assert forward_flops_per_image(TrainConfig()) == by_hand
    assert by_hand == pytest.approx(0.7585e9, rel=1e-3)  # the "0.76 GFLOP"


def test_resnet9_backward_is_twice_forward_less_the_first_conv_input_gradient() -> None:
    by_hand, prep = resnet9_forward_by_hand()
    count = flop_count(TrainConfig())
    # Each conv/linear: input gradient + weight gradient, each as costly as its forward;
    # the images need no gradient, so the prep conv's input gradient is never computed.
    assert count.backward == 2 * by_hand - prep
    assert train_flops_per_image(TrainConfig()) == 3 * by_hand - prep
    assert count.train == pytest.approx(2.272e9, rel=1e-3)  # "about 2.3 GFLOP"


def test_half_width_is_about_a_quarter() -> None:
    full, half = train_flops_per_image(TrainConfig()), train_flops_per_image(TrainConfig(width=0.5))
    assert forward_flops_per_image(TrainConfig(width=0.5)) == resnet9_forward_by_hand(0.5)[0]
    assert half / full == pytest.approx(0.25, abs=0.003)  # the 3-channel input keeps it a hair above


def test_image_size_scales_with_pixels() -> None:
    base, big = flop_count(TrainConfig()), flop_count(TrainConfig(image_size=64))
    assert big.forward == resnet9_forward_by_hand(side=64)[0]
    assert big.train / base.train == pytest.approx(4.0, rel=1e-4)  # only the 10-way linear does not scale


def test_strided_downsampling_saves_work() -> None:
    # A stride-2 conv computes a quarter of the output positions of the conv + max-pool.
    assert train_flops_per_image(TrainConfig(downsample="strided")) < 0.6 * train_flops_per_image(TrainConfig())


def test_resnet18_counts_and_ghost_batch_norm_changes_nothing() -> None:
    r18 = flop_count(TrainConfig(model="resnet18"))
    # The CIFAR ResNet-18 figure usually quoted, "0.56 GFLOPs", counts multiply-accumulates.
    assert r18.forward == pytest.approx(2 * 0.556e9, rel=0.01)
    ghost = flop_count(TrainConfig(ghost_bn_splits=16, batch_size=512))
    assert ghost == flop_count(TrainConfig())


def test_count_is_cached_by_the_fields_that_shape_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    flops._CACHE.clear()
    calls = []
    real = flops.count_flops
    monkeypatch.setattr(flops, "count_flops", lambda *a, **k: calls.append(1) or real(*a, **k))
    flop_count(TrainConfig(width=0.25))
    flop_count(TrainConfig(width=0.25, seed=3, lr=0.1, epochs=2, precision="bf16", batch_size=64))
    assert len(calls) == 1  # seed, lr, epochs, precision, batch do not shape the network
    flop_count(TrainConfig(width=0.25, residual=(1,)))
    assert len(calls) == 2


def test_count_flops_on_a_frozen_first_layer() -> None:
    # A linear layer below which nothing trains: no input gradient; frozen: no weight gradient.
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Linear(8, 4))
    assert count_flops(model, (3, 2, 2)) == flops.FlopCount(2 * (12 * 8 + 8 * 4), 2 * (12 * 8 + 2 * 8 * 4))
    model[1].weight.requires_grad_(False)
    model[1].bias.requires_grad_(False)
    model.zero_grad()
    assert count_flops(model, (3, 2, 2)).backward == 2 * 8 * 4  # only the last layer's weight gradient


def test_achieved_flops_and_mfu() -> None:
    assert flops.achieved_flops_per_s(6e12, 2.0) == 3e12
    assert flops.achieved_flops_per_s(6e12, 0.0) is None
    assert flops.mfu(3e12, 12e12) == 0.25
    assert flops.mfu(3e12, None) is None
    assert flops.mfu(None, 12e12) is None


def fake_peaks(gpu_name: str, precision: str) -> float | None:
    return {("NVIDIA A100-SXM4-40GB", "bf16"): 312e12}.get((gpu_name, precision))


@pytest.mark.parametrize(
    ("device", "gpu", "precision", "expected"),
    [
        ("cuda", "NVIDIA A100-SXM4-40GB", "bf16", MfuFigure(0.25, None, 312e12)),
        ("cpu", None, "fp32", MfuFigure(None, "no MFU on cpu: peaks are tabulated for NVIDIA GPUs only")),
        ("cuda", "NVIDIA Mystery GPU", "bf16", MfuFigure(None, "no MFU: no datasheet bf16 peak for 'NVIDIA Mystery GPU'")),
        ("cuda", None, "bf16", MfuFigure(None, "no MFU: the GPU's name is unknown")),
    ],
)
def test_mfu_figure_gives_a_value_or_a_reason(device: str, gpu: str | None, precision: str, expected: MfuFigure) -> None:
    assert flops.mfu_figure(78e12, device, gpu, precision, peak_lookup=fake_peaks) == expected


def test_a_data_parallel_run_is_measured_against_all_its_gpus() -> None:
    # 4 ranks train the global batch in the slowest rank's time: the FLOP/s are 4 GPUs' work
    assert flops.mfu_figure(624e12, "cuda", "NVIDIA A100-SXM4-40GB", "bf16", peak_lookup=fake_peaks,
                            gpus=4) == MfuFigure(0.5, None, 4 * 312e12)


def test_count_runs_on_the_meta_device_without_arithmetic() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    count = count_flops(model, (3, 4, 4))
    assert count.forward == conv(3, 8, 4) + 2 * 128 * 2
