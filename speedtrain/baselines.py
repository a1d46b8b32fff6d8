"""Stored baselines (``baselines.json``) and noise-aware verdicts on a new run.

File format (human-readable, one entry per machine / profile / case)::

    {"schema": 1, "machines": {"NVIDIA H100 80GB HBM3": {"quick": {"test_precision[fp16]": {
        "metric": "train_time_s",          # or "time_to_target_s"
        "time_s": [10.0, 10.1, 9.9],       # per seed; seeds that missed the target are absent
        "median_s": 10.0, "spread_s": 0.2, # spread = range (max - min) of time_s
        "acc": [0.941, 0.943, 0.940], "reached": [true, true, true], "images_per_s": 118000.0,
        "source": {"date": "...", "commit": "...", "torch": "...", "cuda": "...", ...}}}}}}

``spread_s`` is the range, not the IQR: with the 3-5 seeds a training benchmark can afford,
quartiles are interpolations between one or two points, and the range is exactly what the
overlap check below uses.

Verdict rule (modelled on ``asv compare``, which flags a change only when the ratio of the
results passes a factor *and* ``asv``'s ``is_different`` finds the samples statistically
different). A time change counts only if

1. the ratio of medians (now / baseline) is beyond ``1 +/- threshold`` (default 5%): a
   change smaller than that is not worth acting on even when it is real; and
2. it is larger than the run-to-run noise: with at least 2 seeds on each side, an exact
   two-sided Mann-Whitney U test gives p < 0.05 where the sample sizes let the test reach
   that level at all (4+4 or 3+5 seeds and more); for smaller samples (3+3, 3+4, 2 against
   fewer than 8), where even complete separation cannot reach p < 0.05, the two samples'
   ranges must not overlap. Mann-Whitney because it assumes no distribution (training
   times are skewed by warm-up and stragglers) and is exact for tiny samples; asv uses the
   same test, with its own fallback to non-overlapping intervals for small samples. asv
   asks p < 0.002 of its many repeats; a training case has 3-5 seeds, for which 0.002 is
   unreachable, and the threshold in (1) already keeps small drifts out. Measured on
   normal noise, same-distribution samples are flagged in 0% (1% noise) to ~4% (5% noise)
   of trials, and a 10% change with 1% noise is always caught. With only one seed on a
   side there is no spread to measure, so only the threshold applies.

"accuracy lost" takes precedence over any time verdict: a smaller fraction of seeds reached
the target than in the baseline, or the median final accuracy fell by more than
``max(acc_tolerance, range of the baseline's accuracies)`` -- the baseline's spread, not the
new run's, so that a run which collapses on some seeds cannot widen its own tolerance.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar, Union

from tabulate import tabulate

from speedtrain.atomic import write_json_atomic
from speedtrain.errors import BaselineError

SCHEMA = 1
METRICS = ("train_time_s", "time_to_target_s")
PROFILES = ("smoke", "quick", "full")  # the usual ones; other names are allowed in the file
VERDICTS = ("faster", "unchanged", "slower", "accuracy lost", "no baseline")
REGRESSIONS = ("slower", "accuracy lost")
P_THRESHOLD = 0.05  # Mann-Whitney significance level (see module docstring)
_EXACT_MAX_N = 40   # beyond this many samples in all, the normal approximation is used

TABLE_HEADERS = ("case", "metric", "baseline median", "now median", "change %", "verdict",
                 "detail")


# --- validation helpers ---------------------------------------------------------------------

def _is_number(x: Any) -> bool:
    # bool is an int subclass; true/false in a list of times is a mistake, not 1 s / 0 s.
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _numbers(value: Any, where: str, *, allow_none: bool = False) -> list[float]:
    """A list of finite numbers (None items dropped when allowed), or BaselineError."""
    ok = isinstance(value, list) and all(
        _is_number(v) or (allow_none and v is None) for v in value)
    if not ok:
        kind = "numbers or null" if allow_none else "numbers"
        raise BaselineError(f"{where} must be a list of {kind}, got {_show(value)}")
    return [float(v) for v in value if v is not None]


def _bools(value: Any, where: str) -> list[bool]:
    if not (isinstance(value, list) and all(isinstance(v, bool) for v in value)):
        raise BaselineError(f"{where} must be a list of true/false, got {_show(value)}")
    return list(value)


def _optional_number(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if not _is_number(value):
        raise BaselineError(f"{where} must be a number or null, got {_show(value)}")
    return float(value)


def median_or_none(xs: Iterable[Optional[float]]) -> Optional[float]:
    """The median of the values that are not None; None when there are none."""
    values = [x for x in xs if x is not None]
    return statistics.median(values) if values else None


T = TypeVar("T")


def lower_median(items: Iterable[T], key: Callable[[T], Any]) -> T:
    """The item at the lower middle when sorted by ``key``: with seeds, a run that happened
    rather than an average of two. ``items`` must not be empty."""
    ranked = sorted(items, key=key)
    return ranked[(len(ranked) - 1) // 2]


def _spread(xs: list[float]) -> Optional[float]:
    return max(xs) - min(xs) if xs else None


# --- case summaries -------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseSummary:
    """One case's per-seed figures: the times compared (``metric``), accuracies, targets."""

    metric: str
    time_s: list[float]
    acc: list[float]
    reached: list[bool]
    images_per_s: Optional[float]

    @classmethod
    def from_extra_info(cls, extra_info: Mapping[str, Any]) -> "CaseSummary":
        """Read a benchmark case's pytest-benchmark ``extra_info``.

        Missing keys give empty lists (``compare`` then says there is no data); values of
        the wrong type raise BaselineError with one line naming the key.
        """
        if not isinstance(extra_info, Mapping):
            raise BaselineError(f"extra_info must be a dict, got {_show(extra_info)}")
        metric = extra_info.get("metric", "train_time_s")
        if metric not in METRICS:
            raise BaselineError(
                f"extra_info['metric'] must be one of {', '.join(METRICS)}, got {_show(metric)}")
        # time_to_target_s has None for seeds that never reached the target: dropped here,
        # still visible in `reached`.
        times = _numbers(extra_info.get(metric, []), f"extra_info[{metric!r}]", allow_none=True)
        acc = _numbers(extra_info.get("final_acc", []), "extra_info['final_acc']",
                       allow_none=True)
        reached = _bools(extra_info.get("reached_target", []), "extra_info['reached_target']")
        ips = extra_info.get("images_per_s")
        if isinstance(ips, list):
            ips = median_or_none(_numbers(ips, "extra_info['images_per_s']", allow_none=True))
        else:
            ips = _optional_number(ips, "extra_info['images_per_s']")
        return cls(metric=metric, time_s=times, acc=acc, reached=reached, images_per_s=ips)

    @classmethod
    def _from_entry(cls, entry: Mapping[str, Any]) -> "CaseSummary":
        return cls(metric=entry["metric"], time_s=[float(t) for t in entry["time_s"]],
                   acc=[float(a) for a in entry["acc"]], reached=list(entry["reached"]),
                   images_per_s=entry.get("images_per_s"))

    @property
    def median_s(self) -> Optional[float]:
        return median_or_none(self.time_s)

    @property
    def spread_s(self) -> Optional[float]:
        return _spread(self.time_s)


