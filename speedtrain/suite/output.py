"""What the suite shows while cases train, past pytest's capture.

pytest captures a test's output and owns the terminal line its dots go on, so the plugin's
lines (each seed's progress line, the trainer's epoch table) go through the terminal reporter
with the capture suspended (:func:`writer`), and the bar inside an epoch writes to the real
stderr the same way (:func:`session_steps`, :class:`speedtrain.train.progress.PastCapture`).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

from speedtrain.train.progress import EpochProgress, epoch_progress

Write = Callable[[str], None]


def writer(config: Any) -> Write:
    """Lines on the terminal while cases train (``config``: the pytest.Config)."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)
    return write


def session_steps(config: Any, smoke: bool, write: Write) -> Optional[EpochProgress]:
    """Progress inside epochs: a bar past pytest's capture on a person's terminal, else plain
    lines indented under the case (speedtrain.train.progress). None in the smoke profile (silent, its
    epochs take milliseconds) and in an xdist worker: its terminal reporter writes to execnet's
    /dev/null, so its epoch lines are not shown either, and its stderr is the terminal all
    workers share with the controller. Call it before the first case, while nothing is captured:
    the terminal's TTY and width are read here."""
    if smoke or hasattr(config, "workerinput"):
        return None
    capman = config.pluginmanager.getplugin("capturemanager")
    return epoch_progress(lambda line: write("    " + line), sys.__stderr__,
                          capman.global_and_fixture_disabled if capman is not None else None)
