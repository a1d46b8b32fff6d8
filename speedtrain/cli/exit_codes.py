"""What each ``speedtrain`` command's exit code means, shown at the end of its ``--help``.

A CI step is built on exit codes, so each command's help says which ones it returns and why
(issue 22); :func:`add_exit_codes` puts the table below every command's options. The codes
come from ``speedtrain.cli.main`` (2: bad input, one ``error:`` line; 130: Ctrl-C) and from
each command's own result (``_cmd_train``, ``cmd_compare``, ``_cmd_doctor``).
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

BAD_INPUT = "bad input, or an output that cannot be written: one 'error: ...' line on stderr"
INTERRUPTED = "interrupted (Ctrl-C)"

EXIT_CODES: dict[str, dict[int, str]] = {
    "train": {0: "trained, status ok", 1: "the run ended with another status (diverged, out of memory, failed)"},
    "report": {0: "report (and DAWNBench files) written"},
    "compare": {0: "cases compared, none slower and no accuracy lost",
                1: "a case is slower or lost accuracy; or FAIL: no case in common (--only-common), or no "
                   "baselines for the run's machine and profile (--require-baselines)"},
    "history": {0: "history printed"},
    "merge": {0: "merged run written"},
    "doctor": {0: "no check failed (WARN and SKIP do not fail)", 1: "at least one check FAILed"},
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The epilog's table as written, and help lines that never break a word at its hyphen
    (recipe names such as ``myrtle-final``, URLs, ``--options`` stay whole)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


def epilog(codes: dict[int, str]) -> str:
    """The exit-code table of one command, with the codes every command shares."""
    rows = {**codes, 2: BAD_INPUT, 130: INTERRUPTED}
    return "exit codes:\n" + "\n".join(textwrap.fill(meaning, 78, break_on_hyphens=False, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
                                      for code, meaning in sorted(rows.items()))


def add_exit_codes(parser: argparse.ArgumentParser, sub: Any) -> None:
    """Each command's exit codes under its --help, and all of them under the top-level --help."""
    for name, command in sub.choices.items():
        command.epilog = epilog(EXIT_CODES[name])
        command.formatter_class = HelpFormatter  # keep the table's lines
    parser.epilog = "exit codes: 2 bad input, 130 interrupted, for every command; 0 and 1 as each " \
                    "command's --help says (1: train status not ok, compare found a regression, doctor found a FAIL)"
