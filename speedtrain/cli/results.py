"""The CLI's commands that read results: ``report``, ``compare`` and ``history``.

Runs may be given as pytest-benchmark names them (``0003``, ``latest``, a save name: see
:mod:`speedtrain.records.benchstore`) or as a ``speedtrain train --json`` result. Kept apart from
``cli.py``, which builds the parser and runs training and the doctor.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from speedtrain.common.atomic import check_writable, write_text_atomic
from speedtrain.common.errors import OutputError, SpeedtrainError
from speedtrain.common.output_paths import check_outputs
from speedtrain.records.benchstore import resolve

RUN_HELP = "a saved run (path, run number such as 0001, save name, or latest) or a speedtrain train --json result"
DEFAULT_BASELINES = "baselines.json"


def _fraction(text: str) -> float:
    """--threshold, by the rule --st-threshold follows too (speedtrain.stats.option_rules)."""
    from speedtrain.stats.option_rules import threshold_fraction

    try:
        return threshold_fraction(text, "the threshold")
    except SpeedtrainError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("the threshold ")) from None


def _money(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a price in USD per hour, 0 or more; got {text!r}")
    return value


def _storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", metavar="DIR", default=".benchmarks",
                        help="pytest-benchmark's storage folder, where run numbers and latest are looked up "
                             "[default: .benchmarks]")


def add_commands(sub: Any) -> None:
    """Add ``report``, ``compare`` and ``history`` to the CLI's subparsers."""
    from speedtrain.stats.samples import THRESHOLD

    p = sub.add_parser("report", help="turn saved runs into a markdown report with plots")
    p.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    p.add_argument("-o", "--output", metavar="REPORT.md", help="markdown file to write (plots go next to it)")
    p.add_argument("--baselines", metavar="PATH", help="add verdicts and history trends from these stored baselines")
    _storage_option(p)
    dawn = p.add_argument_group("DAWNBench entry (--dawnbench)")
    dawn.add_argument("--dawnbench", metavar="DIR", help="also write DAWNBench entry files (JSON + TSV) of a dawnbench case")
    dawn.add_argument("--case", help="the case to export [default: the run's dawnbench case]")
    dawn.add_argument("--author", default="speedtrain", help="entry author [default: speedtrain]")
    dawn.add_argument("--email", default="", help="entry author's e-mail [default: empty]")
    dawn.add_argument("--code-url", default=None, help="URL of the code [default: the run's commit URL, else empty]")
    dawn.add_argument("--cost-per-hour", type=_money, default=None, metavar="USD",
                      help="cost of the hardware per hour in USD [default: none]")

    p = sub.add_parser("compare", help="compare two runs, or a run with stored baselines (exit 1 on regression)")
    p.add_argument("runs", nargs="+", metavar="RUN", help=f"OLD NEW, or one run with --baselines; each {RUN_HELP}")
    p.add_argument("--baselines", metavar="PATH", help="compare the run with these stored baselines instead")
    p.add_argument("--require-baselines", action="store_true",
                   help="with --baselines: exit 1 when the file holds no baselines for the run's machine and profile")
    p.add_argument("--only-common", action="store_true", help="list only the cases both sides have")
    p.add_argument("--threshold", type=_fraction, default=THRESHOLD, metavar="FRACTION",
                   help=f"smallest relative change that counts, 0.05 = 5%% [default: {THRESHOLD:g}]")
    p.add_argument("--json", metavar="PATH", help="also write the verdicts as JSON ('-': to stdout, instead of the table)")
    p.add_argument("--breakdown", action="store_true",
                   help="OLD NEW only: for each case that changed, the change of each category of the step breakdown")
    _storage_option(p)

    p = sub.add_parser("history", help="print a case's recorded baselines over time (oldest first)")
    p.add_argument("case", help="benchmark name (test_precision[fp16]) or case id (fp16)")
    p.add_argument("--baselines", metavar="PATH", default=DEFAULT_BASELINES, help=f"[default: {DEFAULT_BASELINES}]")
    p.add_argument("--machine", help="only this machine (GPU name or 'cpu: <model>') [default: every machine]")
    p.add_argument("--profile", help="only this profile [default: every profile]")


