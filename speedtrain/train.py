"""The one shared trainer: every benchmark case and ``speedtrain train`` run through :func:`train`.

Read it top to bottom: set-up (data, model, optimiser), an untimed warm-up that is undone,
then per epoch a timed training pass and a separately timed evaluation.

Timer rule (after cifar10-fast): the training clock covers what a user waits for while the
model learns and nothing else. It runs per epoch from the first training step to the last,
so it includes forward, backward and optimiser steps and the loader's work (augmentation,
host-to-device copies, DataLoader worker start-up in the first epoch). It excludes dataset
decoding and upload, model construction, the warm-up steps (cuDNN autotuning, torch.compile
compilation) and evaluation, which is timed on its own (flip TTA included there).
``time_to_target_s`` sums training seconds up to the end of the first epoch whose test
accuracy reaches the target, as DAWNBench did with validation excluded.

Loss convention (myrtle.ai): the loss is summed over the batch and SGD gets ``lr / batch``
and ``weight_decay * batch``, which is the same update as mean loss with ``lr`` and
``weight_decay`` but keeps fp16 gradients far from underflow in the ``half`` mode, which has
no loss scaler.
"""

from __future__ import annotations

import copy
import gc
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from speedtrain.atomic import write_json_atomic
from speedtrain.config import TrainConfig, resolve_device
from speedtrain.data import load_dataset, make_test_batches, make_train_loader, memory_format
from speedtrain.env import device_name, environment
from speedtrain.models import build_model, count_parameters, prepare_for_precision
from speedtrain.schedule import lr_schedule
from speedtrain.timing import Timer, synchronize

