"""Adam and AdamW run fused where the device has the kernel (issue 19, item 12): with fp16's
GradScaler the fused step takes the scale and the overflow flag on the device, where the
for-loop and foreach steps make GradScaler read the flag back to the host every step."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.models.registry import build_model
from speedtrain.train.loop import _Step, train

TINY = dict(synthetic=True, width=0.125, batch_size=32, train_subset=64, test_subset=32, epochs=1,
            device="cpu", warmup_steps=1)


class HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value back to the host (``.item()``, ``bool()``, ``float()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_runs_fused_and_the_result_says_so(optimizer):
    result = train(TrainConfig(**TINY, optimizer=optimizer, precision="fp16"))
    assert result.status == "ok" and result.optimizer_impl == "fused"


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_an_fp16_step_reads_nothing_back_to_the_host(optimizer):
    cfg = TrainConfig(**TINY, optimizer=optimizer, precision="fp16")
    torch.manual_seed(0)
    net = build_model(cfg)
    step = _Step(cfg, torch.device("cpu"), net, net)
    opt, scaler = step.optimizer()
    x, y = torch.randn(32, 3, 32, 32), torch.randint(10, (32,))
    step(x, y, 0.01, opt, scaler)  # the first step creates the optimiser's state
    with HostReads() as reads:
        step(x, y, 0.01, opt, scaler)
    assert reads.count == 0
