"""Real-data statistics cached outside the data folder, and the real images they come from.

Files live in ``${GANIMATE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ganimate}/stats/<hash>.npz``; the hash
covers everything the numbers depend on (dataset, split, count, classifier sha256, ...), so a changed
input never reads a stale file. Writes are atomic, so concurrent evaluations at worst compute twice.
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
_DATA: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}


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


def native_format(dataset: str, image_size: int | None, channels: int | None) -> dict:
    """{"image_size", "channels"} with None where the value is the dataset's own (so one copy is loaded)."""
    from ganimate.data import dataset_info

    info = dataset_info(dataset)
    return {"image_size": None if image_size == info["image_size"] else image_size,
            "channels": None if channels == info["channels"] else channels}


def real_images(
    dataset: str,
    split: str,
    n: int | None = None,
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first `n` (all if None) uint8 images (N, C, H, W) and labels of a split, kept for the process."""
    from ganimate.data import load_dataset

    key = (dataset, split, data_dir, image_size, channels)
    if key not in _DATA:
        ds = load_dataset(dataset, split, data_dir=data_dir, image_size=image_size, channels=channels,
                          log=lambda _: None)
        _DATA[key] = (ds.images, ds.labels)
    images, labels = _DATA[key]
    if n is None:
        return images, labels
    return images[:n], None if labels is None else labels[:n]
