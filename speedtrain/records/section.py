"""How the report shows a section of cases: a benchmark file says it beside its ``REFERENCE``.

A benchmark file with one section writes ``SECTION = Section("Numeric precision",
parameter="numeric precision")``; one with several (``test_tricks.py``) writes ``SECTIONS =
{"tricks": Section(...), "tricks_cumulative": Section(...)}``, keyed by the test function's
name without ``test_``. The suite saves the section's title, axis and order in every case's
record, so a report made anywhere from the saved run names the section as its file did; a new
benchmark file is then one file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional


@dataclass(frozen=True)
class Section:
    title: str  # the report's heading, e.g. "Numeric precision"
    parameter: str  # what the section varies: the x axis of its time plot
    unit: Optional[str] = None  # of the parameter, e.g. "images per step"; none for a choice
    order: Optional[float] = None  # place in the report (the journey's order); none: after the ordered ones

    def __post_init__(self) -> None:
        if not self.title.strip() or not self.parameter.strip():
            raise ValueError("a Section needs a title and the parameter it varies")

    @property
    def axis(self) -> str:
        return f"{self.parameter} ({self.unit})" if self.unit else self.parameter

    def split_by(self, values: list[str]) -> "Section":
        """The section of the cases that share ``values`` of the module's ``SECTION_BY``
        parameters (``test_memory_format.py``: one section per precision)."""
        return replace(self, title=f"{self.title} ({', '.join(values)})") if values else self
