"""`DatasetSpec`: what the table of datasets (registry.py) knows of one built-in image dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ganimate.data.download import DownloadSpec

Loader = Callable[..., tuple[np.ndarray, np.ndarray | None, list[str] | None]]


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in image dataset.

    `load(spec, split, *, data_dir, download, log)` returns images uint8 (N, C, H, W), labels int64 (N,) and
    class names for split "train" or "test"; `source` says where missing files are downloaded from (None: the
    dataset needs no files, or they cannot be fetched); `classes` names the classes when the files do not.
    `reference_classifier`: the package ships `weights/<name>_classifier.safetensors` for the feature metrics.
    """

    name: str
    load: Loader
    image_size: int
    channels: int
    num_classes: int
    classes: tuple[str, ...] | None = None
    source: DownloadSpec | None = None
    labelled_test: bool = True
    reference_classifier: bool = False
    train_images: int | None = None  # the training split's size, known before loading (`--augment auto`)

    def info(self) -> dict[str, int | None]:
        return {"image_size": self.image_size, "channels": self.channels, "num_classes": self.num_classes,
                "train_images": self.train_images}
