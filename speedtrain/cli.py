"""``speedtrain``: train once, report on saved benchmark runs, compare runs.

    speedtrain train --dataset fashion-mnist --data-dir data --epochs 2 --json run.json
    speedtrain report .benchmarks/*/0001_mine.json -o reports/mine/REPORT.md
    speedtrain compare OLD.json NEW.json          (exit 1 when something regressed)
    speedtrain compare --baselines baselines.json NEW.json
    speedtrain compare 0003 latest --only-common  (runs named as pytest-benchmark names them)
    speedtrain history test_precision[fp16]       (a case's recorded baselines over time)

Bad input exits with code 2 and one ``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Callable, NoReturn, Optional, Sequence

from speedtrain.atomic import check_writable, write_with_fallback
from speedtrain.cli_results import add_commands, cmd_compare, cmd_history, cmd_report
from speedtrain.config import FieldSpec, TrainConfig, choices, field_specs
from speedtrain.errors import OutputError, SpeedtrainError, one_line


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


_NONE_WORDS = ("none", "null")


def _parse_value(spec: FieldSpec) -> Callable[[str], Any]:
    """The option's text to the field's value; ``none`` for an optional field. Range and
    finiteness are left to TrainConfig, so the CLI and the Python API refuse the same values."""
    words = {int: "a whole number", float: "a number"}.get(spec.kind, "")
    allowed = "one of " + ", ".join(spec.choices) if spec.choices else words

    def parse(text: str) -> Any:
        if spec.optional and text.lower() in _NONE_WORDS:
            return None
        if spec.choices:
            if text not in spec.choices:
                raise argparse.ArgumentTypeError(f"must be {allowed}{', or none' if spec.optional else ''}; got {text!r}")
            return text
        if spec.kind is tuple:
            return _int_list(text)
        try:
            return spec.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}{' or none' if spec.optional else ''}; got {text!r}") from None
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated whole numbers (e.g. 1,3), or empty; got {text!r}") from None


def _as_typed(value: Any) -> str:
    """A default as a user would type it on the command line: none, on/off, 1,3, cifar10."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "empty"
    return str(value)


def _metavar(spec: FieldSpec) -> str:
    if spec.choices:
        return "{" + ",".join(spec.choices + (("none",) if spec.optional else ())) + "}"
    base = {int: "N", float: "X", tuple: "LIST"}.get(spec.kind, "PATH" if spec.name == "data_dir" else "TEXT")
    return f"{base}|none" if spec.optional else base


GROUP_TITLES = {"data": "data", "model": "model", "precision": "precision and compilation",
                "schedule": "schedule and optimiser", "run": "run"}


