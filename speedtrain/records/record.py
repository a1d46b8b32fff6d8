"""What a benchmark case measured: :class:`CaseRecord`, the one shape of a case's results.

The plugin builds a record from the trainer's results (:meth:`CaseRecord.from_results`) and
saves ``record.to_extra_info()`` in the benchmark's pytest-benchmark ``extra_info``; every
reader (baselines, report, compare, DAWNBench export) goes through
:meth:`CaseRecord.from_extra_info`. This module is the only one that spells those keys.

Saved runs come from older versions and from failed cases, so the reader is tolerant: a
missing or malformed field becomes None (or an empty list), and the report prints ``-`` for
it. What is malformed is kept in ``record.problems``; :meth:`CaseRecord.summary`, the figures
a verdict compares, refuses a record whose compared figures are malformed, so a broken file
never passes for a slowdown.

To add a per-case figure: a field here (with a default, so older runs still load), a line in
``from_extra_info`` (and ``from_results`` if the trainer measures it); ``to_extra_info``
saves every field, and ``runs.cases_frame`` gets a column if it is per seed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from speedtrain.common.errors import BaselineError
from speedtrain.records.breakdown import Breakdown
from speedtrain.records.section import Section
from speedtrain.stats.samples import METRICS, CaseSummary, lower_median, median_or_none
from speedtrain.records.telemetry import GpuSummary

if TYPE_CHECKING:
    from speedtrain.records.evaluation import EvalMetrics, EvalSummary
    from speedtrain.records.result import RunResult


def is_number(x: Any) -> bool:
    """A finite int or float; bool is an int subclass, but true/false is not 1 s / 0 s."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def show(x: Any) -> str:
    """A value as an error message quotes it: repr, cut at 40 characters."""
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class CurvePoint:
    """Test accuracy at the end of an epoch, against cumulative timed training seconds."""

    epoch: Optional[int]
    train_s: float
    test_acc: float  # fraction
    train_loss: Optional[float] = None


