"""Tests of ganimate.data: the loaders, file lookup and downloads (served locally, never the internet)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import stat
import struct
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganimate.data import DATASETS, ImageDataset, dataset_info, download, get_dataset, load_dataset, mnist
from ganimate.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx_pair
from ganimate.errors import DataError, GanimateError

UNREACHABLE = "http://127.0.0.1:1/"
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data, system folders, user cache or internet unless a test asks for them."""
    monkeypatch.delenv("GANIMATE_DATA", raising=False)
    monkeypatch.setenv("GANIMATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(download, "SYSTEM_DIRS", [])
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)
    for name, spec in list(DATASETS.items()):
        if spec.source is not None:
            set_source(monkeypatch, name, mirrors=[UNREACHABLE])


def set_source(monkeypatch, name: str, mirrors: list[str] | None = None, md5: dict[str, str] | None = None) -> None:
    """Replace the mirrors and/or md5 sums of registered dataset `name` for one test."""
    source = DATASETS[name].source
    source = replace(source, mirrors=source.mirrors if mirrors is None else tuple(mirrors), md5=md5 or source.md5)
    monkeypatch.setitem(DATASETS, name, replace(DATASETS[name], source=source))


def message(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text.strip() == text and text
    return text


# ---------------------------------------------------------------- IDX fixtures


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    return path


def write_pair(folder: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    return (
        write_gz(folder / "t10k-images-idx3-ubyte.gz", idx_bytes(IMAGES_MAGIC, images)),
        write_gz(folder / "t10k-labels-idx1-ubyte.gz", idx_bytes(LABELS_MAGIC, labels)),
    )


def write_test_split(folder: Path, label: int = 0) -> Path:
    """A valid MNIST-format test split (10000 images) whose every label is `label`."""
    images = np.zeros((10000, 28, 28), np.uint8)
    images[:, 0, 0] = label
    write_pair(folder, images, np.full(10000, label, np.uint8))
    return folder


def small_pair(tmp_path, n=5):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    return images, labels, *write_pair(tmp_path / "small", images, labels)


def test_read_idx_pair_decodes_small_files(tmp_path):
    images, labels, images_gz, labels_gz = small_pair(tmp_path)
    got_images, got_labels = read_idx_pair(images_gz, labels_gz)
    assert np.array_equal(got_images, images)
    assert got_labels.dtype == np.int64 and np.array_equal(got_labels, labels)
    read_idx_pair(images_gz, labels_gz, expected_count=5)


def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[:-20])


def _not_gzip(p: Path):
    p.write_bytes(b"this is not gzip data at all")


def _garbled_deflate(p: Path):
    raw = bytearray(p.read_bytes())
    raw[20:40] = b"\xff" * 20
    p.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("corrupt", "which", "expect"),
    [
        (_truncate, "images", "not a readable gzip"),
        (_not_gzip, "labels", "not a readable gzip"),
        (_garbled_deflate, "images", "not a readable gzip"),
    ],
)
def test_read_idx_pair_rejects_broken_gzip(tmp_path, corrupt, which, expect):
    _, _, images_gz, labels_gz = small_pair(tmp_path)
    target = images_gz if which == "images" else labels_gz
    corrupt(target)
    with pytest.raises(DataError) as e:
        read_idx_pair(images_gz, labels_gz)
    assert expect in message(e) and str(target) in message(e)


def test_read_idx_pair_rejects_wrong_magic(tmp_path):
    _, _, images_gz, labels_gz = small_pair(tmp_path)
    with pytest.raises(DataError) as e:
        read_idx_pair(labels_gz, images_gz)
    assert "magic number 2049, expected 2051" in message(e)


def test_read_idx_pair_rejects_count_mismatch(tmp_path):
    images, labels, images_gz, _ = small_pair(tmp_path)
    labels_gz = write_gz(tmp_path / "other-labels.gz", idx_bytes(LABELS_MAGIC, labels[:4]))
    with pytest.raises(DataError) as e:
        read_idx_pair(images_gz, labels_gz)
    assert "5 images but" in message(e) and "4 labels" in message(e)


