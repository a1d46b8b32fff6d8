"""Where a training step's time went, as a case keeps it: the categories (:data:`CATEGORIES`)
and one profile's figures per step (:class:`Breakdown`). Measured by
:mod:`speedtrain.train.breakdown` after the timed run; saved with the run's result and the
case's record, read tolerantly, drawn by :mod:`speedtrain.report.breakdown`. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

# Category keys in chart order, with the words the report uses.
CATEGORIES: dict[str, str] = {
    "convolution": "convolution", "matmul": "matmul and linear", "batch_norm": "batch norm",
    "elementwise": "activations and elementwise", "pooling": "pooling", "loss": "loss",
    "optimizer": "optimizer step", "loader": "augmentation and loader", "layout": "copies and layout conversions",
    "communication": "communication", "host": "host, outside ops", "other": "other",
}
IDLE = "idle"  # GPU only: the device waited for work
LABELS = {**CATEGORIES, IDLE: "device idle"}
TOP_N = 5
LEADING_N = 3  # ops named per category


@dataclass
class TopOp:
    name: str  # op (CPU basis) or kernel (GPU basis)
    category: str
    ms: float  # per profiled step


@dataclass
class Breakdown:
    """Where one case's training step went, per profiled step."""

    steps: int  # profiled steps
    basis: str  # "cpu": self CPU time of ops; "cuda": kernel time by launching op, plus device idle
    step_ms: float  # profiled wall time per step
    ms: dict[str, float] = field(default_factory=dict)  # category -> ms per step (categories with time only)
    idle_ms: Optional[float] = None  # GPU: wall time minus the union of kernel intervals, per step
    top: list[TopOp] = field(default_factory=list)  # the TOP_N ops or kernels by time
    leading: dict[str, list[str]] = field(default_factory=dict)  # category -> its largest ops or kernels
    seed: Optional[int] = None  # the run's seed
    profile_s: Optional[float] = None  # wall seconds the breakdown added to the run (off the clock): its
    # settle and profiled steps, the profiler's start and stop, the categorising, the trace

    def segments(self) -> dict[str, float]:
        """ms per step of every category with time, in chart order, device idle last."""
        out = {k: self.ms[k] for k in CATEGORIES if self.ms.get(k)}
        if self.idle_ms:
            out[IDLE] = self.idle_ms
        return out

    def share(self, key: str) -> float:
        """Fraction of the profiled step spent in ``key`` (a category or IDLE)."""
        return self.segments().get(key, 0.0) / self.step_ms if self.step_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Breakdown":
        """A saved breakdown; ValueError (one line) if it is malformed."""
        def number(x: Any) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x

        if not isinstance(data, Mapping):
            raise ValueError(f"a breakdown must be a dict, got {type(data).__name__}")
        ms, top = data.get("ms"), data.get("top", [])
        ok = (isinstance(data.get("steps"), int) and number(data.get("step_ms")) and isinstance(ms, Mapping)
              and all(k in CATEGORIES and number(v) for k, v in ms.items())
              and (data.get("idle_ms") is None or number(data.get("idle_ms"))) and isinstance(top, list)
              and all(isinstance(t, Mapping) and isinstance(t.get("name"), str) and number(t.get("ms")) for t in top))
        if not ok:
            raise ValueError("a breakdown needs steps, step_ms, ms {category: ms} of known categories and top [{name, ms}]")
        leading = data.get("leading") if isinstance(data.get("leading"), Mapping) else {}
        leading = {str(k): [str(n) for n in v] for k, v in leading.items() if isinstance(v, list)}
        return cls(steps=data["steps"], basis=str(data.get("basis", "cpu")), step_ms=float(data["step_ms"]),
                   ms={k: float(v) for k, v in ms.items()},
                   idle_ms=None if data.get("idle_ms") is None else float(data["idle_ms"]),
                   top=[TopOp(t["name"], str(t.get("category", "other")), float(t["ms"])) for t in top],
                   leading=leading,
                   seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
                   profile_s=float(data["profile_s"]) if number(data.get("profile_s")) else None)


def describe(bd: Breakdown, n: int = 4) -> str:
    """The ``n`` largest shares of the profiled step, largest first."""
    ranked = sorted(bd.segments().items(), key=lambda item: -item[1])
    words = [f"{LABELS[k]} {bd.share(k):.0%}" for k, _ in ranked[:n]]
    more = f" (+{len(ranked) - n} more)" if len(ranked) > n else ""
    return ", ".join(words) + more


def fmt_ms(x: float) -> str:
    """Milliseconds, as seconds from 1000 ms on: a reduced-precision CPU step takes seconds."""
    return f"{x / 1000:.3g} s" if x >= 1000 else f"{x:.3g} ms"
