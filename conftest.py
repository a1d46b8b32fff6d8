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
