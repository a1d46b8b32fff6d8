"""What this repository's own test run adds to pytest (the benchmark plugin is not here: it is
the installed ``speedtrain.pytest_plugin`` entry point, so it works in any project).

The fast lane: ``pytest -m "not slow"`` leaves out every test that starts a whole pytest
session (pytester, or the smoke suite in a subprocess), besides those marked slow by hand
(other subprocesses, torchrun, real data).
"""

from __future__ import annotations

import pytest

# Fixtures that start a whole pytest session (pytester, or the smoke suite in a subprocess):
# every test that uses one is in the slow lane (`pytest -m "not slow"` leaves it out).
SESSION_FIXTURES = {"pytester", "testdir", "smoke_run", "smoke_data"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SESSION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` each worker's in-process training gets its share of the cores, as the
    plugin gives a benchmark session's workers (speedtrain.suite.plan.worker_threads). Without
    it a worker keeps torch's default of every core, or one thread if it happened to run a
    benchmark file first: the test run oversubscribed the cores, and by chance."""
    if not hasattr(config, "workerinput"):
        return
    import torch

    from speedtrain.hw.runconditions import physical_cores
    from speedtrain.suite.plan import worker_threads

    threads, _ = worker_threads("cpu", None, int(config.workerinput["workercount"]), physical_cores())
    torch.set_num_threads(threads)
