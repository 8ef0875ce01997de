"""Real-data statistics cached outside the data folder, and the real images they come from.

Files live in ``${GANIMATE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ganimate}/stats/<hash>.npz``; the hash
covers everything the numbers depend on (dataset, split, count, classifier sha256, ...), so a changed
input never reads a stale file. Writes are atomic, so concurrent evaluations at worst compute twice.

A folder dataset has no test split: its images (decoded at the run's size, channels, labels and crop) are
split once, by a fixed seeded permutation, into two halves. "train" is the half the reference network is
trained on and the real-vs-real floor compares; "test" is the held-out half every score is measured against.
A folder's numbers are keyed by `data_identity`, a sha256 of the decoded images and labels, never by its path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganimate.data.download import cache_root
from ganimate.images import save_npz

FORMAT = 1
HOLDOUT_SEED = 20251  # the permutation that splits a folder into its two halves
_DATA: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}
_IDENTITY: dict[tuple, str] = {}


def stats_dir() -> Path:
    return cache_root() / "stats"


def cache_key(**parts) -> str:
    """A stable hash of the keyword values (JSON-serialisable)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_arrays(parts: dict, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under the hash of `parts`, computing and writing them first if missing or unreadable."""
    path = stats_dir() / f"{cache_key(**parts)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            pass
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, **arrays)
    return arrays


def is_folder(dataset: str) -> bool:
    from ganimate.data.registry import FOLDER_PREFIX

    return dataset.startswith(FOLDER_PREFIX)


def native_format(dataset: str, image_size: int | None, channels: int | None) -> dict:
    """{"image_size", "channels"} with None where the value is the dataset's own (so one copy is loaded)."""
    from ganimate.data import dataset_info

    info = dataset_info(dataset)
    return {"image_size": None if image_size == info["image_size"] else image_size,
            "channels": None if channels == info["channels"] else channels}


def _load_folder(dataset: str, image_size: int | None, channels: int | None, labels: str, crop: str) -> None:
    """Decode folder `dataset` once and keep its two halves (see the module docstring) in `_DATA`."""
    from ganimate.data import load_dataset

    ds = load_dataset(dataset, "train", image_size=image_size, channels=channels, labels=labels, crop=crop,
                      log=lambda _: None)
    perm = torch.randperm(len(ds.images), generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    for split, part in (("test", perm[0::2]), ("train", perm[1::2])):
        ys = None if ds.labels is None else ds.labels[part]
        _DATA[dataset, split, None, image_size, channels, labels, crop] = (ds.images[part], ys)
    h = hashlib.sha256()
    for t in (ds.images, ds.labels):
        if t is not None:
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
    _IDENTITY[dataset, image_size, channels, labels, crop] = h.hexdigest()


def real_images(
    dataset: str,
    split: str,
    n: int | None = None,
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    labels: str = "auto",
    crop: str = "center",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first `n` (all if None) uint8 images (N, C, H, W) and labels of a split, kept for the process.

    For a folder, `split` names one of its two halves and `labels` / `crop` are the run's folder settings
    (built-in datasets ignore them, and `data_dir`, which folders ignore, says where their files are).
    """
    from ganimate.data import load_dataset

    if is_folder(dataset):
        key = (dataset, split, None, image_size, channels, labels, crop)
        if key not in _DATA:
            _load_folder(dataset, image_size, channels, labels, crop)
    else:
        key = (dataset, split, data_dir, image_size, channels)
        if key not in _DATA:
            ds = load_dataset(dataset, split, data_dir=data_dir, image_size=image_size, channels=channels,
                              log=lambda _: None)
            _DATA[key] = (ds.images, ds.labels)
    images, ys = _DATA[key]
    if n is None:
        return images, ys
    return images[:n], None if ys is None else ys[:n]


def data_identity(dataset: str, *, image_size: int | None = None, channels: int | None = None,
                  labels: str = "auto", crop: str = "center", data_dir: str | None = None) -> dict:
    """What a cache key needs beyond the dataset's name: {} for a built-in dataset (its files are fixed), and for
    a folder the sha256 of its decoded images and labels at these settings (the folder is decoded if needed)."""
    if not is_folder(dataset):
        return {}
    key = (dataset, image_size, channels, labels, crop)
    if key not in _IDENTITY:
        _load_folder(dataset, image_size, channels, labels, crop)
    return {"data_sha256": _IDENTITY[key], "labels": labels, "crop": crop}
