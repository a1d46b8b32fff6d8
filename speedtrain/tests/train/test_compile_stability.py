"""torch.compile in the trainer (issue 19): nothing a run changes after its warm-up recompiles,
Dynamo starts each case fresh and the graphs are recorded, compile without a warm-up is refused,
and the backend flags a run sets are put back. Compiled with the ``aot_eager`` backend on the
CPU: Dynamo's tracing, guards and recompiles are the same as with inductor on a GPU."""

from __future__ import annotations

import pytest
import torch

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.hw.process_state import graphs_compiled
from speedtrain.train.loop import train

TINY_AIRBENCH = dict(model="airbench", synthetic=True, width=0.0625, batch_size=16, train_subset=48, test_subset=40,
                     device="cpu", warmup_steps=1, cutout=0, whiten=True, whiten_images=32)


@pytest.fixture
def aot_eager(monkeypatch):
    """torch.compile as the trainer calls it, with the aot_eager backend (no C++ compiler needed)."""
    real = torch.compile

    def compile_aot_eager(model, mode=None):
        return real(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_aot_eager)


@pytest.mark.slow
def test_a_compiled_airbench_run_compiles_nothing_after_its_warm_up(aot_eager):
    """Three epochs across the whitening bias's freeze (before epoch 2), test and validation
    batches of other sizes than the training batch (40 and 16 images against 16), flip and
    translate TTA: every graph is made in the warm-up, none in the timed epochs or evaluations."""
    events = []
    cfg = TrainConfig(**TINY_AIRBENCH, epochs=3, whiten_bias_epochs=1, val_split=16, tta_flip=True,
                      tta_translate=1, compile=True)
    result = train(cfg, events=lambda key, meta: events.append((key, graphs_compiled())))
    assert result.status == "ok" and len(result.epochs) == 3
    assert result.compile_graphs >= 2  # training and evaluation at least
    assert result.compile_graphs_after_warmup == 0
    graphs = [g for key, g in events if key in ("run_start", "epoch_stop", "eval_accuracy", "run_stop")]
    assert len(set(graphs)) == 1, events


@pytest.mark.slow
def test_each_compiled_case_starts_dynamo_afresh(aot_eager):
    """Two compiled runs in a process each compile as a fresh process would (without the reset
    the second run reuses the first one's graphs and guards: 2, then 0 graphs; and cases of other
    shapes pile up recompiles towards Dynamo's limit of 8, after which it runs eagerly)."""
    cfg = TrainConfig(**TINY_AIRBENCH, epochs=1, whiten_bias_epochs=0, compile=True)
    counts = [train(cfg.replace(seed=seed)).compile_graphs for seed in range(2)]
    assert counts[0] >= 1 and counts == [counts[0]] * 2


def test_compile_without_a_warm_up_is_refused():
    with pytest.raises(ConfigError, match="^compile needs warmup_steps of at least 1: compilation happens in the "
                                          "untimed warm-up; got warmup_steps 0$"):
        TrainConfig(compile=True, warmup_steps=0)


@pytest.mark.parametrize("flags", [True, False])
def test_a_run_puts_back_the_backend_flags_it_changed(flags):
    """An fp32 run sets benchmark on and both TF32 flags off: from all on or all off it changes some."""
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = flags
    try:
        train(TrainConfig(synthetic=True, width=0.125, batch_size=32, train_subset=32, test_subset=32, epochs=1,
                          device="cpu", warmup_steps=1))
        after = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        assert after == (flags, flags, flags)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
