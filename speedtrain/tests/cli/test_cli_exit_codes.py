"""Every command's --help says what its exit codes mean (issue 22)."""

from __future__ import annotations

import re

import pytest

from speedtrain.cli.main import build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]  # noqa: SLF001 - argparse's own list
    return sorted(sub.choices)


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


# The codes each command can return, read from what it does (speedtrain/cli.py, cli_results.py):
# 1 only where a result, not an input, fails (train status, a compare regression, a doctor FAIL).
RETURNS = {"train": {0, 1, 2, 130}, "report": {0, 2, 130}, "compare": {0, 1, 2, 130},
           "history": {0, 2, 130}, "merge": {0, 2, 130}, "doctor": {0, 1, 2, 130}}


def test_every_command_is_covered() -> None:
    assert _commands() == sorted(RETURNS)


@pytest.mark.parametrize("command", sorted(RETURNS))
def test_each_commands_help_lists_its_exit_codes(capsys, command: str) -> None:
    text = _help(capsys, command)
    table = text[text.index("exit codes:"):]
    codes = {int(c) for c in re.findall(r"^  (\d+) ", table, flags=re.M)}
    assert codes == RETURNS[command]


def test_top_level_help_points_at_the_commands() -> None:
    text = build_parser().format_help()
    assert "exit codes:" in text and "2 bad input" in text