Log = Callable[[str], None]

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Monitor(Protocol):
    """What the trainer needs of a telemetry monitor (see speedtrain.gpumonitor)."""

    def start(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> dict[str, Any]: ...


@dataclass
class EpochStats:
    epoch: int
    lr: float  # learning rate at the epoch's last step
    train_loss: float  # mean per-image loss over the epoch
    train_acc: float  # fraction
    test_acc: float  # fraction
    epoch_s: float  # timed training seconds of this epoch
    eval_s: float  # evaluation seconds (not in epoch_s)
    train_s: float  # cumulative timed training seconds at the end of this epoch


@dataclass
class RunResult:
    config: dict[str, Any]
    env: dict[str, Any]
    device: str  # GPU name or "cpu: <model>"
    status: str = "ok"  # ok | diverged | oom
    error: Optional[str] = None
    synthetic: bool = False
    data_source: str = ""
    n_params: Optional[int] = None
    epochs: list[EpochStats] = field(default_factory=list)
    train_time_s: Optional[float] = None
    eval_time_s: Optional[float] = None
    warmup_s: Optional[float] = None
    time_to_target_s: Optional[float] = None
    target_acc: Optional[float] = None
    reached_target: bool = False
    final_acc: Optional[float] = None
    images_per_s: Optional[float] = None
    peak_mem_allocated_bytes: Optional[int] = None
    peak_mem_reserved_bytes: Optional[int] = None
    diverged: bool = False
    timer: dict[str, Any] = field(default_factory=dict)
    gpu: Optional[dict[str, Any]] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        data = dict(data)
        data["epochs"] = [EpochStats(**e) for e in data.get("epochs", [])]
        return cls(**data)

    def save_json(self, path: str) -> None:
        write_json_atomic(path, _finite(self.to_dict()))


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: a diverged loss is stored as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def timer_policy(cfg: TrainConfig, clock: str) -> dict[str, Any]:
    """What the training clock includes and excludes, stored with every result."""
    includes = ["forward, backward and optimiser steps"]
    if cfg.loader == "gpu":
        includes.append("augmentation of each epoch on the device")
    else:
        includes += [
            "DataLoader augmentation on the CPU and waiting for batches",
            "host-to-device copies of batches",
            "DataLoader worker start-up (first epoch)",
        ]
    excludes = [
        "dataset decoding and upload to the device",
        "model construction",
        f"warm-up ({cfg.warmup_steps} steps: cuDNN autotuning, torch.compile compilation), undone before timing",
        "evaluation (timed separately as eval_s" + (", flip TTA included)" if cfg.tta_flip else ")"),
    ]
    telemetry = "NVML samples and energy cover the timed training epochs only (paused for evaluation)"
    return {"clock": clock, "includes": includes, "excludes": excludes, "telemetry": telemetry}


def _set_matmul_precision(precision: str) -> None:
    # PyTorch lets cuDNN convolutions use TF32 by default; "fp32" must mean real fp32
    # for the fp32-vs-tf32 comparison to be honest.
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def _evaluate(model: nn.Module, batches: list, cfg: TrainConfig, autocast: Any) -> float:
    model.eval()
    correct, total = 0, 0
    with torch.no_grad(), autocast():
        for x, y in batches:
            logits = model(x)
            if cfg.tta_flip:  # average with the mirror image: myrtle.ai's flip TTA
                logits = logits + model(torch.flip(x, dims=(3,)))
            correct += int((logits.argmax(dim=1) == y).sum())
            total += y.numel()
    return correct / max(total, 1)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def train(cfg: TrainConfig, *, monitor: Optional[Monitor] = None, log: Optional[Log] = None) -> RunResult:
    """Train once as ``cfg`` describes and return what was measured.

    Invalid configurations and missing data raise :class:`speedtrain.errors.SpeedtrainError`.
    Running out of memory does not raise: the result says ``status='oom'`` and the memory is
    released, so a benchmark suite can go on with its next case.
    """
    device = resolve_device(cfg)
    result = RunResult(config=cfg.to_dict(), env=environment(device), device=device_name(device))
    try:
        _train(cfg, device, result, monitor, log or (lambda line: None))
    except Exception as exc:  # noqa: BLE001 - only OOM is swallowed, see below
        if not _is_oom(exc):
            raise
        result.status = "oom"
        result.error = str(exc).strip().splitlines()[0][:300]
    finally:
        if monitor is not None and result.gpu is None:
            result.gpu = monitor.stop()
    if result.status == "oom":
        # The exception's frames held the model and activations; now that it is gone,
        # give the memory back so the next case starts clean.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _train(cfg: TrainConfig, device: torch.device, result: RunResult, monitor: Optional[Monitor], log: Log) -> None:
    torch.backends.cudnn.benchmark = True  # autotuning happens in the warm-up, off the clock
    _set_matmul_precision(cfg.precision)
    half = cfg.precision == "half"
    input_dtype = torch.float16 if half else torch.float32
    layout = memory_format(cfg)
    amp_dtype = AUTOCAST_DTYPES.get(cfg.precision)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    data = load_dataset(cfg)
    result.synthetic, result.data_source = data.synthetic, data.source
    train_loader = make_train_loader(data, cfg, device, dtype=input_dtype)
    test_batches = make_test_batches(data, cfg, device, dtype=input_dtype)
    steps_per_epoch = len(train_loader)

    torch.manual_seed(cfg.seed)
    net = build_model(cfg)
    result.n_params = count_parameters(net)
    net = prepare_for_precision(net.to(device=device, memory_format=layout), cfg.precision)
    model = torch.compile(net) if cfg.compile else net

    schedule = lr_schedule(cfg)
    params = [p for p in net.parameters() if p.requires_grad]

    def make_optimizer() -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
        opt = torch.optim.SGD(
            params, lr=0.0, momentum=cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay * cfg.batch_size,
        )
        return opt, torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")

    def step(x: torch.Tensor, y: torch.Tensor, lr: float, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler) -> tuple[torch.Tensor, torch.Tensor]:
        for group in opt.param_groups:
            group["lr"] = lr / cfg.batch_size
        with autocast():
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=cfg.label_smoothing)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), (logits.argmax(dim=1) == y).sum()

    # --- warm-up, off the clock: autotune cuDNN and compile, then undo every update ----------
    warm_timer = Timer(device)
    warm_timer.start()
    if cfg.warmup_steps:
        saved = copy.deepcopy(net.state_dict())
        opt, scaler = make_optimizer()
        model.train()
        c, h, w = cfg.input_shape
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        x = torch.randn(cfg.batch_size, c, h, w, device=device, generator=gen, dtype=input_dtype)
        x = x.contiguous(memory_format=layout)
        y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device, generator=gen)
        for _ in range(cfg.warmup_steps):
            step(x, y, cfg.lr * 0.01, opt, scaler)
        _evaluate(model, test_batches[:1], cfg, autocast)
        net.load_state_dict(saved)
        del saved, opt, scaler, x, y
    result.warmup_s = warm_timer.stop()
    opt, scaler = make_optimizer()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    result.target_acc = cfg.target
    result.timer = timer_policy(cfg, warm_timer.clock)
    log(f"{cfg.model} width {cfg.width:g} ({result.n_params / 1e6:.2f}M parameters) on {cfg.dataset} "
        f"from {data.source}{' (SYNTHETIC)' if data.synthetic else ''}: {cfg.epochs} epochs x {steps_per_epoch} "
        f"steps of {cfg.batch_size}, {cfg.precision}{', channels_last' if cfg.channels_last else ''}, "
        f"loader {cfg.loader}, {result.device}; warm-up {result.warmup_s:.1f} s (untimed), target {cfg.target:.1%}")
    log(f"{'epoch':>5} {'lr':>7} {'loss':>8} {'train':>7} {'test':>7} {'epoch s':>8} {'total s':>8}")
    timer, eval_timer = Timer(device), Timer(device)
    train_s = eval_s_total = 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        # The telemetry windows match the training clock, so evaluation is left out of them.
        if monitor is not None and epoch == 1:
            monitor.start()
        elif monitor is not None:
            monitor.resume()
        timer.start()
        for i, (x, y) in enumerate(train_loader):
            lr = schedule(epoch - 1 + (i + 1) / steps_per_epoch)
            loss, hits = step(x, y, lr, opt, scaler)
            loss_sum += loss.float()  # stays on the device: no sync per step
            correct += hits
        epoch_s = timer.stop()  # synchronises: the epoch's GPU work is done
        if monitor is not None:
            monitor.pause()
        train_s += epoch_s
        n_seen = steps_per_epoch * cfg.batch_size
        train_loss = float(loss_sum) / n_seen
        if not math.isfinite(train_loss):
            result.diverged, result.status = True, "diverged"
            result.error = f"non-finite training loss in epoch {epoch}"
            log(f"{epoch:>5} diverged: the training loss is {train_loss}; stopping")
            break

        eval_timer.start()
        test_acc = _evaluate(model, test_batches, cfg, autocast)
        eval_s = eval_timer.stop()
        eval_s_total += eval_s
        result.epochs.append(EpochStats(
            epoch=epoch, lr=lr, train_loss=train_loss, train_acc=int(correct) / n_seen,
            test_acc=test_acc, epoch_s=epoch_s, eval_s=eval_s, train_s=train_s,
        ))
        if test_acc >= cfg.target and result.time_to_target_s is None:
            result.time_to_target_s = train_s
        log(f"{epoch:>5} {lr:>7.4f} {train_loss:>8.4f} {int(correct) / n_seen:>7.2%} {test_acc:>7.2%} "
            f"{epoch_s:>8.2f} {train_s:>8.2f}")
    synchronize(device)
    if monitor is not None:
        result.gpu = monitor.stop()

    result.train_time_s = train_s
    result.eval_time_s = eval_s_total
    result.reached_target = result.time_to_target_s is not None
    result.final_acc = result.epochs[-1].test_acc if result.epochs else None
    images = steps_per_epoch * cfg.batch_size * (len(result.epochs) + (1 if result.diverged else 0))
    result.images_per_s = images / train_s if train_s > 0 else None
    if device.type == "cuda":
        result.peak_mem_allocated_bytes = torch.cuda.max_memory_allocated(device)
        result.peak_mem_reserved_bytes = torch.cuda.max_memory_reserved(device)


