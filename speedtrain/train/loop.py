"""The one shared trainer: every benchmark case and ``speedtrain train`` run through :func:`train`.

Read it top to bottom: set-up (data, model, optimiser), an untimed warm-up that is undone,
then per epoch a timed training pass and a separately timed evaluation.

Timer rule (after cifar10-fast): the training clock covers what a user waits for while the
model learns and nothing else. It runs per epoch from the first training step to the last,
so it includes forward, backward and optimiser steps, the loader's work (augmentation,
host-to-device copies) and, when a run is given one, the progress hook's per-step call
(speedtrain.train.progress: a counter and a clock read, a redraw at most twice a second; no device
sync, so on a GPU it counts steps queued, not finished). It excludes dataset decoding and
upload, model construction, the warm-up (one loader batch: kernel loading, buffer allocation,
DataLoader worker start-up; then training steps on it: cuDNN autotuning, torch.compile
compilation; all undone, the loader's random state included) and evaluation, which is timed
on its own (flip TTA included there).
``time_to_target_s`` sums training seconds up to the end of the first epoch whose test
accuracy reaches the target, as DAWNBench did with validation excluded.

Loss convention (myrtle.ai): the loss is summed over the batch and SGD gets ``lr / batch``
and ``weight_decay * batch``, which is the same update as mean loss with ``lr`` and
``weight_decay`` but keeps fp16 gradients far from underflow in the ``half`` mode, which has
no loss scaler. The fp16 mode's GradScaler therefore starts ``batch_size`` times below its
mean-loss default (:func:`initial_grad_scale`), and the untimed warm-up lowers it further until
a step does not overflow, so the timed run does not skip its first steps on overflow. SGD runs its fused kernel where the device has one: with a GradScaler, the foreach
and for-loop steps read the overflow flag back to the host every step, the fused one does not.

Memory: a run starts and ends by releasing the allocator's cache and restarting the peak
statistics (``timing.release_memory``), even when it fails, so each case's peak is its own and
a failed case does not starve the next.
"""

from __future__ import annotations

import copy
import math
import sys
import traceback
from typing import Any, Callable, Optional, Protocol

import torch
from torch import nn

from speedtrain.train import ddp, distributed
from speedtrain.train import mixing
from speedtrain.train import hooks as run_hooks  # whitening, the epoch plan, per-step hooks
from speedtrain.train import flops
from speedtrain.train import breakdown as step_breakdown  # issue 20: where the step's time goes, after the clock
from speedtrain.records import airbench_time  # issue 21: airbench's own timer rule, recorded beside ours
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.device import resolve_device
from speedtrain.data.datasets import holdout, load_dataset
from speedtrain.train.loaders import make_test_batches, make_train_loader, memory_format
from speedtrain.hw.env import device_name, environment
from speedtrain.train.evaluation import BestEpoch, evaluate
from speedtrain.records.evaluation import EvalMetrics
from speedtrain.records.result import EpochStats, RunResult, format_summary  # noqa: F401 (re-exported)
from speedtrain.train.progress import EpochProgress, NoSteps  # progress within an epoch
from speedtrain.models.registry import build_model, count_parameters, prepare_for_precision
from speedtrain.train.notice import plural  # "1 step", "2 steps"
from speedtrain.train.optimizers import build_optimizer, optimizer_impl, set_lr
from speedtrain.hw.process_state import BackendFlags, graphs_compiled, reset_compiler
from speedtrain.train.schedule import lr_schedule
from speedtrain.hw.timing import Timer, peak_memory, release_memory, reset_peak_memory, synchronize, timer_policy

Log = Callable[[str], None]
# Timed events of a run as they happen (speedtrain.report.mllog): key, metadata. See train().
Events = Callable[[str, dict[str, Any]], None]

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# fp16 warm-up steps allowed beyond cfg.warmup_steps to find a scale that does not overflow:
# each overflow halves the scale, so 16 cover a start 65536 times too high.
MAX_CALIBRATION_STEPS = 16