# --- verdicts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    label: str  # one of VERDICTS
    ratio: Optional[float]  # new median time / baseline median time
    detail: str  # short human reason, e.g. "+11.8% (baseline 10.02 s [9.90-10.10], now ...)"


@lru_cache(maxsize=None)
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """Number of orderings of n + m distinct values giving each Mann-Whitney U = 0..n*m."""
    if n == 0 or m == 0:
        return (1,)
    # The largest value belongs to the first sample (it beats all m others: U += m) or to
    # the second (U unchanged): Mann & Whitney's 1947 recurrence.
    out = [0] * (n * m + 1)
    for u, c in enumerate(_u_counts(n - 1, m)):
        out[u + m] += c
    for u, c in enumerate(_u_counts(n, m - 1)):
        out[u] += c
    return tuple(out)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (exact for small samples).

    Ties count one half; the exact null distribution assumes none, which is close enough
    for float timings. Above ``_EXACT_MAX_N`` values the normal approximation is used.
    """
    n, m = len(a), len(b)
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    u_low = min(u, n * m - u)  # the distribution is symmetric
    if n + m <= _EXACT_MAX_N:
        counts = _u_counts(n, m)
        tail = sum(counts[: math.floor(u_low) + 1])
        return min(1.0, 2.0 * tail / math.comb(n + m, n))
    mu, sigma = n * m / 2.0, math.sqrt(n * m * (n + m + 1) / 12.0)
    z = max(0.0, (mu - u_low - 0.5) / sigma)  # 0.5: continuity correction
    return min(1.0, math.erfc(z / math.sqrt(2.0)))


def beyond_noise(a: list[float], b: list[float], p_threshold: float = P_THRESHOLD) -> bool:
    """Whether samples a and b differ by more than their run-to-run spread (docstring rule)."""
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return True  # no spread to measure on one side: the threshold alone decides
    if 2.0 / math.comb(n + m, n) < p_threshold:  # the test can reach p_threshold at all
        return mann_whitney_p(a, b) < p_threshold
    return max(a) < min(b) or max(b) < min(a)  # too few for the test: ranges must not overlap


def _describe(xs: list[float]) -> str:
    med = statistics.median(xs)
    if len(xs) == 1:
        return f"{med:.2f} s"
    return f"{med:.2f} s [{min(xs):.2f}-{max(xs):.2f}]"


def _accuracy_loss(base: CaseSummary, new: CaseSummary, acc_tolerance: float) -> Optional[str]:
    """Why accuracy counts as lost, or None."""
    if base.reached and new.reached:
        frac_base = sum(base.reached) / len(base.reached)
        frac_new = sum(new.reached) / len(new.reached)
        if frac_new < frac_base:
            return (f"{sum(new.reached)}/{len(new.reached)} seeds reached the target "
                    f"(baseline {sum(base.reached)}/{len(base.reached)})")
    if base.acc and new.acc:
        med_base, med_new = statistics.median(base.acc), statistics.median(new.acc)
        allowed = max(acc_tolerance, max(base.acc) - min(base.acc))
        drop = med_base - med_new
        if drop > allowed:
            return (f"median accuracy {100 * med_new:.2f}% (baseline {100 * med_base:.2f}%, "
                    f"-{100 * drop:.2f} pt > {100 * allowed:.2f} pt allowed)")
    return None


def compare(base: Optional[CaseSummary], new: CaseSummary, *, threshold: float = 0.05,
            acc_tolerance: float = 0.005) -> Verdict:
    """Verdict of ``new`` against ``base`` under the rule in the module docstring."""
    if base is None:
        return Verdict("no baseline", None, "no baseline for this case")
    if base.metric != new.metric:
        return Verdict("no baseline", None,
                       f"metric differs: baseline {base.metric}, now {new.metric}")
    ratio = None
    if base.time_s and new.time_s and statistics.median(base.time_s) > 0:
        ratio = statistics.median(new.time_s) / statistics.median(base.time_s)
    lost = _accuracy_loss(base, new, acc_tolerance)
    if lost is not None:
        return Verdict("accuracy lost", ratio, lost)
    if not base.time_s:
        return Verdict("no baseline", None, f"no {base.metric} data in the baseline")
    if not new.time_s:
        # The baseline finished and this run did not (every seed diverged, ran out of memory
        # or missed the target): a regression, not a missing baseline.
        return Verdict("accuracy lost", None, f"no seed produced {new.metric} this time "
                       f"(baseline {_describe(base.time_s)})")
    if ratio is None:
        return Verdict("no baseline", None, f"baseline {base.metric} median is 0")
    figures = f"(baseline {_describe(base.time_s)}, now {_describe(new.time_s)})"
    change = f"{100 * (ratio - 1):+.1f}%"
    if abs(ratio - 1) <= threshold:
        return Verdict("unchanged", ratio,
                       f"{change} within the {100 * threshold:g}% threshold {figures}")
    if not beyond_noise(base.time_s, new.time_s):
        return Verdict("unchanged", ratio, f"{change} within run-to-run noise {figures}")
    caveat = ""
    if min(len(base.time_s), len(new.time_s)) < 2:
        caveat = " - one seed: run-to-run noise unknown, use more seeds to confirm"
    return Verdict("slower" if ratio > 1 else "faster", ratio, f"{change} {figures}{caveat}")


def regressed(verdicts: Iterable[Union[Verdict, Mapping[str, Any], tuple, str]]) -> bool:
    """Whether any verdict is 'slower' or 'accuracy lost'. Items may be Verdicts, rows
    from :func:`verdict_rows`, ``(case, Verdict, base, new)`` tuples, or labels."""
    for v in verdicts:
        if isinstance(v, tuple):
            v = v[1]
        if isinstance(v, Verdict):
            label = v.label
        elif isinstance(v, Mapping):
            label = v["verdict"]
        else:
            label = v
        if label in REGRESSIONS:
            return True
    return False


def verdict_row(case: str, verdict: Verdict, base: Optional[CaseSummary],
                new: CaseSummary) -> dict[str, Any]:
    """One table row: case, metric, baseline_median_s, now_median_s, change_pct, verdict
    (the label), detail, ratio -- plain values, ready for :func:`format_table` or JSON."""
    return {
        "case": case,
        "metric": new.metric,
        "baseline_median_s": None if base is None else base.median_s,
        "now_median_s": new.median_s,
        "change_pct": None if verdict.ratio is None else 100 * (verdict.ratio - 1),
        "verdict": verdict.label,
        "detail": verdict.detail,
        "ratio": verdict.ratio,
    }


def verdict_rows(data: Mapping[str, Any], machine: str, profile: str,
                 results: Mapping[str, Union[CaseSummary, Mapping[str, Any]]], *,
                 threshold: float = 0.05, acc_tolerance: float = 0.005) -> list[dict[str, Any]]:
    """One :func:`verdict_row` per case of ``results`` (case id -> extra_info or CaseSummary),
    compared with the stored baseline of that machine and profile, in the order given."""
    rows = []
    for case, result in results.items():
        new = result if isinstance(result, CaseSummary) else CaseSummary.from_extra_info(result)
        base = lookup(data, machine, profile, case)
        v = compare(base, new, threshold=threshold, acc_tolerance=acc_tolerance)
        rows.append(verdict_row(case, v, base, new))
    return rows


Row = Union[Mapping[str, Any], tuple]


def format_table(rows: Iterable[Row]) -> str:
    """The end-of-session verdict table (tabulate, plain text).

    Takes rows from :func:`verdict_rows` / :func:`verdict_row`, or ``(case, Verdict, base,
    new)`` tuples, which are turned into rows first.
    """
    def secs(x: Optional[float]) -> Optional[str]:
        return None if x is None else f"{x:.2f} s"

    body = []
    for r in rows:
        if not isinstance(r, Mapping):
            r = verdict_row(*r)
        change = r.get("change_pct")
        body.append((r["case"], r.get("metric"), secs(r.get("baseline_median_s")),
                     secs(r.get("now_median_s")), None if change is None else f"{change:+.1f}",
                     r["verdict"], r.get("detail")))
    return tabulate(body, headers=TABLE_HEADERS, tablefmt="simple", missingval="-",
                    disable_numparse=True)


# --- the file -------------------------------------------------------------------------------

def empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "machines": {}}


def _validate_source(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise BaselineError(f"{where} must be an object, got {_show(source)}")
    for key, value in source.items():
        if key == "synthetic":
            if not isinstance(value, bool):
                raise BaselineError(f"{where}.synthetic must be true or false, got {_show(value)}")
        elif value is not None and not isinstance(value, str):
            raise BaselineError(f"{where}.{key} must be a string or null, got {_show(value)}")


def _validate_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} must be an object, got {_show(entry)}")
    for key in ("metric", "time_s", "median_s", "spread_s", "acc", "reached", "source"):
        if key not in entry:
            raise BaselineError(f"{where} lacks the key {key!r}")
    if entry["metric"] not in METRICS:
        raise BaselineError(
            f"{where}.metric must be one of {', '.join(METRICS)}, got {_show(entry['metric'])}")
    _numbers(entry["time_s"], f"{where}.time_s")
    _optional_number(entry["median_s"], f"{where}.median_s")
    _optional_number(entry["spread_s"], f"{where}.spread_s")
    _numbers(entry["acc"], f"{where}.acc")
    _bools(entry["reached"], f"{where}.reached")
    _optional_number(entry.get("images_per_s"), f"{where}.images_per_s")
    _validate_source(entry["source"], f"{where}.source")


def validate(data: Any) -> None:
    """Raise BaselineError (one line, naming the place inside) if data is not a baselines file."""
    if not isinstance(data, dict):
        raise BaselineError(f"the top level must be an object, got {_show(data)}")
    if data.get("schema") != SCHEMA:
        raise BaselineError(f"schema must be {SCHEMA}, got {_show(data.get('schema'))}")
    machines = data.get("machines")
    if not isinstance(machines, dict):
        raise BaselineError(f"machines must be an object, got {_show(machines)}")
    for machine, profiles in machines.items():
        where_m = f"machines[{machine!r}]"
        if not isinstance(profiles, dict):
            raise BaselineError(f"{where_m} must be an object of profiles, got {_show(profiles)}")
        for profile, cases in profiles.items():
            where_p = f"{where_m}[{profile!r}]"
            if not isinstance(cases, dict):
                raise BaselineError(f"{where_p} must be an object of cases, got {_show(cases)}")
            for case, entry in cases.items():
                _validate_entry(entry, f"{where_p}[{case!r}]")


def load(path: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """Read and validate a baselines file; a missing file is an empty set of baselines."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return empty()
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{os.fspath(path)}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{os.fspath(path)}: not valid JSON: {exc.msg} at line "
                            f"{exc.lineno} column {exc.colno}") from None
    try:
        validate(data)
    except BaselineError as exc:
        raise BaselineError(f"{os.fspath(path)}: {exc}") from None
    return data


