"""Where a training step's time goes: a few steps under ``torch.profiler``, by category (issue 20).

After the timed epochs, off the clock, the trainer runs :func:`profile_steps`: one settle step
under the profiler's warm-up (recorded and discarded, as torch.profiler's schedule does: the
model is back in training mode after evaluation, the loader starts an epoch, the profiler's
own start-up is paid), then ``breakdown_steps`` profiled steps, each the same loader fetch and
training step as the timed run (a new epoch of the loader when one runs out: the ``gpu``
loader's per-epoch crop and flip then falls in a profiled step). On a GPU the device is synchronised before the first and after the last profiled step, so
the profiled window holds exactly the profiled steps' kernels.

Attribution (:func:`category_of`) is by the ATen op that did the work, the same rule on CPU
and GPU, first match wins:

1. inside a communication op (``nccl:all_reduce``, ``gloo:all_reduce``, ``record_param_comms``):
   communication;
2. inside ``Optimizer.step#...``/``Optimizer.zero_grad#...`` (torch's own annotations) or an
   optimizer kernel op (``aten::_fused_sgd_``, ``aten::_foreach_*``, GradScaler's ``aten::_amp_*``):
   optimizer step;
3. inside the loader fetch (annotated ``speedtrain.loader`` here): augmentation and loader;
4. the op or one of its callers is a copy (``aten::copy_``, ``to``, ``_to_copy``, ``contiguous``,
   ``clone``): copies and layout conversions -- NCHW <-> NHWC and autocast's dtype casts alike;
5. else the outermost categorised op on its call path: ``aten::conv2d`` and everything it calls
   is convolution, ``autograd::engine::evaluate_function: ConvolutionBackward0`` its backward;
6. else other; on a CPU the step's own time outside any op (Python, the autograd engine) is
   "host, outside ops".

CPU basis: each op's self CPU time on the training thread (the ops nest, so the self times add
up to the profiled wall time). GPU basis: each kernel's (and memcpy's) time, attributed to the
op that launched it through the profiler's correlation id (``FunctionEvent.kernels``, which
torch fills from each device event's ``linked_correlation_id``); kernels cuDNN names as
NCHW <-> NHWC transposes (``nchwToNhwc``, ``nhwcToNchw``) count as layout conversions whatever
launched them. Device idle = the profiled wall time minus the union of the kernel intervals.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from typing import Any, Callable, Iterable, Optional

from speedtrain.records.breakdown import CATEGORIES, LEADING_N, TOP_N, Breakdown, TopOp
from speedtrain.common.errors import exception_text

BACKWARD_PREFIX = "autograd::engine::evaluate_function: "  # the autograd engine's range around a node
LOADER_SCOPE = "speedtrain.loader"  # the record_function around each profiled loader fetch
SETTLE_STEPS = 1  # the profiler's warm-up steps before the profiled ones (each costs a training step)

_SCOPES = (  # (category, pattern on an op's or annotation's raw name), checked on the whole call path
    ("communication", re.compile(r"nccl:|gloo:|all_?reduce|all_?gather|reduce_scatter|record_param_comms|^c10d::", re.I)),
    ("optimizer", re.compile(r"^Optimizer\.(step|zero_grad)#|^aten::_fused_(sgd|adam|adamw)_|^aten::_foreach_|^aten::_amp_")),
    ("loader", re.compile(rf"^{re.escape(LOADER_SCOPE)}$|^enumerate\(DataLoader\)")),
)
_COPIES = {"copy", "to", "tocopy", "contiguous", "clone", "copyfrom", "copyfromandresize", "todense", "tomkldnn"}
_ELEMENTWISE = {
    "relu", "celu", "gelu", "elu", "threshold", "clamp", "clampmin", "clampmax", "sigmoid", "tanh", "silu", "hardtanh",
    "leakyrelu", "add", "sub", "rsub", "mul", "div", "neg", "exp", "log", "sqrt", "rsqrt", "pow", "where", "fill",
    "zero", "lerp", "addcmul", "addcdiv", "maximum", "minimum", "abs", "sign", "maskedfill", "reciprocal", "dropout",
    "nativedropout", "bernoulli", "square", "eq", "ne", "lt", "gt", "le", "ge", "floor", "ceil", "round", "fmod",
}
_MATMUL = {"linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "addmv", "mv", "dot", "addbmm"}
_LAYOUT_KERNEL = re.compile(r"nchwToNhwc|nhwcToNchw", re.I)


def canonical(name: str) -> str:
    """An op's or autograd node's name reduced to its operation: ``aten::_log_softmax_backward_data``,
    ``LogSoftmaxBackward0`` and ``aten::log_softmax`` all give ``logsoftmax``."""
    base = name.removeprefix(BACKWARD_PREFIX)
    base = base.rsplit("::", 1)[-1]
    base = re.sub(r"Backward\d*$", "", base)
    base = re.sub(r"_backward(_data|_input|_weight)?$", "", base.lower())
    return base.replace("_", "")


def _compute(c: str) -> Optional[str]:
    if c.startswith(("conv", "thnnconv", "slowconv")) or "convolution" in c:
        return "convolution"
    if c in _MATMUL:
        return "matmul"
    if "batchnorm" in c:
        return "batch_norm"
    if "pool" in c:
        return "pooling"
    if any(k in c for k in ("crossentropy", "nllloss", "softmax", "mseloss", "kldiv")):
        return "loss"
    if c in _ELEMENTWISE:
        return "elementwise"
    return None


def category_of(event: Any) -> str:
    """The category of ``event``'s own time (a torch ``FunctionEvent``; see the module docstring)."""
    chain = []
    node = event
    while node is not None:  # the op itself first, then its callers up to the step
        chain.append(node.name)
        node = node.cpu_parent
    for category, pattern in _SCOPES:
        if any(pattern.search(name) for name in chain):
            return category
    canon = [canonical(name) for name in chain]
    if any(c in _COPIES for c in canon):
        return "layout"
    for c in reversed(canon):  # outermost first: aten::conv2d's inner aten::add_ is convolution
        category = _compute(c)
        if category:
            return category
    return "host" if _is_step(event) else "other"


