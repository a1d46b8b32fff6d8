"""What one training run measured: :class:`RunResult` (per-epoch :class:`EpochStats` inside).

The trainer fills it, ``speedtrain train --json`` saves it, and the suite's per-case record
(``speedtrain.records.record.CaseRecord``) is built from one per seed. Kept apart from the loop in
``train.py`` so that readers of results need not import the trainer's machinery.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from speedtrain.common.atomic import write_json_atomic
from speedtrain.records.breakdown import Breakdown, describe, fmt_ms
from speedtrain.records.evaluation import EvalSummary
from speedtrain.records.telemetry import GpuSummary


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
    val_acc: Optional[float] = None  # top-1 on the held-out training images (val_split; fraction)


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
    gpu: Optional[GpuSummary] = None  # hw.gpumonitor's summary of the timed epochs
    optimizer_impl: Optional[str] = None  # optimiser step that ran (SGD, Adam, AdamW): fused | foreach | for-loop
    grad_scale_init: Optional[float] = None  # fp16 GradScaler's initial scale (None: no scaler)
    grad_scale_final: Optional[float] = None  # its scale after the last step
    # torch.compile (issue 19): graphs Dynamo compiled in the run, and how many of them after the
    # warm-up (a recompile inside the timed epochs or evaluations; 0 when right). None: not compiled.
    compile_graphs: Optional[int] = None
    compile_graphs_after_warmup: Optional[int] = None
    # data-parallel runs: how batch norm behaves across ranks ("per-rank statistics"; None: one process)
    batch_norm: Optional[str] = None
    # --- work done, and how close to the GPU's peak (speedtrain.train.flops; issue 12) ---
    whiten_s: Optional[float] = None  # airbench patch whitening, before the clock (not in train_time_s)
    airbench_time_s: Optional[float] = None  # airbench's own timer: whiten + train + final eval (speedtrain.records.airbench_time)
    flops_per_image: Optional[float] = None  # training FLOPs (forward + backward) per image
    train_flops: Optional[float] = None  # flops_per_image x images trained
    achieved_flops_per_s: Optional[float] = None  # train_flops / train_time_s
    mfu: Optional[float] = None  # achieved / the GPU's datasheet dense peak at the run's precision (fraction)
    mfu_reason: Optional[str] = None  # why mfu is None (CPU run, unknown GPU)
    peak_flops_per_s: Optional[float] = None  # the datasheet peak mfu is against
    # top-k and confusion matrix of the last epoch, best epoch by validation (speedtrain.train.evaluation)
    evaluation: Optional[EvalSummary] = None
    # where a training step's time goes, profiled after the clock (speedtrain.train.breakdown; issue 20)
    breakdown: Optional[Breakdown] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        data = dict(data)
        data["epochs"] = [EpochStats(**e) for e in data.get("epochs", [])]
        if data.get("evaluation"):
            data["evaluation"] = EvalSummary.from_dict(data["evaluation"])
        if data.get("breakdown"):
            data["breakdown"] = Breakdown.from_dict(data["breakdown"])
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
    if result.airbench_time_s is not None:
        lines.append(f"timed airbench's way (whitening + training + final evaluation): {result.airbench_time_s:.2f} s")
    if result.flops_per_image is not None and result.train_flops is not None:
        rate = f"{result.achieved_flops_per_s / 1e12:.3g} TFLOP/s" if result.achieved_flops_per_s else "n/a"
        mfu = f"MFU {result.mfu:.1%}" if result.mfu is not None else (result.mfu_reason or "no MFU")
        lines.append(f"work: {result.flops_per_image / 1e9:.3g} GFLOP per training image, "
                     f"{result.train_flops / 1e12:.3g} TFLOP in the run, {rate} achieved; {mfu}")
    ev = result.evaluation
    if ev is not None:  # top-k of the last epoch; the best epoch when there were validation images
        topk = ", ".join(f"top-{k} {ev.final.accuracy(k):.2%}" for k in ev.final.ks)
        best = (f"   best epoch {ev.best_epoch} by validation: val {ev.best_val_acc:.2%}, test {ev.best_test_acc:.2%}"
                if ev.best_epoch is not None else "")
        lines.append(f"test set: {topk}{best}")
    if result.breakdown is not None:  # speedtrain.train.breakdown: profiled after the clock
        bd = result.breakdown
        lines.append(f"step breakdown ({bd.steps} steps profiled after the timed run, {fmt_ms(bd.step_ms)} per step, "
                     f"{bd.profile_s or 0:.1f} s added, off the clock): {describe(bd)}")
    if result.peak_mem_allocated_bytes is not None:
        lines.append(f"peak memory: {result.peak_mem_allocated_bytes / 2**20:,.0f} MiB allocated, "
                     f"{(result.peak_mem_reserved_bytes or 0) / 2**20:,.0f} MiB reserved")
    return "\n".join(lines)
