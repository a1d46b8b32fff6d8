"""Dataset readers (from small files written here), the decode cache, and both loaders."""

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from speedtrain.data import augment
from speedtrain.data import datasets as data
from speedtrain.data import imagetree
from speedtrain.train import loaders
from speedtrain.config.trainconfig import TrainConfig
from speedtrain.common.errors import DataError
CLASSES = ["truck", "airplane", "cat"]  # sorted: airplane=0, cat=1, truck=2
PER_CLASS = {"train": 4, "test": 2}


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """No dataset memoised across tests, and the decode cache inside tmp_path."""
    monkeypatch.setenv("SPEEDTRAIN_CACHE", str(tmp_path / "cache"))
    data.clear_memo()
    yield
    data.clear_memo()


def cifar_cfg(data_dir, **kw) -> TrainConfig:
    return TrainConfig(dataset="cifar10", data_dir=str(data_dir), batch_size=4, **kw)


def fashion_cfg(data_dir, **kw) -> TrainConfig:
    return TrainConfig(dataset="fashion-mnist", data_dir=str(data_dir), batch_size=4, **kw)


# --- file writers ----------------------------------------------------------------------------


def write_cifar_pickles(folder: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's cifar-10-batches-py layout; returns all (train + test) data and labels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6 * per_batch, 3072), dtype=np.uint8)
    y = rng.integers(0, 10, 6 * per_batch)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        (folder / name).write_bytes(pickle.dumps({b"data": x[rows], b"labels": y[rows].tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}))
    return x.reshape(-1, 3, 32, 32), y


def tree_image(split: str, cls: int, i: int) -> np.ndarray:
    """A 32x32 RGB image whose first pixel encodes (split, class, index), the rest a pattern."""
    rng = np.random.default_rng(100 * cls + i + (1000 if split == "test" else 0))
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image[0, 0] = (_SPLIT_CODE[split], cls, i)
    return image


_SPLIT_CODE = {"train": 0, "test": 1}


def write_png_tree(root: Path) -> Path:
    for split, n in PER_CLASS.items():
        for cls, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(tree_image(split, cls, i)).save(root / split / name / f"{i:04d}.png")
    return root


def check_tree_dataset(ds: data.Dataset) -> None:
    """Every image decodes to its exact pixels and carries its sorted-class label."""
    for split, images, labels in (("train", ds.train_images, ds.train_labels), ("test", ds.test_images, ds.test_labels)):
        assert images.shape == (PER_CLASS[split] * 3, 3, 32, 32) and images.dtype == torch.uint8
        assert labels.dtype == torch.int64
        seen = set()
        for image, label in zip(images.permute(0, 2, 3, 1).numpy(), labels.tolist()):
            code, cls, i = image[0, 0]
            assert code == _SPLIT_CODE[split]
            np.testing.assert_array_equal(image, tree_image(split, int(cls), int(i)))
            assert label == sorted(CLASSES).index(CLASSES[cls])
            seen.add((int(cls), int(i)))
        assert len(seen) == len(images)  # each file once
    assert ds.train_labels[:3].unique().numel() > 1  # shuffled: the first images are not all one class


def write_idx(path: Path, array: np.ndarray) -> None:
    raw = bytes((0, 0, 8, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_fashion(folder: Path, gz: bool) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 6).astype(np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array)
    return arrays


# --- CIFAR-10 sources ------------------------------------------------------------------------


@pytest.mark.parametrize("point_at_batches", [False, True])
def test_cifar_pickles(tmp_path, point_at_batches):
    x, y = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    ds = data.load_dataset(cifar_cfg(tmp_path / "cifar-10-batches-py" if point_at_batches else tmp_path))
    assert torch.equal(ds.train_images, torch.from_numpy(x[:15])) and torch.equal(ds.test_images, torch.from_numpy(x[15:]))
    assert ds.train_labels.tolist() == y[:15].tolist() and ds.test_labels.tolist() == y[15:].tolist()
    assert ds.train_labels.dtype == torch.int64
    assert ds.source.endswith("cifar-10-batches-py") and not ds.synthetic
    assert (ds.mean, ds.std) == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@pytest.mark.parametrize("workers", [1, 2])  # inline, and the process pool
def test_cifar_image_folder_tree_decodes_exact_pixels(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(imagetree, "_decode_workers", lambda: workers)
    check_tree_dataset(data.load_dataset(cifar_cfg(write_png_tree(tmp_path / "tree"))))


def make_archive(tmp_path: Path, name: str = "cifar-small.tar.xz") -> Path:
    tree = write_png_tree(tmp_path / "tree")
    archive = tmp_path / "archive" / name
    archive.parent.mkdir()
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tree, arcname="CIFAR-10-images")  # a top-level folder, as in real archives
    return archive


@pytest.mark.parametrize("point_at_file", [True, False])
def test_cifar_archive(tmp_path, point_at_file):
    archive = make_archive(tmp_path)
    ds = data.load_dataset(cifar_cfg(archive if point_at_file else archive.parent))
    check_tree_dataset(ds)
    assert ds.source == str(archive)


def test_decode_cache_is_written_once_and_reused(tmp_path, monkeypatch, capsys):
    archive = make_archive(tmp_path)
    first = data.load_dataset(cifar_cfg(archive))
    assert "decoding CIFAR-10 images from" in capsys.readouterr().err
    caches = list((tmp_path / "cache").glob("*.npz"))
    assert len(caches) == 1 and imagetree.cache_dir() == tmp_path / "cache"

    data.clear_memo()
    monkeypatch.setattr(imagetree, "_decode_tree", lambda *a: pytest.fail("decoded again despite the cache"))
    second = data.load_dataset(cifar_cfg(archive))
    assert capsys.readouterr().err == ""
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert list((tmp_path / "cache").glob("*.npz")) == caches


def test_changed_source_or_torn_cache_decodes_again(tmp_path, capsys):
    archive = make_archive(tmp_path)
    data.load_dataset(cifar_cfg(archive))
    capsys.readouterr()
    (cache,) = (tmp_path / "cache").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])  # torn
    data.clear_memo()
    check_tree_dataset(data.load_dataset(cifar_cfg(archive)))
    assert "ignoring unreadable cache" in capsys.readouterr().err

    archive.write_bytes(archive.read_bytes())  # same content, new mtime: a new key
    data.clear_memo()
    data.load_dataset(cifar_cfg(archive))
    assert "decoding" in capsys.readouterr().err
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_download_uses_torchvision_then_reads_its_layout(tmp_path, monkeypatch):
    import torchvision

    calls = []

    class FakeCIFAR10:  # no network in tests: write what torchvision would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if not (Path(root) / "cifar-10-batches-py").exists():
                write_cifar_pickles(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    with pytest.raises(DataError):
        data.load_dataset(cifar_cfg(tmp_path / "dl"))
    assert not calls
    ds = data.load_dataset(cifar_cfg(tmp_path / "dl", download=True))
    assert len(ds.train_labels) == 15 and {c[1] for c in calls} == {True, False}


# --- Fashion-MNIST ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("raw_layout", [False, True])
def test_fashion_idx(tmp_path, gz, raw_layout):
    folder = tmp_path / "FashionMNIST" / "raw" if raw_layout else tmp_path
    arrays = write_fashion(folder, gz)
    ds = data.load_dataset(fashion_cfg(tmp_path))
    assert ds.train_images.shape == (12, 1, 28, 28) and ds.test_images.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(ds.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.train_labels.dtype == torch.int64 and ds.source == str(folder)
    assert (ds.mean, ds.std) == ((0.2860,), (0.3530,))


def test_real_fashion_mnist(fashion_mnist_folder):
    ds = data.load_dataset(fashion_cfg(fashion_mnist_folder))
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_labels).tolist() == [6000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10
    assert abs(ds.train_images.float().mean().item() / 255 - ds.mean[0]) < 1e-3


# --- missing and malformed data --------------------------------------------------------------


@pytest.mark.parametrize("cfg", [cifar_cfg, fashion_cfg])
def test_missing_data_names_the_folder_and_the_fix(tmp_path, cfg):
    with pytest.raises(DataError) as err:
        data.load_dataset(cfg(tmp_path / "nothing-here"))
    message = str(err.value)
    assert str(tmp_path / "nothing-here") in message and "--download" in message and "\n" not in message


def test_truncated_idx(tmp_path):
    write_fashion(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(DataError, match="truncated"):
        data.load_dataset(fashion_cfg(tmp_path))


def test_bad_idx_magic(tmp_path):
    write_fashion(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x09\x01" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="magic number"):
        data.load_dataset(fashion_cfg(tmp_path))


def test_corrupt_gzip_and_missing_labels(tmp_path):
    write_fashion(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        data.load_dataset(fashion_cfg(tmp_path))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        data.load_dataset(fashion_cfg(tmp_path))


def test_pickle_without_data(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"labels": [1, 2]}))
    with pytest.raises(DataError, match="data_batch_3"):
        data.load_dataset(cifar_cfg(tmp_path))


def test_tree_with_wrong_image_size(tmp_path):
    root = write_png_tree(tmp_path / "tree")
    Image.new("RGB", (30, 32)).save(root / "train" / "cat" / "big.png")
    with pytest.raises(DataError, match="big.png"):
        data.load_dataset(cifar_cfg(root))


def test_archive_that_is_not_one_is_one_line(tmp_path, capsys):
    # tarfile's message lists one line per compression it tried: five lines on the start commit.
    from speedtrain.cli.main import main

    bad = tmp_path / "cifar.tar.xz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read the archive") as err:
        data.load_dataset(cifar_cfg(bad))
    assert "\n" not in str(err.value) and "method" in str(err.value)
    assert main(["train", "--data-dir", str(bad), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: cannot read the archive") and not any(line.startswith("- ") for line in lines)


@pytest.mark.parametrize("reader", ["stat", "iterdir", "read_bytes"])
def test_an_unreadable_data_folder_is_one_line(tmp_path, monkeypatch, reader):
    """Tests run as root, whom chmod 000 does not stop: the refusal is simulated where the
    readers touch the disk (a folder's entries, a file's metadata or contents)."""
    root = write_png_tree(tmp_path / "tree")
    real = getattr(Path, reader)

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(root)) and self != root:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, reader, denied)
    with pytest.raises(DataError) as err:
        data.load_dataset(cifar_cfg(root))
    message = str(err.value)
    assert "Permission denied" in message and str(root) in message and "\n" not in message


# --- CIFAR-10 pickles are data, never code ------------------------------------------------------


class _RunsCode:
    """A pickle payload: unpickling it calls ``call(*args)``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _payloads(marker: Path):
    import os

    return {
        "exec": _RunsCode(exec, f"open({str(marker)!r}, 'w').close()"),
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "pathlib": _RunsCode(Path.touch, marker),
    }


@pytest.mark.parametrize("payload", ["exec", "os.system", "pathlib"])
def test_a_doctored_batch_runs_nothing_and_is_refused_in_one_line(tmp_path, payload, capsys):
    # A quiet payload beside a valid batch: on the start commit it ran and the batch trained.
    from speedtrain.cli.main import main

    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder)
    batch = pickle.loads((folder / "data_batch_2").read_bytes())
    batch[b"extra"] = _payloads(marker)[payload]
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as err:
        data.load_dataset(cifar_cfg(tmp_path))
    message = str(err.value)
    assert str(folder / "data_batch_2") in message and "refusing" in message and "\n" not in message
    assert not marker.exists()
    data.clear_memo()
    assert main(["train", "--data-dir", str(tmp_path), "--batch-size", "4", "--device", "cpu"]) == 2
    errors = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data_batch_2" in errors[0] and not marker.exists()  # after the run's header


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the original CIFAR-10 files were made."""

    def save_bytes(self, obj):
        opcode = pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256 else pickle.BINSTRING + struct.pack("<i", len(obj))
        self.write(opcode + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def _python2_style_batch(x: np.ndarray, y: list[int]) -> bytes:
    buf = __import__("io").BytesIO()
    _Python2Pickler(buf, protocol=2).dump({b"batch_label": b"training batch 1 of 5", b"labels": y, b"data": x,
                                           b"filenames": [b"img_%d.png" % i for i in range(len(y))]})
    # numpy 1's module name, as in the originals (GLOBAL opcodes are plain text lines).
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


@pytest.mark.parametrize("style", ["python2", "protocol2", "protocol5"])
def test_real_format_batches_still_load(tmp_path, style):
    folder = tmp_path / "cifar-10-batches-py"
    x, y = write_cifar_pickles(folder)
    flat = x.reshape(len(x), -1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        rows = slice(3 * i, 3 * (i + 1))
        if style == "python2":
            blob = _python2_style_batch(flat[rows], y[rows].tolist())
            assert b"numpy.core.multiarray\n_reconstruct" in blob and pickle.BINBYTES not in blob[:2]
        else:
            protocol = 2 if style == "protocol2" else 5
            blob = pickle.dumps({b"batch_label": b"b", b"labels": y[rows].tolist(), b"data": flat[rows],
                                 b"filenames": [b"a.png"] * 3}, protocol=protocol)
        (folder / name).write_bytes(blob)
    ds = data.load_dataset(cifar_cfg(tmp_path))
    assert torch.equal(ds.train_images, torch.from_numpy(x[:15])) and ds.test_labels.tolist() == y[15:].tolist()


# --- synthetic, subset, resize ---------------------------------------------------------------


def test_synthetic_full_shapes_and_determinism():
    cfg = TrainConfig(synthetic=True, data_dir="/nonexistent")
    ds = data.load_dataset(cfg)
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert ds.synthetic and ds.source == "synthetic" and ds.train_labels.max() == 9
    assert data.load_dataset(cfg) is ds  # memoised
    data.clear_memo()
    assert torch.equal(data.load_dataset(cfg).train_images, ds.train_images)


def test_synthetic_subset_resize_and_seed():
    cfg = TrainConfig(dataset="fashion-mnist", synthetic=True, train_subset=100, test_subset=20, image_size=16,
                      batch_size=50)
    ds = data.load_dataset(cfg)
    assert ds.train_images.shape == (100, 1, 16, 16) and ds.test_images.shape == (20, 1, 16, 16)
    assert ds.train_images.dtype == torch.uint8 and len(ds.train_labels) == 100
    assert not torch.equal(data.load_dataset(cfg.replace(seed=1)).train_images, ds.train_images)


def test_subset_takes_the_first_images_and_resize_is_bilinear_antialiased(tmp_path):
    x, _ = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    ds = data.load_dataset(cifar_cfg(tmp_path, train_subset=5, test_subset=2, image_size=64))
    assert ds.train_images.shape == (5, 3, 64, 64) and ds.test_images.shape == (2, 3, 64, 64)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x[:5]).float(), size=(64, 64), mode="bilinear",
                                               antialias=True).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(ds.train_images, expected)
    flat = torch.full((1, 3, 32, 32), 77, dtype=torch.uint8)
    assert (data._resize(flat, 8) == 77).all()  # a constant image stays constant


# --- loaders ---------------------------------------------------------------------------------


def indexed_dataset(n: int = 40, c: int = 3, side: int = 8) -> data.Dataset:
    """Labels 0..n-1, so every yielded label says which image the batch row must be."""
    images = torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if c == 3 else ((0.3,), (0.35,))
    return data.Dataset("cifar10", images, torch.arange(n), images[:10], torch.arange(10), mean, std, True, "test")


def loader_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": 8, "image_size": 8, "crop_padding": 2, "cutout": 3, **kw})


def epoch(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("loader", ["gpu", "torch"])
def test_loader_without_augmentation_yields_each_normalised_image_once(loader):
    ds = indexed_dataset(n=43)
    cfg = loader_cfg(loader=loader, crop_padding=0, flip=False, cutout=0)
    batches = epoch(loaders.make_train_loader(ds, cfg, torch.device("cpu")))
    assert len(batches) == 5  # 43 // 8, the partial batch dropped
    mean, std = torch.tensor(ds.mean), torch.tensor(ds.std)
    labels = torch.cat([y for _, y in batches])
    assert labels.unique().numel() == 40
    for x, y in batches:
        assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        torch.testing.assert_close(x, augment.normalize(ds.train_images[y], mean, std))


@pytest.mark.parametrize("loader", ["gpu", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loader_shapes_dtype_memory_format_and_reshuffle(loader, dtype):
    ds = indexed_dataset()
    cfg = loader_cfg(loader=loader, channels_last=True)
    train = loaders.make_train_loader(ds, cfg, torch.device("cpu"), dtype)
    assert len(train) == 5
    first, second = epoch(train), epoch(train)
    for x, y in first:
        assert x.shape == (8, 3, 8, 8) and x.dtype == dtype and y.dtype == torch.int64
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert ((x == 0).flatten(1).sum(1) >= 3).all()  # cutout painted the mean (0) somewhere in each image
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))  # reshuffled
    again = epoch(loaders.make_train_loader(ds, cfg, torch.device("cpu"), dtype))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))  # seeded


def test_torch_loader_with_workers_gives_the_same_batches():
    ds = indexed_dataset()
    one = epoch(loaders.make_train_loader(ds, loader_cfg(loader="torch"), torch.device("cpu")))
    two = epoch(loaders.make_train_loader(ds, loader_cfg(loader="torch", workers=2), torch.device("cpu")))
    assert len(one) == len(two) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two))


def test_loader_on_fashion_shaped_data():
    ds = indexed_dataset(c=1)
    for loader in ("gpu", "torch"):
        x, y = next(iter(loaders.make_train_loader(ds, loader_cfg(loader=loader, dataset="fashion-mnist"), "cpu")))
        assert x.shape == (8, 1, 8, 8)


def test_loader_refuses_fewer_images_than_a_batch():
    with pytest.raises(DataError, match="fewer than batch_size"):
        loaders.make_train_loader(indexed_dataset(n=5), loader_cfg(), torch.device("cpu"))


def test_test_batches_are_normalised_unaugmented_and_complete():
    ds = indexed_dataset()
    batches = loaders.make_test_batches(ds, loader_cfg(channels_last=True), torch.device("cpu"), torch.float16, batch_size=4)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = torch.cat([x for x, _ in batches])
    assert x.dtype == torch.float16 and batches[0][0].is_contiguous(memory_format=torch.channels_last)
    expected = augment.normalize(ds.test_images, torch.tensor(ds.mean), torch.tensor(ds.std), torch.float16)
    assert torch.equal(x, expected) and torch.equal(torch.cat([y for _, y in batches]), ds.test_labels)