def test_read_idx_pair_rejects_header_data_length_mismatch(tmp_path):
    images, labels, _, labels_gz = small_pair(tmp_path)
    images_gz = write_gz(tmp_path / "short-images.gz", idx_bytes(IMAGES_MAGIC, images)[:-100])
    with pytest.raises(DataError) as e:
        read_idx_pair(images_gz, labels_gz)
    assert "truncated or corrupt" in message(e) and str(images_gz) in message(e)
    longer = write_gz(tmp_path / "long-images.gz", idx_bytes(IMAGES_MAGIC, images) + b"\0")
    with pytest.raises(DataError):
        read_idx_pair(longer, labels_gz)


def test_read_idx_pair_rejects_labels_out_of_range(tmp_path):
    images, labels, images_gz, _ = small_pair(tmp_path)
    labels[2] = 10
    labels_gz = write_gz(tmp_path / "bad-labels.gz", idx_bytes(LABELS_MAGIC, labels))
    with pytest.raises(DataError) as e:
        read_idx_pair(images_gz, labels_gz)
    assert "label 10, outside 0..9" in message(e)


def test_read_idx_pair_rejects_wrong_size_and_count(tmp_path):
    _, _, images_gz, labels_gz = small_pair(tmp_path)
    with pytest.raises(DataError) as e:
        read_idx_pair(images_gz, labels_gz, expected_count=60000)
    assert "expected 60000" in message(e)
    wide = write_gz(tmp_path / "wide.gz", idx_bytes(IMAGES_MAGIC, np.zeros((5, 28, 32), np.uint8)))
    with pytest.raises(DataError) as e:
        read_idx_pair(wide, labels_gz)
    assert "28x32" in message(e)


# ---------------------------------------------------------------- MNIST lookup


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_builtin_from_data_dir(tmp_path, name):
    write_test_split(tmp_path / "d" / name, label=3)
    ds = load_dataset(name, "test", data_dir=tmp_path / "d", download=False)
    assert ds.name == name
    assert ds.images.shape == (10000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.images.is_contiguous()
    assert ds.labels.dtype == torch.int64 and bool((ds.labels == 3).all())
    assert ds.num_classes == 10 and ds.channels == 1 and ds.image_size == 28 and len(ds) == 10000
    assert ds.classes == (FASHION_CLASSES if name == "fashion-mnist" else [str(k) for k in range(10)])
    same = load_dataset(name, "test", data_dir=tmp_path / "d" / name, download=False)
    assert torch.equal(same.images, ds.images)


def test_builtin_rejects_wrong_count_for_split(tmp_path):
    images, labels, *_ = small_pair(tmp_path)
    write_pair(tmp_path / "d", images, labels)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "test", data_dir=tmp_path / "d", download=False)
    assert "expected 10000" in message(e)


