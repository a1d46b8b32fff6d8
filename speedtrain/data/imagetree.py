"""Image-folder trees and archives (``train/<class>/*.jpg``, ``test/<class>/*``): decoded once
in worker processes, cached as uint8 arrays.

Decoding 60,000 JPEGs takes seconds to minutes; every later run should start in about a
second. The cache key is the source's path, sizes and modification times (and a format
version), so a changed dataset is decoded again and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import multiprocessing
import os
import sys
import tarfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from speedtrain.common.atomic import write_bytes_atomic
from speedtrain.common.errors import DataError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train x, train y, test x, test y

_SPLITS = ("train", "test")
_CACHE_FORMAT = "v1"  # bump when the decoded layout or order changes, to invalidate old caches
_DECODE_CHUNK = 1000  # images per pool task: large enough to amortise pickling



def cache_dir() -> Path:
    """Where decoded datasets are cached: $SPEEDTRAIN_CACHE, else ~/.cache/speedtrain."""
    return Path(os.environ.get("SPEEDTRAIN_CACHE") or Path.home() / ".cache" / "speedtrain").expanduser()


def _fingerprint(source: Path) -> str:
    """A key that changes when the source does: path, sizes and modification times."""
    if source.is_file():
        st = source.stat()
        parts = [(str(source), st.st_size, st.st_mtime_ns)]
    else:  # a tree: stat every file (fast next to decoding them)
        files = (p for split in _SPLITS for p in (source / split).rglob("*") if p.is_file())
        parts = sorted((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])
    return hashlib.sha256(repr((_CACHE_FORMAT, parts)).encode()).hexdigest()[:16]


def read_tree_cached(source: Path) -> Arrays:
    cache = cache_dir() / f"cifar10-{_fingerprint(source)}.npz"
    try:
        with np.load(cache) as f:
            return f["train_x"], f["train_y"], f["test_x"], f["test_y"]
    except FileNotFoundError:
        pass
    except Exception as e:  # a torn or foreign file: decode again and overwrite it
        print(f"warning: ignoring unreadable cache {cache} ({e!r})", file=sys.stderr)
    print(f"decoding CIFAR-10 images from {source} (one time, cached at {cache})...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    entries = _archive_entries(source) if source.is_file() else _folder_entries(source)
    try:
        arrays = _decode_tree(entries, str(source))
    except BaseException:
        print(" failed", file=sys.stderr)  # end the progress line before the error is shown
        raise
    print(f" done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    buf = io.BytesIO()
    np.savez(buf, train_x=arrays[0], train_y=arrays[1], test_x=arrays[2], test_y=arrays[3])
    try:
        write_bytes_atomic(cache, buf.getvalue())
    except OSError as e:  # a read-only home must not stop the run; it only costs a re-decode
        print(f"warning: could not write the cache {cache} ({e}); the next run decodes again", file=sys.stderr)
    return arrays


Entry = tuple[str, str, str, bytes]  # split, class, file name, encoded image


def _folder_entries(root: Path) -> Iterator[Entry]:
    for split in _SPLITS:
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    yield split, class_dir.name, path.name, path.read_bytes()


def _archive_entries(archive: Path) -> Iterator[Entry]:
    """Members ``[prefix/]train|test/<class>/<file>``; streamed, as .xz cannot seek cheaply."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) >= 3 and parts[-3] in _SPLITS and not parts[-1].startswith("."):
                    yield parts[-3], parts[-2], parts[-1], tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read the archive {str(archive)!r}: {e}") from e


def _decode_chunk(chunk: list[tuple[str, bytes]]) -> np.ndarray:
    """Decode (name, bytes) pairs to a uint8 (n, 32, 32, 3) array; runs in pool workers."""
    out = np.empty((len(chunk), 32, 32, 3), dtype=np.uint8)
    for i, (name, data) in enumerate(chunk):
        try:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:
            raise DataError(f"cannot decode the image {name!r}: {e}") from None
        if image.size != (32, 32):
            raise DataError(f"the image {name!r} is {image.size[0]}x{image.size[1]}; CIFAR-10 images are 32x32")
        out[i] = np.asarray(image)
    return out


def _decode_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _decode_tree(entries: Iterable[Entry], source: str) -> Arrays:
    """Decode all images, labelled by sorted class folder; returns NCHW arrays."""
    meta: list[tuple[str, str, str]] = []

    def chunks() -> Iterator[list[tuple[str, bytes]]]:
        it = iter(entries)
        while batch := list(itertools.islice(it, _DECODE_CHUNK)):
            meta.extend((split, cls, name) for split, cls, name, _ in batch)
            yield [(f"{split}/{cls}/{name}", data) for split, cls, name, data in batch]

    workers = _decode_workers()
    if workers > 1:
        # fork: workers start in milliseconds (spawn would re-import torch in each). They only
        # run PIL and numpy, as DataLoader's forked workers do. Executor.map submits chunks as
        # the archive is read, so decompression and decoding overlap.
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool = ProcessPoolExecutor(workers, mp_context=context)
        try:
            decoded = list(pool.map(_decode_chunk, chunks()))
        except BaseException:
            # Ctrl-C (or a bad image): drop the queued chunks. A `with` block would wait for
            # every submitted chunk to decode first, minutes for a whole dataset on a CPU.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        decoded = [_decode_chunk(c) for c in chunks()]
    if not meta:
        raise DataError(f"no images under train/<class>/ and test/<class>/ in {source!r}")
    images = np.concatenate(decoded).transpose(0, 3, 1, 2)  # NHWC -> NCHW

    classes = sorted({cls for split, cls, _ in meta if split == "train"})
    if not 1 <= len(classes) <= 10:
        raise DataError(f"{source!r} has {len(classes)} class folders under train/; CIFAR-10 has 10")
    extra = sorted({cls for split, cls, _ in meta if split == "test"} - set(classes))
    if extra:
        raise DataError(f"{source!r} has test/ classes with no train/ folder: {', '.join(extra)}")
    label_of = {cls: i for i, cls in enumerate(classes)}
    out: list[np.ndarray] = []
    for split in _SPLITS:
        rows = sorted((cls, name, i) for i, (s, cls, name) in enumerate(meta) if s == split)
        # A tree is ordered by class; a fixed shuffle makes "the first N images" (train_subset)
        # a mix of classes, as in the pickled CIFAR-10, the same on every machine.
        rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
        index = np.array([i for *_, i in rows], dtype=np.int64)
        out += [np.ascontiguousarray(images[index]), np.array([label_of[cls] for cls, *_ in rows], dtype=np.int64)]
    return out[0], out[1], out[2], out[3]
