"""Errors that carry a one-line message meant for the user.

The CLI and the pytest plugin print these as ``error: <message>`` (CLI exit code 2),
never as a traceback, so every message must name what was wrong and what is allowed.
A message built from a library's own text (tarfile lists one line per method it tried) is
folded to one line when the error is made, so no caller can forget to.
"""


def one_line(message: object) -> str:
    """``message`` on one line: its non-blank lines stripped and joined with '; '."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def exception_text(exc: BaseException) -> str:
    """A library exception's message with its whitespace folded, to quote inside one of ours;
    its type's name when it has no message."""
    return " ".join(str(exc).split()) or type(exc).__name__


class SpeedtrainError(Exception):
    """Base class: a user-facing error with a one-line message."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(message), *args)


class ConfigError(SpeedtrainError, ValueError):
    """An invalid configuration value or combination of values."""


class DataError(SpeedtrainError):
    """A dataset that is missing, unreadable, malformed or unsafe to load."""


class BaselineError(SpeedtrainError):
    """A malformed or unreadable baselines file."""


class ReportError(SpeedtrainError):
    """A saved benchmark run that cannot be read or reported."""


class OutputError(SpeedtrainError):
    """A result, report or export file that cannot be written where the user asked."""


class LockTimeoutError(SpeedtrainError):
    """Another process held a shared file's lock for longer than we were willing to wait."""
