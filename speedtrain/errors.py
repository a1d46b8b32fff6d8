"""Errors that carry a one-line message meant for the user.

The CLI and the pytest plugin print these as ``error: <message>`` (CLI exit code 2),
never as a traceback, so every message must name what was wrong and what is allowed.
"""


class SpeedtrainError(Exception):
    """Base class: a user-facing error with a one-line message."""


class ConfigError(SpeedtrainError, ValueError):
    """An invalid configuration value or combination of values."""


class DataError(SpeedtrainError):
    """A dataset that is missing or malformed."""


class BaselineError(SpeedtrainError):
    """A malformed or unreadable baselines file."""


class ReportError(SpeedtrainError):
    """A saved benchmark run that cannot be read or reported."""


class LockTimeoutError(SpeedtrainError):
    """Another process held a shared file's lock for longer than we were willing to wait."""
