import json
import math
import os
from pathlib import Path

import pytest
import torch

from speedtrain import train as train_module
from speedtrain.config import TrainConfig
from speedtrain.errors import ConfigError
from speedtrain.train import RunResult, train

# A run small enough for a unit test: 2 steps per epoch of a tiny ResNet-9 on random data.
TINY = dict(synthetic=True, width=0.125, batch_size=32, train_subset=64, test_subset=64, epochs=2,
            device="cpu", warmup_steps=1)

SHARED_DATA = Path(os.environ.get("SPEEDTRAIN_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


class FakeMonitor:
    def __init__(self):
        self.calls = []

    def start(self):
        self.calls.append("start")

    def pause(self):
        self.calls.append("pause")

    def resume(self):
        self.calls.append("resume")

    def stop(self):
        self.calls.append("stop")
        return {"available": False, "reason": "fake"}


def test_a_run_records_every_figure_per_epoch():
    monitor = FakeMonitor()
    lines = []
    result = train(TrainConfig(**TINY, target_acc=0.01), monitor=monitor, log=lines.append)
    assert result.status == "ok" and not result.diverged and result.synthetic
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert result.train_time_s == pytest.approx(sum(e.epoch_s for e in result.epochs))
    assert result.epochs[-1].train_s == pytest.approx(result.train_time_s)
    assert result.eval_time_s == pytest.approx(sum(e.eval_s for e in result.epochs))
    # target 1% is reached after the first epoch: time to target is that epoch's training time
    assert result.reached_target and result.time_to_target_s == pytest.approx(result.epochs[0].epoch_s)
    assert result.final_acc == result.epochs[-1].test_acc
    assert result.images_per_s == pytest.approx(2 * 64 / result.train_time_s)
    assert result.timer["clock"] == "perf_counter"
    assert any("evaluation" in item for item in result.timer["excludes"])
    # telemetry is paused for each evaluation, like the training clock
    assert monitor.calls == ["start", "pause", "resume", "pause", "stop"]
    assert result.gpu == {"available": False, "reason": "fake"}
    assert "evaluation" in result.timer["telemetry"]
    assert len(lines) == 4  # what runs, the column header, one line per epoch
    assert "SYNTHETIC" in lines[0] and "parameters" in lines[0]
    assert result.env["torch"] == torch.__version__ and result.device.startswith("cpu")


def test_unreached_target_is_null():
    result = train(TrainConfig(**TINY, target_acc=1.0))
    assert not result.reached_target and result.time_to_target_s is None


def test_warm_up_is_undone():
    """The untimed warm-up steps must leave no trace: same seed, same losses with or without them."""
    a = train(TrainConfig(**{**TINY, "warmup_steps": 0}))
    b = train(TrainConfig(**{**TINY, "warmup_steps": 3}))
    assert [e.train_loss for e in a.epochs] == pytest.approx([e.train_loss for e in b.epochs], rel=1e-5)


def test_same_seed_same_run_and_other_seed_differs():
    a, b = train(TrainConfig(**TINY)), train(TrainConfig(**TINY))
    c = train(TrainConfig(**TINY, seed=1))
    assert [e.train_loss for e in a.epochs] == pytest.approx([e.train_loss for e in b.epochs], rel=1e-5)
    assert a.epochs[0].train_loss != pytest.approx(c.epochs[0].train_loss, rel=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "half"])
def test_every_precision_the_cpu_can_run(precision):
    result = train(TrainConfig(**TINY, precision=precision, channels_last=True))
    assert result.status == "ok"
    assert all(math.isfinite(e.train_loss) for e in result.epochs)


def test_tf32_is_refused_on_the_cpu():
    with pytest.raises(ConfigError, match="tf32"):
        train(TrainConfig(**TINY, precision="tf32"))


def test_torch_loader_and_tta_run():
    result = train(TrainConfig(**TINY, loader="torch", workers=1, tta_flip=True))
    assert result.status == "ok"
    assert any("DataLoader" in item for item in result.timer["includes"])
    assert any("TTA" in item for item in result.timer["excludes"])


def test_a_diverging_run_is_recorded_and_stops():
    result = train(TrainConfig(**{**TINY, "epochs": 4}, lr=1e12, label_smoothing=0.0))
    assert result.diverged and result.status == "diverged"
    assert len(result.epochs) < 4
    assert "non-finite" in result.error


def test_out_of_memory_is_recorded_not_raised(monkeypatch):
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module, "build_model", lambda cfg: Exploding())
    monitor = FakeMonitor()
    result = train(TrainConfig(**TINY), monitor=monitor)
    assert result.status == "oom" and "out of memory" in result.error
    assert result.train_time_s is None and result.epochs == []
    assert monitor.calls == ["stop"] and result.gpu is not None


def test_other_errors_are_not_swallowed(monkeypatch):
    def broken(cfg):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(train_module, "build_model", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(TrainConfig(**TINY))


def test_result_json_round_trip(tmp_path):
    result = train(TrainConfig(**TINY))
    path = tmp_path / "run.json"
    result.save_json(str(path))
    loaded = RunResult.from_dict(json.loads(path.read_text()))
    assert loaded.epochs == result.epochs and loaded.config == result.config
    assert TrainConfig.from_dict(loaded.config) == TrainConfig(**TINY)


def test_a_diverged_result_still_writes_valid_json(tmp_path):
    result = train(TrainConfig(**{**TINY, "epochs": 3}, lr=1e12))
    path = tmp_path / "diverged.json"
    result.save_json(str(path))
    assert json.loads(path.read_text())["status"] == "diverged"


@pytest.mark.slow
def test_resnet9_quarter_width_learns_fashion_mnist_on_cpu():
    """Real data, real learning: 2 epochs of a width-0.25 ResNet-9 reach 88% test accuracy."""
    folder = SHARED_DATA / "fashion-mnist"
    if not folder.is_dir():
        pytest.skip(f"real Fashion-MNIST not found at {folder} (set SPEEDTRAIN_TEST_DATA to the folder holding fashion-mnist/)")
    cfg = TrainConfig(dataset="fashion-mnist", data_dir=str(folder), width=0.25, epochs=2, batch_size=256,
                      lr=0.4 * 256 / 512, cutout=0, device="cpu")
    result = train(cfg)
    assert result.status == "ok" and not result.synthetic
    assert result.final_acc >= 0.88, f"test accuracy after 2 epochs: {result.final_acc:.4f}"