def format_summary(result: RunResult) -> str:
    """A few lines for the end of a run."""
    lines = [f"device: {result.device}   status: {result.status}" + (f" ({result.error})" if result.error else "")]
    if result.synthetic:
        lines.append("data: SYNTHETIC (random images): accuracy figures are meaningless")
    if result.train_time_s is not None:
        ttt = f"{result.time_to_target_s:.2f} s" if result.time_to_target_s is not None else "not reached"
        acc = f"{result.final_acc:.2%}" if result.final_acc is not None else "n/a"
        ips = f"{result.images_per_s:,.0f}" if result.images_per_s else "n/a"
        lines.append(
            f"train time: {result.train_time_s:.2f} s   time to {result.target_acc:.1%}: {ttt}   "
            f"final test accuracy: {acc}   throughput: {ips} images/s"
        )
        lines.append(f"evaluation: {result.eval_time_s:.2f} s (not in train time)   warm-up: {result.warmup_s:.2f} s (not in train time)")
    if result.peak_mem_allocated_bytes is not None:
        lines.append(f"peak memory: {result.peak_mem_allocated_bytes / 2**20:,.0f} MiB allocated, "
                     f"{(result.peak_mem_reserved_bytes or 0) / 2**20:,.0f} MiB reserved")
    return "\n".join(lines)


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
