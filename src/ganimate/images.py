"""Image tensors <-> uint8 arrays, sample grids and atomic PNG writes."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganimate.errors import GanimateError


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
def atomic_paths(paths: Sequence[str | Path], need: int | None = None) -> Iterator[list[Path]]:
    """Temporary files beside each of `paths`, renamed into place together when the block succeeds.

    Readers never see a half-written file under a final name; on failure every temporary file is
    removed and the final paths are untouched. `need`, the bytes the files will take where known, goes into
    the message when the disk fills up.
    """
    temps: list[Path] = []
    try:
        for path in map(Path, paths):
            if path.is_dir():
                raise GanimateError(f"cannot write {path}: it is a folder; give a file name")
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp.", suffix=path.suffix)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        umask = os.umask(0)
        os.umask(umask)
        for tmp, path in zip(temps, paths, strict=True):
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
            os.replace(tmp, path)
    except BaseException as e:
        written = sum(t.stat().st_size for t in temps if t.is_file())
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and temps and _disk_full(e, temps[0].parent):
            size = f"it needs about {need / 2**20:,.1f} MiB" if need else f"{written / 2**20:,.1f} MiB written"
            raise GanimateError(f"no space left on the disk while writing {paths[0]} ({size}, "
                                f"{shutil.disk_usage(temps[0].parent).free / 2**20:,.1f} MiB free): nothing was "
                                "replaced; free some space or choose another --out") from None
        raise


def _disk_full(e: Exception, folder: Path) -> bool:
    """Whether `e` comes from a full disk: ENOSPC, or a writer (torch's zip writer, ffmpeg) that failed in its own
    words while the disk holding `folder` has no room left."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, GanimateError | KeyboardInterrupt):
        return False
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def atomic_write(path: str | Path, write, need: int | None = None) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place (`need`: see
    `atomic_paths`)."""
    with atomic_paths([path], need) as (tmp,):
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


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever decoding `path` raises into a one-line GanimateError; Pillow's decompression-bomb warning
    (a small file that would decode to gigabytes) is an error too."""
    if not path.is_file():
        raise GanimateError(f"image {path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise GanimateError(f"{path} is too large to decode safely (over {limit / 1e6:,.0f} megapixels, Pillow's "
                            "decompression-bomb limit): shrink it first") from None
    except MemoryError:
        raise GanimateError(f"{path} does not fit in memory when decoded: shrink it first") from None
    except GanimateError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow fails in open-ended ways on damaged files
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise GanimateError(f"cannot read image {path}: {reason}") from None


def open_image(path: str | Path) -> Image.Image:
    """A user's image file, decoded (mode as stored); one-line GanimateErrors for anything unreadable and for
    images over Pillow's decompression-bomb limit, refused before decoding."""
    path = Path(path)
    with _reading(path), Image.open(path) as img:
        img.load()
        return img.copy()


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, with `open_image`'s one-line errors."""
    path = Path(path)
    with _reading(path), Image.open(path) as img:
        return img.size


def inside(path: Path, folder: Path) -> bool:
    """Whether resolved `path` is `folder` or lies below it."""
    return path == folder or folder in path.parents


def check_output_folder(folder: str | Path, data_folders=(), *, create: bool = True, what: str = "") -> Path:
    """Check that a command may write into `folder` before it writes anything: it lies in no data folder, no file
    stands in its way, it exists (or, with `create`, can be made) and is writable. `what` names the file to be
    written there in messages (default: the folder). Returns the folder."""
    folder = Path(folder).expanduser()
    what = what or str(folder)
    for data in data_folders:
        data = Path(data).expanduser().resolve()
        if inside(folder.resolve(), data):
            raise GanimateError(f"refusing to write {what} inside the data folder {data}: choose another path")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor) or str(p) == ".")
    if existing.exists() and not existing.is_dir():
        raise GanimateError(f"cannot write {what}: {existing} is a file, not a folder")
    if existing != folder and not create:
        raise GanimateError(f"cannot write {what}: folder {folder} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GanimateError(f"cannot write {what}: folder {existing} is not writable")
    return folder


def check_output_file(path: str | Path, data_folders=(), *, create_parent: bool = False) -> Path:
    """`check_output_folder` for the folder of file `path`, which must not itself be a folder. Returns the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise GanimateError(f"cannot write {path}: it is a folder; give a file name")
    check_output_folder(path.parent, data_folders, create=create_parent, what=str(path))
    return path
