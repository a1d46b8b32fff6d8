"""What the suite says while it runs: a progress line per seed and epoch, and time estimates.

A quick or full case can train for minutes without pytest printing anything, so the plugin
writes one line when a seed starts (case i of N, seed, elapsed, estimated time left) and the
trainer's per-epoch lines under it. Plain lines rather than a redrawn bar for these: pytest
owns the terminal line its dots go on, and plain lines read the same in a CI log as on a terminal.

Inside an epoch (a full-profile CPU epoch runs for minutes) the trainer reports each step to
an :class:`EpochProgress`: on a person's terminal a tqdm bar under the last line, cleared when
the epoch ends (:class:`BarSteps`); in a CI log or a pipe a plain line at most every
``PLAIN_EVERY_S`` (:class:`PlainSteps`).

Estimates come from the case's previous run where the baselines have one (its median
training time times the seeds, scaled by the ratio of whole-call to training time measured
so far in this session), else from a rough per-case figure of the profile on the device
(``ROUGH_CASE_S``: a ResNet-9 CIFAR-10 case on a current GPU and on a few CPU cores).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Optional, Protocol, TextIO

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


# --- within an epoch -----------------------------------------------------------------------
#
# The trainer calls ``step()`` once per training step, on the training clock (speedtrain.train.loop),
# so both kinds below cost a counter and a clock read per step and write only when a redraw or
# line is due. Measured (100k step() calls, best of 5, Python 3.11 on the 2-core CPU box the
# project is built on, loop included): PlainSteps 150 ns, BarSteps 335 ns (tqdm's update, the
# redraws included), NoSteps 40 ns; a training step of the suite's models takes milliseconds
# on a GPU and longer on a CPU.

# A CI log keeps every line: one every 30 s says the run is alive and when its epoch ends
# (120 lines per hour of training) without drowning the per-epoch lines; an epoch shorter
# than that gets none, its per-epoch line suffices.
PLAIN_EVERY_S = 30.0
BAR_MININTERVAL_S = 0.5  # a terminal redraw twice a second reads as live and costs nothing
DEFAULT_COLUMNS = 80  # the bar's width where the terminal does not say


class EpochProgress(Protocol):
    """What the trainer (speedtrain.train.loop) tells of an epoch's steps. ``step`` runs on the
    training clock once per step: it must stay cheap (no device sync; no I/O but a throttled
    redraw)."""

    def start_epoch(self, epoch: int, epochs: int, n_steps: int) -> None: ...

    def step(self) -> None: ...

    def end_epoch(self) -> None: ...


def interactive(stream: Optional[TextIO], env: Mapping[str, str] = os.environ) -> bool:
    """Is a person watching ``stream`` redraw? A TTY, and no ``CI`` variable: CI services set it,
    and some give jobs a pseudo-TTY whose log would keep every redraw of a bar."""
    try:
        tty = stream is not None and stream.isatty()
    except (OSError, ValueError):  # a closed or detached stream
        tty = False
    return tty and not env.get("CI")


class PlainSteps:
    """Within-epoch progress as a plain line at most every ``every`` seconds (CI logs, pipes)::

        epoch 3/24: step 120/391 (31%), 12 s in, about 27 s left in the epoch
    """

    def __init__(self, write: Callable[[str], None], every: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.write, self.every, self.clock = write, every, clock
        self.epoch = self.epochs = self.n_steps = self.done = 0
        self.started = self.due = 0.0

    def start_epoch(self, epoch: int, epochs: int, n_steps: int) -> None:
        self.epoch, self.epochs, self.n_steps, self.done = epoch, epochs, n_steps, 0
        self.started = self.clock()
        self.due = self.started + self.every

    def step(self) -> None:
        self.done += 1
        now = self.clock()
        if now >= self.due:
            self._line(now)

    def _line(self, now: float) -> None:
        spent = now - self.started
        left = spent / self.done * max(0, self.n_steps - self.done)
        self.write(f"epoch {self.epoch}/{self.epochs}: step {self.done}/{self.n_steps} "
                   f"({self.done / max(1, self.n_steps):.0%}), {duration(spent)} in, "
                   f"about {duration(left)} left in the epoch")
        self.due = now + self.every

    def end_epoch(self) -> None:
        pass  # the trainer's per-epoch line follows


class BarSteps:
    """Within-epoch progress as a tqdm bar on an interactive terminal, cleared at the epoch's
    end (``leave=False``) so that only the trainer's per-epoch lines stay on the screen."""

    def __init__(self, file: TextIO, ncols: Optional[int] = None) -> None:
        self.file, self.ncols = file, ncols
        self.bar: Any = None

    def start_epoch(self, epoch: int, epochs: int, n_steps: int) -> None:
        self.end_epoch()
        self.bar = _bar_class()(total=n_steps, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False,
                                mininterval=BAR_MININTERVAL_S, miniters=1, file=self.file, ncols=self.ncols)

    def step(self) -> None:
        self.bar.update()

    def end_epoch(self) -> None:
        """Clear the bar; also called after a failed run (speedtrain.train.loop), hence idempotent."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@functools.lru_cache(maxsize=None)
def _bar_class() -> type:
    """tqdm without its monitor thread, which wakes every 10 s and may redraw a bar from that
    thread (past pytest's capture, during a timed epoch); with ``miniters=1`` every step checks
    the clock itself, so there is nothing for it to catch up. Imported when the first bar is
    drawn: tqdm takes ~50 ms to import and most sessions draw none."""
    from tqdm import tqdm

    return type("SpeedtrainBar", (tqdm,), {"monitor_interval": 0})


class NoSteps:
    """No within-epoch progress (the smoke profile, ``--quiet``, tests)."""

    def start_epoch(self, epoch: int, epochs: int, n_steps: int) -> None:
        pass

    def step(self) -> None:
        pass

    def end_epoch(self) -> None:
        pass


def epoch_progress(write: Callable[[str], None], stream: TextIO,
                   suspend: Optional[Callable[[], ContextManager[Any]]] = None,
                   env: Mapping[str, str] = os.environ) -> "PlainSteps | BarSteps":
    """A bar on ``stream`` for a person at a terminal, else plain lines through ``write``.
    ``suspend``: what lets a write reach ``stream`` (pytest's capture; see :class:`PastCapture`).
    Call it while ``stream`` is not captured: its TTY and width are read here."""
    if not interactive(stream, env):
        return PlainSteps(write)
    try:
        ncols = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        ncols = 0
    # a terminal that reports no width (0: a bare pseudo-terminal) would make tqdm draw nothing
    ncols = ncols or DEFAULT_COLUMNS
    return BarSteps(PastCapture(stream, suspend) if suspend is not None else stream, ncols)


class PastCapture:
    """A file for the bar that writes to ``stream`` with ``suspend()`` in force: under pytest,
    ``capman.global_and_fixture_disabled`` (only on a redraw, twice a second at most)."""

    def __init__(self, stream: TextIO, suspend: Callable[[], ContextManager[Any]]) -> None:
        self.stream, self.suspend = stream, suspend

    def write(self, text: str) -> int:
        with self.suspend():
            written = self.stream.write(text)
            self.stream.flush()
        return written

    def flush(self) -> None:
        pass  # write() flushed, while the capture was suspended

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"