def test_lookup_order(tmp_path, monkeypatch):
    data_dir = write_test_split(tmp_path / "arg", label=1)
    write_test_split(tmp_path / "env" / "mnist", label=2)
    write_test_split(tmp_path / "system" / "mnist", label=3)
    write_test_split(tmp_path / "cache" / "mnist", label=4)
    monkeypatch.setenv("GANIMATE_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(download, "SYSTEM_DIRS", [tmp_path / "system"])

    def first_label(**kw):
        return int(load_dataset("mnist", "test", download=False, **kw).labels[0])

    assert first_label(data_dir=data_dir) == 1
    assert first_label() == 2
    shutil.rmtree(tmp_path / "env" / "mnist")
    assert first_label() == 3
    monkeypatch.setattr(download, "SYSTEM_DIRS", [])
    assert first_label() == 4
    monkeypatch.delenv("GANIMATE_CACHE")
    (tmp_path / "xdg" / "ganimate").mkdir(parents=True)
    shutil.move(tmp_path / "cache" / "mnist", tmp_path / "xdg" / "ganimate" / "mnist")
    assert first_label() == 4


def test_folder_missing_one_file_is_skipped_in_lookup(tmp_path, monkeypatch):
    write_test_split(tmp_path / "env" / "mnist", label=2)
    (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_test_split(tmp_path / "cache" / "mnist", label=4)
    monkeypatch.setenv("GANIMATE_DATA", str(tmp_path / "env"))
    assert int(load_dataset("mnist", "test", download=False).labels[0]) == 4


def test_read_only_data_folder_is_never_written(tmp_path):
    folder = write_test_split(tmp_path / "ro" / "mnist")
    before = sorted(p.name for p in folder.iterdir())
    for p in [*folder.iterdir(), folder, folder.parent]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        ds = load_dataset("mnist", "test", data_dir=tmp_path / "ro", download=False)
        assert len(ds) == 10000
        with pytest.raises(DataError):
            load_dataset("mnist", "train", data_dir=tmp_path / "ro", download=True)
        assert sorted(p.name for p in folder.iterdir()) == before
        assert sorted(p.name for p in folder.parent.iterdir()) == ["mnist"]
    finally:
        for p in [folder.parent, folder, *folder.iterdir()]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert not (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_missing_everywhere_without_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", "train", download=False)
    text = message(e)
    assert text.startswith("fashion-mnist not found: put the four IDX .gz files")
    assert "$GANIMATE_DATA/fashion-mnist/" in text and str(tmp_path / "cache" / "fashion-mnist") in text
    assert "downloading is disabled" in text
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- downloads


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """A folder served over http on 127.0.0.1, and its URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve_test_split(monkeypatch, folder: Path, name: str = "mnist") -> None:
    write_test_split(folder, label=7)
    sums = dict(DATASETS[name].source.md5)
    for f in mnist.filenames("test"):
        sums[f] = md5_of(folder / f)
    set_source(monkeypatch, name, md5=sums)


def test_download_over_http_into_cache(tmp_path, monkeypatch, http_root):
    root, url = http_root
    serve_test_split(monkeypatch, root)
    set_source(monkeypatch, "mnist", mirrors=[url])
    logged = []
    ds = load_dataset("mnist", "test", log=logged.append)
    assert len(ds) == 10000 and int(ds.labels[0]) == 7
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.filenames("test"))
    assert all(md5_of(cache / f) == md5_of(root / f) for f in mnist.filenames("test"))
    assert len(logged) == 2 and all(line.startswith("downloading " + url) for line in logged)
    set_source(monkeypatch, "mnist", mirrors=[UNREACHABLE])
    assert int(load_dataset("mnist", "test", log=logged.append).labels[0]) == 7
    assert len(logged) == 2


def test_download_falls_back_to_next_mirror(tmp_path, monkeypatch):
    serve_test_split(monkeypatch, tmp_path / "mirror", "fashion-mnist")
    mirrors = [UNREACHABLE, (tmp_path / "mirror").as_uri() + "/"]
    set_source(monkeypatch, "fashion-mnist", mirrors=mirrors)
    ds = load_dataset("fashion-mnist", "test", log=lambda _: None)
    assert ds.classes == FASHION_CLASSES and len(ds) == 10000


def test_download_md5_mismatch_leaves_no_file(tmp_path, monkeypatch):
    write_test_split(tmp_path / "mirror")
    set_source(monkeypatch, "mnist", mirrors=[(tmp_path / "mirror").as_uri()])
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "test", log=lambda _: None)
    text = message(e)
    assert "md5" in text and DATASETS["mnist"].source.md5["t10k-images-idx3-ubyte.gz"] in text
    assert "put the four IDX .gz files" in text
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_download_unreachable_mirror_hints_where_to_put_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "train", data_dir=tmp_path / "mine", log=lambda _: None)
    text = message(e)
    assert text.startswith("mnist not found: put the four IDX .gz files")
    assert f"{tmp_path / 'mine'}/" in text and f"{tmp_path / 'cache' / 'mnist'}/" in text
    assert "download failed: http://127.0.0.1:1/train-images-idx3-ubyte.gz" in text
    assert not any((tmp_path / "cache" / "mnist").iterdir())


# ---------------------------------------------------------------- real data


MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_data(real_data, name, split):
    ds = load_dataset(name, split, download=False)
    n = 60000 if split == "train" else 10000
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
    expected = MNIST_COUNTS[split] if name == "mnist" else [n // 10] * 10
    assert torch.bincount(ds.labels, minlength=10).tolist() == expected
    assert int(ds.images.max()) == 255 and int(ds.images.min()) == 0
    assert not (Path(os.environ["GANIMATE_CACHE"])).exists()


@pytest.mark.realdata
def test_real_data_resized_to_rgb(real_data):
    ds = load_dataset("mnist", "test", image_size=32, channels=3, download=False)
    assert ds.images.shape == (10000, 3, 32, 32) and ds.image_size == 32 and ds.channels == 3
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])


# ---------------------------------------------------------------- CIFAR-10


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"batch",
        b"labels": [int(x) for x in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_members(overrides: dict | None = None) -> dict[str, bytes]:
    members = {f"data_batch_{i}": cifar_batch(4, i) for i in range(1, 6)}
    members["test_batch"] = cifar_batch(6, 9)
    members["batches.meta"] = {
        b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": 4, b"num_vis": 3072,
    }
    blobs = {k: pickle.dumps(v, protocol=2) for k, v in members.items()}
    blobs.update(overrides or {})
    return blobs


def write_cifar_archive(path: Path, blobs: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_cifar_from_archive(tmp_path):
    blobs = cifar_members()
    write_cifar_archive(tmp_path / "d" / "cifar10" / "cifar-10-python.tar.gz", blobs)
    ds = load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert ds.classes == CIFAR_CLASSES and ds.num_classes == 10
    first = cifar_batch(4, 1)
    assert ds.labels[:4].tolist() == first[b"labels"]
    red, green = first[b"data"][0, :1024].reshape(32, 32), first[b"data"][0, 1024:2048].reshape(32, 32)
    assert np.array_equal(ds.images[0, 0].numpy(), red) and np.array_equal(ds.images[0, 1].numpy(), green)
    test = load_dataset("cifar10", "test", data_dir=tmp_path / "d", download=False)
    assert test.images.shape == (6, 3, 32, 32) and test.labels.tolist() == cifar_batch(6, 9)[b"labels"]
    grey = load_dataset("cifar10", "test", data_dir=tmp_path / "d", channels=1, image_size=16, download=False)
    assert grey.images.shape == (6, 1, 16, 16)


def py2_str(b: bytes) -> bytes:
    """A Python 2 `str` as cPickle wrote it (SHORT_BINSTRING or BINSTRING)."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled like the official archive's: Python 2 cPickle, str keys, numpy.core globals."""
    shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in data.shape) + b"t"
    dtype = b"cnumpy\ndtype\n" + py2_str(b"u1") + b"K\x00K\x01\x87R(K\x03" + py2_str(b"|")
    dtype += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + py2_str(b"b") + b"\x87R"
    array += b"(K\x01" + shape + dtype + b"\x89" + py2_str(data.tobytes()) + b"tb"
    label_list = b"](" + b"".join(b"K" + bytes([x]) for x in labels) + b"e"
    return b"\x80\x02}(" + py2_str(b"data") + array + py2_str(b"labels") + label_list + b"u."


def test_cifar_reads_python2_pickles(tmp_path):
    batch = cifar_batch(4, 1)
    blob = py2_batch(batch[b"data"], batch[b"labels"])
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_members({"data_batch_1": blob}))
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.labels[:4].tolist() == batch[b"labels"]
    assert np.array_equal(ds.images[:4].reshape(4, -1).numpy(), batch[b"data"])


def test_cifar_from_extracted_folder_via_env(tmp_path, monkeypatch):
    folder = tmp_path / "env" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, blob in cifar_members().items():
        (folder / name).write_bytes(blob)
    monkeypatch.setenv("GANIMATE_DATA", str(tmp_path / "env"))
    assert load_dataset("cifar10", "test", download=False).images.shape == (6, 3, 32, 32)


def test_cifar_download_into_cache(tmp_path, monkeypatch):
    archive = write_cifar_archive(tmp_path / "mirror" / "cifar-10-python.tar.gz", cifar_members())
    set_source(monkeypatch, "cifar10", mirrors=[(tmp_path / "mirror").as_uri()], md5={archive.name: md5_of(archive)})
    ds = load_dataset("cifar10", "test", log=lambda _: None)
    assert len(ds) == 6 and (tmp_path / "cache" / "cifar10" / archive.name).is_file()


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("not-a-tar", "not a readable tar archive"),
        ("truncated", "not a readable tar archive"),
        ("missing-batch", "lacks cifar-10-batches-py/data_batch_3"),
        ("evil-pickle", "refused to load global"),
        ("garbage-pickle", "not a valid CIFAR-10 pickle"),
        ("bad-shape", "not a uint8 array of shape (N, 3072)"),
        ("label-range", "not a list of integers in 0..9"),
        ("count-mismatch", "4 images but 3 labels"),
        ("bad-meta", "'label_names' is not a list of 10 names"),
    ],
)
def test_cifar_rejects_corrupt_archives(tmp_path, case, expect):
    path = tmp_path / "d" / "cifar-10-python.tar.gz"
    marker = tmp_path / "pwned"
    batch = cifar_batch(4, 1)
    overrides = {
        "evil-pickle": {"data_batch_2": pickle.dumps({b"data": Evil(marker)}, protocol=2)},
        "garbage-pickle": {"data_batch_1": b"\x80\x02garbage"},
        "bad-shape": {"data_batch_1": pickle.dumps({**batch, b"data": batch[b"data"][:, :100]}, protocol=2)},
        "label-range": {"data_batch_1": pickle.dumps({**batch, b"labels": [0, 1, 2, 10]}, protocol=2)},
        "count-mismatch": {"data_batch_1": pickle.dumps({**batch, b"labels": [0, 1, 2]}, protocol=2)},
        "bad-meta": {"batches.meta": pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2)},
    }
    blobs = cifar_members(overrides.get(case))
    if case == "missing-batch":
        del blobs["data_batch_3"]
    write_cifar_archive(path, blobs)
    if case == "not-a-tar":
        path.write_bytes(b"definitely not a tar archive")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert expect in message(e)
    assert not marker.exists()


