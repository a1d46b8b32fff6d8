"""``speedtrain``: train once, report on saved benchmark runs, compare runs.

    speedtrain train --dataset fashion-mnist --data-dir data --epochs 2 --json run.json
    speedtrain report .benchmarks/*/0001_mine.json -o reports/mine/REPORT.md
    speedtrain compare OLD.json NEW.json          (exit 1 when something regressed)
    speedtrain compare --baselines baselines.json NEW.json

Bad input exits with code 2 and one ``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, NoReturn, Optional, Sequence

from speedtrain.config import TrainConfig
from speedtrain.errors import SpeedtrainError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _number(kind: Callable[[str], Any], words: str, optional: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}{' or none' if optional else ''}; got {text!r}") from None
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated whole numbers (e.g. 1,3), or empty; got {text!r}") from None


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--kebab-case`` option per TrainConfig field; unset options keep the config default."""
    group = parser.add_argument_group("training configuration (defaults: the myrtle.ai ResNet-9 recipe in fp32)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        optional = kind.startswith("Optional[")
        kind = kind.removeprefix("Optional[").removesuffix("]")
        help_text = f"{f.metadata['help']} [default: {f.default!r}]"
        common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif kind == "int":
            group.add_argument(flag, type=_number(int, "a whole number", optional), metavar="N", **common)
        elif kind == "float":
            group.add_argument(flag, type=_number(float, "a number", optional), metavar="X", **common)
        elif kind.startswith("tuple"):
            group.add_argument(flag, type=_int_list, metavar="LIST", **common)
        else:
            metavar = "PATH" if f.name == "data_dir" else "NAME"
            group.add_argument(flag, type=_optional_str if optional else str,
                               metavar=metavar if not optional else f"{metavar}|none", **common)


def _optional_str(text: str) -> Optional[str]:
    return None if text.lower() in ("none", "null") else text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="speedtrain", description="Train once, report on saved benchmark runs, compare runs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_train = sub.add_parser("train", help="train once with one configuration and print per-epoch progress")
    _add_config_options(p_train)
    p_train.add_argument("--json", metavar="PATH", help="write the result (config, environment, per-epoch figures) as JSON")
    p_train.add_argument("--quiet", action="store_true", help="print only the summary, no per-epoch lines")
    p_train.add_argument("--monitor", action=argparse.BooleanOptionalAction, default=True,
                         help="sample GPU telemetry with NVML while training (on a GPU) [default: on]")

    p_report = sub.add_parser("report", help="turn saved benchmark runs (pytest-benchmark JSON) into a markdown report")
    p_report.add_argument("runs", nargs="+", metavar="RUN.json", help="saved runs, e.g. .benchmarks/*/0001_name.json")
    p_report.add_argument("-o", "--output", metavar="REPORT.md", help="markdown file to write (plots go next to it)")
    p_report.add_argument("--baselines", metavar="PATH", help="add verdicts against these stored baselines (e.g. baselines.json)")
    p_report.add_argument("--dawnbench", metavar="DIR", help="also write DAWNBench entry files (JSON + TSV) for a time-to-target case")
    p_report.add_argument("--case", help="with --dawnbench: the case to export (default: the first dawnbench case)")

    p_cmp = sub.add_parser("compare", help="compare two saved runs, or a run with stored baselines (exit 1 on regression)")
    p_cmp.add_argument("runs", nargs="+", metavar="RUN.json", help="OLD.json NEW.json, or one run with --baselines")
    p_cmp.add_argument("--baselines", metavar="PATH", help="compare the run with these stored baselines instead")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from speedtrain.gpumonitor import GpuMonitor
    from speedtrain.train import format_summary, stderr_log, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    cfg = TrainConfig(**values)
    log = (lambda line: None) if args.quiet else stderr_log
    monitor = GpuMonitor() if args.monitor else None
    result = train(cfg, monitor=monitor, log=log)
    print(format_summary(result))
    if args.json:
        result.save_json(args.json)
        print(f"result written to {args.json}")
    return 0 if result.status == "ok" else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from speedtrain.dawnbench import export_dawnbench
    from speedtrain.report import build_report

    if not args.output and not args.dawnbench:
        raise SpeedtrainError("report needs -o REPORT.md, --dawnbench DIR, or both")
    if args.output:
        path = build_report(args.runs, args.output, baselines_path=args.baselines)
        print(f"report written to {path}")
    if args.dawnbench:
        if len(args.runs) != 1:
            raise SpeedtrainError(f"--dawnbench exports one run; got {len(args.runs)}")
        for path in export_dawnbench(args.runs[0], args.dawnbench, case=args.case):
            print(f"DAWNBench entry file written to {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from speedtrain.compare import compare_runs, compare_with_baselines, format_rows

    if args.baselines:
        if len(args.runs) != 1:
            raise SpeedtrainError(f"compare --baselines takes one run; got {len(args.runs)}")
        rows, regressed = compare_with_baselines(args.baselines, args.runs[0])
    else:
        if len(args.runs) != 2:
            raise SpeedtrainError(f"compare takes two runs (OLD.json NEW.json) or --baselines PATH RUN.json; got {len(args.runs)} runs")
        rows, regressed = compare_runs(args.runs[0], args.runs[1])
    print(format_rows(rows))
    print("regression: yes" if regressed else "regression: none")
    return 1 if regressed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": _cmd_train, "report": _cmd_report, "compare": _cmd_compare}
    try:
        return commands[args.command](args)
    except SpeedtrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