def _add_config_options(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """One ``--kebab-case`` option per TrainConfig field, in the groups of ``config.OPTION_GROUPS``;
    unset options keep the config default (the myrtle.ai ResNet-9 recipe in fp32). Returns the groups."""
    groups = {name: parser.add_argument_group(f"{title} options") for name, title in GROUP_TITLES.items()}
    for spec in field_specs().values():
        group = groups.get(spec.group) or groups["run"]
        flag = "--" + spec.name.replace("_", "-")
        common: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS,
                                  "help": f"{spec.help} [default: {_as_typed(spec.default)}]".replace("%", "%%")}  # argparse formats %
        if spec.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
            continue
        # choices= lets tools (shell completion, the plugin's tests) read the list; the type
        # function already refused anything else with a message naming the allowed values.
        choices = (*spec.choices, *((None,) if spec.optional else ())) if spec.choices else None
        group.add_argument(flag, type=_parse_value(spec), choices=choices, metavar=_metavar(spec), **common)
    return groups


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"speedtrain {version('speedtrain')}"
    except PackageNotFoundError:
        return "speedtrain (not installed: no version)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="speedtrain", description="Train once, report on saved benchmark runs, compare runs.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_train = sub.add_parser("train", help="train once with one configuration and print per-epoch progress")
    run = _add_config_options(p_train)["run"]
    run.add_argument("--json", metavar="PATH", help="write the result (config, environment, per-epoch figures) as JSON")
    run.add_argument("--mllog", metavar="PATH", help="write an MLPerf-style event log (:::MLLOG lines) as the run goes")
    run.add_argument("--quiet", action="store_true", help="print only the summary, no per-epoch lines")
    run.add_argument("--monitor", action=argparse.BooleanOptionalAction, default=True,
                     help="sample GPU telemetry with NVML while training (on a GPU) [default: on]")

    add_commands(sub)  # report, compare, history

    p_merge = sub.add_parser("merge", help="join saved runs (shards, GPU types) of one profile into one saved run")
    p_merge.add_argument("runs", nargs="+", metavar="RUN.json", help="saved runs; a case may appear once per GPU model")
    p_merge.add_argument("-o", "--output", metavar="MERGED.json", required=True, help="the merged run to write")

    p_doc = sub.add_parser("doctor", help="check this machine's GPU, driver, torch build, timer and telemetry (exit 1 on any FAIL)")
    p_doc.add_argument("--device", choices=choices("device"), default="auto",
                       help="device to check; cuda without a usable GPU is a FAIL [default: auto]")
    p_doc.add_argument("--json", metavar="PATH", help="also write the checks as JSON")
    p_doc.add_argument("--quick", action="store_true", help="smaller matmuls, no monitor-overhead training (seconds, not a minute)")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from speedtrain.config import resolve_device
    from speedtrain.gpumonitor import GpuMonitor
    from speedtrain.mllog import MlLog
    from speedtrain.progress import epoch_progress
    from speedtrain.resources import machine_limits, resource_warnings
    from speedtrain.train import format_summary, stderr_log, train
    from speedtrain.train_notice import header, slow_device_warnings

    values = {k: v for k, v in vars(args).items() if k in field_specs()}
    cfg = TrainConfig(**values)
    if args.json:
        check_writable(args.json)
    device = resolve_device(cfg)
    if not args.quiet:  # before the data and the model: on a CPU they can take minutes
        print(header(cfg, str(device)), file=sys.stderr, flush=True)
    for warning in [*slow_device_warnings(cfg, device.type), *resource_warnings(cfg, machine_limits(cfg))]:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    log = (lambda line: None) if args.quiet else stderr_log
    # within an epoch: a bar on a terminal's stderr, else a line every 30 s under the epoch table
    steps = None if args.quiet else epoch_progress(lambda line: log("    " + line), sys.stderr)
    # The monitor watches the GPU this run trains on (not NVML's GPU 0).
    monitor = GpuMonitor(device) if args.monitor else None
    if args.mllog:
        check_writable(args.mllog)
        if getattr(cfg, "nproc", 1) > 1:
            raise SpeedtrainError("--mllog logs a single-process run; the nproc ranks run in torchrun")
    with MlLog(args.mllog, cfg) if args.mllog else contextlib.nullcontext() as mllog:
        result = train(cfg, monitor=monitor, log=log, events=mllog.event if mllog else None, steps=steps)
    print(format_summary(result))
    if args.json:
        write_with_fallback(args.json, lambda path: result.save_json(str(path)), "the result")
        print(f"result written to {args.json}")
    return 0 if result.status == "ok" else 1


def _cmd_merge(args: argparse.Namespace) -> int:
    from speedtrain.merge import merge_files

    check_writable(args.output)
    merged = merge_files(args.runs, args.output)
    print(f"{len(merged['benchmarks'])} cases from {len(args.runs)} runs written to {args.output}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from speedtrain.atomic import write_json_atomic
    from speedtrain.doctor import format_table, resolve, run_doctor
    from speedtrain.train import stderr_log

    if args.json:
        check_writable(args.json)  # before a minute of checks, not after
    report = run_doctor(resolve(args.device), quick=args.quick, log=stderr_log)
    print(format_table(report.checks))
    print(report.summary_line())
    if args.json:
        write_with_fallback(args.json, lambda path: write_json_atomic(path, report.to_dict()), "the doctor report")
        print(f"doctor report written to {args.json}")
    return 1 if report.failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": _cmd_train, "report": cmd_report, "compare": cmd_compare, "history": cmd_history,
                "doctor": _cmd_doctor, "merge": _cmd_merge}
    try:
        return commands[args.command](args)
    except SpeedtrainError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
