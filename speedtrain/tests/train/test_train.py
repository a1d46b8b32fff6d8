import json
import math

import pytest
import torch

from speedtrain.train import loop as train_module
from speedtrain.train import optimizers
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import ConfigError
from speedtrain.train.loop import RunResult, train
from speedtrain.tests.conftest import TINY

# A run small enough for a unit test: 2 steps per epoch of a tiny ResNet-9 on random data.



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
def test_resnet9_quarter_width_learns_fashion_mnist_on_cpu(fashion_mnist_folder):
    """Real data, real learning: 2 epochs of a width-0.25 ResNet-9 on the first 5,000 training
    images in batches of 64. Measured on this project's 2-core CPU (one thread, as an xdist worker
    has, 2026-12-04): 79.6%, 80.1% and 79.5% on 1,000 test images for seeds 0-2, about 40 s each.
    The first 10,000 images in batches of 256 reached 81.3% in 87 s; the whole 60,000 passed the
    old floor of 88% but took 7 minutes of the test run. No profiled breakdown: it measures
    nothing here."""
    cfg = TrainConfig(dataset="fashion-mnist", data_dir=str(fashion_mnist_folder), width=0.25, epochs=2, batch_size=64,
                      lr=0.4 * 64 / 512, cutout=0, device="cpu", train_subset=5000, test_subset=1000,
                      breakdown_steps=0)
    result = train(cfg)
    assert result.status == "ok" and not result.synthetic
    assert result.final_acc >= 0.72, f"test accuracy after 2 epochs: {result.final_acc:.4f}"


# --- GPU-path hygiene: OOM classification, memory release, fused step, loader warm-up ---------

