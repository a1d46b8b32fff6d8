"""Datasets (CIFAR-10, Fashion-MNIST, synthetic) and the two training loaders.

Images are kept as uint8 ``(N, C, H, W)`` tensors and only turned into normalised floats a
batch at a time. Where the data comes from:

* CIFAR-10: torchvision's pickled ``cifar-10-batches-py/`` (read by a restricted unpickler:
  see ``_BatchUnpickler``), an image-folder tree
  ``train/<class>/*`` + ``test/<class>/*``, or a ``.tar[.gz|.xz]`` archive of such a tree.
  Trees and archives are decoded once (PIL, a process pool) into a uint8 ``.npz`` cache in
  ``$SPEEDTRAIN_CACHE`` or ``~/.cache/speedtrain``, since data_dir may be read-only.
* Fashion-MNIST: the four idx files (gzip or not), or torchvision's ``FashionMNIST/raw/``.
* Synthetic: random images of the dataset's shape, for throughput runs without the data.

Two loaders yield the same kind of batches: ``gpu`` keeps the dataset on the device and
augments it in bulk there (myrtle.ai's GPU preprocessing); ``torch`` is a DataLoader that
augments each sample on the CPU, the usual PyTorch pipeline.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import io
import itertools
import multiprocessing
import os
import pickle
import struct
import sys
import tarfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from speedtrain import augment, distributed
from speedtrain import study
from speedtrain.airbench_augment import alternating_flip, flip_bits
from speedtrain.atomic import write_bytes_atomic
from speedtrain.config import DATASET_SHAPES, TrainConfig
from speedtrain.errors import DataError

# Per-channel mean and std on the [0, 1] scale, of the training sets.
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}
TITLES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST"}

_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz")
_SPLITS = ("train", "test")
_CACHE_FORMAT = "v1"  # bump when the decoded layout or order changes, to invalidate old caches
_DECODE_CHUNK = 1000  # images per pool task: large enough to amortise pickling


@dataclass
class Dataset:
    """A whole dataset in memory; the tensors are shared between callers: treat as read-only."""

    name: str
    train_images: Tensor  # uint8 (N, C, H, W), after the one-time resize
    train_labels: Tensor  # int64 (N,)
    test_images: Tensor
    test_labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    synthetic: bool
    source: str  # the file or folder read, or 'synthetic'


# --- loading -------------------------------------------------------------------------------


def load_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset ``cfg`` asks for: synthetic or read from ``cfg.data_dir``, subset, resized.

    Memoised in-process on the fields that change the result, because a benchmark session
    builds dozens of cases over the same data.
    """
    picked = (cfg.classes, cfg.per_class)  # the 100-image study's class subset (speedtrain.study)
    if cfg.synthetic:
        return _prepared(cfg.dataset, "", False, True, cfg.seed, cfg.train_subset, cfg.test_subset, cfg.image_size, *picked)
    root = str(Path(cfg.data_dir).expanduser().resolve())
    return _prepared(cfg.dataset, root, cfg.download, False, 0, cfg.train_subset, cfg.test_subset, cfg.image_size, *picked)


def clear_memo() -> None:
    """Forget the datasets held in memory (the on-disk decode cache is kept)."""
    _prepared.cache_clear()
    _read_source.cache_clear()


@functools.lru_cache(maxsize=4)
def _prepared(
    name: str, root: str, download: bool, synthetic: bool, seed: int,
    train_subset: Optional[int], test_subset: Optional[int], image_size: Optional[int],
    classes: tuple[int, ...] = (), per_class: Optional[int] = None,
) -> Dataset:
    if synthetic:
        arrays, source = _synthetic(name, seed, train_subset, test_subset, image_size, classes), "synthetic"
    else:
        *arrays, source = _read_source(name, root, download)
    train_x, train_y, test_x, test_y = arrays
    if classes or per_class is not None:  # before the subsets: "first N" of the chosen classes
        train_x, train_y = study.select_classes(train_x, train_y, classes, per_class)
        test_x, test_y = study.select_classes(test_x, test_y, classes, None)
    # Subset first ("first N" images are views), then resize only what is kept.
    train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    test_x, test_y = test_x[:test_subset], test_y[:test_subset]
    if image_size is not None:
        train_x, test_x = _resize(train_x, image_size), _resize(test_x, image_size)
    mean, std = MEAN_STD[name]
    return Dataset(name, train_x, train_y, test_x, test_y, mean, std, synthetic, source)


