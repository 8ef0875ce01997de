"""CIFAR-10 from the official python-version archive, read without extracting or trusting its pickles."""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganimate.data import cache as cachefiles
from ganimate.data import download as dl
from ganimate.data.spec import DatasetSpec
from ganimate.errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
META = "batches.meta"
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
PIXELS = 3 * 32 * 32
_REPLACE = f"replace the CIFAR-10 files with the official {ARCHIVE}"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _SafeUnpickler(pickle.Unpickler):
    """Builds only plain containers and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{where} is not a valid CIFAR-10 pickle ({reason}): {_REPLACE}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where} holds a {type(obj).__name__}, not a dict: {_REPLACE}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_members(source: Path, names: list[str]) -> dict[str, bytes]:
    """The contents of `names` from the archive or the extracted folder `source`."""
    if source.is_dir():
        try:
            return {n: (source / n).read_bytes() for n in names}
        except OSError as e:
            raise DataError(f"cannot read {e.filename}: {e.strerror}: {_REPLACE}") from None
    wanted = {f"{FOLDER}/{n}": n for n in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                key = member.name.removeprefix("./")
                if member.isfile() and key in wanted:
                    found[wanted[key]] = tar.extractfile(member).read()
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{source} is not a readable tar archive ({reason}): {_REPLACE}") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(
            f"{source} lacks {', '.join(f'{FOLDER}/{n}' for n in missing)}: {_REPLACE}"
        )
    return found


def _batch(data: bytes, where: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    images, labels = d.get("data"), d.get("labels")
    shape = getattr(images, "shape", ())
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or shape[1:] != (PIXELS,):
        raise DataError(f"{where}: 'data' is not a uint8 array of shape (N, {PIXELS}): {_REPLACE}")
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.ndim == 1:
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(x) is int and 0 <= x < num_classes for x in labels):
        raise DataError(
            f"{where}: 'labels' is not a list of integers in 0..{num_classes - 1}: {_REPLACE}"
        )
    if len(labels) != len(images):
        raise DataError(f"{where} holds {len(images)} images but {len(labels)} labels: {_REPLACE}")
    return images.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64).reshape(-1)


def _classes(data: bytes, where: str) -> list[str]:
    names = _unpickle(data, where).get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"{where}: 'label_names' is not a list of 10 names: {_REPLACE}")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def _from_cache(hit: tuple[np.ndarray, dict] | None) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """A cache entry as `load` returns it, or None when its labels or classes do not fit the images."""
    if hit is None:
        return None
    images, info = hit
    labels, classes = np.asarray(info.get("labels")), info.get("classes")
    if (images.ndim != 4 or images.shape[1:] != (3, 32, 32) or labels.shape != images.shape[:1]
            or labels.dtype.kind != "i" or not isinstance(classes, list) or len(classes) != 10):
        return None
    return images, labels.astype(np.int64), [str(c) for c in classes]


def load(
    spec: DatasetSpec,
    split: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    log: Callable[[str], object] = print,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, 3, 32, 32), labels int64 (N,) and the 10 class names (from the archive) of one split.

    `cache`: keep the split decoded in the user cache (`data.cache`), keyed by the source files' paths, sizes and
    times; a second load reads that instead of unpacking the archive.
    """
    names = [META, *BATCHES[split]]

    def probe(folder: Path) -> Path | None:
        for candidate in (folder, folder / FOLDER):
            if all((candidate / n).is_file() for n in names):
                return candidate
        return folder / ARCHIVE if (folder / ARCHIVE).is_file() else None

    source = dl.locate(
        spec.name, probe, [ARCHIVE], f"{ARCHIVE} (or its extracted {FOLDER}/ folder)",
        source=spec.source, data_dir=data_dir, download=download, log=log,
    )
    where = key = listing = None
    if cache:
        folders = [source if source.is_dir() else source.parent, data_dir, os.environ.get("GANIMATE_DATA")]
        where = cachefiles.usable_dir([f for f in folders if f], log)
        read = [source / n for n in names] if source.is_dir() else [source]
        key = {"kind": spec.name, "source": str(source.resolve()), "split": split}
        listing = cachefiles.listing_key(cachefiles.file_stats(read))
        hit = _from_cache(cachefiles.load(where, key, listing))
        if hit is not None:
            return hit
    members = _read_members(source, names)
    classes = _classes(members[META], f"{source}:{META}")
    parts = [_batch(members[n], f"{source}:{n}", len(classes)) for n in BATCHES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if where is not None:
        cachefiles.save(where, key, listing, images, {"labels": labels.tolist(), "classes": classes})
    return images, labels, classes
