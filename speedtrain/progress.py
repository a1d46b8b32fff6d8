"""What the suite says while it runs: a progress line per seed and epoch, and time estimates.

A quick or full case can train for minutes without pytest printing anything, so the plugin
writes one line when a seed starts (case i of N, seed, elapsed, estimated time left) and the
trainer's per-epoch lines under it. Plain lines rather than a redrawn bar: pytest owns the
terminal line its dots go on, and plain lines read the same in a CI log as on a terminal.

Estimates come from the case's previous run where the baselines have one (its median
training time times the seeds, scaled by the ratio of whole-call to training time measured
so far in this session), else from a rough per-case figure of the profile on the device
(``ROUGH_CASE_S``: a ResNet-9 CIFAR-10 case on a current GPU and on a few CPU cores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

# Rough seconds per case (all seeds, data loading and evaluation included) by profile and
# device type: order-of-magnitude figures for the warning before a session, nothing more.
ROUGH_CASE_S = {
    ("smoke", "cuda"): 3.0, ("smoke", "cpu"): 3.0,
    ("quick", "cuda"): 60.0, ("quick", "cpu"): 4 * 3600.0,
    ("full", "cuda"): 600.0, ("full", "cpu"): 30 * 3600.0,
}
CALL_OVERHEAD = 1.5  # whole call / training time before any case of the session has run


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def session_warning(profile: str, device_type: str, n_cases: int) -> Optional[str]:
    """The line printed before a measuring profile starts: its estimated duration, and on a
    CPU the advice to use the smoke profile or a subset."""
    if profile == "smoke" or n_cases == 0:
        return None
    total = ROUGH_CASE_S[(profile, device_type)] * n_cases
    line = f"speedtrain: {n_cases} cases of the {profile} profile take roughly {duration(total)} on this {device_type}"
    if device_type == "cpu":
        line += ("; on a CPU quick and full take hours: use --st-profile smoke to check the plumbing, "
                 "or a subset (pytest benchmarks/test_precision.py -k fp32)")
    return line


@dataclass
class Progress:
    """The suite's progress: cases done, the time they took, and the line for a seed."""

    total_cases: int
    profile: str
    device_type: str
    write: Callable[[str], None]
    started: float = field(default_factory=time.perf_counter)
    done_cases: int = 0
    train_s: float = 0.0  # training time of the seeds done so far
    call_s: float = 0.0  # their whole-call time

    def overhead(self) -> float:
        return self.call_s / self.train_s if self.train_s > 0 else CALL_OVERHEAD

    def case_estimate(self, baseline_median_s: Optional[float], seeds: int) -> float:
        if baseline_median_s:
            return baseline_median_s * seeds * self.overhead()
        return ROUGH_CASE_S[(self.profile, self.device_type)]

    def seed_started(self, case: str, seed: int, seeds: str, case_left_s: float) -> None:
        elapsed = time.perf_counter() - self.started
        per_case = (elapsed / self.done_cases) if self.done_cases else None
        later = max(0, self.total_cases - self.done_cases - 1)
        left = case_left_s + later * (per_case if per_case is not None else case_left_s)
        self.write(f"[case {self.done_cases + 1}/{self.total_cases}] {case} seed {seed} of {seeds}, "
                   f"elapsed {duration(elapsed)}, about {duration(left)} left")

    def seed_done(self, train_s: Optional[float], call_s: float) -> None:
        if train_s:
            self.train_s += train_s
            self.call_s += call_s

    def case_done(self) -> None:
        self.done_cases += 1