def _synthetic(name: str, seed: int, train_subset: Optional[int], test_subset: Optional[int],
               image_size: Optional[int], picked: tuple[int, ...] = ()) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random uint8 images and labels, generated directly at the final size and count; with a
    class subset (``picked``) the labels are those classes in turn, shuffled, so each has images."""
    c, h, w, n_train, n_test, classes = DATASET_SHAPES[name]
    if image_size is not None:
        h = w = image_size
    rng = np.random.default_rng(seed)  # numpy fills uint8 ~3x faster than torch.randint
    out = []
    for n, subset in ((n_train, train_subset), (n_test, test_subset)):
        n = min(n, subset or n)
        out.append(torch.from_numpy(rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)))
        labels = rng.permutation(np.resize(np.asarray(picked, dtype=np.int64), n)) if picked else rng.integers(0, classes, n, dtype=np.int64)
        out.append(torch.from_numpy(labels))
    return out[0], out[1], out[2], out[3]


def _resize(images: Tensor, side: int, chunk: int = 2048) -> Tensor:
    """Bilinear (antialiased) resize to side x side, back to uint8; chunked to bound memory."""
    if images.shape[-2:] == (side, side):
        return images
    out = torch.empty((*images.shape[:2], side, side), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = F.interpolate(images[i:i + chunk].float(), size=(side, side), mode="bilinear",
                          align_corners=False, antialias=True)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


@functools.lru_cache(maxsize=2)
def _read_source(name: str, root: str, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """The full dataset at its native size, plus where it was read from."""
    reader = _read_cifar10 if name == "cifar10" else _read_fashion_mnist
    try:
        (train_x, train_y, test_x, test_y), source = reader(Path(root), download)
    except OSError as e:  # an unreadable folder or file anywhere in the readers: one line
        where = e.filename or root
        raise DataError(f"cannot read {TITLES[name]} from {str(root)!r}: {e.strerror or e}: {str(where)!r}") from e
    _check_arrays(name, source, train_x, train_y, test_x, test_y)
    return (torch.from_numpy(train_x), torch.from_numpy(train_y.astype(np.int64)),
            torch.from_numpy(test_x), torch.from_numpy(test_y.astype(np.int64)), source)


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _check_arrays(name: str, source: str, train_x: np.ndarray, train_y: np.ndarray,
                  test_x: np.ndarray, test_y: np.ndarray) -> None:
    c, h, w, *_, classes = DATASET_SHAPES[name]
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) == 0:
            raise DataError(f"{TITLES[name]} in {source!r} has no {split} images")
        if x.dtype != np.uint8 or x.shape[1:] != (c, h, w) or len(x) != len(y):
            raise DataError(f"{TITLES[name]} {split} set in {source!r} has {x.dtype} images of shape {x.shape[1:]} and "
                            f"{len(x)} images for {len(y)} labels; expected ({c}, {h}, {w}) uint8 images, one label each")
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"{TITLES[name]} {split} labels in {source!r} must be in 0..{classes - 1}; got {y.min()}..{y.max()}")


# --- CIFAR-10 --------------------------------------------------------------------------------


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _read_cifar10(root: Path, download: bool) -> tuple[Arrays, str]:
    """Look for the sources in the documented order; the first one found is read."""
    if root.is_file():
        if not _is_archive(root):
            raise DataError(f"data_dir {str(root)!r} is a file but not a .tar, .tar.gz or .tar.xz archive of train/ and test/")
        return _read_tree_cached(root), str(root)
    for folder in (root / "cifar-10-batches-py", root):
        if (folder / "data_batch_1").exists():
            return _read_cifar_pickles(folder), str(folder)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _read_tree_cached(root), str(root)
    archives = sorted(p for p in root.glob("[cC][iI][fF][aA][rR]*") if _is_archive(p)) if root.is_dir() else []
    if len(archives) > 1:
        raise DataError(f"several CIFAR-10 archives in {str(root)!r} ({', '.join(p.name for p in archives)}); "
                        "pass --data-dir naming the one to use")
    if archives:
        return _read_tree_cached(archives[0]), str(archives[0])
    if download:
        _download("cifar10", root)
        return _read_cifar_pickles(root / "cifar-10-batches-py"), str(root / "cifar-10-batches-py")
    raise DataError(
        f"no CIFAR-10 found in {str(root)!r}: looked for {root / 'cifar-10-batches-py'}, {root / 'train'} + "
        f"{root / 'test'}, a cifar*.tar[.gz|.xz] archive; pass --download, or --data-dir pointing at one of these"
    )


def _read_cifar_pickles(folder: Path) -> Arrays:
    """torchvision's python-version CIFAR-10: five training batches and a test batch."""
    train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = _read_cifar_batch(folder / "test_batch")
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y)


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


