"""Any folder of image files, searched recursively.

Labelling rule (torchvision's ImageFolder convention), `labels="auto"`: the class of an image is the first
sub-folder under the root, however deep below it the image lies; labels index the sorted class names. An
image lying directly in the root makes the whole folder unlabelled, and the log says why; the log lists each
class with its image count. `labels="folders"` insists on classes (any image file in the root, readable or
not, is an error before anything is decoded) and `labels="none"` ignores them. Hidden files and folders
(names starting with ".") are ignored, as are files without an image extension and unreadable ones.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ganimate.data.transforms import to_grey
from ganimate.errors import DataError

EXTENSIONS = frozenset(
    ".png .jpg .jpeg .jfif .bmp .gif .webp .tif .tiff .ppm .pgm .pbm .pnm .tga .ico".split()
)
DEFAULT_SIZE = 64
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
LABEL_MODES = ("auto", "folders", "none")
RARE_CLASS = 0.01  # a class under this fraction of the median class size gets a warning


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, sorted, hidden names skipped; only regular files (a FIFO or device named
    x.png would block the reader forever)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath, f) for f in sorted(filenames)
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in EXTENSIONS
            and os.path.isfile(os.path.join(dirpath, f))
        ]
    return found


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float grey images to "L" instead of clipping them."""
    a = np.asarray(img)
    if img.mode == "F":
        a = a * 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else a
    elif a.size and int(a.max()) > 255:
        a = a / 257.0
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "L")


def _flatten(img: Image.Image, grey: bool) -> Image.Image:
    """`img` as "L" or "RGB", transparency composited on white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _to_8bit(img)
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("L" if grey else "RGB")


def load_image(path: Path, size: int, channels: int | None) -> tuple[np.ndarray, bool]:
    """Decode, resize the shorter side to `size` and centre-crop: (H, W) grey or (H, W, 3) RGB, is_grey."""
    with Image.open(path) as img:
        grey = img.mode in GREY_MODES if channels is None else channels == 1
        img.draft("L" if grey else "RGB", (size, size))
        img = _flatten(ImageOps.exif_transpose(img), grey)
    w, h = img.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    img = img.resize((size, size), Image.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8), grey


def _try_load(path: Path, size: int, channels: int | None) -> tuple[np.ndarray, bool] | str:
    """`load_image`'s result, or why the file could not be decoded (Pillow fails in open-ended ways)."""
    try:
        return load_image(path, size, channels)
    except Exception as e:
        return " ".join(str(e).split()) or type(e).__name__


def _class_of(path: Path, root: Path) -> str | None:
    """The top-level sub-folder of `root` that holds `path`; None for a file in the root itself."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def _lie(n: int) -> str:
    return "1 image lies" if n == 1 else f"{n} images lie"


def class_report(counts: dict[str, int]) -> list[str]:
    """Log lines for class sizes: each class with its image count, then a warning on classes under
    `RARE_CLASS` of the median size."""
    n = len(counts)
    lines = [f"labelled by top-level sub-folder, {n} class{'es' * (n != 1)}: "
             + ", ".join(f"{c} ({k})" for c, k in counts.items())]
    median = float(np.median(list(counts.values())))
    rare = [f"{c} ({k})" for c, k in counts.items() if k < RARE_CLASS * median]
    if rare:
        lines.append(f"warning: {len(rare)} class{'es' * (len(rare) != 1)} under {RARE_CLASS:.0%} of the median "
                     f"class size ({median:g} images) will barely train: {', '.join(rare)}")
    return lines


def load(
    path: str | Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    labels: str = "auto",
    crop: str = "center",
    cache: bool = True,
    log: Callable[[str], object] = print,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Images uint8 (N, C, S, S), labels int64 (N,) or None, and class names or None.

    `labels` is "auto", "folders" or "none" (see the module docstring); how the folder was labelled,
    and each class's image count, go to `log`.
    """
    if labels not in LABEL_MODES:
        raise DataError(f"labels must be auto, folders or none, got {labels!r}")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist: give the path of a folder of image files")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: give the path of a folder of image files")
    files = find_images(root)
    if not files:
        raise DataError(
            f"no image files ({', '.join(sorted(EXTENSIONS))}) found in {root}: put images in it, "
            "or in one sub-folder per class"
        )
    in_root = [f.name for f in files if _class_of(f, root) is None]  # readable or not: fail before decoding
    if labels == "folders" and in_root:
        shown = ", ".join(in_root[:3]) + (f" and {len(in_root) - 3} more" if len(in_root) > 3 else "")
        raise DataError(f"--labels folders needs every image in a class sub-folder, but {_lie(len(in_root))} "
                        f"in the root folder {root}: {shown}")
    size = DEFAULT_SIZE if image_size is None else image_size
    workers = min(8, os.cpu_count() or 1, len(files))
    with warnings.catch_warnings(), ThreadPoolExecutor(workers) as pool:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", module="PIL")
        results = list(pool.map(lambda f: _try_load(f, size, channels), files))

    bad = [(f, r) for f, r in zip(files, results, strict=True) if isinstance(r, str)]
    if bad:
        first, why = bad[0]
        summary = f"{len(bad)} unreadable image file(s) in {root} (first: {first.relative_to(root)}: {why})"
        if strict:
            raise DataError(f"{summary}: remove or repair them, or load without strict")
        log(f"skipped {summary}")
    good = [(f, r) for f, r in zip(files, results, strict=True) if not isinstance(r, str)]
    if not good:
        raise DataError(f"none of the {len(files)} image files in {root} could be read: {bad[0][1]}")

    all_grey = all(grey for _, (_, grey) in good)
    rgb = channels == 3 or (channels is None and not all_grey)
    arrays = []
    for _, (a, _) in good:
        if rgb and a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        elif not rgb and a.ndim == 3:
            a = to_grey(a, axis=2)
        arrays.append(a)
    images = np.stack(arrays)
    images = np.ascontiguousarray(images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2))

    class_names = [_class_of(f, root) for f, _ in good]
    in_root = [f.name for (f, _), c in zip(good, class_names, strict=True) if c is None]
    if labels == "none" or in_root:
        subs = {c for c in class_names if c is not None}
        if labels == "none":
            ignored = f"; its {len(subs)} sub-folder(s) are not used as classes" if subs else ""
            log(f"unlabelled (labels none): {len(good)} images{ignored}")
        else:
            ignored = "; sub-folders are classes only when no image lies in the root" if subs else ""
            log(f"unlabelled: {_lie(len(in_root))} in the root folder, e.g. {in_root[0]}{ignored}")
        return images, None, None
    classes = sorted(set(class_names))
    tally = Counter(class_names)
    for line in class_report({c: tally[c] for c in classes}):
        log(line)
    index = {c: i for i, c in enumerate(classes)}
    return images, np.array([index[c] for c in class_names], dtype=np.int64), classes
