"""``speedtrain``: train once, report on saved benchmark runs, compare runs.

    speedtrain train --dataset fashion-mnist --data-dir data --epochs 2 --json run.json
    speedtrain train --recipe airbench94 --precision fp32   (a named recipe; explicit options override it)
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

from speedtrain.common.atomic import check_writable, write_json_atomic, write_with_fallback
from speedtrain.cli.exit_codes import add_exit_codes
from speedtrain.cli.recipes import add_recipe_options, apply_recipe, list_recipes
from speedtrain.cli.results import add_commands, cmd_compare, cmd_history, cmd_report
from speedtrain.config.fields import GROUPS
from speedtrain.config.trainconfig import FieldSpec, TrainConfig, choices, field_specs
from speedtrain.common.errors import SpeedtrainError, one_line
from speedtrain.common.output_paths import check_outputs
from speedtrain.hw.device import resolve_device
from speedtrain.hw.gpumonitor import GpuMonitor
from speedtrain.report.mllog import MlLog, submission_from_options
from speedtrain.train.progress import epoch_progress
from speedtrain.hw.resources import machine_limits, resource_warnings
from speedtrain.records.merge import merge_files


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


# Shorter spellings of a field's option: `speedtrain train --breakdown 5`.
ALIASES = {"breakdown_steps": ("--breakdown",)}


def _add_config_options(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """One ``--kebab-case`` option per TrainConfig field, in its field's role group
    (``config.fields.GROUPS``); unset options keep the config default (the myrtle.ai ResNet-9
    recipe in fp32). Returns the groups."""
    groups = {name: parser.add_argument_group(f"{title} options") for name, title in GROUPS.items()}
    for spec in field_specs().values():
        group = groups[spec.group]
        flag = "--" + spec.name.replace("_", "-")
        flags = (flag, *ALIASES.get(spec.name, ()))
        common: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS,
                                  "help": f"{spec.help} [default: {_as_typed(spec.default)}]".replace("%", "%%")}  # argparse formats %
        if spec.kind is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
            continue
        # choices= lets tools (shell completion, the plugin's tests) read the list; the type
        # function already refused anything else with a message naming the allowed values.
        choices = (*spec.choices, *((None,) if spec.optional else ())) if spec.choices else None
        group.add_argument(*flags, type=_parse_value(spec), choices=choices, metavar=_metavar(spec), **common)
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
    add_recipe_options(run)  # --recipe NAME, --list-recipes (speedtrain.recipes)
    run.add_argument("--json", metavar="PATH", help="write the result (config, environment, per-epoch figures) as JSON")
    run.add_argument("--mllog", metavar="PATH", help="write an MLPerf-style event log (:::MLLOG lines) as the run goes")
    run.add_argument("--trace", metavar="FILE", help="write the profiler's Chrome trace of the breakdown steps "
                     "(open in Perfetto or chrome://tracing); needs --breakdown above 0")
    run.add_argument("--mllog-org", metavar="NAME", help="with --mllog: MLPerf's submission_org (all three --mllog-* or none)")
    run.add_argument("--mllog-platform", metavar="NAME", help="with --mllog: MLPerf's submission_platform (the system's name)")
    run.add_argument("--mllog-division", metavar="{closed,open}", help="with --mllog: MLPerf's submission_division")
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
    add_exit_codes(parser, sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from speedtrain.train.loop import format_summary, stderr_log, train
    from speedtrain.train.notice import header, slow_device_warnings

    if args.list_recipes:
        print(list_recipes())
        return 0
    values = apply_recipe(args, {k: v for k, v in vars(args).items() if k in field_specs()})
    cfg = TrainConfig(**values)
    check_outputs({"--json": args.json, "--mllog": args.mllog})  # before minutes of training
    if args.json:
        check_writable(args.json)
    if args.trace:
        if not cfg.breakdown_steps:
            raise SpeedtrainError("--trace writes the breakdown's profile; it needs --breakdown N above 0")
        check_writable(args.trace)
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
    submission = submission_from_options(args.mllog_org, args.mllog_platform, args.mllog_division, args.mllog)
    if args.mllog:
        check_writable(args.mllog)
        if getattr(cfg, "nproc", 1) > 1:
            raise SpeedtrainError("--mllog logs a single-process run; the nproc ranks run in torchrun")
    with MlLog(args.mllog, cfg, submission) if args.mllog else contextlib.nullcontext() as mllog:
        result = train(cfg, monitor=monitor, log=log, events=mllog.event if mllog else None, steps=steps,
                       trace=args.trace)
    print(format_summary(result))
    if args.trace and result.breakdown is not None:
        print(f"profiler trace written to {args.trace}")
    if args.json:
        write_with_fallback(args.json, lambda path: result.save_json(str(path)), "the result")
        print(f"result written to {args.json}")
    return 0 if result.status == "ok" else 1


def _cmd_merge(args: argparse.Namespace) -> int:
    check_outputs({"-o": args.output}, {"RUN.json": args.runs})  # as report -o: never over an input

    check_writable(args.output)
    merged = merge_files(args.runs, args.output)
    print(f"{len(merged['benchmarks'])} cases from {len(args.runs)} runs written to {args.output}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from speedtrain.doctor.command import format_table, resolve, run_doctor
    from speedtrain.train.loop import stderr_log

    check_outputs({"--json": args.json})
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
