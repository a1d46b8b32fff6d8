"""Progress within an epoch (speedtrain.train.progress): plain lines for logs, a bar for a terminal,
which of the two a stream gets, and the trainer's calls of the hook."""

import contextlib
import io
import threading
from types import SimpleNamespace

import pytest

from speedtrain.config.trainconfig import TrainConfig
from speedtrain.train.progress import (DEFAULT_COLUMNS, BarSteps, PastCapture, PlainSteps, _bar_class, epoch_progress,
                                 interactive)
from speedtrain.suite.output import session_steps
from speedtrain.hw.timing import timer_policy
from speedtrain.train.loop import train
from speedtrain.tests.conftest import TINY


class Clock:
    """A fake clock that reads the next of the given times at each call."""

    def __init__(self, *times: float):
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_are_throttled_and_say_where_the_epoch_is():
    lines = []
    # start at 0; steps at 10 (nothing due), 31 (a line: one is due every 30 s), 60 (next due at
    # 61), 62 (a line); one clock read per step, the line uses the step's
    steps = PlainSteps(lines.append, every=30.0, clock=Clock(0.0, 10.0, 31.0, 60.0, 62.0))
    steps.start_epoch(3, 24, 6)
    for _ in range(4):
        steps.step()
    steps.end_epoch()
    assert lines == ["epoch 3/24: step 2/6 (33%), 31 s in, about 1 min 02 s left in the epoch",
                     "epoch 3/24: step 4/6 (67%), 1 min 02 s in, about 31 s left in the epoch"]


def test_an_epoch_shorter_than_the_interval_gets_no_line():
    lines = []
    steps = PlainSteps(lines.append, every=30.0, clock=Clock(100.0, *[100.0 + 2.9 * i for i in range(1, 11)]))
    steps.start_epoch(1, 2, 10)
    for _ in range(10):
        steps.step()
    assert lines == []


def test_the_bar_draws_on_its_file_and_is_cleared_at_the_end_of_the_epoch():
    out = io.StringIO()
    bar = BarSteps(out, ncols=80)
    bar.start_epoch(3, 24, 5)
    for _ in range(5):
        bar.step()
    assert bar.bar.n == 5
    bar.end_epoch()
    bar.end_epoch()  # again, as train() does after a run: nothing more
    text = out.getvalue()
    assert "epoch 3/24" in text and "0/5" in text and "step/s" in text
    assert text.endswith("\r") and bar.bar is None  # leave=False: the line is wiped

def test_the_bar_starts_no_monitor_thread():
    # Other tests' tqdm bars (torchvision's downloads) may have started tqdm's own monitor:
    # only a monitor for this bar's class would redraw it from a thread.
    from tqdm.std import TMonitor

    bar = BarSteps(io.StringIO(), ncols=80)
    bar.start_epoch(1, 1, 2)
    bar_cls = type(bar.bar)
    bar.step()
    bar.end_epoch()
    assert bar_cls.monitor_interval == 0
    assert not any(isinstance(t, TMonitor) and issubclass(t.tqdm_cls, bar_cls) for t in threading.enumerate())


@pytest.mark.parametrize("stream, env, expected", [
    (Tty(), {}, True),
    (Tty(), {"CI": "true"}, False),  # CI services set CI; some give jobs a pseudo-TTY
    (io.StringIO(), {}, False),  # a pipe or a file
    (None, {}, False),  # pythonw: no stderr at all
])
def test_interactive_means_a_tty_outside_ci(stream, env, expected):
    assert interactive(stream, env) is expected


def test_a_closed_stream_is_not_interactive():
    stream = io.StringIO()
    stream.close()  # its isatty() raises ValueError
    assert interactive(stream, {}) is False


def test_epoch_progress_picks_the_bar_for_a_terminal_and_lines_otherwise():
    lines = []
    assert isinstance(epoch_progress(lines.append, io.StringIO(), env={}), PlainSteps)
    assert isinstance(epoch_progress(lines.append, Tty(), env={"CI": "1"}), PlainSteps)
    tty = Tty()
    bar = epoch_progress(lines.append, tty, env={})
    assert isinstance(bar, BarSteps) and bar.file is tty and bar.ncols == DEFAULT_COLUMNS  # a StringIO has no size
    past = epoch_progress(lines.append, tty, suspend=contextlib.nullcontext, env={})
    assert isinstance(past.file, PastCapture) and past.file.stream is tty


def test_past_capture_writes_with_the_capture_suspended():
    seen = []

    @contextlib.contextmanager
    def suspend():
        seen.append("suspended")
        yield
        seen.append("resumed")

    class Stream(io.StringIO):
        def write(self, text):
            seen.append(text)
            return super().write(text)

    file = PastCapture(Stream(), suspend)
    assert file.write("\repoch 1/2") == len("\repoch 1/2")
    assert seen == ["suspended", "\repoch 1/2", "resumed"] and file.encoding == "utf-8"


class Recorder:
    """An EpochProgress that records its calls."""

    def __init__(self, fail_at_step=None):
        self.calls, self.fail_at_step = [], fail_at_step

    def start_epoch(self, epoch, epochs, n_steps):
        self.calls.append(("start", epoch, epochs, n_steps))

    def step(self):
        self.calls.append("step")
        if self.fail_at_step is not None and self.calls.count("step") == self.fail_at_step:
            raise RuntimeError("boom")

    def end_epoch(self):
        self.calls.append("end")


# 2 steps per epoch of a tiny ResNet-9 on random data (as test_train.TINY), 2 epochs


def test_the_trainer_reports_every_step_of_every_epoch():
    steps = Recorder()
    result = train(TrainConfig(**TINY), steps=steps)
    assert result.status == "ok"
    epoch = [("start", 1, 2, 2), "step", "step", "end"]
    assert steps.calls == epoch + [("start", 2, 2, 2), "step", "step", "end", "end"]  # last: train()'s clean-up
    assert any("progress call per step" in line for line in result.timer["includes"])
    assert not any("progress" in line for line in timer_policy(TrainConfig(**TINY), "perf_counter")["includes"])


def test_a_failed_run_still_ends_the_epoch():
    steps = Recorder(fail_at_step=1)
    with pytest.raises(RuntimeError, match="boom"):
        train(TrainConfig(**TINY), steps=steps)
    assert steps.calls == [("start", 1, 2, 2), "step", "end"]


def _config(worker: bool = False) -> SimpleNamespace:
    """As much of a pytest.Config as suite.output.session_steps reads."""
    config = SimpleNamespace(pluginmanager=SimpleNamespace(getplugin=lambda name: None))
    if worker:
        config.workerinput = {"workerid": "gw0"}
    return config


def test_the_plugin_shows_no_progress_in_smoke_or_in_an_xdist_worker(monkeypatch):
    monkeypatch.setattr("sys.__stderr__", Tty())
    monkeypatch.delenv("CI", raising=False)
    assert session_steps(_config(), True, print) is None  # smoke
    assert session_steps(_config(worker=True), False, print) is None
    assert isinstance(session_steps(_config(), False, print), BarSteps)


def test_the_plugin_writes_plain_lines_indented_under_the_case_in_a_log(monkeypatch):
    monkeypatch.setattr("sys.__stderr__", io.StringIO())
    lines = []
    steps = session_steps(_config(), False, lines.append)
    assert isinstance(steps, PlainSteps)
    steps.write("epoch 1/2: step 1/2")
    assert lines == ["    epoch 1/2: step 1/2"]  # as the trainer's epoch lines under the seed's line


def test_the_bar_class_is_made_once():
    assert _bar_class() is _bar_class() and _bar_class().monitor_interval == 0
