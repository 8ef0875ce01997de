"""Image tensors <-> uint8 arrays, sample grids and atomic PNG writes."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1], (N, C, H, W) -> uint8 array (N, H, W, C)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: np.ndarray, nrow: int, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images (N, H, W, C) into one (H', W', C) array, `nrow` images per row."""
    n, h, w, c = images.shape
    ncol = nrow
    nrows = math.ceil(n / ncol)
    out = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, dtype=np.uint8
    )
    for i in range(n):
        r, col = divmod(i, ncol)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        out[y0 : y0 + h, x0 : x0 + w] = images[i]
    return out


def to_pil(array: np.ndarray) -> Image.Image:
    """(H, W, 1) or (H, W, 3) uint8 -> PIL image (grey or RGB)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary files beside each of `paths`, renamed into place together when the block succeeds.

    Readers never see a half-written file under a final name; on failure every temporary file is
    removed and the final paths are untouched.
    """
    temps: list[Path] = []
    try:
        for path in map(Path, paths):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp.", suffix=path.suffix)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        umask = os.umask(0)
        os.umask(umask)
        for tmp, path in zip(temps, paths, strict=True):
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place."""
    with atomic_paths([path]) as (tmp,):
        write(tmp)
    return Path(path)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a (H, W, C) uint8 array as PNG atomically."""
    img = to_pil(array)
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write arrays as an uncompressed .npz atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)
