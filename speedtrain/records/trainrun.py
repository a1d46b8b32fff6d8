"""A ``speedtrain train --json`` result read as a saved run of one case.

``report`` and ``compare`` take what ``train --json`` writes as readily as a pytest-benchmark
run: the result becomes one :class:`speedtrain.records.record.CaseRecord` built by the same
``CaseRecord.from_results`` the suite uses, in a run of its own. Its case is always named
``train`` (section ``train``), so two results compare with each other whatever their
configuration; its case id names the configuration. It has no profile, so it has no stored
baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from speedtrain.common.errors import ReportError, exception_text
from speedtrain.records.record import CaseRecord, is_number
from speedtrain.records.result import RunResult
from speedtrain.records.saved_run import RunCase, RunMeta, SavedRun

CASE_NAME = "train"
TRAIN_KEYS = ("config", "env", "device", "epochs")  # what marks a train --json result


def is_train_result(data: Any) -> bool:
    return isinstance(data, Mapping) and "benchmarks" not in data and all(k in data for k in TRAIN_KEYS)


def case_id(config: Mapping[str, Any]) -> str:
    """e.g. ``resnet9 x0.25 fashion-mnist fp16 bs512 24ep``: what was trained (model, width,
    dataset, precision, batch, epochs), readable in a report table."""
    width = f"x{config['width']:g}" if is_number(config.get("width")) and config["width"] != 1 else None
    data = f"{config.get('dataset')}{' (synthetic)' if config.get('synthetic') else ''}" if config.get("dataset") else None
    parts = [config.get("model"), width, data, config.get("precision"),
             f"bs{config['batch_size']}" if config.get("batch_size") else None,
             f"{config['epochs']:g}ep" if is_number(config.get("epochs")) else None]
    return " ".join(str(p) for p in parts if p) or CASE_NAME


def train_result_run(path: Path, data: Mapping[str, Any], label: str) -> SavedRun:
    """The :class:`SavedRun` of a train result; ReportError (one line) if it is malformed."""
    try:
        result = RunResult.from_dict(dict(data))
        config = dict(result.config)
        record = CaseRecord.from_results(
            [result], section="train", case=case_id(config), reference=True, step=None, profile="",
            metric="train_time_s", seeds=[config["seed"]] if isinstance(config.get("seed"), int) else [],
            target_acc=result.target_acc, config=config, monitor=result.gpu is not None)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path}: not a readable speedtrain train --json result ({exception_text(exc)})") from None
    env: Mapping[str, Any] = result.env if isinstance(result.env, Mapping) else {}
    commit = env.get("commit") if isinstance(env.get("commit"), str) else None
    meta = RunMeta(profile=None, device=result.device, gpu=dict(env.get("gpu") or {}), torch=_text(env.get("torch")),
                   cuda=_text(env.get("cuda")), cudnn=env.get("cudnn") if is_number(env.get("cudnn")) else None,
                   cpu=_text(env.get("cpu")), commit=commit, dataset=_text(config.get("dataset")),
                   synthetic=result.synthetic, seeds=record.seeds, timer=dict(result.timer or {}))
    commit_info = {"id": commit.removesuffix("+dirty"), "dirty": commit.endswith("+dirty")} if commit else {}
    return SavedRun(path=str(path), label=label, meta=meta,
                    cases=[RunCase(label, CASE_NAME, record, meta, str(path), 0)],
                    python=_text(env.get("python")), cpu_brand=_text(env.get("cpu")), commit=commit_info,
                    version=None)


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)
