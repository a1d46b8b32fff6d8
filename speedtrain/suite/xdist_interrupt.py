"""Ctrl-C under pytest-xdist: the serial session's promise, kept by the controller (issue 22).

A serial session's first Ctrl-C prints one line, stops after the current seed, keeps the
finished cases as a run marked partial, writes no baselines and exits 2
(:func:`speedtrain.suite.session.catch_interrupts`). A terminal's Ctrl-C reaches the whole
foreground process group, so under xdist it reaches the controller and every worker at once:

* each **worker** already catches it like a serial session (its handler is installed before
  its first case): it finishes its current seed, skips the rest and hands the finished cases
  to the controller as usual (:mod:`speedtrain.suite.scaleout`); its terminal writes to execnet's
  /dev/null, so its own interrupt line is not shown;
* the **controller** ran no case, so it had no handler: Python raised KeyboardInterrupt in its
  event loop, pytest printed its banner and the workers' finished cases were never gathered
  or saved. Here it gets the same handler (the one line the user sees), keeps waiting for its
  workers, and learns from each one whether it was interrupted, so the saved run is marked
  partial, the baselines are left alone and the exit code is 2 even if only the workers got
  the signal.

A second Ctrl-C aborts at once, everywhere, as in a serial session.
"""

from __future__ import annotations

from typing import Any

import pytest

from speedtrain.suite.output import writer
from speedtrain.suite.session import STATE

INTERRUPTED_KEY = "speedtrain_interrupted"  # a worker's workeroutput: was it interrupted
PARTIAL_NOTE = "interrupted (Ctrl-C): the finished cases were kept, this run is marked partial"


def _is_controller(config: pytest.Config) -> bool:
    from speedtrain.suite.scaleout import _is_controller as controller

    return controller(config)


def _session(config: pytest.Config) -> Any:
    return config.stash.get(STATE, None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """The controller catches the first Ctrl-C instead of dying in xdist's event loop."""
    from speedtrain.suite.session import catch_interrupts

    config = session.config
    st = _session(config)
    if st is None or not _is_controller(config) or config.option.collectonly:
        return
    catch_interrupts(st, writer(config), config.add_cleanup)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker tells the controller whether it was interrupted (its exit status cannot: xdist
    reads it before the suite's own end-of-session hook runs); an interrupted controller says
    the run is partial."""
    config = session.config
    st = _session(config)
    if st is None:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput[INTERRUPTED_KEY] = st.interrupted  # type: ignore[attr-defined]
    elif st.interrupted and _is_controller(config):
        mark_partial(st)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """At the controller: an interrupted worker makes the whole run partial."""
    st = _session(node.config)
    if st is None or not getattr(node, "workeroutput", {}).get(INTERRUPTED_KEY):
        return
    st.interrupted = True
    mark_partial(st)


def mark_partial(st: Any) -> None:
    """Say once, in the terminal summary, that the run kept only its finished cases."""
    if PARTIAL_NOTE not in st.notes:
        st.notes.append(PARTIAL_NOTE)
