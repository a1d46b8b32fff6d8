"""The declared dependency floors are the real ones.

``pyproject.toml`` once declared ``torch>=2.2`` while the trainer used APIs of 2.3 and 2.5: on
2.3-2.4 a real out-of-memory error then raised AttributeError inside the OOM check. Each API
below is one the package calls, with the torch release that introduced it; the declared floor
must be at least the newest of them, and the installed torch must have them all.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

# API -> first torch release with it (from the PyTorch release notes).
TORCH_APIS = {
    "torch.OutOfMemoryError": (2, 5),  # train.is_oom
    "torch.amp.GradScaler": (2, 3),  # device-generic scaler ("cpu" | "cuda")
    "torch.utils.flop_counter.FlopCounterMode": (2, 1),  # flops.py
    "torch.compile": (2, 0),  # the compile case
}


def _floor(requirement: str) -> tuple[int, ...]:
    match = re.search(r">=\s*([0-9.]+)", requirement)
    assert match, f"no >= floor in {requirement!r}"
    return tuple(int(part) for part in match.group(1).split("."))


def _dependency(name: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if re.match(rf"{name}\b", d))


def test_declared_torch_floor_covers_every_api_used() -> None:
    assert _floor(_dependency("torch")) >= max(TORCH_APIS.values())


def test_installed_torch_has_every_api_used() -> None:
    importlib.import_module("torch.utils.flop_counter")  # a submodule, imported on demand
    for dotted in TORCH_APIS:
        obj = torch
        for part in dotted.split(".")[1:]:
            obj = getattr(obj, part)
    # Fused SGD on the CPU (torch >= 2.4) is what train.optimizers.make_sgd asks for there.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, fused=True)


def test_no_unit_test_module_shares_a_benchmark_module_name() -> None:
    """Without __init__.py files pytest imports both folders' test modules by basename, so a
    clash stops the whole collection (`pytest` then runs nothing)."""
    benchmarks = {p.name for p in (ROOT / "benchmarks").glob("test_*.py")}
    units = [p.name for p in (ROOT / "speedtrain" / "tests").rglob("test_*.py")]
    assert not benchmarks & set(units)
    assert len(units) == len(set(units)), sorted(n for n in units if units.count(n) > 1)


def test_unit_tests_mirror_the_packages() -> None:
    """Each folder of unit tests is named after the package it tests."""
    tests = ROOT / "speedtrain" / "tests"
    packages = {p.parent.name for p in (ROOT / "speedtrain").glob("*/__init__.py")}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name not in ("golden", "__pycache__")}
    assert folders and folders <= packages, sorted(folders - packages)
