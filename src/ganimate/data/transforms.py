"""Size and channel conversion of whole uint8 (N, C, H, W) image arrays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganimate.errors import DataError

_CHUNK = 4096


def check_options(image_size: int | None, channels: int | None) -> None:
    """Reject image_size / channels values that no loader can honour."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")


def to_grey(rgb: np.ndarray, axis: int) -> np.ndarray:
    """ITU-R 601-2 luma of uint8 RGB along `axis`, rounded exactly as Pillow's convert("L")."""
    r, g, b = (np.take(rgb, i, axis=axis).astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Repeat grey to RGB or reduce RGB to grey; `None` keeps the images as they are."""
    have = images.shape[1]
    if channels is None or channels == have:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    return to_grey(images, axis=1)[:, None]


def resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """Resize square images to size x size with antialiased bilinear filtering; `None` keeps them."""
    if size is None or size == images.shape[-1]:
        return images
    out = np.empty((*images.shape[:2], size, size), dtype=np.uint8)
    for start in range(0, len(images), _CHUNK):
        x = torch.from_numpy(images[start:start + _CHUNK]).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out