def save(path: Union[str, os.PathLike[str]], data: Mapping[str, Any]) -> None:
    """Validate, then write atomically: on any failure the old file is left as it was."""
    try:
        validate(data)
    except BaselineError as exc:
        raise BaselineError(f"{os.fspath(path)}: refusing to save: {exc}") from None
    write_json_atomic(path, data)


def lookup(data: Mapping[str, Any], machine: str, profile: str,
           case: str) -> Optional[CaseSummary]:
    """The stored baseline of a case, or None if this machine/profile/case has none."""
    entry = data.get("machines", {}).get(machine, {}).get(profile, {}).get(case)
    return None if entry is None else CaseSummary._from_entry(entry)


def record(data: dict[str, Any], machine: str, profile: str, case: str,
           extra_info: Mapping[str, Any], source: Mapping[str, Any]) -> None:
    """Put a case's figures into ``data`` (in memory; :func:`save` writes the file)."""
    summary = CaseSummary.from_extra_info(extra_info)
    src = dict(source)
    src.setdefault("profile", profile)
    _validate_source(src, "source")
    entry = {
        "metric": summary.metric,
        "time_s": summary.time_s,
        "median_s": summary.median_s,
        "spread_s": summary.spread_s,
        "acc": summary.acc,
        "reached": summary.reached,
        "images_per_s": summary.images_per_s,
        "source": src,
    }
    data.setdefault("schema", SCHEMA)
    data.setdefault("machines", {}).setdefault(machine, {}).setdefault(profile, {})[case] = entry
