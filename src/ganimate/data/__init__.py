"""Image datasets: the built-in ones of the table in `registry` (mnist, fashion-mnist, cifar10, synthetic) and
any folder of images.

Every loader returns an `ImageDataset` of uint8 (N, C, H, W) images; see `download` for where files
are looked for and `folder` for how a folder's classes are found.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganimate.data import folder
from ganimate.data.registry import (
    DATASETS,
    FOLDER_PREFIX,
    DatasetSpec,
    dataset_names,
    get_dataset,
    register_dataset,
)
from ganimate.data.transforms import check_options, convert_channels, resize
from ganimate.errors import DataError

__all__ = ["BUILTINS", "DATASETS", "DatasetSpec", "ImageDataset", "dataset_info", "dataset_names", "get_dataset",
           "has_labelled_test", "has_reference_classifier", "is_image_dataset", "load_dataset", "register_dataset"]

SPLITS = ("train", "test")
BUILTINS = DATASETS  # the registry itself, so entries registered later show up here too


@dataclass
class ImageDataset:
    """Square uint8 images (N, C, H, W) with optional int64 labels (N,) indexing `classes`."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str] | None

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be uint8 (N, C, H, H), got {images.dtype} {tuple(images.shape)}")
        if (labels is None) != (self.classes is None):
            raise ValueError("labels and classes must both be given or both be None")
        if labels is not None and (labels.dtype != torch.int64 or labels.shape != images.shape[:1]):
            raise ValueError(f"labels need int64 ({len(images)},), got {labels.dtype} {list(labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[2]


def is_image_dataset(spec: str) -> bool:
    return spec in DATASETS or spec.startswith(FOLDER_PREFIX)


def has_labelled_test(spec: str) -> bool:
    """Whether `spec` has a labelled test split (metrics that score against held-out data need one)."""
    return spec in DATASETS and DATASETS[spec].labelled_test


def has_reference_classifier(spec: str) -> bool:
    """Whether a reference classifier is defined for `spec` (its weights may still be missing)."""
    return spec in DATASETS and DATASETS[spec].reference_classifier


def dataset_info(spec: str) -> dict:
    """Image size, channels, class count and training images of `spec` without loading it (all None for
    folders)."""
    if spec.startswith(FOLDER_PREFIX):
        return {"image_size": None, "channels": None, "num_classes": None, "train_images": None}
    return get_dataset(spec).info()


def load_dataset(
    spec: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    download: bool = True,
    labels: str = "auto",
    crop: str = "center",
    cache: bool = True,
    progress: bool | None = None,
    log: Callable[[str], object] = print,
) -> ImageDataset:
    """Load dataset `spec` (a name of the registry or folder:PATH) as uint8 tensors.

    `image_size` / `channels` convert the images (default: the dataset's own; a folder's typical size, see
    `folder.native_size`). `crop` ("center" or "pad") is how a folder's non-square images become square.
    `strict` makes unreadable files in a folder an error instead of a logged skip; `download` allows
    fetching missing built-in files into the cache; `log` receives one-line progress messages.
    `labels`: "auto" keeps a built-in dataset's labels and finds a folder's classes by its rule (see
    `folder`), "folders" insists on a folder's class sub-folders (an error for built-in datasets), "none"
    drops the labels of any dataset. `cache`: reuse decoded folder / CIFAR-10 images from the user cache
    (`data.cache`), never written inside a data folder; `progress` (default: stderr is a terminal): a bar
    while a folder is decoded.
    """
    check_options(image_size, channels)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    if labels not in folder.LABEL_MODES:
        raise DataError(f"labels must be auto, folders or none, got {labels!r}")

    if spec.startswith(FOLDER_PREFIX):
        path = spec[len(FOLDER_PREFIX):]
        if not path:
            raise DataError(f"{spec!r} names no folder: write it as {FOLDER_PREFIX}PATH")
        if split != "train":
            raise DataError(f"folder datasets have no {split} split: load {spec!r} with split 'train'")
        images, y, classes = folder.load(
            path, image_size=image_size, channels=channels, strict=strict, labels=labels, crop=crop, cache=cache,
            progress=progress, data_folders=_data_folders(data_dir), log=log,
        )
        return _make(spec, images, y, classes)

    entry = get_dataset(spec)
    if labels == "folders":
        raise DataError(f"--labels folders is for folder:PATH datasets; {entry.name} has its own labels "
                        "(use auto, or none to drop them)")
    caching = {"cache": cache} if "cache" in inspect.signature(entry.load).parameters else {}  # loaders that cache
    images, y, classes = entry.load(entry, split, data_dir=data_dir, download=download, log=log, **caching)
    if labels == "none":
        y = classes = None
    if channels == 1:
        images = convert_channels(images, 1)
    images = convert_channels(resize(images, image_size), channels)
    return _make(entry.name, images, y, classes)


def _data_folders(data_dir: str | Path | None) -> list[str | Path]:
    """--data-dir and $GANIMATE_DATA: folders the decode cache must not lie in, besides the one read."""
    return [f for f in (data_dir, os.environ.get("GANIMATE_DATA")) if f]


def _make(
    name: str, images: np.ndarray, labels: np.ndarray | None, classes: list[str] | None
) -> ImageDataset:
    return ImageDataset(
        name=name,
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        classes=classes,
    )
