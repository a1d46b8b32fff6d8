"""Evaluation on the device (issue 19): no tensor is built from host data per batch (items 11),
and test-time augmentation survives a compiled model that reuses its output buffer, as CUDA-graph
trees do under compile_mode reduce-overhead (item 2)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from speedtrain.data.airbench_augment import multicrop_logits
from speedtrain.train.evaluation import evaluate
from speedtrain.train.metrics import EvalAccumulator


class HostCopies(TorchDispatchMode):
    """Counts tensors made from host data: ``aten.lift_fresh`` (``torch.tensor(list)``; with a
    device other than the CPU the constructor copies inside, unseen by dispatch modes, so the
    tests run on the CPU where the same call shows) and copies from the CPU to another device."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func is torch.ops.aten.lift_fresh.default:
            self.count += 1
        elif func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[-1] if func is torch.ops.aten.copy_.default else args[0]
            dst = kwargs.get("device") if func is torch.ops.aten._to_copy.default else args[0].device
            if isinstance(src, torch.Tensor) and src.device.type == "cpu" and dst is not None \
                    and torch.device(dst).type != "cpu":
                self.count += 1
        return func(*args, **kwargs)


def batches(n: int, classes: int = 10) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, 4, 4, generator=g), torch.randint(classes, (8,), generator=g)) for _ in range(n)]


def test_the_accumulator_copies_nothing_from_the_host_per_batch():
    logits = torch.randn(8, 10)
    labels = torch.randint(10, (8,))
    acc = EvalAccumulator(10, "cpu")
    with HostCopies() as copies:
        for _ in range(3):
            acc.update(logits, labels)
    assert copies.count == 0
    assert acc.result().total == 24


def test_the_counter_sees_a_tensor_built_from_a_list():
    with HostCopies() as copies:
        torch.tensor([1, 2, 3])
    assert copies.count == 1


@pytest.mark.parametrize("flip,translate", [(False, 0), (True, 0), (True, 1)])
def test_an_evaluation_copies_from_the_host_the_same_for_one_batch_as_for_five(flip, translate):
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    counts = []
    for n in (1, 5):
        with HostCopies() as copies:
            evaluate(model, batches(n), 10, flip, contextlib.nullcontext, translate)
        counts.append(copies.count)
    assert counts[0] == counts[1]


class ReusingModel(nn.Module):
    """Writes every output into one buffer, as a CUDA-graph replay writes into its static output:
    a tensor kept from an earlier call changes under the caller's feet."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
        self.out: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if self.out is None:
            self.out = torch.empty_like(y)
        return self.out.copy_(y)


@pytest.mark.parametrize("flip,translate", [(True, 0), (False, 1), (True, 1)])
def test_tta_keeps_each_views_logits_from_a_model_that_reuses_its_output(flip, translate):
    reusing = ReusingModel()
    x = batches(1)[0][0]
    with torch.no_grad():
        expected = multicrop_logits(reusing.net, x, flip=flip, translate=translate)
        got = multicrop_logits(reusing, x, flip=flip, translate=translate)
    assert torch.allclose(got, expected, atol=1e-6)