class BreakdownError(RuntimeError):
    """The profile holds no usable steps."""


def _is_step(event: Any) -> bool:
    return event.name.startswith("ProfilerStep")


def _is_device(event: Any) -> bool:
    return str(event.device_type) != "DeviceType.CPU"


def _union_us(intervals: Iterable[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _rank(totals: dict[tuple[str, str], float], n_steps: int,
          annotations: set[str]) -> tuple[list[TopOp], dict[str, list[str]]]:
    """The top ops, and each category's largest op: an ATen op or kernel rather than an annotation
    (``aten::_fused_sgd_`` names the optimizer's implementation; ``Optimizer.step#SGD.step``'s own
    time is its Python)."""
    ordered = sorted(totals.items(), key=lambda item: -item[1])
    top = [TopOp(name, cat, us / 1000 / n_steps) for (name, cat), us in ordered[:TOP_N]]
    leading: dict[str, list[str]] = {}
    for (name, cat), _ in sorted(ordered, key=lambda item: item[0][0] in annotations):  # stable: ops first
        names = leading.setdefault(cat, [])
        if len(names) < LEADING_N:
            names.append(name)
    return top, leading


def categorize(events: Iterable[Any], n_steps: int, basis: str = "cpu") -> Breakdown:
    """A :class:`Breakdown` of the last ``n_steps`` ``ProfilerStep#`` steps among ``events``
    (torch ``FunctionEvent`` objects with their CPU tree built, as ``profile.events()`` gives them)."""
    events = list(events)
    steps = sorted((e for e in events if _is_step(e) and not _is_device(e)), key=lambda e: e.time_range.start)[-n_steps:]
    if len(steps) < n_steps or n_steps < 1:
        raise BreakdownError(f"the profile holds {len(steps)} ProfilerStep events; {n_steps} were profiled")
    w0, w1 = steps[0].time_range.start, steps[-1].time_range.end
    wall_us = sum(s.time_range.end - s.time_range.start for s in steps)
    inside = [e for e in events if not _is_device(e) and not e.is_async and w0 <= e.time_range.start < w1]
    us: dict[str, float] = {}
    totals: dict[tuple[str, str], float] = {}
    idle_ms = None
    if basis == "cpu":
        thread = steps[0].thread
        for e in inside:
            if e.thread != thread:
                continue
            cat = category_of(e)
            us[cat] = us.get(cat, 0.0) + e.self_cpu_time_total
            name = "(host, outside ops)" if _is_step(e) else e.name
            totals[(name, cat)] = totals.get((name, cat), 0.0) + e.self_cpu_time_total
    else:
        for e in inside:
            if e.is_user_annotation or _is_step(e):  # a range, not a launcher: its "kernel" would be the
                continue  # range's GPU mirror (gpu_user_annotation), not device work
            cat = category_of(e) if e.kernels else "other"
            for k in e.kernels:
                kcat = "layout" if _LAYOUT_KERNEL.search(k.name) else cat
                us[kcat] = us.get(kcat, 0.0) + k.duration
                totals[(k.name[:120], kcat)] = totals.get((k.name[:120], kcat), 0.0) + k.duration
        busy = [(max(e.time_range.start, w0), min(e.time_range.end, w1)) for e in events
                if _is_device(e) and not e.is_user_annotation and e.activity_type != "gpu_user_annotation"
                and e.time_range.end > w0 and e.time_range.start < w1]
        if not busy:  # without CUPTI the CUDA activity records nothing: all "idle" would be a lie
            raise BreakdownError("the profile holds no GPU kernels (CUPTI unavailable to torch.profiler?)")
        idle_ms = max(0.0, wall_us - _union_us(busy)) / 1000 / n_steps
    annotations = {e.name for e in inside if e.is_user_annotation or _is_step(e)} | {"(host, outside ops)"}
    top, leading = _rank(totals, n_steps, annotations)
    return Breakdown(steps=n_steps, basis=basis, step_ms=wall_us / 1000 / n_steps,
                     ms={k: us[k] / 1000 / n_steps for k in CATEGORIES if us.get(k)},
                     idle_ms=idle_ms, top=top, leading=leading)


def profile_steps(n_steps: int, device: Any, next_batch: Callable[[], tuple[Any, Any]],
                  train_step: Callable[[Any, Any], Any], trace: Optional[str] = None) -> Breakdown:
    """Profile ``n_steps`` training steps (after the settle step) and categorise
    them; ``trace``: also write the profiler's Chrome trace there (atomically)."""
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    from speedtrain.hw.timing import synchronize

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    got: dict[str, Any] = {}

    def ready(prof: Any) -> None:  # called once, when the profiled steps are done
        got["events"] = prof.events()
        if trace:
            _export(prof, trace)

    total = SETTLE_STEPS + n_steps
    plan = schedule(wait=0, warmup=SETTLE_STEPS, active=n_steps, repeat=1)
    with profile(activities=activities, schedule=plan, on_trace_ready=ready) as prof:
        for i in range(total):
            with record_function(LOADER_SCOPE):
                x, y = next_batch()
            train_step(x, y)
            if i in (SETTLE_STEPS - 1, total - 1):  # the profiled steps' kernels finish inside their window
                synchronize(device)
            prof.step()
    if "events" not in got:
        raise BreakdownError("the profiler delivered no trace")
    return categorize(got["events"], n_steps, "cuda" if device.type == "cuda" else "cpu")


def _export(prof: Any, path: str) -> None:
    """The Chrome trace, written next to ``path`` and renamed over it (no torn trace)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trace.", suffix=".json", dir=folder)
    os.close(fd)
    try:
        prof.export_chrome_trace(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def trace_name(case: str) -> str:
    """A case's trace file name: ``test_precision[fp16]`` -> ``test_precision[fp16].pt.trace.json``."""
    return re.sub(r"[^A-Za-z0-9_.\[\]=-]+", "_", case) + ".pt.trace.json"


def after_run(cfg: Any, device: Any, loader: Iterable[tuple[Any, Any]], train_step: Callable[[Any, Any], Any],
              log: Callable[[str], None], trace: Optional[str] = None) -> Optional[Breakdown]:
    """The trainer's call after its timed run: ``cfg.breakdown_steps`` steps of ``loader``'s
    batches (a new epoch of it when one runs out), profiled. A profiler failure costs the
    breakdown, never the run: it is logged and None returned."""
    start = time.perf_counter()
    batches = iter(loader)

    def next_batch() -> tuple[Any, Any]:
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:  # fewer steps per epoch than settle + profiled steps
            batches = iter(loader)
            return next(batches)

    try:
        result = profile_steps(cfg.breakdown_steps, device, next_batch, train_step, trace)
    except Exception as exc:  # noqa: BLE001 - the timed figures are already measured; keep them

        log(f"breakdown: not recorded ({exception_text(exc)})")
        return None
    result.seed = cfg.seed
    result.profile_s = time.perf_counter() - start
    return result
