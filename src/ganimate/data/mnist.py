"""MNIST and Fashion-MNIST from their original IDX .gz files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganimate.data import download as dl
from ganimate.data.idx import read_idx_pair

PREFIX = {"train": "train", "test": "t10k"}
COUNT = {"train": 60000, "test": 10000}
CLASSES = {
    "mnist": [str(k) for k in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


def filenames(split: str) -> list[str]:
    """The images and labels file names of one split."""
    return [f"{PREFIX[split]}-images-idx3-ubyte.gz", f"{PREFIX[split]}-labels-idx1-ubyte.gz"]


def load(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    log: Callable[[str], object] = print,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, 1, 28, 28), labels int64 (N,) and class names of "mnist" or "fashion-mnist"."""
    needed = filenames(split)
    all_files = ", ".join(filenames("train") + filenames("test"))

    def probe(folder: Path) -> Path | None:
        return folder if all((folder / f).is_file() for f in needed) else None

    folder = dl.locate(
        name, probe, needed, f"the four IDX .gz files ({all_files})",
        data_dir=data_dir, download=download, log=log,
    )
    images, labels = read_idx_pair(folder / needed[0], folder / needed[1], COUNT[split])
    return images[:, None], labels, list(CLASSES[name])