# ---------------------------------------------------------------- folders


def save(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)
    return path


def test_folder_with_class_subfolders(tmp_path):
    for cls, colour in [("cats", (255, 0, 0)), ("dogs", (0, 0, 255))]:
        for i in range(3):
            save(tmp_path / "pets" / cls / f"{i}.png", Image.new("RGB", (40, 30), colour))
    save(tmp_path / "pets" / "dogs" / "extra.jpg", Image.new("RGB", (30, 40), (0, 0, 255)))
    (tmp_path / "pets" / "notes.txt").write_text("not an image")
    (tmp_path / "pets" / ".DS_Store").write_bytes(b"\0\1")
    logged = []
    ds = load_dataset(f"folder:{tmp_path / 'pets'}", image_size=16, log=logged.append)
    assert ds.name == f"folder:{tmp_path / 'pets'}"
    assert ds.images.shape == (7, 3, 16, 16) and ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert ds.labels.dtype == torch.int64 and ds.num_classes == 2
    assert ds.images[0, :, 8, 8].tolist() == [255, 0, 0] and ds.images[5, :, 8, 8].tolist() == [0, 0, 255]
    assert logged == ["labelled by top-level sub-folder, 2 classes: cats (3), dogs (4)"]


def test_folder_with_a_root_image_is_unlabelled_and_nested_classes_are_labelled(tmp_path):
    save(tmp_path / "a" / "x.png", Image.new("L", (8, 8), 10))
    save(tmp_path / "a" / "sub" / "y.bmp", Image.new("L", (8, 8), 20))
    ds = load_dataset(f"folder:{tmp_path / 'a'}", image_size=8)
    assert ds.labels is None and ds.classes is None and ds.num_classes == 0
    assert ds.images.shape == (2, 1, 8, 8)
    save(tmp_path / "b" / "c1" / "deep" / "z.png", Image.new("L", (8, 8)))
    save(tmp_path / "b" / "c2" / "w.png", Image.new("L", (8, 8)))
    nested = load_dataset(f"folder:{tmp_path / 'b'}", image_size=8)
    assert nested.classes == ["c1", "c2"] and nested.labels.tolist() == [0, 1]


