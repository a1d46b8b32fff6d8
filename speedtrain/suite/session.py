"""The benchmark session's settings and the checks made before its first case trains.

Settings (:class:`SuiteSession`, one per pytest session in ``config.stash``) are decided from
the ``--st-*`` options by small functions a unit test can call without running pytest:

- :func:`choose_profile`: ``--st-profile``, else ``quick`` on a CUDA machine only when the
  benchmarks were asked for explicitly (paths on the command line); a bare ``pytest`` (the
  project's test command, which collects ``benchmarks/`` through ``testpaths``) always runs
  the smoke profile, so tests stay tests on every machine.
- :func:`parse_seeds`: a whole number of seeds, or ``auto`` (:mod:`speedtrain.stats.seeding`).

:func:`preflight` runs once, before the first case, so that a session which cannot succeed
stops at once with one usage error (pytest exit 4) instead of failing every case or, worse,
finding a malformed baselines file after every case has trained: the baselines file must
load, the data directory must be readable and hold the dataset (downloaded first with
``--st-download``), and with ``--st-device cuda`` ``speedtrain doctor`` must find no FAIL.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import pytest

from speedtrain.verdicts import rule as stats
from speedtrain.recipes.profiles import Profile, default_profile
from speedtrain.records.record import CaseRecord
from speedtrain.verdicts.case import judge_case
from speedtrain.common.errors import ConfigError, SpeedtrainError
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.hw.peaks import matmul_format

BASELINE_MODES = ("check", "update", "off")
AUTO = "auto"


@dataclass
class SuiteSession:
    """What the plugin knows about this pytest session: its settings, then what it measured."""

    profile: Profile
    seeds: Optional[list[int]]  # None: --st-seeds auto
    baselines_file: str
    device_type: str = "cpu"  # the device the cases run on: cpu or cuda
    threads: Optional[int] = None  # --st-threads
    records: dict[str, CaseRecord] = field(default_factory=dict)  # benchmark name -> record
    verdicts: list[stats.VerdictRow] = field(default_factory=list)
    error: Optional[str] = None  # the baselines file could not be used
    notes: list[str] = field(default_factory=list)  # for the terminal summary
    machine: dict[str, Any] = field(default_factory=dict)  # extra machine_info: doctor, precision...
    baselines: Optional[dict[str, Any]] = None  # loaded by the preflight
    prepared: bool = False  # preflight done
    interrupted: bool = False  # Ctrl-C: stop after the current seed
    self_run_note: Optional[str] = None  # why the plugin runs the seeds itself
    matmul_peaks: dict[str, float] = field(default_factory=dict)  # doctor-measured FLOP/s per format (GPU only)
    matmul_sizes: dict[str, int] = field(default_factory=dict)  # the square size each was measured at

    @property
    def auto(self) -> bool:
        return self.seeds is None

    def seeds_label(self) -> str:
        from speedtrain.stats.option_rules import compact_seeds

        return "auto" if self.seeds is None else compact_seeds(self.seeds)  # 0-19, not 20 numbers

    def measured_peak(self, precision: str, gpus: int = 1) -> Optional[float]:
        """The matmul FLOP/s the session's doctor measured in the format ``precision`` computes
        in, times the ``gpus`` a data-parallel case trains on (the doctor measured one); None on
        a CPU or where the doctor skipped it (no TF32 or bf16 before Ampere)."""

        one = self.matmul_peaks.get(matmul_format(precision))
        return None if one is None else one * gpus

    def measured_peak_size(self, precision: str) -> Optional[int]:
        """The n of the n x n matmuls :meth:`measured_peak` was measured with (issue 19, item 9)."""
        return self.matmul_sizes.get(matmul_format(precision))


# Where the session lives on the pytest config (the plugin, scale-out and xdist hooks read it).
STATE = pytest.StashKey[SuiteSession]()


def parse_seeds(text: Optional[str]) -> Optional[int] | str:
    """``--st-seeds``: None (the profile's), ``"auto"``, or a whole number from 1 to the cap
    (:func:`speedtrain.stats.option_rules.seed_count`)."""
    from speedtrain.stats.option_rules import seed_count

    if text is None:
        return text
    try:
        return seed_count(text)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def choose_profile(option: Optional[str], explicit_args: bool, cuda: bool) -> str:
    """The profile: the option's, else quick on CUDA when benchmarks were asked for by path."""
    if option is not None:
        return option
    return default_profile(cuda and explicit_args)


def explicit_args(config: pytest.Config) -> bool:
    """Whether the session's paths came from the command line (not testpaths or the cwd)."""
    return config.args_source == pytest.Config.ArgsSource.ARGS


# --- checks before the first case ------------------------------------------------------------


def check_baselines(st: SuiteSession, mode: str) -> None:
    """Load the baselines file once (UsageError with its one-line reason if it is malformed)."""
    from speedtrain.records import baselines as bl

    if mode == "off":
        return
    try:
        st.baselines = bl.load(st.baselines_file)
    except SpeedtrainError as exc:
        raise pytest.UsageError(f"{exc} (the session stopped before its first case; fix or move the file)") from None


def check_data(dataset: str, data_dir: str, download: bool) -> None:
    """Read (downloading it first if asked) the session's dataset; the cases then reuse it
    from the loader's in-process cache. UsageError naming how to provide it."""
    from speedtrain.data.datasets import load_dataset

    try:
        load_dataset(TrainConfig(dataset=dataset, data_dir=data_dir, download=download))
    except SpeedtrainError as exc:
        message = str(exc).replace("--download", "--st-download").replace("--data-dir", "--st-data-dir")
        if not download and "--st-download" not in message:
            message += " (or add --st-download to let torchvision fetch it)"
        raise pytest.UsageError(message) from None


def check_doctor(report: Any, device_option: str) -> None:
    """With ``--st-device cuda`` a doctor FAIL stops the session: its numbers would be wrong."""
    if device_option == "cuda" and report.failed:
        failed = "; ".join(f"{c.name}: {c.reason}" for c in report.checks if c.status == "FAIL")
        raise pytest.UsageError(f"speedtrain doctor failed on {report.device} ({failed}); "
                                "run `speedtrain doctor` for the full table")


def catch_interrupts(st: SuiteSession, write: Callable[[str], None], add_cleanup: Callable[[Callable[[], None]], None]) -> None:
    """First Ctrl-C: mark the session interrupted (the seed loop stops after the current seed,
    the finished cases are kept as a partial run, no baselines are written), say so in one
    line, and give Ctrl-C back to Python, so that a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        st.interrupted = True
        signal.signal(signal.SIGINT, previous)
        write("speedtrain: interrupted: stopping after the current seed (Ctrl-C again to abort now); "
              "finished cases are kept as a partial run, baselines are not written")

    signal.signal(signal.SIGINT, handler)
    add_cleanup(lambda: signal.signal(signal.SIGINT, previous))


# --- after the last case -----------------------------------------------------------------------


def judge(st: SuiteSession, data: dict[str, Any], machine: str, threshold: float) -> list[stats.VerdictRow]:
    """Each record's verdict against the stored baselines of this machine and profile; a case
    that ran on a noisy machine says so first."""
    from speedtrain.records import baselines as bl

    rows = []
    for name, record in st.records.items():
        # the case's own device: under xdist a box's GPUs may differ in model
        rows.append(judge_case(name, record, bl.lookup(data, record.device or machine, st.profile.name, name),
                               threshold=threshold))
    return rows


def baseline_source(st: SuiteSession, dataset: str, run: Optional[str]) -> dict[str, Any]:
    """Where new baselines came from, stored beside them."""
    import torch

    from speedtrain.hw.env import environment

    env = environment(torch.device(st.device_type))
    gpu = env["gpu"] or {}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": env["commit"], "torch": env["torch"], "cuda": env["cuda"], "driver": gpu.get("driver"),
        "gpu": env["device"], "profile": st.profile.name, "dataset": dataset,
        "synthetic": st.profile.synthetic, "run": run or "",
    }
