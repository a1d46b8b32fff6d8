"""A ladder: named steps of config changes, each adding to the ones before it (the myrtle.ai and
airbench journeys, the benchmark files' cumulative sections)."""

from __future__ import annotations

from typing import Any


def cumulative(ladder: list[tuple[str, dict[str, Any]]], step: int) -> dict[str, Any]:
    """The config of a cumulative ladder at ``step``: the changes of steps 0..step merged."""
    merged: dict[str, Any] = {}
    for _, changes in ladder[: step + 1]:
        merged.update(changes)
    return merged