def test_folder_channels(tmp_path):
    save(tmp_path / "grey" / "a.png", Image.new("L", (10, 10), 100))
    save(tmp_path / "grey" / "b.bmp", Image.new("1", (10, 10), 1))
    grey = load_dataset(f"folder:{tmp_path / 'grey'}", image_size=10)
    assert grey.channels == 1 and grey.images[:, 0, 5, 5].tolist() == [100, 255]
    save(tmp_path / "grey" / "c.jpg", Image.new("RGB", (10, 10), (0, 255, 0)))
    mixed = load_dataset(f"folder:{tmp_path / 'grey'}", image_size=10)
    assert mixed.channels == 3 and mixed.images[0, :, 5, 5].tolist() == [100, 100, 100]
    forced = load_dataset(f"folder:{tmp_path / 'grey'}", image_size=10, channels=1)
    assert forced.channels == 1 and abs(int(forced.images[2, 0, 5, 5]) - 150) <= 2
    rgb = load_dataset(f"folder:{tmp_path / 'grey'}", image_size=10, channels=3)
    assert rgb.images.shape == (3, 3, 10, 10)


def test_folder_transparency_palette_and_16bit(tmp_path):
    save(tmp_path / "f" / "rgba.png", Image.new("RGBA", (12, 12), (255, 0, 0, 0)))
    save(tmp_path / "f" / "palette.png", Image.new("RGB", (12, 12), (0, 0, 255)).convert("P"))
    sixteen = Image.fromarray(np.full((12, 12), 65535, np.uint16))
    save(tmp_path / "f" / "wide.png", sixteen)
    ds = load_dataset(f"folder:{tmp_path / 'f'}", image_size=12)
    values = {int(i): ds.images[i, :, 6, 6].tolist() for i in range(3)}
    assert values == {0: [0, 0, 255], 1: [255, 255, 255], 2: [255, 255, 255]}


