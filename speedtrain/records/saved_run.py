"""The shape of a saved run once read: its metadata (:class:`RunMeta`), its cases
(:class:`RunCase`) and the run itself (:class:`SavedRun`).

Built by :mod:`speedtrain.records.runs` from a pytest-benchmark JSON file and by
:mod:`speedtrain.records.trainrun` from a ``speedtrain train --json`` result; every reader of
saved runs (report, compare, DAWNBench export, the DataFrame) takes these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

from speedtrain.common.errors import BaselineError, ReportError
from speedtrain.records.record import CaseRecord, Reader
from speedtrain.stats.samples import CaseSummary



@dataclass
class RunMeta:
    """A run's speedtrain metadata (``machine_info["speedtrain"]``); older runs without it
    fall back to the first case's record, which repeats device, profile, dataset, seeds, timer."""

    profile: Optional[str] = None
    device: Optional[str] = None
    gpu: dict[str, Any] = field(default_factory=dict)  # env.environment()["gpu"]
    torch: Optional[str] = None
    cuda: Optional[str] = None
    cudnn: Any = None  # as torch reports it: an int such as 90100
    cpu: Optional[str] = None
    commit: Optional[str] = None
    dataset: Optional[str] = None
    synthetic: Optional[bool] = None
    seeds: list[int] = field(default_factory=list)
    timer: dict[str, Any] = field(default_factory=dict)
    # how the profile shrank every case (recipes.profiles.Profile.scales); empty in runs saved
    # before runs kept it
    profile_scales: dict[str, Any] = field(default_factory=dict)

    def to_machine_info(self) -> dict[str, Any]:
        """What the plugin saves as ``machine_info["speedtrain"]`` (no timer: cases carry it;
        no empty ``profile_scales``, so a merge of older runs writes what they held)."""
        out = asdict(self)
        out["gpu"] = self.gpu or None
        del out["timer"]
        if not self.profile_scales:
            del out["profile_scales"]
        return out

    @classmethod
    def read(cls, saved: Any, first: Optional[CaseRecord]) -> "RunMeta":
        r = Reader(saved if isinstance(saved, Mapping) else {})
        meta = cls(profile=r.text("profile"), device=r.text("device"), gpu=r.mapping("gpu") or {},
                   torch=r.text("torch"), cuda=r.text("cuda"), cudnn=r.get("cudnn"), cpu=r.text("cpu"),
                   commit=r.text("commit"), dataset=r.text("dataset"), synthetic=r.flag("synthetic"),
                   seeds=r.list("seeds"), timer=r.mapping("timer") or {},
                   profile_scales=r.mapping("profile_scales") or {})
        if first is not None:
            meta.device = meta.device or first.device
            meta.profile = meta.profile or first.profile
            meta.dataset = meta.dataset or first.dataset
            meta.synthetic = first.synthetic if meta.synthetic is None else meta.synthetic
            meta.seeds = meta.seeds or first.seeds
            meta.timer = meta.timer or first.timer
        return meta


@dataclass
class RunCase:
    """One case of one saved run, with the run's label and metadata at hand."""

    run: str  # label of the run: its file stem, made unique
    name: str  # the benchmark name, e.g. 'test_precision[fp16]': the case id baselines use
    record: CaseRecord
    meta: RunMeta = field(repr=False)
    path: str = ""  # the saved run's file, for error messages
    index: int = 0  # position in the run: (run, index) identifies a case even if names repeat

    @property
    def machine(self) -> str:
        # The case's own device first: a merged run holds cases of several GPU models.
        return self.record.device or self.meta.device or ""

    @property
    def profile(self) -> str:
        return self.meta.profile or self.record.profile or ""

    def summary(self) -> CaseSummary:
        """The record's summary; a malformed figure is a ReportError naming file and case."""
        try:
            return self.record.summary()
        except BaselineError as exc:
            raise ReportError(f"{self.path or self.run}: case {self.name}: {exc}") from None


@dataclass
class SavedRun:
    path: str
    label: str
    meta: RunMeta
    cases: list[RunCase]
    python: Optional[str] = None
    cpu_brand: Optional[str] = None  # py-cpuinfo's brand_raw
    datetime: Optional[str] = None  # ISO, from pytest-benchmark
    commit: dict[str, Any] = field(default_factory=dict)  # pytest-benchmark's commit_info
    version: Optional[str] = None  # pytest-benchmark's
    partial: Optional[str] = None  # why the run holds only some of its cases (Ctrl-C), or None

    @property
    def smoke(self) -> bool:
        """A smoke-profile or synthetic-data run: its numbers are not speed measurements."""
        return any(p == "smoke" for p in [self.meta.profile, *(c.record.profile for c in self.cases)]) or \
            any(s is True for s in [self.meta.synthetic, *(c.record.synthetic for c in self.cases)])

    @property
    def date(self) -> Optional[str]:
        """``yyyy-mm-dd`` of the run."""
        return self.datetime[:10] if self.datetime and len(self.datetime) >= 10 else None
