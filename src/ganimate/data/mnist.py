"""MNIST-format datasets (MNIST, Fashion-MNIST): 28x28 grey images in IDX .gz files, 60000 train and 10000 test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganimate.data import download as dl
from ganimate.data.idx import read_idx_pair
from ganimate.data.spec import DatasetSpec

PREFIX = {"train": "train", "test": "t10k"}
COUNT = {"train": 60000, "test": 10000}


def filenames(split: str) -> list[str]:
    """The images and labels file names of one split."""
    return [f"{PREFIX[split]}-images-idx3-ubyte.gz", f"{PREFIX[split]}-labels-idx1-ubyte.gz"]


def load(
    spec: DatasetSpec,
    split: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    log: Callable[[str], object] = print,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, 1, 28, 28), labels int64 (N,) and the class names of one split of `spec`."""
    needed = filenames(split)
    all_files = ", ".join(filenames("train") + filenames("test"))

    def probe(folder: Path) -> Path | None:
        return folder if all((folder / f).is_file() for f in needed) else None

    folder = dl.locate(
        spec.name, probe, needed, f"the four IDX .gz files ({all_files})",
        source=spec.source, data_dir=data_dir, download=download, log=log,
    )
    images, labels = read_idx_pair(folder / needed[0], folder / needed[1], COUNT[split],
                                   num_classes=spec.num_classes)
    return images[:, None], labels, list(spec.classes)
