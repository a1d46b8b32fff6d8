"""Datasets (CIFAR-10, Fashion-MNIST, synthetic): found, read, checked and kept in memory.

Images are kept as uint8 ``(N, C, H, W)`` tensors and only turned into normalised floats a
batch at a time. Where the data comes from:

* CIFAR-10: torchvision's pickled ``cifar-10-batches-py/`` (read by a restricted unpickler:
  see ``speedtrain.data.safepickle``), an image-folder tree
  ``train/<class>/*`` + ``test/<class>/*``, or a ``.tar[.gz|.xz]`` archive of such a tree.
  Trees and archives are decoded once into a uint8 cache (``speedtrain.data.imagetree``).
* Fashion-MNIST: the four idx files (gzip or not), or torchvision's ``FashionMNIST/raw/``.
* Synthetic: random images of the dataset's shape, for throughput runs without the data.

The training loaders that turn a :class:`Dataset` into batches are in ``speedtrain.train.loaders``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from speedtrain.config.trainconfig import DATASET_SHAPES, TrainConfig
from speedtrain.common.errors import DataError
from speedtrain.data.imagetree import Arrays, read_tree_cached
from speedtrain.data.safepickle import ForbiddenGlobal, safe_load
from speedtrain.data.selection import select_classes

# Per-channel mean and std on the [0, 1] scale, of the training sets.
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}
TITLES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST"}

_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz")


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
    picked = (cfg.classes, cfg.per_class)  # the 100-image study's class subset (speedtrain.data.selection)
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
        train_x, train_y = select_classes(train_x, train_y, classes, per_class)
        test_x, test_y = select_classes(test_x, test_y, classes, None)
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
        return read_tree_cached(root), str(root)
    for folder in (root / "cifar-10-batches-py", root):
        if (folder / "data_batch_1").exists():
            return _read_cifar_pickles(folder), str(folder)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return read_tree_cached(root), str(root)
    archives = sorted(p for p in root.glob("[cC][iI][fF][aA][rR]*") if _is_archive(p)) if root.is_dir() else []
    if len(archives) > 1:
        raise DataError(f"several CIFAR-10 archives in {str(root)!r} ({', '.join(p.name for p in archives)}); "
                        "pass --data-dir naming the one to use")
    if archives:
        return read_tree_cached(archives[0]), str(archives[0])
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


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing: a CIFAR-10 batches folder holds data_batch_1..5 and test_batch")
    try:
        with open(path, "rb") as f:
            batch = safe_load(f)  # refuses any code a doctored file names
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    except ForbiddenGlobal as e:
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


def holdout(data: Dataset, n: int) -> tuple[Dataset, Optional[Dataset]]:
    """``data`` without its last ``n`` training images, and a dataset whose *test* split is
    those images (so the trainer's test-batch code evaluates it); ``(data, None)`` for n = 0."""
    if n == 0:
        return data, None
    if n >= len(data.train_labels):
        raise DataError(f"val_split {n} leaves no training image out of {len(data.train_labels)}")
    keep = len(data.train_labels) - n
    train = dataclasses.replace(data, train_images=data.train_images[:keep], train_labels=data.train_labels[:keep])
    val = dataclasses.replace(data, test_images=data.train_images[keep:], test_labels=data.train_labels[keep:])
    return train, val
