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


# Fixtures of the real datasets: most tests that take one train for a minute or so on 2 cores.
REAL_DATA_FIXTURES = {"cifar10_archive", "fashion_mnist_folder"}


def expected_seconds(item: pytest.Item) -> float:
    """A rough cost of one test, for ordering only (measured on the 2-core CI machine,
    2026-12-04: real-data tests 30-90 s, the compiled smoke case 64-75 s, session and subprocess tests 5-25 s, a smoke benchmark
    case 1-5 s, the rest well under a second)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    if REAL_DATA_FIXTURES & fixtures or ("run_case" in fixtures and params.get("compile") is True):
        return 60.0  # the compiled smoke case: inductor builds its C++ kernels on a CPU, 64-75 s here
    if item.get_closest_marker("slow"):
        return 10.0
    if "run_case" in fixtures:
        return 3.0
    return 0.1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SESSION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # Longest file first. Under `pytest -n 2 --dist loadfile` a worker takes whole files in this
    # order (pytest_configure turns off xdist's own order, by number of tests, which put the
    # one-test real-data files last: the myrtle test's 87 s then ran alone at the end of the run).
    # Within a file the order is kept (the README's lines depend on it).
    cost: dict[str, float] = {}
    for item in items:
        cost[item.path] = cost.get(item.path, 0.0) + expected_seconds(item)
    items.sort(key=lambda item: -cost[item.path])


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` each worker's in-process training gets its share of the cores, as the
    plugin gives a benchmark session's workers (speedtrain.suite.plan.worker_threads). Without
    it a worker keeps torch's default of every core, or one thread if it happened to run a
    benchmark file first: the test run oversubscribed the cores, and by chance."""
    if hasattr(config.option, "loadscopereorder"):  # xdist's controller: keep the order made above
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput"):
        return
    import torch

    from speedtrain.hw.runconditions import physical_cores
    from speedtrain.suite.plan import worker_threads

    threads, _ = worker_threads("cpu", None, int(config.workerinput["workercount"]), physical_cores())
    torch.set_num_threads(threads)
