"""Decoding of gzipped IDX files, the format of MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ganimate.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def _decompress(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"{path} is not a readable gzip file ({reason}): replace it with an intact copy of the original"
        ) from None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Decode one gzipped IDX file of unsigned bytes whose header must start with `magic`."""
    path = Path(path)
    data = _decompress(path)
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found is not None and found != magic:
        raise DataError(
            f"{path} has IDX magic number {found}, expected {magic}: "
            "it is not the right IDX file (images and labels swapped, or another format)"
        )
    if len(data) < header_len:
        raise DataError(f"{path} is too short for an IDX header: replace it with the original file")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = math.prod(dims)
    if len(data) - header_len != expected:
        raise DataError(
            f"{path} holds {len(data) - header_len} data bytes but its header {tuple(dims)} "
            f"promises {expected}: the file is truncated or corrupt, replace it"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def read_idx_pair(
    images_gz: str | Path,
    labels_gz: str | Path,
    expected_count: int | None = None,
    *,
    image_shape: tuple[int, int] = (28, 28),
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an images/labels IDX pair: uint8 (N, H, W) and int64 (N,)."""
    images = read_idx(images_gz, IMAGES_MAGIC)
    labels = read_idx(labels_gz, LABELS_MAGIC)
    if images.shape[1:] != image_shape:
        raise DataError(
            f"{images_gz} holds {images.shape[1]}x{images.shape[2]} images, expected "
            f"{image_shape[0]}x{image_shape[1]}: it belongs to another dataset"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_gz} holds {len(images)} images but {labels_gz} holds {len(labels)} labels: "
            "the two files do not belong together"
        )
    if expected_count is not None and len(images) != expected_count:
        raise DataError(
            f"{images_gz} holds {len(images)} images, expected {expected_count}: "
            "the file is incomplete or from another dataset"
        )
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(
            f"{labels_gz} has label {int(labels.max())}, outside 0..{num_classes - 1}: "
            "the file is corrupt or from another dataset"
        )
    return images, labels.astype(np.int64)
