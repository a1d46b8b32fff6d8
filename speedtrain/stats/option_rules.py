"""Rules shared by options that two front ends offer (issue 22), so they refuse the same values.

* The verdict threshold: ``speedtrain compare --threshold`` and the suite's ``--st-threshold``
  are the same figure (the smallest relative change that counts), so both take a fraction
  strictly between 0 and 1: at 0 every change of a noiseless pair would count, at 1 or more no
  slowdown could (a ratio is never below 0).
* Seeds per case: a whole number from 1 to :data:`MAX_SEEDS`, or ``auto``. The cap is the one
  ``--st-seeds auto`` stops at (:data:`speedtrain.stats.seeding.MAX_SEEDS`): by the noise simulations
  in speedtrain.stats.seeding, 20 seeds a side decide a change of twice the threshold up to about 5%
  noise, so more seeds only cost time; a noisier case is a machine to fix, not a seed count to
  raise.
* Seed lists print compactly (``0-19``, ``0-4, 7``), so a header line stays one line.
"""

from __future__ import annotations

import math
from typing import Iterable

from speedtrain.common.errors import ConfigError
from speedtrain.stats.seeding import MAX_SEEDS, MIN_SEEDS

AUTO = "auto"
AUTO_RANGE = f"{MIN_SEEDS}-{MAX_SEEDS}"  # what --help and the README say of auto's seed counts


def threshold_fraction(value: object, option: str) -> float:
    """``value`` (text or number) as a threshold, or ConfigError naming ``option``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number < 1:  # NaN fails both comparisons
        raise ConfigError(f"{option} must be a fraction strictly between 0 and 1 (0.05 = 5%); got {value}")
    return number


def seed_count(text: str, option: str = "--st-seeds") -> int | str:
    """``auto`` or a whole number of seeds from 1 to MAX_SEEDS, or ConfigError naming ``option``."""
    if text == AUTO:
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"{option} must be a whole number from 1 to {MAX_SEEDS} (more cannot sharpen a "
                          f"verdict: see speedtrain/stats/seeding.py), or auto ({AUTO_RANGE} seeds by the case's "
                          f"noise); got {text}")
    return n


def compact_seeds(seeds: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 7]`` as ``0-3, 7``: runs of consecutive seeds as ranges."""
    parts: list[str] = []
    ordered = sorted(set(seeds))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts) or "none"