def cmd_report(args: argparse.Namespace) -> int:
    from speedtrain.report.dawnbench import Entrant, check_targets, export_dawnbench
    from speedtrain.report.markdown import build_report

    if not args.output and not args.dawnbench:
        raise SpeedtrainError("report needs -o REPORT.md, --dawnbench DIR, or both")
    if args.dawnbench and len(args.runs) != 1:
        raise SpeedtrainError(f"--dawnbench exports one run; got {len(args.runs)}")
    if args.output:
        check_writable(args.output)
    if args.dawnbench:
        check_writable(args.dawnbench, folder=True)
    runs = [resolve(run, args.storage) for run in args.runs]
    check_outputs({"-o": args.output, "--dawnbench": args.dawnbench}, {"RUN": runs, "--baselines": args.baselines})
    entrant = Entrant(author=args.author, email=args.email, code_url=args.code_url, cost_per_hour=args.cost_per_hour)
    if args.dawnbench:  # another case's entry in the way: refused before the report is built
        check_targets(runs[0], args.dawnbench, case=args.case, entrant=entrant)
    if args.output:
        path = build_report(runs, args.output, baselines_path=args.baselines)
        print(f"report written to {path}")
    if args.dawnbench:
        try:
            paths = export_dawnbench(runs[0], args.dawnbench, case=args.case, entrant=entrant)
        except OSError as e:  # the saved run is untouched: nothing is lost, the export can be rerun
            raise OutputError(f"cannot write the DAWNBench entry files into {args.dawnbench}: {e.strerror or e}") from e
        for path in paths:
            print(f"DAWNBench entry file written to {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from speedtrain.report.compare import compare_runs, compare_with_baselines, format_rows, partial_notes, to_json

    if args.json and args.json != "-":
        check_writable(args.json)
    if args.require_baselines and not args.baselines:
        raise SpeedtrainError("--require-baselines needs --baselines PATH")
    if args.breakdown and args.baselines:
        raise SpeedtrainError("--breakdown compares two runs (OLD NEW); stored baselines keep no breakdowns")
    runs = [resolve(run, args.storage) for run in args.runs]
    check_outputs({"--json": args.json}, {"RUN": runs, "--baselines": args.baselines})
    options = {"threshold": args.threshold, "only_common": args.only_common}
    if args.baselines:
        if len(runs) != 1:
            raise SpeedtrainError(f"compare --baselines takes one run; got {len(runs)}")
        rows, regressed = compare_with_baselines(args.baselines, runs[0], **options)
    else:
        if len(runs) != 2:
            raise SpeedtrainError(f"compare takes two runs (OLD NEW) or --baselines PATH RUN; got {len(runs)} runs")
        rows, regressed = compare_runs(runs[0], runs[1], **options)
    failures = _compare_failures(args, runs, rows)
    data = {**to_json(rows, regressed), "failures": failures}
    changes = _breakdown_changes(runs, rows, args.threshold) if args.breakdown else None
    if changes is not None:
        data["breakdown"] = changes
    text = json.dumps(data, indent=2) + "\n"
    for note in partial_notes(*runs):  # an interrupted run lacks cases: say so before its rows
        print(note, file=sys.stderr if args.json == "-" else sys.stdout)
    if args.json == "-":
        sys.stdout.write(text)  # stdout is the JSON alone; a failure is said on stderr too
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
    else:
        if rows:
            print(format_rows(rows))
        # one verdict, the exit code's: "none" only when something was compared and passed
        for failure in failures:
            print(f"FAIL: {failure}")
        if regressed or not failures:
            print("regression: yes" if regressed else "regression: none")
        if changes is not None:
            print("\nstep breakdown of the cases that changed (share of the profiled step in points; ms per step):")
            print("\n".join(changes) or "no case changed")
        if args.json:
            write_text_atomic(args.json, text)
    return 1 if regressed or failures else 0


def _compare_failures(args: argparse.Namespace, runs: list[str], rows: list[Any]) -> list[str]:
    """Why a compare that found no regression must still fail: it compared nothing
    (--only-common, no case on both sides), or the baselines do not cover the run
    (--require-baselines). A CI step must never pass having compared nothing."""
    from speedtrain.report.compare import uncovered

    failures = []
    if args.only_common and not rows:
        other = args.baselines or runs[0]
        failures.append(f"no case in common between {runs[-1]} and {other}: nothing was compared")
    for machine, profile in uncovered(args.baselines, runs[0]) if args.require_baselines else []:
        failures.append(f"{args.baselines} holds no baselines for {machine!r} with profile {profile!r}: record them "
                        f"first (pytest benchmarks --st-profile {profile or 'PROFILE'} --st-baselines update)")
    return failures


def _breakdown_changes(runs: list[str], rows: list[Any], threshold: float) -> list[str]:
    from speedtrain.report.breakdown import compare_lines
    from speedtrain.report.compare import cases_by_name

    return compare_lines(cases_by_name(runs[0]), cases_by_name(runs[1]), rows, threshold)


def cmd_history(args: argparse.Namespace) -> int:
    from speedtrain.records import baselines
    from speedtrain.records import history

    data = baselines.load_baselines(args.baselines)
    found = history.find(data, args.case, machine=args.machine, profile=args.profile)
    print("\n\n".join(history.format_history(h) for h in found))
    return 0