class _ForbiddenGlobal(pickle.UnpicklingError):
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
            raise _ForbiddenGlobal(f"{module}.{name}")
        return found


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing: a CIFAR-10 batches folder holds data_batch_1..5 and test_batch")
    try:
        with open(path, "rb") as f:
            # latin1: the original pickles come from Python 2, whose str keys and numpy
            # buffers only unpickle this way (torchvision does the same).
            batch = _BatchUnpickler(f, encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    except _ForbiddenGlobal as e:
        raise DataError(f"{str(path)!r} is not a plain CIFAR-10 batch: it asks to call {e}, which a batch never "
                        "contains; refusing to load it (a dataset file must not run code)") from None
    except OSError:
        raise  # an unreadable file: reported by _read_source
    except Exception as e:  # any unpickling failure means the file is not what we expect
        raise DataError(f"{str(path)!r} is not a CIFAR-10 batch (a pickled dict with 'data' and 'labels'): {e!r}") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(f"{str(path)!r}: expected uint8 data of shape (N, 3072) and N labels; "
                        f"got {data.dtype} {data.shape} and {labels.shape} labels")
    return data.reshape(-1, 3, 32, 32), labels


# Image-folder trees and archives: decoded once, cached as uint8 arrays.


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


def _read_tree_cached(source: Path) -> Arrays:
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
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            decoded = list(pool.map(_decode_chunk, chunks()))
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


# --- Fashion-MNIST ---------------------------------------------------------------------------

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_path(folder: Path, stem: str) -> Optional[Path]:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _read_fashion_mnist(root: Path, download: bool) -> tuple[Arrays, str]:
    folders = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    found = [f for f in folders if _idx_path(f, _IDX_FILES[0])]
    if not found and download:
        _download("fashion-mnist", root)
        found = [folders[2]]
    if not found:
        raise DataError(
            f"no Fashion-MNIST found in {str(root)!r}: looked for {_IDX_FILES[0]}[.gz] (with {', '.join(_IDX_FILES[1:])}) "
            f"in {root}, {folders[1]} and {folders[2]}; pass --download, or --data-dir pointing at a folder holding them"
        )
    folder = found[0]
    arrays = []
    for stem in _IDX_FILES:
        path = _idx_path(folder, stem)
        if path is None:
            raise DataError(f"{str(folder)!r} holds {_IDX_FILES[0]} but not {stem}[.gz]; Fashion-MNIST needs all four idx files")
        arrays.append(read_idx(path, ndim=3 if "images" in stem else 1))
    train_x, train_y, test_x, test_y = arrays
    return (train_x[:, None], train_y, test_x[:, None], test_y), str(folder)  # add the channel axis


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file of unsigned bytes (gzip or not) with ``ndim`` dimensions, validated."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {str(path)!r}: {e}") from e
    # Magic number: two zero bytes, type 0x08 (unsigned byte), then the number of dimensions.
    if len(raw) < 4 or raw[:4] != bytes((0, 0, 8, ndim)):
        raise DataError(f"{str(path)!r} is not an idx file of bytes with {ndim} dimension(s): "
                        f"magic number {raw[:4].hex() or 'missing'}, expected {bytes((0, 0, 8, ndim)).hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{str(path)!r} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{str(path)!r} holds {len(raw) - header} bytes of data but its header says {dims} "
                        f"= {int(np.prod(dims))} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable, as torch wants


def _download(name: str, root: Path) -> None:
    import torchvision  # imported here: only downloading needs it

    dataset = {"cifar10": torchvision.datasets.CIFAR10, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    try:
        dataset(root=str(root), train=True, download=True)
        dataset(root=str(root), train=False, download=True)
    except Exception as e:  # network, disk or checksum failure: one line, not a traceback
        raise DataError(f"downloading {TITLES[name]} into {str(root)!r} failed: {e}") from e


# --- loaders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    """The training augmentation, the same code for both loaders.

    ``crop_flip`` works on uint8 images that are already reflect-padded; ``finish``
    normalises and applies cutout, which fills with 0, the mean, in normalised space.
    """

    size: tuple[int, int]
    flip: bool
    cutout: int
    mean: Tensor
    std: Tensor
    extra: study.ExtraAugment = study.ExtraAugment()  # the 100-image study's rotations, patches, channels
    flip_bits: Optional[Tensor] = None  # alternating flip (airbench_augment): one bit per training image

    @classmethod
    def build(cls, data: Dataset, cfg: TrainConfig, device: torch.device) -> "_Pipeline":
        mean = torch.tensor(data.mean, dtype=torch.float32, device=device)
        std = torch.tensor(data.std, dtype=torch.float32, device=device)
        return cls(tuple(data.train_images.shape[-2:]), cfg.flip, cfg.cutout, mean, std,  # type: ignore[arg-type]
                   study.ExtraAugment.from_config(cfg))

    def crop_flip(self, padded: Tensor, generator: torch.Generator, epoch: int = 0) -> Tensor:
        x = augment.random_crop(padded, self.size, generator)
        return self.extra(self._flip(x, generator, epoch) if self.flip else x, generator)

    def _flip(self, x: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        """Random mirroring, or with ``flip_bits`` the alternating flip of 0-based ``epoch``."""
        if self.flip_bits is None:
            return augment.random_flip(x, generator)
        return alternating_flip(x, epoch, self.flip_bits)

    def finish(self, images: Tensor, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        return augment.cutout(augment.normalize(images, self.mean, self.std, dtype), self.cutout, generator)


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """The layout of model inputs (and weights): NHWC with ``channels_last``, else NCHW."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def _first_batch_without_trace(loader: Iterable[tuple[Tensor, Tensor]],
                               *generators: torch.Generator) -> tuple[Tensor, Tensor]:
    """The loader's first batch, after which ``generators`` are back in the state they were in."""
    states = [g.get_state() for g in generators]
    batches = iter(loader)
    try:
        return next(batches)
    finally:
        batches.close()  # type: ignore[attr-defined]
        for generator, state in zip(generators, states):
            generator.set_state(state)


def _check_batch(data: Dataset, cfg: TrainConfig) -> None:
    if len(data.train_labels) < cfg.batch_size:
        raise DataError(f"{data.source!r} has {len(data.train_labels)} training images, fewer than "
                        f"batch_size {cfg.batch_size}; every step needs a full batch")


class GpuLoader:
    """The dataset resident on the device, cropped and flipped in bulk once per epoch."""

    def __init__(self, data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> None:
        _check_batch(data, cfg)
        # Padded once, on the CPU where uint8 reflect padding is known to work, then moved.
        self.images = augment.reflect_pad(data.train_images, cfg.crop_padding).to(device)
        self.labels = data.train_labels.to(device)
        self.pipeline = _Pipeline.build(data, cfg, device)
        # Random numbers drawn on the device: no host round trip per epoch.
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.batch_size, self.dtype, self.memory_format = cfg.batch_size, dtype, memory_format(cfg)
        if cfg.alt_flip:  # each image's flip bit, drawn once for the whole run
            self.pipeline = replace(self.pipeline, flip_bits=flip_bits(len(self.labels), self.generator, device))
        self.epoch = 0  # epochs begun (0-based index of the next): the alternating flip's parity

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def warm_up(self) -> tuple[Tensor, Tensor]:
        """One batch drawn off the clock: the epoch's augmentation kernels load and its
        dataset-sized buffer is allocated (then cached). The generator is restored, so the
        epochs draw exactly what they would have drawn without it."""
        epoch = self.epoch
        try:
            return _first_batch_without_trace(self, self.generator)
        finally:
            self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        images = self.pipeline.crop_flip(self.images, self.generator, self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.labels), device=self.labels.device, generator=self.generator)
        for step in range(len(self)):
            index = distributed.share(order[step * self.batch_size:(step + 1) * self.batch_size])  # nproc > 1
            x = self.pipeline.finish(images[index], self.generator, self.dtype)
            yield x.contiguous(memory_format=self.memory_format), self.labels[index]


class _AugmentedSamples(torch.utils.data.Dataset):
    """Per-sample CPU augmentation. Keys are (index, seed): the seed comes from the sampler,
    so a sample's augmentation does not depend on which worker process draws it."""

    def __init__(self, padded: Tensor, labels: Tensor, pipeline: _Pipeline) -> None:
        self.padded, self.labels, self.pipeline = padded, labels, pipeline

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = key
        generator = torch.Generator().manual_seed(seed)
        x = self.pipeline.crop_flip(self.padded[index:index + 1], generator)
        return self.pipeline.finish(x, generator, torch.float32)[0], self.labels[index]


class _SeededShuffle(torch.utils.data.Sampler):
    """A new permutation every epoch from a seeded generator, each index paired with a seed."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.n, generator=self.generator)
        seeds = torch.randint(2**62, (self.n,), generator=self.generator)
        return zip(order.tolist(), seeds.tolist())


class TorchLoader:
    """A DataLoader augmenting on the CPU (``cfg.workers`` processes), batches moved to the device."""

    def __init__(self, data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> None:
        _check_batch(data, cfg)
        samples = _AugmentedSamples(augment.reflect_pad(data.train_images, cfg.crop_padding), data.train_labels,
                                    _Pipeline.build(data, cfg, torch.device("cpu")))
        self.loader = torch.utils.data.DataLoader(
            # with nproc > 1, this rank's share of each global batch (speedtrain.distributed)
            samples, batch_size=distributed.local_batch(cfg.batch_size),
            sampler=distributed.shard_sampler(_SeededShuffle(len(samples), cfg.seed), cfg.batch_size), drop_last=True,
            num_workers=cfg.workers, pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),  # seeds the workers' own RNGs
        )
        self.device, self.dtype, self.memory_format = device, dtype, memory_format(cfg)

    def __len__(self) -> int:
        return len(self.loader)

    def warm_up(self) -> tuple[Tensor, Tensor]:
        """One batch drawn off the clock: the worker processes start (persistent, so the epochs
        reuse them) and the device copy path runs once. The sampler's generator (order and
        per-sample augmentation seeds) and the DataLoader's (worker seeds) are restored; the
        first epoch then restarts the workers' iteration, dropping what they prefetched."""
        sampler: _SeededShuffle = self.loader.sampler  # type: ignore[assignment]
        return _first_batch_without_trace(self, sampler.generator, self.loader.generator)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True).to(self.dtype).contiguous(memory_format=self.memory_format)
            yield x, y.to(self.device, non_blocking=True)


def make_train_loader(data: Dataset, cfg: TrainConfig, device: torch.device,
                      dtype: torch.dtype = torch.float32) -> GpuLoader | TorchLoader:
    """Training batches ``(x, y)`` on ``device``: ``len()`` full batches per epoch, reshuffled each epoch."""
    loader = GpuLoader if cfg.loader == "gpu" else TorchLoader
    return loader(data, cfg, torch.device(device), dtype)


def make_test_batches(data: Dataset, cfg: TrainConfig, device: torch.device, dtype: torch.dtype = torch.float32,
                      batch_size: int = 1024) -> list[tuple[Tensor, Tensor]]:
    """The whole test set, normalised, on ``device``, in batches (the last may be partial)."""
    device = torch.device(device)
    pipeline = _Pipeline.build(data, cfg, device)
    batches = []
    for i in range(0, len(data.test_labels), batch_size):
        x = augment.normalize(data.test_images[i:i + batch_size].to(device), pipeline.mean, pipeline.std, dtype)
        batches.append((x.contiguous(memory_format=memory_format(cfg)), data.test_labels[i:i + batch_size].to(device)))
    return batches