# Allocation failures that do not arrive as torch.OutOfMemoryError, as torch 2.14 words them
# (strings of libtorch_cuda, cuDNN 9 and cuDNN 8 status names).
OOM_MARKERS = (
    "out of memory",  # "CUDA error: out of memory"; cuDNN's "ran out of memory outside PyTorch's allocator"
    "can't allocate memory",  # the CPU allocator
    "CUBLAS_STATUS_ALLOC_FAILED",  # cuBLAS could not allocate its handle or workspace
    "CUDNN_STATUS_ALLOC_FAILED",  # cuDNN 8
    "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",  # cuDNN 9
    "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",  # cuDNN 9
)


class Monitor(Protocol):
    """What the trainer needs of a telemetry monitor (see speedtrain.hw.gpumonitor)."""

    def start(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> dict[str, Any]: ...


def _set_matmul_precision(precision: str) -> None:
    # PyTorch lets cuDNN convolutions use TF32 by default; "fp32" must mean real fp32
    # for the fp32-vs-tf32 comparison to be honest.
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def _evaluate(model: nn.Module, batches: list, cfg: TrainConfig, autocast: Any) -> EvalMetrics:
    """Top-k hits and the confusion matrix (speedtrain.train.evaluation); top-1 is ``.accuracy(1)``."""
    return evaluate(model, batches, cfg.num_classes, cfg.tta_flip, autocast, cfg.tta_translate)


def is_oom(exc: BaseException) -> bool:
    """Did ``exc``, or an error it was raised from (torch.compile wraps them), fail to allocate?"""
    cause: Optional[BaseException] = exc
    for _ in range(8):  # a chain of causes, never a cycle
        if cause is None:
            return False
        if isinstance(cause, torch.OutOfMemoryError):
            return True
        if isinstance(cause, RuntimeError) and any(marker in str(cause) for marker in OOM_MARKERS):
            return True
        cause = cause.__cause__
    return False


def initial_grad_scale(batch_size: int) -> float:
    """GradScaler's default 2**16 is set for a mean loss; the summed loss's gradients are
    ``batch_size`` times larger, so start that much lower (rounded to a power of two, so
    scaling stays exact) rather than halve the scale on overflow for ~log2(batch) skipped steps."""
    return 2.0 ** max(0, 16 - math.ceil(math.log2(batch_size)))


def train(cfg: TrainConfig, *, monitor: Optional[Monitor] = None, log: Optional[Log] = None,
          events: Optional[Events] = None, steps: Optional[EpochProgress] = None,
          trace: Optional[str] = None) -> RunResult:
    """Train once as ``cfg`` describes and return what was measured.

    Invalid configurations and missing data raise :class:`speedtrain.common.errors.SpeedtrainError`.
    Running out of memory does not raise: the result says ``status='oom'``. Either way the
    run's memory is released before returning or raising, so a suite can go on with its next case.

    ``events`` is called at the moment each of run_start, epoch_start, epoch_stop (after the
    epoch's clock stopped), eval_start, eval_stop (around the evaluation's clock),
    eval_accuracy and run_stop happens (the MLPerf log keys).
    ``steps`` is told of every training step; a multi-process run (``nproc > 1``) does not call
    it: its ranks run in torchrun, and rank 0's epoch lines come back through ``log``.
    ``trace``: a file for the Chrome trace of the breakdown's profiled steps (``cfg.breakdown_steps``).
    """
    if cfg.nproc > 1 and not ddp.inside_rank():  # torchrun starts the ranks, which come back here
        return distributed.launch(cfg, monitor=monitor is not None, log=log)
    device = ddp.rank_device(resolve_device(cfg))
    result = RunResult(config=cfg.to_dict(), env=environment(device), device=device_name(device))
    release_memory(device)  # earlier runs' cached blocks and peaks are not this run's
    try:
        with BackendFlags():  # cudnn.benchmark and TF32 as they were before the run (issue 19)
            _train(cfg, device, result, monitor, log or (lambda line: None), events or (lambda key, meta: None), steps,
                   trace)
    except Exception as exc:  # noqa: BLE001 - only OOM is swallowed, see below
        # The traceback holds the failed run's model and activations, and pytest keeps the
        # traceback of a failed test: drop the frames' locals so the memory can be freed.
        traceback.clear_frames(exc.__traceback__)
        if not is_oom(exc):
            raise
        result.status = "oom"
        result.error = str(exc).strip().splitlines()[0][:300]
    finally:
        if monitor is not None and result.gpu is None:
            result.gpu = monitor.stop()
        if steps is not None:
            steps.end_epoch()  # a failed epoch's bar
        release_memory(device)
    return result


def _train(cfg: TrainConfig, device: torch.device, result: RunResult, monitor: Optional[Monitor], log: Log,
           events: Events, steps: Optional[EpochProgress], trace: Optional[str] = None) -> None:
    torch.backends.cudnn.benchmark = True  # autotuning happens in the warm-up, off the clock
    _set_matmul_precision(cfg.precision)
    half = cfg.precision == "half"
    input_dtype = torch.float16 if half else torch.float32
    layout = memory_format(cfg)

    data, val_data = holdout(load_dataset(cfg), cfg.val_split)  # val_split: held-out training images
    result.synthetic, result.data_source = data.synthetic, data.source
    val_batches = make_test_batches(val_data, cfg, device, dtype=input_dtype) if val_data else []
    train_loader = make_train_loader(data, cfg, device, dtype=input_dtype)
    test_batches = make_test_batches(data, cfg, device, dtype=input_dtype)
    steps_per_epoch = len(train_loader)

    torch.manual_seed(cfg.seed)
    net = build_model(cfg)
    result.n_params = count_parameters(net)
    net = prepare_for_precision(net.to(device=device, memory_format=layout), cfg.precision)
    result.whiten_s = run_hooks.whiten_first_layer(net, cfg, data.train_images, data.mean, data.std, device)
    model = ddp.wrap(net, device)  # DDP with nproc > 1
    result.batch_norm = ddp.batch_norm_policy()
    if cfg.compile:
        reset_compiler()  # no earlier case's graphs or recompile counts (Dynamo gives up after 8)
    graphs_before = graphs_compiled()
    model = torch.compile(model, mode=cfg.compile_mode) if cfg.compile else model

    schedule = lr_schedule(cfg, steps_per_epoch)  # triangle: airbench's per-step LambdaLR
    step = _Step(cfg, device, net, model)
    autocast = step.autocast

    warm_timer = Timer(device)
    warm_timer.start()
    # every input shape the evaluations will see (a partial last batch, validation batches):
    # compiled here, not inside the first epoch's evaluation
    calibrated = _warm_up(cfg, step, train_loader, _one_per_shape(test_batches + val_batches)) if cfg.warmup_steps else None
    result.warmup_s = warm_timer.stop()
    graphs_warm = graphs_compiled()
    opt, scaler = step.optimizer(init_scale=calibrated)
    result.optimizer_impl = optimizer_impl(opt)
    result.grad_scale_init = scaler.get_scale() if step.scaling else None
    plan = run_hooks.epoch_plan(cfg, steps_per_epoch)  # steps per epoch; a fractional last one is short
    hooks = run_hooks.RunHooks(cfg, net, sum(plan), opt)  # whitening bias, lookahead (no-ops when off)
    reset_peak_memory(device)

    result.target_acc = cfg.target
    result.timer = timer_policy(cfg, warm_timer.clock, progress=steps is not None)
    steps = steps or NoSteps()  # called either way: a no-op call per step is ~40 ns
    log(f"{cfg.model} width {cfg.width:g} ({result.n_params / 1e6:.2f}M parameters) on {cfg.dataset} "
        f"from {data.source}{' (SYNTHETIC)' if data.synthetic else ''}: {plural(cfg.epochs, 'epoch')} x "
        f"{plural(steps_per_epoch, 'step')} of {cfg.batch_size}, {cfg.precision}{', channels_last' if cfg.channels_last else ''}, "
        f"loader {cfg.loader}, {result.device}; warm-up {result.warmup_s:.1f} s (untimed), target {cfg.target:.1%}")
    log(f"{'epoch':>5} {'lr':>7} {'loss':>8} {'train':>7} {'test':>7} {'epoch s':>8} {'total s':>8}")
    timer, eval_timer = Timer(device), Timer(device)
    train_s = eval_s_total = 0.0
    best = BestEpoch()  # top-k, confusion matrix, best epoch by validation (speedtrain.train.evaluation)
    events("run_start", {})
    for epoch, n_steps in enumerate(plan, start=1):
        model.train()
        hooks.start_epoch(epoch - 1)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        # The telemetry windows match the training clock, so evaluation is left out of them.
        if monitor is not None and epoch == 1:
            monitor.start()
        elif monitor is not None:
            monitor.resume()
        events("epoch_start", {"epoch_num": epoch})
        steps.start_epoch(epoch, len(plan), n_steps)
        timer.start()
        for i, (x, y) in zip(range(n_steps), train_loader):
            lr = schedule(epoch - 1 + (i + 1) / steps_per_epoch)
            loss, hits = step(x, y, lr, opt, scaler)
            hooks.after_step()
            loss_sum += loss.float()  # stays on the device: no sync per step
            correct += hits
            steps.step()
        hooks.end_epoch()
        epoch_s = ddp.slowest(timer.stop())  # synchronises: the epoch's GPU work is done
        steps.end_epoch()
        events("epoch_stop", {"epoch_num": epoch})
        if monitor is not None:
            monitor.pause()
        train_s += epoch_s
        n_seen = n_steps * cfg.batch_size
        ddp.sum_over_ranks(loss_sum, correct)  # every rank's share of the global batches
        train_loss = float(loss_sum) / n_seen
        if not math.isfinite(train_loss):
            result.diverged, result.status = True, "diverged"
            result.error = f"non-finite training loss in epoch {epoch}"
            log(f"{epoch:>5} diverged: the training loss is {train_loss}; stopping")
            break

        events("eval_start", {"epoch_num": epoch})
        eval_timer.start()
        evaluated = hooks.evaluated(model)  # the weight EMA with ema_every (speedtrain.train.ema)
        test = _evaluate(evaluated, test_batches, cfg, autocast)
        val = _evaluate(evaluated, val_batches, cfg, autocast) if val_batches else None
        test_acc = test.accuracy(1)
        eval_s = eval_timer.stop()
        events("eval_stop", {"epoch_num": epoch})
        best.update(epoch, int(correct) / n_seen, val, test)
        eval_s_total += eval_s
        events("eval_accuracy", {"value": test_acc, "epoch_num": epoch})
        result.epochs.append(EpochStats(
            epoch=epoch, lr=lr, train_loss=train_loss, train_acc=int(correct) / n_seen,
            test_acc=test_acc, epoch_s=epoch_s, eval_s=eval_s, train_s=train_s,
            val_acc=None if val is None else val.accuracy(1),
        ))
        if test_acc >= cfg.target and result.time_to_target_s is None:
            result.time_to_target_s = train_s
        log(f"{epoch:>5} {lr:>7.4f} {train_loss:>8.4f} {int(correct) / n_seen:>7.2%} {test_acc:>7.2%} "
            f"{epoch_s:>8.2f} {train_s:>8.2f}")
    synchronize(device)
    events("run_stop", {"status": result.status, "reached_target": result.time_to_target_s is not None})
    if monitor is not None:
        result.gpu = ddp.gather_telemetry(monitor.stop())  # every rank's GPU

    result.train_time_s = train_s
    result.eval_time_s = eval_s_total
    result.airbench_time_s = airbench_time.airbench_time_s(cfg, result)  # airbench's timer, beside ours
    result.reached_target = result.time_to_target_s is not None
    result.final_acc = result.epochs[-1].test_acc if result.epochs else None
    result.evaluation = best.summary
    images = cfg.batch_size * sum(plan[:len(result.epochs) + (1 if result.diverged else 0)])
    result.images_per_s = images / train_s if train_s > 0 else None
    result.peak_mem_allocated_bytes, result.peak_mem_reserved_bytes = peak_memory(device)
    flops.record_flops(result, cfg, images, device.type)  # counted once per network shape, off the clock
    if step.scaling:
        result.grad_scale_final = scaler.get_scale()
    if cfg.compile:  # the timed epochs and evaluations must not have compiled anything
        result.compile_graphs = graphs_compiled() - graphs_before
        result.compile_graphs_after_warmup = graphs_compiled() - graphs_warm
    if cfg.breakdown_steps and result.status == "ok":  # after every figure above: never on the clock
        trained = copy.deepcopy(net.state_dict())  # its steps train on: the run's model is put back
        model.train()
        result.breakdown = step_breakdown.after_run(cfg, device, train_loader, lambda x, y: step(
            x, y, schedule(float(len(plan))), opt, scaler), log, trace)
        net.load_state_dict(trained)


def _one_per_shape(batches: list) -> list:
    """The first batch of each input shape, stride and dtype (what Dynamo's guards tell apart)."""
    seen: dict[tuple, Any] = {}
    for x, y in batches:
        seen.setdefault((tuple(x.shape), x.stride(), x.dtype), (x, y))
    return list(seen.values())


class _Step:
    """One training step of the summed-loss recipe, and the optimizer it steps.

    An object, not a closure inside ``_train``: a failed run's traceback (which pytest keeps)
    references the functions of its frames, and a closure's cells would keep the model alive
    after ``train`` has cleared the frames' locals.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device, net: nn.Module, model: nn.Module) -> None:
        self.cfg, self.device, self.net, self.model = cfg, device, net, model
        self.amp_dtype = AUTOCAST_DTYPES.get(cfg.precision)
        self.scaling = cfg.precision == "fp16"
        # image mixing (mix_ratio), None when off; partners drawn per rank (issue 19)
        self.mix = mixing.ImageMix.build(cfg.replace(seed=ddp.rank_seed(cfg.seed)), device)

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def optimizer(self, init_scale: Optional[float] = None) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
        scale = init_scale if init_scale is not None else initial_grad_scale(self.cfg.batch_size)
        scaler = torch.amp.GradScaler(self.device.type, init_scale=scale, enabled=self.scaling)
        return build_optimizer(self.net, self.cfg, self.device), scaler

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float, opt: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        set_lr(opt, lr)  # each group's lr_scale (optimizers.build_optimizer): SGD's 1 / batch, as ever
        mixed = self.mix(x) if self.mix is not None else None
        with self.autocast():
            logits = self.model(x if mixed is None else mixed.images)
            loss = mixing.cross_entropy(logits.float(), y, mixed, cfg.label_smoothing)
        scaler.scale(loss).backward()
        scaler.step(opt)  # fused SGD takes the scale and the overflow flag on the device: no sync
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), (logits.argmax(dim=1) == y).sum()


def _warm_up(cfg: TrainConfig, step: _Step, loader: Any, test_batches: list) -> Optional[float]:
    """Off the clock, then undone: one loader batch (its kernels load, its buffers are allocated,
    its workers start; its random state is restored), ``cfg.warmup_steps`` training steps on it
    (cuDNN autotuning, compilation) with a throw-away optimizer, one evaluation batch.

    With a GradScaler the steps go on (at most ``MAX_CALIBRATION_STEPS`` more) until one does
    not overflow; the scale reached is returned, for the timed run's scaler to start at. This
    is the warm-up's one lasting effect, and the reason an fp16 run skips no steps.
    """
    saved = copy.deepcopy(step.net.state_dict())
    step.model.train()
    x, y = loader.warm_up()
    opt, scaler = step.optimizer()
    for i in range(cfg.warmup_steps + (MAX_CALIBRATION_STEPS if step.scaling else 0)):
        before = scaler.get_scale() if step.scaling else 0.0  # a host sync: off the clock here
        step(x, y, cfg.lr * 0.01, opt, scaler)
        if i + 1 >= cfg.warmup_steps and (not step.scaling or scaler.get_scale() >= before):
            break
    _evaluate(step.model, test_batches, cfg, step.autocast)
    step.net.load_state_dict(saved)
    if step.mix is not None:
        step.mix.reset()
    return scaler.get_scale() if step.scaling else None


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
