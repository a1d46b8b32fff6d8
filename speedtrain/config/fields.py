"""What a config field is: its default, its help line (with its unit) and its role group, read
once from the annotations into a :class:`FieldSpec`. The validator, the CLI's options and
their ``--help`` groups all come from these specs, so none of them can miss a field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

# The role groups, in the order TrainConfig declares them, with their --help titles.
GROUPS: dict[str, str] = {
    "data": "data",
    "model": "model",
    "augmentation": "augmentation and test-time augmentation",
    "optimisation": "optimiser and schedule",
    "precision": "precision, memory format and compilation",
    "loader": "data loader",
    "run": "run",
    "parallel": "data-parallel training",
}


def config_field(default: Any, help: str, group: str) -> Any:
    """A dataclass field whose help line (with its unit) and group feed the CLI and the docs."""
    if group not in GROUPS:
        raise ValueError(f"unknown field group {group!r}; allowed: {', '.join(GROUPS)}")
    return field(default=default, metadata={"help": help, "group": group})


@dataclass(frozen=True)
class FieldSpec:
    """What a field's annotation allows, read once with ``typing`` (never by parsing text)."""

    name: str
    kind: type  # bool, int, float, str, or tuple (of whole numbers)
    optional: bool  # ``X | None``: none is allowed
    choices: tuple[str, ...]  # the values of a ``Literal[...]``; empty when any value of kind goes
    default: Any
    help: str
    group: str  # a key of GROUPS


def _spec(f: dataclasses.Field, hint: Any, owner: str) -> FieldSpec:
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{owner}.{f.name}: only 'X | None' unions are supported")
        optional, hint = len(args) < len(typing.get_args(hint)), args[0]
    values: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        values, hint = typing.get_args(hint), str
    elif typing.get_origin(hint) is tuple and typing.get_args(hint) == (int, ...):
        hint = tuple
    if hint not in (bool, int, float, str, tuple) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{owner}.{f.name}: unsupported annotation {f.type!r}")
    return FieldSpec(f.name, hint, optional, values, f.default, f.metadata["help"], f.metadata["group"])


def specs_of(cls: type) -> dict[str, FieldSpec]:
    """Every field's spec, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: _spec(f, hints[f.name], cls.__name__) for f in dataclasses.fields(cls)}