def test_folder_resizes_shorter_side_and_centre_crops(tmp_path):
    image = Image.new("L", (90, 30), 0)
    image.paste(255, (30, 0, 60, 30))
    save(tmp_path / "wide" / "a.png", image)
    ds = load_dataset(f"folder:{tmp_path / 'wide'}", image_size=15)
    assert ds.images.shape == (1, 1, 15, 15)
    assert int(ds.images[0, 0, :, 1:-1].min()) == 255
    reference = np.asarray(image.resize((45, 15), Image.BICUBIC).crop((15, 0, 30, 15)), dtype=int)
    assert np.abs(ds.images[0, 0].numpy().astype(int) - reference).max() <= 3
    default = load_dataset(f"folder:{tmp_path / 'wide'}")
    assert default.image_size == 32  # the folder's own size: the shorter side, 30, rounded to a size G makes


def test_folder_skips_unreadable_files_or_fails_when_strict(tmp_path):
    for i in range(3):
        save(tmp_path / "f" / f"ok{i}.png", Image.new("RGB", (8, 8)))
    (tmp_path / "f" / "fake.png").write_text("not really a png")
    good = save(tmp_path / "f" / "cut.jpg", Image.new("RGB", (64, 64), (1, 2, 3)))
    good.write_bytes(good.read_bytes()[:200])
    logged = []
    ds = load_dataset(f"folder:{tmp_path / 'f'}", image_size=8, log=logged.append)
    assert len(ds) == 3
    assert len(logged) == 2 and "\n" not in logged[0]
    assert logged[0].startswith(f"skipped 2 unreadable image file(s) in {tmp_path / 'f'} (first: cut.jpg")
    assert logged[1] == "unlabelled: 3 images lie in the root folder, e.g. ok0.png"
    with pytest.raises(DataError) as e:
        load_dataset(f"folder:{tmp_path / 'f'}", image_size=8, strict=True)
    assert "2 unreadable image file(s)" in message(e)


