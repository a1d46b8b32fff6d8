"""One command's output files must not clobber each other or the command's inputs (issue 22).

``speedtrain train --json F --mllog F`` used to train for minutes and then overwrite its event
log with its result; ``speedtrain merge A B -o A`` replaced a shard with the merged run. Every
command that writes a file calls :func:`check_outputs` with what it reads and what it writes,
before any work starts, so the refusal is one line and nothing was spent or lost.

Paths are compared as the file system will resolve them (``./a.json``, ``a.json`` and a
symlink to it are one file); a folder output (``report --dawnbench DIR``) clashes with a file
that lies inside it only if it is that folder itself, since the export writes its own names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from speedtrain.common.errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]


def _key(path: PathLike) -> Path:
    """The file a path names: symlinks and ``..`` resolved, even where it does not exist yet."""
    return Path(path).expanduser().resolve()


def check_outputs(outputs: Mapping[str, Optional[PathLike]],
                  inputs: Optional[Mapping[str, Union[None, PathLike, Sequence[PathLike]]]] = None) -> None:
    """Raise OutputError if two of ``outputs`` (option name -> path, None = not given) name the
    same file, or if one of them names a file in ``inputs`` (option name -> path or paths).

    The option names go into the message, so the user knows which two to change.
    """
    seen: dict[Path, tuple[str, PathLike]] = {}  # file -> (option, the path as given)
    for option, path in outputs.items():
        if path is None or str(path) in ("", "-"):  # '-': stdout
            continue
        key = _key(path)
        if key in seen:
            raise OutputError(f"{seen[key][0]} and {option} both name {path}: one would overwrite the other; "
                              "give each output its own file")
        seen[key] = (option, path)
    for option, given in (inputs or {}).items():
        for path in _paths(given):
            key = _key(path)
            if key in seen:
                output, given = seen[key]
                raise OutputError(f"{output} {given} would overwrite its input ({option} {path}); choose another output")


def _paths(given: Union[None, PathLike, Sequence[PathLike]]) -> Iterable[PathLike]:
    if given is None:
        return ()
    if isinstance(given, (str, os.PathLike)):
        return (given,)
    return given
