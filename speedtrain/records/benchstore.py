"""Saved runs by the names pytest-benchmark gives them: ``0003``, ``0003_mine``, ``mine``, ``latest``.

``pytest --benchmark-save=NAME`` writes ``.benchmarks/<machine id>/NNNN_NAME.json`` (the
machine id is pytest-benchmark's, e.g. ``Linux-CPython-3.11-64bit``), and
``--benchmark-compare=NUM`` finds a run by the start of its file name in this machine's
folder, the latest one when no number is given. ``speedtrain report`` and ``compare`` accept
the same: a path, ``NUM`` (``3`` or ``0003``), the start of a file name or of a save name, or
``latest``; they look in this machine's folder first, then in every machine's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from speedtrain.common.errors import ReportError

DEFAULT_STORAGE = ".benchmarks"  # pytest-benchmark's default --benchmark-storage
_NUMBERED = re.compile(r"^(\d{4})_(.*)\.json$")


def machine_id() -> str:
    from pytest_benchmark.utils import get_machine_id

    return get_machine_id()


def saved_runs(storage: Path, machine: Optional[str] = None) -> list[Path]:
    """The numbered runs of one machine's folder (or of all), in the order they were saved."""
    folders = [storage / machine] if machine else sorted(p for p in storage.iterdir() if p.is_dir())
    files = [f for folder in folders if folder.is_dir() for f in folder.iterdir() if _NUMBERED.match(f.name)]
    return sorted(files, key=lambda f: (int(f.name[:4]), f.stat().st_mtime))


def _matches(spec: str, run: Path) -> bool:
    number, name = _NUMBERED.match(run.name).groups()  # type: ignore[union-attr]
    if spec.isdigit():
        return int(spec) == int(number)
    return run.stem.startswith(spec) or name.startswith(spec)


def resolve(spec: str, storage: str = DEFAULT_STORAGE) -> str:
    """The file a run argument names (see the module docstring); ReportError (one line) when
    nothing or more than one run matches."""
    if Path(spec).is_file() or spec.endswith(".json") or "/" in spec:
        return spec  # a path: the reader says plainly if it is missing
    root = Path(storage)
    if not root.is_dir():
        raise ReportError(f"{spec}: no such file, and no pytest-benchmark storage folder {storage} "
                          f"to look the run up in (save runs with pytest --benchmark-save=NAME)")
    for machine in (machine_id(), None):
        runs = saved_runs(root, machine) if machine is None or (root / machine).is_dir() else []
        if spec == "latest":
            found = runs[-1:]
        else:
            found = [r for r in runs if _matches(spec, r)]
        if len(found) == 1:
            return str(found[0])
        if len(found) > 1:
            names = ", ".join(str(r.relative_to(root)) for r in found[:6])
            raise ReportError(f"{spec}: matches {len(found)} saved runs in {storage} ({names}); "
                              f"give the number or the file")
    raise ReportError(f"{spec}: no such file, and no saved run in {storage} matches it "
                      f"(give a path, a run number such as 0001, a save name, or latest)")