@pytest.mark.parametrize(
    "case", ["empty", "only-junk", "all-unreadable", "missing", "file", "no-path", "test-split"]
)
def test_folder_errors(tmp_path, case):
    root = tmp_path / "f"
    root.mkdir()
    split = "train"
    if case == "only-junk":
        (root / "readme.txt").write_text("hi")
    elif case == "all-unreadable":
        (root / "a.png").write_bytes(b"nope")
    elif case == "missing":
        root = tmp_path / "nowhere"
    elif case == "file":
        root = root / "x.png"
        save(root, Image.new("L", (4, 4)))
    elif case == "test-split":
        save(root / "a.png", Image.new("L", (4, 4)))
        split = "test"
    spec = "folder:" if case == "no-path" else f"folder:{root}"
    with pytest.raises(DataError) as e:
        load_dataset(spec, split)
    assert message(e)


def test_folder_many_small_images(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(300):
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        save(tmp_path / "many" / f"{i:04d}.png", Image.fromarray(pixels))
    ds = load_dataset(f"folder:{tmp_path / 'many'}", image_size=16)
    assert ds.images.shape == (300, 3, 16, 16)


# ---------------------------------------------------------------- synthetic and API


def test_synthetic_is_deterministic_and_balanced():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (2000, 1, 28, 28) and a.num_classes == 10 and len(a.classes) == 10
    assert torch.bincount(a.labels).tolist() == [200] * 10
    test = load_dataset("synthetic", "test")
    assert len(test) == 500 and not torch.equal(test.images, a.images[:500])
    means = torch.stack([a.images[a.labels == k].float().mean(0) for k in range(10)])
    distances = torch.cdist(means.flatten(1), means.flatten(1))
    assert float(distances[~torch.eye(10, dtype=torch.bool)].min()) > 500


def test_synthetic_respects_size_and_channels():
    ds = load_dataset("synthetic", "test", image_size=32, channels=3)
    assert ds.images.shape == (500, 3, 32, 32) and ds.image_size == 32 and ds.channels == 3


def test_dataset_info():
    assert dataset_info("mnist") == {"image_size": 28, "channels": 1, "num_classes": 10, "train_images": 60_000}
    assert dataset_info("fashion-mnist") == {"image_size": 28, "channels": 1, "num_classes": 10,
                                             "train_images": 60_000}
    assert dataset_info("cifar10") == {"image_size": 32, "channels": 3, "num_classes": 10, "train_images": 50_000}
    assert dataset_info("synthetic")["num_classes"] == 10 and dataset_info("synthetic")["train_images"] == 2000
    assert dataset_info("folder:/anywhere") == {"image_size": None, "channels": None, "num_classes": None,
                                                "train_images": None}
    with pytest.raises(DataError):
        dataset_info("imagenet")


@pytest.mark.parametrize(
    ("spec", "kwargs", "expect"),
    [
        ("imagenet", {}, "use one of mnist, fashion-mnist, cifar10, synthetic, folder:PATH"),
        ("synthetic", {"split": "val"}, "unknown split 'val'"),
        ("synthetic", {"channels": 2}, "channels must be 1 (grey) or 3 (RGB)"),
        ("synthetic", {"image_size": 0}, "image_size must be a positive integer"),
    ],
)
def test_bad_arguments(spec, kwargs, expect):
    with pytest.raises(DataError) as e:
        load_dataset(spec, **kwargs)
    assert expect in message(e)


def test_image_dataset_validates_its_fields():
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    assert ImageDataset("x", images, None, None).num_classes == 0
    with pytest.raises(ValueError):
        ImageDataset("x", images.float(), None, None)
    with pytest.raises(ValueError):
        ImageDataset("x", images, torch.zeros(3, dtype=torch.int64), ["a"])


# ---------------------------------------------------------------- the dataset table


def test_names_derive_from_the_table():
    from ganimate.data import BUILTINS, dataset_names, has_labelled_test, has_reference_classifier, is_image_dataset
    from ganimate.metrics.classifier import REFERENCE_DATASETS

    assert BUILTINS is DATASETS
    assert dataset_names() == ["mnist", "fashion-mnist", "cifar10", "synthetic", "folder:PATH"]
    assert all(is_image_dataset(n) and has_labelled_test(n) for n in DATASETS)
    assert is_image_dataset("folder:/x") and not has_labelled_test("folder:/x") and not is_image_dataset("x")
    assert [n for n in DATASETS if has_reference_classifier(n)] == list(REFERENCE_DATASETS) == ["mnist",
                                                                                                 "fashion-mnist"]
    for name, spec in DATASETS.items():
        assert dataset_info(name) == {"image_size": spec.image_size, "channels": spec.channels,
                                      "num_classes": spec.num_classes, "train_images": spec.train_images}
        if spec.source is not None:
            assert all(len(md5) == 32 for md5 in spec.source.md5.values()) and spec.source.mirrors


@pytest.mark.parametrize("call", [
    lambda: load_dataset("imagenet"),
    lambda: dataset_info("imagenet"),
    lambda: get_dataset("imagenet"),
])
def test_unknown_dataset_is_a_one_line_error_listing_the_known_ones(call):
    with pytest.raises(DataError) as e:
        call()
    assert message(e) == "unknown dataset 'imagenet': use one of mnist, fashion-mnist, cifar10, synthetic, folder:PATH"


def test_unknown_dataset_in_the_config(tiny):
    with pytest.raises(GanimateError) as e:
        tiny(dataset="imagenet")
    assert message(e) == "unknown dataset 'imagenet': choose from mnist, fashion-mnist, cifar10, synthetic, folder:PATH"


@pytest.fixture
def idx_dataset():
    """A test-only MNIST-format dataset: one table entry, no loader code, removed again afterwards."""
    from ganimate.data import DatasetSpec, register_dataset

    spec = register_dataset(DatasetSpec("test-idx", mnist.load, image_size=28, channels=1, num_classes=10,
                                        classes=tuple("abcdefghij"), reference_classifier=True))
    yield spec
    del DATASETS[spec.name]


def test_registered_dataset_is_accepted_everywhere(idx_dataset, tmp_path, tiny):
    from ganimate.data import dataset_names, has_labelled_test, has_reference_classifier, is_image_dataset
    from ganimate.metrics import classifier

    assert dataset_names()[-2:] == ["test-idx", "folder:PATH"]
    assert is_image_dataset("test-idx") and has_labelled_test("test-idx") and has_reference_classifier("test-idx")
    assert dataset_info("test-idx") == {"image_size": 28, "channels": 1, "num_classes": 10, "train_images": None}
    assert tiny(dataset="test-idx").dataset == "test-idx"
    with pytest.raises(DataError, match="use one of mnist, fashion-mnist, cifar10, synthetic, test-idx, folder:PATH$"):
        load_dataset("imagenet")
    with pytest.raises(GanimateError, match="test-idx_classifier.safetensors is missing"):
        classifier.reference_info("test-idx")

    write_test_split(tmp_path / "files" / "test-idx", label=3)
    ds = load_dataset("test-idx", "test", data_dir=tmp_path / "files")
    assert ds.name == "test-idx" and len(ds) == 10000 and ds.classes == list("abcdefghij") and int(ds.labels[0]) == 3


def test_dataset_without_download_source(idx_dataset, tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("test-idx", "test", data_dir=tmp_path / "none", log=lambda _: None)
    assert message(e).startswith("test-idx not found: put the four IDX .gz files")
    assert "test-idx cannot be downloaded" in message(e)


def test_register_dataset_refuses_bad_names(idx_dataset):
    from ganimate.data import register_dataset

    for name in ("test-idx", "Upper", "folder:x", ""):
        with pytest.raises(ValueError):
            register_dataset(replace(idx_dataset, name=name))


def test_clip_dataset_names():
    from ganimate.data.moving_mnist import clip_dataset_names, clip_source, is_clip_dataset

    assert clip_dataset_names() == ["moving-mnist", "moving-synthetic", "npy:PATH"]
    assert is_clip_dataset("moving-mnist") and is_clip_dataset("npy:/x.npy") and not is_clip_dataset("mnist")
    with pytest.raises(DataError) as e:
        clip_source("moving-cifar", "test", size=32, frames=4, digits=1)
    assert message(e) == "unknown clip dataset 'moving-cifar': use one of moving-mnist, moving-synthetic, npy:PATH"
