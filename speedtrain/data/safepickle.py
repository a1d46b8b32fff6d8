"""Unpickling a CIFAR-10 batch without letting the file run code.

``pickle.load`` (which torchvision's CIFAR10 uses) calls any function a file names, so a
doctored ``data_batch_1`` runs arbitrary code the moment it is read, and a quiet payload can
then return a valid batch and leave no trace. :func:`safe_load` allows only what a batch holds
(dicts, lists, str, bytes, ints and numpy arrays) and refuses every other global before it is
imported.
"""

from __future__ import annotations

import functools
import importlib
import pickle
from typing import IO, Any

import numpy as np


def _numpy_attr(submodule: str, name: str) -> object:
    """``numpy._core.<submodule>.<name>`` (numpy 2), else ``numpy.core...`` (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What a protocol-2 pickle calls to rebuild ``bytes``; only the codec such pickles name."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only callables a CIFAR-10 batch may name: numpy's array and dtype rebuilders, under
    both their numpy 1 (``numpy.core``, the original files) and numpy 2 (``numpy._core``)
    homes, and the latin1 ``bytes`` rebuilder of protocol-2 pickles written by Python 3."""
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}
    for submodule, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")):
        rebuilder = _numpy_attr(submodule, name)
        for package in ("numpy.core", "numpy._core"):
            allowed[(f"{package}.{submodule}", name)] = rebuilder
    return allowed


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a callable that a CIFAR-10 batch never contains."""


class _BatchUnpickler(pickle.Unpickler):
    """Loads dicts, lists, str, bytes, ints and numpy arrays, and nothing else.

    ``pickle.load`` (which torchvision uses) calls any function a file names, so a doctored
    batch would run code the moment it is read, and could then return a valid batch leaving no
    trace. Every global outside ``_allowed_globals`` is refused before it is imported.
    """

    def find_class(self, module: str, name: str) -> object:
        found = _allowed_globals().get((module, name))
        if found is None:
            raise ForbiddenGlobal(f"{module}.{name}")
        return found


def safe_load(file: IO[bytes]) -> Any:
    """Unpickle a CIFAR-10 batch; :class:`ForbiddenGlobal` names what a doctored file asked for.

    latin1: the original pickles come from Python 2, whose str keys and numpy buffers only
    unpickle this way (torchvision does the same)."""
    return _BatchUnpickler(file, encoding="latin1").load()
