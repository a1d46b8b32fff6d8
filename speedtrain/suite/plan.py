"""What a session's selected cases will need, decided before the first one trains.

* **Their data** (:func:`case_dataset`): a benchmark file whose cases train on another dataset
  than the session's (``test_image_size.py``: Fashion-MNIST) says so in a module-level
  ``DATASET = "fashion-mnist"``, so the check before the first case reads the datasets of the
  cases selected (``-k image_size`` needs Fashion-MNIST, not CIFAR-10).
* **Which will run** (:func:`will_run`): a case whose parameters the device refuses (``tf32``
  on a CPU or before Ampere, more data-parallel ranks than GPUs) is skipped when it starts;
  the duration estimate counts only the others.
* **The estimate** (:func:`session_estimate`): the profile's rough seconds per case times the
  cases that run, and where that passes an hour, a selection that fits or the profile that does.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from speedtrain.train.progress import ROUGH_CASE_S, duration
from speedtrain.config.trainconfig import TrainConfig, field_specs
from speedtrain.hw.device import check_device
from speedtrain.common.errors import ConfigError

FITS_S = 3600.0  # what a first session should take: an hour


def case_dataset(item: Any, session_dataset: str) -> str:
    """The dataset a collected case trains on: its module's ``DATASET``, else the session's."""
    module = getattr(item, "module", None)
    declared = getattr(module, "DATASET", None)
    return declared if isinstance(declared, str) else session_dataset


def will_run(params: Mapping[str, Any], base: Mapping[str, Any], device_type: str, gpus: int) -> Optional[str]:
    """Why a case with these parametrize ``params`` will be skipped on this device, or None
    if it will run. Only parameters that are config fields are read (a ladder's ``step`` is not)."""

    fields = {k: v for k, v in params.items() if k in field_specs()}
    try:
        cfg = TrainConfig(**{**base, **fields})
        check_device(cfg, device_type)
    except ConfigError as exc:
        return str(exc)
    except (TypeError, ValueError):  # not a config value after all: the case itself decides
        return None
    if cfg.nproc > 1 and cfg.nproc > gpus:
        return f"needs {cfg.nproc} GPUs, this machine shows {gpus}"
    return None


def session_estimate(profile: str, device_type: str, names: Sequence[str], skipped: int) -> Optional[str]:
    """The line before a measuring session: its rough duration over the cases that will run
    (``names``), and, past an hour, what fits in one."""
    if profile == "smoke" or not names:
        return None
    per_case = ROUGH_CASE_S[(profile, device_type)]
    total = per_case * len(names)
    line = (f"speedtrain: {len(names)} cases of the {profile} profile take roughly {duration(total)} "
            f"on this {device_type}")
    if skipped:
        line += f" ({skipped} more will be skipped on this device)"
    if total <= FITS_S:
        return line
    fit = int(FITS_S // per_case)
    if fit >= 1:
        pick = " or ".join(_param_id(n) for n in names[:fit][:3])
        return line + f"; about {fit} of them fit in an hour, e.g. -k '{pick}'"
    smoke = ROUGH_CASE_S[("smoke", device_type)] * len(names)
    return line + (f"; one case alone takes about {duration(per_case)} here, so no selection of this profile "
                   f"fits in an hour: --st-profile smoke checks the plumbing of the same cases "
                   f"(roughly {duration(smoke)})")


def _param_id(name: str) -> str:
    """``test_precision[fp32]`` -> ``fp32`` (what -k matches); a name without one stays whole."""
    return name.split("[", 1)[1].rstrip("]") if "[" in name else name


def worker_threads(device_type: str, requested: Optional[int], workers: int, cores: int) -> tuple[Optional[int], Optional[str]]:
    """Torch threads for one of ``workers`` xdist workers sharing ``cores`` physical cores, and
    a warning when the user's ``--st-threads`` oversubscribes them. On a CPU without
    ``--st-threads`` the cores are divided among the workers (at least one each), so two
    workers on two cores run one thread each instead of timing each other's two; a GPU run
    keeps torch's default (None), its host threads only feed its GPU."""
    if workers <= 1:
        return requested, None
    if requested is not None:
        if device_type == "cpu" and requested * workers > cores:
            return requested, (f"{workers} xdist workers x {requested} torch threads (--st-threads) exceed the "
                               f"{cores} physical cores: the cases compete for them and their times are suspect")
        return requested, None
    if device_type != "cpu":
        return None, None
    share = max(1, cores // workers)
    warning = None if workers <= cores else (f"{workers} xdist workers share {cores} physical cores: the cases "
                                             f"compete for them and their times are suspect; use -n {cores}")
    return share, warning