@dataclass
class CaseRecord:
    """Everything one benchmark case measured; lists hold one item per seed, in seed order
    (None where a seed has no value: a diverged seed's time, a missed target)."""

    section: str  # the test function's name without test_: groups cases in the report
    case: str  # the parameter id, e.g. 'fp16'
    reference: bool = False  # the section's reference case (speed-ups are against it)
    # how the report shows the section (speedtrain.records.section, from the benchmark file);
    # None in runs saved before sections carried them
    section_title: Optional[str] = None
    section_axis: Optional[str] = None
    section_order: Optional[float] = None
    ladder: bool = False  # a step of a cumulative ladder
    step: Optional[int] = None
    # what the step's source published for it (the benchmark file's extra_info["published"]:
    # seconds on its GPU, accuracy as a fraction, where it says so), shown beside the measurement
    published: Optional[dict[str, Any]] = None
    profile: Optional[str] = None
    synthetic: Optional[bool] = None
    dataset: Optional[str] = None
    data_source: Optional[str] = None
    device: Optional[str] = None  # GPU name or "cpu: <model>": the baselines' machine
    seeds: list[int] = field(default_factory=list)
    status: str = "ok"  # ok | diverged | oom
    error: Optional[str] = None
    metric: str = "train_time_s"  # what verdicts compare: one of stats.METRICS
    train_time_s: list[Optional[float]] = field(default_factory=list)
    time_to_target_s: list[Optional[float]] = field(default_factory=list)
    reached_target: list[bool] = field(default_factory=list)
    target_acc: Optional[float] = None  # fraction
    final_acc: list[Optional[float]] = field(default_factory=list)  # fraction
    images_per_s: list[Optional[float]] = field(default_factory=list)
    epoch_time_s: list[Optional[float]] = field(default_factory=list)  # median epoch per seed
    eval_time_s: list[Optional[float]] = field(default_factory=list)
    warmup_s: list[Optional[float]] = field(default_factory=list)
    n_params: Optional[int] = None
    peak_mem_allocated_bytes: Optional[int] = None  # max over seeds
    peak_mem_reserved_bytes: Optional[int] = None
    diverged: bool = False
    timer: dict[str, Any] = field(default_factory=dict)  # what the clock includes/excludes
    config: dict[str, Any] = field(default_factory=dict)  # TrainConfig.to_dict() of seed 0
    gpu: Optional[GpuSummary] = None  # telemetry of the median-time seed (a saved run's may lack newer keys)
    curves: list[list[CurvePoint]] = field(default_factory=list)  # per seed, per epoch
    monitor: Optional[bool] = None  # whether NVML sampling was asked for
    # --- how the case ran (pytest plugin: seeds, whole-call time, machine state) ---
    call_time_s: list[Optional[float]] = field(default_factory=list)  # whole train() call per seed:
    # data loading, warm-up and evaluation included; NOT the compared figure
    seeds_auto: bool = False  # seeds chosen by --st-seeds auto (judged at p < 0.01)
    seeds_note: Optional[str] = None  # why the seeds stopped where they did (auto, interrupt, oom)
    conditions: dict[str, Any] = field(default_factory=dict)  # runconditions.Conditions.to_dict()
    # --- work done and MFU (speedtrain.train.flops; issue 12) ---
    flops_per_image: Optional[float] = None  # training FLOPs (forward + backward) per image
    train_flops: list[Optional[float]] = field(default_factory=list)  # per seed: FLOPs of the run
    achieved_flops_per_s: list[Optional[float]] = field(default_factory=list)  # per seed: train_flops / train s
    mfu: list[Optional[float]] = field(default_factory=list)  # per seed: fraction of the datasheet peak
    mfu_reason: Optional[str] = None  # why there is no MFU (CPU, unknown GPU)
    peak_flops_per_s: Optional[float] = None  # the datasheet peak MFU is against
    # the dense matmul FLOP/s speedtrain doctor measured on this GPU at the session's start, in
    # the case's precision: a rate the GPU showed it reaches, beside the datasheet's ceiling
    measured_peak_flops_per_s: Optional[float] = None
    measured_peak_matmul_n: Optional[int] = None  # ... measured on n x n matmuls (speedtrain.doctor.matmulpeak)
    whiten_s: list[Optional[float]] = field(default_factory=list)  # per seed: airbench whitening, before the clock
    airbench_time_s: list[Optional[float]] = field(default_factory=list)  # per seed: whiten + train + final eval
    # --- accuracy studies: top-k, best epoch by validation, confusion (speedtrain.train.evaluation; issue 14) ---
    top2_acc: list[Optional[float]] = field(default_factory=list)  # per seed, test set, last epoch (fraction)
    top3_acc: list[Optional[float]] = field(default_factory=list)
    best_epoch: list[Optional[int]] = field(default_factory=list)  # per seed, by validation top-1 (val_split)
    val_acc: list[Optional[float]] = field(default_factory=list)  # per seed: validation top-1 of the best epoch
    best_train_acc: list[Optional[float]] = field(default_factory=list)  # training top-1 of the best epoch
    best_test_acc: list[Optional[float]] = field(default_factory=list)  # test top-1 of the best epoch
    confusion: Optional[list[list[int]]] = None  # test set, last epoch, [true][predicted], summed over seeds
    best_confusion: Optional[list[list[int]]] = None  # the same at each seed's best epoch
    # --- where the step's time goes (speedtrain.train.breakdown; issue 20): the median-time seed's ---
    breakdown: Optional[Breakdown] = None
    # Malformed fields of a saved record: key -> one-line reason (not saved).
    problems: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def reached_fraction(self) -> Optional[float]:
        return sum(self.reached_target) / len(self.reached_target) if self.reached_target else None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def show_section(self, shown: Optional[Section]) -> None:
        """Keep how the report shows this case's section (from its benchmark file)."""
        if shown is not None:
            self.section_title, self.section_axis, self.section_order = shown.title, shown.axis, shown.order

    def to_extra_info(self) -> dict[str, Any]:
        """The record as pytest-benchmark saves it in ``extra_info`` (JSON values only)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name != "problems":
                out[f.name] = getattr(self, f.name)
            if f.name == "reached_target":  # saved for readers of the raw JSON
                out["reached_fraction"] = self.reached_fraction
        out["curves"] = [[asdict(p) for p in curve] for curve in self.curves]
        out["breakdown"] = self.breakdown.to_dict() if self.breakdown is not None else None
        return out

    @classmethod
    def from_extra_info(cls, info: Any, name: str = "") -> "CaseRecord":
        """Read a saved ``extra_info`` without ever failing (see the module docstring).

        ``name`` (the benchmark's, e.g. ``test_precision[fp16]``) supplies the case id of
        records that lack one."""
        r = Reader(info if isinstance(info, Mapping) else {})
        if not isinstance(info, Mapping):
            r.problems["extra_info"] = f"extra_info must be a dict, got {show(info)}"
        bracket = re.search(r"\[(.*)\]$", name)
        metric = r.get("metric", "train_time_s")
        if metric not in METRICS:
            r.problems["metric"] = (f"extra_info['metric'] must be one of {', '.join(METRICS)}, "
                                    f"got {show(metric)}")
            metric = "train_time_s"
        return cls(
            section=str(r.get("section")), case=str(r.get("case") or (bracket.group(1) if bracket else name)),
            section_title=r.text("section_title"), section_axis=r.text("section_axis"),
            section_order=r.number("section_order"), published=r.mapping("published"),
            reference=r.get("reference") is True, ladder=r.get("ladder") is True, step=r.integer("step"),
            profile=r.text("profile"), synthetic=r.flag("synthetic"), dataset=r.text("dataset"),
            data_source=r.text("data_source"), device=r.text("device"),
            seeds=[s for s in r.list("seeds") if isinstance(s, int)], status=str(r.get("status") or "ok"),
            error=r.text("error"), metric=metric, train_time_s=r.per_seed("train_time_s"),
            time_to_target_s=r.per_seed("time_to_target_s"), reached_target=r.flags("reached_target"),
            target_acc=r.number("target_acc"), final_acc=r.per_seed("final_acc"),
            images_per_s=r.per_seed("images_per_s"), epoch_time_s=r.per_seed("epoch_time_s"),
            eval_time_s=r.per_seed("eval_time_s"), warmup_s=r.per_seed("warmup_s"),
            n_params=r.integer("n_params"), peak_mem_allocated_bytes=r.integer("peak_mem_allocated_bytes"),
            peak_mem_reserved_bytes=r.integer("peak_mem_reserved_bytes"), diverged=r.get("diverged") is True,
            timer=r.mapping("timer") or {}, config=r.mapping("config") or {}, gpu=r.mapping("gpu"),
            curves=_curves(r.get("curves")), monitor=r.flag("monitor"), problems=r.problems,
            call_time_s=r.per_seed("call_time_s"), seeds_auto=r.get("seeds_auto") is True,
            seeds_note=r.text("seeds_note"), conditions=r.mapping("conditions") or {},
            flops_per_image=r.number("flops_per_image"), train_flops=r.per_seed("train_flops"),
            achieved_flops_per_s=r.per_seed("achieved_flops_per_s"), mfu=r.per_seed("mfu"),
            mfu_reason=r.text("mfu_reason"), peak_flops_per_s=r.number("peak_flops_per_s"),
            measured_peak_flops_per_s=r.number("measured_peak_flops_per_s"), whiten_s=r.per_seed("whiten_s"),
            measured_peak_matmul_n=r.integer("measured_peak_matmul_n"),
            airbench_time_s=r.per_seed("airbench_time_s"),
            top2_acc=r.per_seed("top2_acc"), top3_acc=r.per_seed("top3_acc"),
            best_epoch=[None if e is None else int(e) for e in r.per_seed("best_epoch")],
            val_acc=r.per_seed("val_acc"), best_train_acc=r.per_seed("best_train_acc"),
            best_test_acc=r.per_seed("best_test_acc"), confusion=r.matrix("confusion"),
            best_confusion=r.matrix("best_confusion"), breakdown=r.breakdown("breakdown"),
        )

    @classmethod
    def from_results(cls, results: Sequence["RunResult"], *, section: str, case: str, reference: bool,
                     step: Optional[int], profile: str, metric: str, seeds: list[int],
                     target_acc: Optional[float], config: dict[str, Any],
                     monitor: Optional[bool] = None) -> "CaseRecord":
        """One record from the trainer's results, one per seed (at least one)."""
        first = results[0]
        statuses = [r.status for r in results]
        return cls(
            section=section, case=case, reference=reference, ladder=step is not None, step=step,
            profile=profile, synthetic=first.synthetic, dataset=config.get("dataset"),
            data_source=first.data_source, device=first.device, seeds=seeds,
            status=next((s for s in ("oom", "diverged") if s in statuses), "ok"),
            error=next((r.error for r in results if r.error), None), metric=metric,
            # a diverged seed's partial time is not comparable with a finished run's: left out
            train_time_s=[r.train_time_s if r.status == "ok" else None for r in results],
            time_to_target_s=[r.time_to_target_s for r in results],
            reached_target=[r.reached_target for r in results], target_acc=target_acc,
            final_acc=[r.final_acc for r in results], images_per_s=[r.images_per_s for r in results],
            epoch_time_s=[median_or_none(e.epoch_s for e in r.epochs) for r in results],
            eval_time_s=[r.eval_time_s for r in results], warmup_s=[r.warmup_s for r in results],
            n_params=first.n_params,
            peak_mem_allocated_bytes=max((r.peak_mem_allocated_bytes or 0 for r in results), default=0) or None,
            peak_mem_reserved_bytes=max((r.peak_mem_reserved_bytes or 0 for r in results), default=0) or None,
            diverged=any(r.diverged for r in results), timer=first.timer, config=config,
            gpu=merge_telemetry(results), monitor=monitor,
            curves=[[CurvePoint(e.epoch, e.train_s, e.test_acc, e.train_loss) for e in r.epochs]
                    for r in results],
            flops_per_image=first.flops_per_image, train_flops=[r.train_flops for r in results],
            achieved_flops_per_s=[r.achieved_flops_per_s for r in results], mfu=[r.mfu for r in results],
            mfu_reason=first.mfu_reason, peak_flops_per_s=first.peak_flops_per_s,
            whiten_s=[r.whiten_s for r in results], breakdown=median_breakdown(results),
            airbench_time_s=[r.airbench_time_s for r in results],
            **study_figures([r.evaluation for r in results]),
        )

    def summary(self) -> CaseSummary:
        """The figures a verdict compares; BaselineError (one line) if they are malformed."""
        for key in ("extra_info", "metric", self.metric, "final_acc", "reached_target", "images_per_s"):
            if key in self.problems:
                raise BaselineError(self.problems[key])
        times = {"train_time_s": self.train_time_s, "time_to_target_s": self.time_to_target_s,
                 "final_acc": self.final_acc}[self.metric]
        # Seeds without a time (missed target, diverged) are dropped; they show in `reached`.
        return CaseSummary(metric=self.metric, time_s=[t for t in times if t is not None],
                           acc=[a for a in self.final_acc if a is not None],
                           reached=list(self.reached_target),
                           images_per_s=median_or_none(self.images_per_s), sequential=self.seeds_auto)


def study_figures(evaluations: Sequence[Optional["EvalSummary"]]) -> dict[str, Any]:
    """The record's accuracy-study fields from each seed's ``RunResult.evaluation``."""
    def matrix_sum(ms: list[Optional["EvalMetrics"]]) -> Optional[list[list[int]]]:
        ms = [m for m in ms if m is not None]
        return [[sum(m.confusion[i][j] for m in ms) for j in range(len(ms[0].confusion))]
                for i in range(len(ms[0].confusion))] if ms else None

    evs = list(evaluations)
    return dict(
        top2_acc=[e.final.accuracy(2) if e else None for e in evs],
        top3_acc=[e.final.accuracy(3) if e else None for e in evs],
        best_epoch=[e.best_epoch if e else None for e in evs], val_acc=[e.best_val_acc if e else None for e in evs],
        best_train_acc=[e.best_train_acc if e else None for e in evs],
        best_test_acc=[e.best_test_acc if e else None for e in evs],
        confusion=matrix_sum([e.final if e else None for e in evs]),
        best_confusion=matrix_sum([e.best if e else None for e in evs]),
    )


def merge_telemetry(results: Sequence["RunResult"]) -> Optional[dict[str, Any]]:
    """One telemetry summary per case: that of the seed with the median training time (the
    lower one for an even count), so its figures belong to one real run; every seed's energy kept."""
    watched = [r for r in results if r.gpu]
    if not watched:
        return None
    chosen = lower_median(watched, key=lambda r: (r.train_time_s is None, r.train_time_s or 0.0))
    merged = dict(chosen.gpu or {})
    merged["seed"] = chosen.config.get("seed")
    merged["energy_j_per_seed"] = [(r.gpu or {}).get("energy_j") for r in results]
    return merged


def median_breakdown(results: Sequence["RunResult"]) -> Optional[Breakdown]:
    """The breakdown of the seed with the median training time (the lower one for an even
    count), as for telemetry: one real run's profile, not a blend of seeds."""
    profiled = [r for r in results if r.breakdown is not None]
    if not profiled:
        return None
    return lower_median(profiled, key=lambda r: (r.train_time_s is None, r.train_time_s or 0.0)).breakdown


class Reader:
    """Typed, tolerant reads of one extra_info; malformed values land in ``problems``."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info, self.problems = info, {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.info.get(key, default)

    def text(self, key: str) -> Optional[str]:
        value = self.info.get(key)
        return None if value is None else str(value)

    def flag(self, key: str) -> Optional[bool]:
        value = self.info.get(key)
        return value if isinstance(value, bool) else None

    def number(self, key: str) -> Optional[float]:
        value = self.info.get(key)
        return float(value) if is_number(value) else None

    def integer(self, key: str) -> Optional[int]:
        value = self.info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def mapping(self, key: str) -> Optional[dict[str, Any]]:
        value = self.info.get(key)
        return dict(value) if isinstance(value, Mapping) else None

    def list(self, key: str) -> list[Any]:
        value = self.info.get(key)
        return value if isinstance(value, list) else []

    def per_seed(self, key: str) -> list[Optional[float]]:
        """Per-seed numbers (None where a seed has none); a lone number is one seed's."""
        value = self.info.get(key, [])
        if is_number(value):
            return [float(value)]
        ok = isinstance(value, list) and all(is_number(v) or v is None for v in value)
        if not ok:
            self.problems[key] = f"extra_info[{key!r}] must be a list of numbers or null, got {show(value)}"
        return [float(v) if is_number(v) else None for v in value] if isinstance(value, list) else []

    def matrix(self, key: str) -> Optional[list[list[int]]]:
        """A square matrix of whole numbers (a confusion matrix), or None."""
        value = self.info.get(key)
        if value is None:
            return None
        ok = (isinstance(value, list) and all(isinstance(row, list) and len(row) == len(value) for row in value)
              and all(isinstance(v, int) and not isinstance(v, bool) for row in value for v in row))
        if not ok:
            self.problems[key] = f"extra_info[{key!r}] must be a square list of lists of whole numbers, got {show(value)}"
        return [list(row) for row in value] if ok else None

    def breakdown(self, key: str) -> Optional[Breakdown]:
        value = self.info.get(key)
        if value is None:
            return None
        try:
            return Breakdown.from_dict(value)
        except ValueError as exc:
            self.problems[key] = f"extra_info[{key!r}]: {exc}"
            return None

    def flags(self, key: str) -> list[bool]:
        value = self.info.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, bool) for v in value)):
            self.problems[key] = f"extra_info[{key!r}] must be a list of true/false, got {show(value)}"
        return [v is True for v in value] if isinstance(value, list) else []


def _curves(value: Any) -> list[list[CurvePoint]]:
    """Per-seed accuracy curves, keeping only well-formed points and non-empty curves."""
    out = []
    for curve in value if isinstance(value, list) else []:
        points = [_point(p) for p in curve] if isinstance(curve, list) else []
        if any(points):
            out.append([p for p in points if p is not None])
    return out


def _point(p: Any) -> Optional[CurvePoint]:
    if not (isinstance(p, Mapping) and is_number(p.get("train_s")) and is_number(p.get("test_acc"))):
        return None
    epoch = p.get("epoch")
    loss = p.get("train_loss")
    return CurvePoint(epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
                      float(p["train_s"]), float(p["test_acc"]), float(loss) if is_number(loss) else None)
