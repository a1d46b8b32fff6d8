"""Compilation: eager against torch.compile, the biggest single speed lever in current PyTorch.
The compile mode is recorded with the case's configuration (``compile_mode``); compilation
itself happens in the untimed warm-up. Measured: epoch time and throughput."""

import pytest

from speedtrain import Section


SECTION = Section("torch.compile", parameter="compilation (eager or torch.compile mode)", order=55)
REFERENCE = {"compile": False}  # eager


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_compile(run_case, compile):
    run_case(compile=compile, compile_mode="default")
