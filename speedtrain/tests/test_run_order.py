"""The repository's own test run: the root conftest orders the files longest first, so that
under ``pytest -n 2 --dist loadfile`` no long file is left to run alone at the end."""

from __future__ import annotations

import importlib.util
import types
from typing import Any, Optional

from speedtrain.tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)


class Item:
    """What the ordering reads of a pytest item: its file, node id, fixtures, markers and parameters."""

    def __init__(self, nodeid: str, *fixtures: str, slow: bool = False, **params: Any) -> None:
        self.nodeid, self.fixturenames, self.marks = nodeid, list(fixtures), {"slow"} if slow else set()
        self.path = ROOT / nodeid.split("::")[0]
        self.callspec = types.SimpleNamespace(params=params)

    def get_closest_marker(self, name: str) -> Optional[Any]:
        return name if name in self.marks else None

    def add_marker(self, mark: Any) -> None:
        self.marks.add(mark.name)


def test_files_run_longest_first_each_whole_and_in_its_own_order():
    items = [Item("a/test_units.py::test_one"), Item("a/test_units.py::test_two"),
             Item("b/test_cases.py::test_case[x]", "run_case"), Item("b/test_cases.py::test_case[y]", "run_case"),
             Item("c/test_sessions.py::test_session", "pytester"), Item("c/test_sessions.py::test_pure"),
             Item("d/test_real.py::test_learns", "cifar10_archive", slow=True),
             Item("e/test_compile.py::test_compile[eager]", "run_case", compile=False),
             Item("e/test_compile.py::test_compile[compiled]", "run_case", compile=True)]
    root_conftest.pytest_collection_modifyitems(types.SimpleNamespace(), items)
    assert [i.nodeid for i in items] == [
        "e/test_compile.py::test_compile[eager]", "e/test_compile.py::test_compile[compiled]",  # inductor on a CPU
        "d/test_real.py::test_learns",  # real data: about a minute
        "c/test_sessions.py::test_session", "c/test_sessions.py::test_pure",  # a pytest session: marked slow
        "b/test_cases.py::test_case[x]", "b/test_cases.py::test_case[y]",  # two smoke benchmark cases
        "a/test_units.py::test_one", "a/test_units.py::test_two"]
    assert items[3].get_closest_marker("slow") and not items[4].get_closest_marker("slow")


def test_xdist_keeps_that_order():
    """xdist's own order of files (most tests first) would undo it; without xdist nothing to do."""
    option = types.SimpleNamespace(loadscopereorder=True)
    root_conftest.pytest_configure(types.SimpleNamespace(option=option))
    assert option.loadscopereorder is False
    root_conftest.pytest_configure(types.SimpleNamespace(option=types.SimpleNamespace()))