OOM_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
    RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes."),
]
NOT_OOM_ERRORS = [
    RuntimeError("shape mismatch"),
    RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, ...)`"),
    RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"),
    ValueError("out of memory"),  # not a runtime failure of an allocation
]


def _raised_from(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("backend='inductor' raised an error while compiling") from cause
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("exc", OOM_ERRORS, ids=lambda e: str(e)[:40])
def test_allocation_failures_are_oom_also_when_wrapped(exc):
    assert train_module.is_oom(exc)
    assert train_module.is_oom(_raised_from(exc))  # torch.compile re-raises from the original


@pytest.mark.parametrize("exc", NOT_OOM_ERRORS, ids=lambda e: str(e)[:40])
def test_other_failures_are_not_oom(exc):
    assert not train_module.is_oom(exc) and not train_module.is_oom(_raised_from(exc))


class _Failing(torch.nn.Module):
    def __init__(self, exc):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.exc = exc

    def forward(self, x):
        raise self.exc


def test_a_cublas_allocation_failure_is_recorded_as_oom(monkeypatch):
    monkeypatch.setattr(train_module, "build_model", lambda cfg: _Failing(OOM_ERRORS[2]))
    result = train(TrainConfig(**TINY))
    assert result.status == "oom" and "CUBLAS_STATUS_ALLOC_FAILED" in result.error


@pytest.mark.parametrize("exc", [OOM_ERRORS[0], RuntimeError("shape mismatch")], ids=["oom", "other error"])
def test_a_failed_run_releases_its_memory(monkeypatch, exc):
    """Memory is released before the run and in a finally, and the failed run's model is
    collectable although the caller (pytest) still holds the exception and its traceback."""
    import weakref

    models, releases = [], []
    monkeypatch.setattr(train_module, "build_model", lambda cfg: models.append(_Failing(exc)) or models[-1])
    monkeypatch.setattr(train_module, "release_memory", lambda device: releases.append(len(models)))
    caught = None
    try:
        train(TrainConfig(**TINY))
    except RuntimeError as error:
        caught = error
    assert (caught is None) == train_module.is_oom(exc)
    assert releases == [0, 1]  # before the model existed, and after the failure
    model = weakref.ref(models.pop())
    import gc
    gc.collect()
    assert model() is None, "the failed run's frames still hold its model"


def test_release_memory_empties_the_cuda_cache_and_restarts_the_peak(monkeypatch):
    from speedtrain.hw import timing

    calls = []
    monkeypatch.setattr(timing.gc, "collect", lambda: calls.append("gc"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    cuda = torch.device("cuda", 0)
    timing.release_memory(cuda)
    assert calls == ["gc", "empty_cache", ("reset", cuda)]
    calls.clear()
    timing.release_memory(torch.device("cpu"))
    assert calls == ["gc"]


def test_the_initial_grad_scale_suits_the_summed_loss():
    assert train_module.initial_grad_scale(1) == 2.0**16
    assert train_module.initial_grad_scale(512) == 2.0**7  # 2**16 / 512
    assert train_module.initial_grad_scale(100) == 2.0**9  # rounded down to a power of two
    assert train_module.initial_grad_scale(2**20) == 1.0


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_the_result_records_the_optimizer_and_the_scaler(precision):
    result = train(TrainConfig(**TINY, precision=precision))
    assert result.optimizer_impl == "fused"  # torch >= 2.4 has a fused SGD kernel on the CPU
    if precision == "fp16":
        # the warm-up lowered the first guess until a step did not overflow: no timed step is skipped
        guess = train_module.initial_grad_scale(TINY["batch_size"])
        assert result.grad_scale_init <= guess and math.log2(result.grad_scale_init).is_integer()
        assert result.grad_scale_final == result.grad_scale_init
        assert train(TrainConfig(**{**TINY, "warmup_steps": 0}, precision=precision)).grad_scale_init == guess
    else:
        assert result.grad_scale_init is None and result.grad_scale_final is None
    assert RunResult.from_dict(result.to_dict()).optimizer_impl == "fused"


@pytest.mark.parametrize("dtype,scaled", [(torch.float32, True), (torch.float32, False), (torch.float16, False)],
                         ids=["fp32-params-grad-scaler", "fp32-params", "fp16-params"])
def test_the_fused_step_matches_foreach_on_the_cpu(dtype, scaled):
    """Three steps of the trainer's SGD on the same gradients, fused against foreach: the same
    update (fp16 parameters within fp16 rounding: the fused kernel computes in fp32 and rounds once)."""
    cfg = TrainConfig(batch_size=8)
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(16, 8, generator=gen), torch.randn(8, generator=gen)]
    grads = [[torch.randn(p.shape, generator=gen) * 8 for p in start] for _ in range(3)]
    finals = []
    for implementation in ("fused", "foreach"):
        params = [p.clone().to(dtype).requires_grad_() for p in start]
        if implementation == "fused":
            opt = optimizers.make_sgd(params, cfg, torch.device("cpu"))
        else:
            opt = torch.optim.SGD(params, lr=0.0, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                  weight_decay=cfg.weight_decay * cfg.batch_size, foreach=True)
        assert optimizers.optimizer_impl(opt) == implementation
        scaler = torch.amp.GradScaler("cpu", init_scale=train_module.initial_grad_scale(8), enabled=scaled)
        for step_grads in grads:
            opt.param_groups[0]["lr"] = 0.4 / cfg.batch_size
            loss = sum((p.float() * g).sum() for p, g in zip(params, step_grads))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
        finals.append([p.detach().float() for p in params])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-3, atol=2e-3)
    for fused, foreach, before in zip(*finals, start):
        torch.testing.assert_close(fused, foreach, **tol)
        assert (fused - before).abs().max() > 0.1  # the steps did move the parameters


@pytest.mark.parametrize("loader,workers", [("gpu", 0), ("torch", 0), ("torch", 1)])
def test_the_loader_warm_up_leaves_no_trace(loader, workers):
    """Two epochs of batches are identical with and without a warm-up batch drawn first."""
    from speedtrain.data.datasets import load_dataset
    from speedtrain.train.loaders import make_train_loader

    cfg = TrainConfig(**{**TINY, "loader": loader, "workers": workers})
    data = load_dataset(cfg)
    epochs = []
    for warm in (False, True):
        train_loader = make_train_loader(data, cfg, torch.device("cpu"))
        if warm:
            x, y = train_loader.warm_up()
            assert x.shape == (cfg.batch_size, *cfg.input_shape) and y.shape == (cfg.batch_size,)
        epochs.append([batch for _ in range(2) for batch in train_loader])
    assert len(epochs[0]) == 2 * len(train_loader)
    for (xa, ya), (xb, yb) in zip(*epochs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(epochs[0][0][0], epochs[0][len(train_loader)][0])  # epochs do differ


@pytest.mark.parametrize("loader", ["gpu", "torch"])
def test_trained_weights_are_the_same_with_and_without_the_warm_up(monkeypatch, loader):
    from speedtrain.models.registry import build_model

    nets = []
    monkeypatch.setattr(train_module, "build_model", lambda cfg: nets.append(build_model(cfg)) or nets[-1])
    for warmup_steps in (0, 2):
        result = train(TrainConfig(**{**TINY, "loader": loader, "warmup_steps": warmup_steps}))
        assert result.status == "ok"
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name


def test_compile_mode_reaches_torch_compile(monkeypatch):
    modes = []

    def fake_compile(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    train(TrainConfig(**TINY, compile=True, compile_mode="max-autotune"))
    assert modes == ["max-autotune"]


def test_the_warm_up_lowers_a_too_high_grad_scale_until_no_step_overflows(monkeypatch):
    monkeypatch.setattr(train_module, "initial_grad_scale", lambda batch_size: 2.0**24)  # overflows in fp16
    result = train(TrainConfig(**TINY, precision="fp16"))
    assert result.status == "ok"
    assert result.grad_scale_init < 2.0**24
    assert result.grad_scale_final == result.grad_scale_init  # the timed steps skipped nothing


@pytest.mark.parametrize("optimizer,scale", [("sgd", 1 / 32), ("adamw", 1.0)])
def test_a_step_sets_every_rate_through_the_groups_lr_scale(optimizer, scale):
    """One way to set rates: the schedule's mean-loss lr times each group's lr_scale; for the
    trainer's SGD that is lr / batch exactly as before, for AdamW the lr itself."""
    from speedtrain.models.registry import build_model

    cfg = TrainConfig(**{**TINY, "optimizer": optimizer, "lr": 0.001 if optimizer == "adamw" else 0.4})
    net = build_model(cfg)
    step = train_module._Step(cfg, torch.device("cpu"), net, net)
    opt, scaler = step.optimizer()
    step(torch.randn(32, 3, 32, 32), torch.arange(32) % 10, 0.25, opt, scaler)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.25 * scale)] * len(opt.param_groups)
