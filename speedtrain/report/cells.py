"""How a report writes one cell: seconds, percentages, ratios, sizes, ranges, and the pipe
table they go into. ``-`` (:data:`MISSING`) stands for a figure that was not recorded."""

from __future__ import annotations

from typing import Iterable, Optional

MISSING = "-"


def fmt_seconds(x: Optional[float]) -> str:
    if x is None:
        return MISSING
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_pct(fraction: Optional[float]) -> str:
    return MISSING if fraction is None else f"{100 * fraction:.2f}%"


def fmt_ratio(x: Optional[float]) -> str:
    return MISSING if x is None else f"{x:.2f}x"


def fmt_int(x: Optional[float]) -> str:
    return MISSING if x is None else f"{x:,.0f}"


def fmt_gib(n_bytes: Optional[float]) -> str:
    return MISSING if n_bytes is None else f"{n_bytes / 2**30:.2f}"


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fmt_range(values: list[float]) -> str:
    """min-max over the seeds with a time, and how many; one seed has no spread."""
    if not values:
        return MISSING
    if len(values) == 1:
        return seeds_text(1)
    return f"{fmt_seconds(min(values))}-{fmt_seconds(max(values))} ({seeds_text(len(values))})"


def fmt_scaled(x: Optional[float], unit: float) -> str:
    """``x / unit`` with three significant figures (GFLOP/img, TFLOP/s)."""
    return MISSING if x is None else f"{x / unit:.3g}"


def markdown(rows: list[dict[str, str]], numeric: Iterable[str] = ()) -> str:
    """A pipe table; cells are pre-formatted strings, so tabulate must not re-parse numbers.
    A column that is ``-`` in every row (energy on a CPU) is left out."""
    import pandas as pd

    # A '|' inside a cell would end the cell early.
    df = pd.DataFrame([{k: str(v).replace("|", "\\|") for k, v in row.items()} for row in rows])
    df = df[[c for c in df.columns if not (df[c] == MISSING).all()]]
    numeric = set(numeric)
    align = ["right" if c in numeric else "left" for c in df.columns]
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)
