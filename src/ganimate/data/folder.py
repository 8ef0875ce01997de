"""Any folder of image files, searched recursively.

Labelling rule (torchvision's ImageFolder convention), `labels="auto"`: the class of an image is the first
sub-folder under the root, however deep below it the image lies; labels index the sorted class names. An
image lying directly in the root makes the whole folder unlabelled, and the log says why; the log lists each
class with its image count. `labels="folders"` insists on classes (any image file in the root, readable or
not, is an error before anything is decoded) and `labels="none"` ignores them. Hidden files and folders
(names starting with ".") are ignored, as are files without an image extension and unreadable ones.

Size: by default the folder's own (`native_size`: the median side read from file headers, rounded to a size the
models take, at most 64). Non-square pictures are centre-cropped or padded whole (`load_image`). Decoded images
are cached as uint8 outside the folder (`ganimate.data.cache`), so a second run skips the decoding.
"""

from __future__ import annotations

import os
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from ganimate.data import cache as cachefiles
from ganimate.data.transforms import to_grey
from ganimate.errors import DataError

EXTENSIONS = frozenset(
    ".png .jpg .jpeg .jfif .bmp .gif .webp .tif .tiff .ppm .pgm .pbm .pnm .tga .ico".split()
)
DEFAULT_SIZE = 64  # when no file's size can be read (decoding then says why)
NATIVE_SIZES = (12, 16, 20, 24, 28, 32, 40, 48, 56, 64)  # what models.dcgan.upsampling_plan accepts, up to 64
SIZE_SAMPLE = 1000  # image headers read to find a folder's native size
CROPS = ("center", "pad")
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
LABEL_MODES = ("auto", "folders", "none")
RARE_CLASS = 0.01  # a class under this fraction of the median class size gets a warning


def scan(root: Path) -> list[tuple[str, int, int]]:
    """(relative POSIX path, size, mtime_ns) of the image files under `root`: sorted, each folder's files before
    its sub-folders', hidden names skipped, symlinked folders not entered; only regular files (a FIFO or device
    named x.png would block the reader forever). One stat per file and no Path objects, as it runs on every load."""
    found: list[tuple[str, int, int]] = []

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        subs = []
        for e in entries:
            name = e.name
            if name.startswith("."):
                continue
            try:
                if e.is_dir():
                    if not e.is_symlink():
                        subs.append((e.path, f"{prefix}{name}/"))
                    continue
                dot = name.rfind(".")
                if dot < 0 or name[dot:].lower() not in EXTENSIONS:
                    continue
                st = e.stat()
            except OSError:  # a dangling link or a file removed meanwhile
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((prefix + name, st.st_size, st.st_mtime_ns))
        for sub in subs:
            walk(*sub)

    walk(str(root), "")
    return found


def find_images(root: Path) -> list[Path]:
    """Image files under `root` in `scan` order."""
    return [root / rel for rel, _, _ in scan(root)]


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header alone (Pillow decodes nothing until asked), None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:
        return None


def native_size(root: Path, rels: list[str], crop: str, log: Callable[[str], object], *,
                where: Path | None = None, listing: str | None = None) -> int:
    """The folder's own image size: the median side that `crop` keeps (the shorter one for center, the longer for
    pad) over at most `SIZE_SAMPLE` evenly spaced files of `rels` (paths relative to `root`), rounded to the
    nearest of `NATIVE_SIZES` (ties up); logged in one line. With a cache folder `where` and the files'
    `listing` (`cache.listing_key`), the headers' verdict is kept as a note, so an unchanged folder is not read
    again."""
    source = {"kind": "native-size", "root": str(root.resolve()), "crop": crop, "sample": SIZE_SAMPLE}
    note = cachefiles.load_note(where, source, listing) if listing else None
    try:
        median, read = float(note["median"]), int(note["read"])
    except (TypeError, KeyError, ValueError):
        step = max(1, -(-len(rels) // SIZE_SAMPLE))
        sample = [root / rel for rel in rels[::step]]
        with warnings.catch_warnings(), ThreadPoolExecutor(min(8, os.cpu_count() or 1, len(sample))) as pool:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module="PIL")
            sizes = [s for s in pool.map(_header_size, sample) if s is not None]
        if not sizes:
            return DEFAULT_SIZE  # nothing readable: decoding will say so
        pick = min if crop == "center" else max
        median, read = float(np.median([pick(s) for s in sizes])), len(sizes)
        if listing:
            cachefiles.save_note(where, source, listing, {"median": median, "read": read})
    size = min(NATIVE_SIZES, key=lambda s: (abs(s - median), -s))
    of = f"the {read:,}" if read == len(rels) else f"{read:,} of the {len(rels):,}"
    how = ("" if size == median else f", capped at {size}" if median > size == NATIVE_SIZES[-1]
           else f", rounded to {size}, the nearest size the models take")
    side, images = "shorter" if crop == "center" else "longer", "images" if read != 1 else "image"
    log(f"image size {size}: the median {side} side of {of} {images} is {median:g} px (--crop {crop}){how}; "
        "--image-size overrides")
    return size


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


def _border_colour(img: Image.Image) -> int | tuple[int, ...]:
    """The per-channel median of the picture's outermost ring of pixels: what `pad` fills with."""
    a = np.asarray(img)
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])  # (2W + 2H,) or (2W + 2H, 3)
    colour = np.median(ring, axis=0).round().astype(int)
    return int(colour) if colour.ndim == 0 else tuple(colour.tolist())


def load_image(path: Path, size: int, channels: int | None, crop: str = "center") -> tuple[np.ndarray, bool]:
    """Decode and make square: (H, W) grey or (H, W, 3) RGB uint8, is_grey.

    center: the shorter side scaled to `size`, the longer one centre-cropped. pad: the whole picture scaled so
    its longer side is `size`, centred on a square of its own border's median colour (`_border_colour`).
    """
    with Image.open(path) as img:
        grey = img.mode in GREY_MODES if channels is None else channels == 1
        img.draft("L" if grey else "RGB", (size, size))
        img = _flatten(ImageOps.exif_transpose(img), grey)
    w, h = img.size
    if crop == "pad":
        scale = size / max(w, h)
        fit = (max(1, round(w * scale)), max(1, round(h * scale)))
        canvas = Image.new(img.mode, (size, size), _border_colour(img))
        canvas.paste(img.resize(fit, Image.BICUBIC, reducing_gap=3.0), ((size - fit[0]) // 2, (size - fit[1]) // 2))
        return np.asarray(canvas, dtype=np.uint8), grey
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    img = img.resize((size, size), Image.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8), grey


def _try_load(path: Path, size: int, channels: int | None, crop: str) -> tuple[np.ndarray, bool] | str:
    """`load_image`'s result, or why the file could not be decoded (Pillow fails in open-ended ways)."""
    try:
        return load_image(path, size, channels, crop)
    except Exception as e:
        return " ".join(str(e).split()) or type(e).__name__


def decode(files: list[Path], size: int, channels: int | None, crop: str,
           progress: bool) -> tuple[np.ndarray | None, list[tuple[int, str]]]:
    """Images uint8 (N, C, S, S) of the readable `files` (None if there are none) and (index, why) of the others.

    Grey when every readable file is grey (or `channels` is 1), else RGB.
    """
    workers = min(8, os.cpu_count() or 1, len(files))
    results = []
    with (warnings.catch_warnings(), ThreadPoolExecutor(workers) as pool,
          tqdm(total=len(files), desc="decoding images", unit="img", disable=not progress, leave=False,
               dynamic_ncols=True) as bar):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", module="PIL")
        for r in pool.map(lambda f: _try_load(f, size, channels, crop), files):
            results.append(r)
            bar.update(1)
    bad = [(i, r) for i, r in enumerate(results) if isinstance(r, str)]
    good = [r for r in results if not isinstance(r, str)]
    if not good:
        return None, bad
    all_grey = all(grey for _, grey in good)
    rgb = channels == 3 or (channels is None and not all_grey)
    arrays = []
    for a, _ in good:
        if rgb and a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        elif not rgb and a.ndim == 3:
            a = to_grey(a, axis=2)
        arrays.append(a)
    images = np.stack(arrays)
    return np.ascontiguousarray(images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)), bad


def _cached(where: Path | None, source: dict, listing: str,
            n: int) -> tuple[np.ndarray, list[tuple[int, str]]] | None:
    """`decode`'s result for `n` files from the cache, or None."""
    hit = cachefiles.load(where, source, listing)
    if hit is None:
        return None
    images, info = hit
    try:
        bad = [(int(i), str(why)) for i, why in info["bad"]]
    except (KeyError, TypeError, ValueError):
        return None
    if images.ndim != 4 or len(images) + len(bad) != n or not all(0 <= i < n for i, _ in bad):
        return None
    return images, bad


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
    progress: bool | None = None,
    data_folders: Iterable[str | Path] = (),
    log: Callable[[str], object] = print,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Images uint8 (N, C, S, S), labels int64 (N,) or None, and class names or None.

    `image_size` None: the folder's own (`native_size`). `crop` "center" or "pad" (see `load_image`). `labels` is
    "auto", "folders" or "none" (see the module docstring); how the folder was labelled, and each class's image
    count, go to `log`. `cache`: keep the decoded images in the user cache (`ganimate.data.cache`), unless that
    lies inside the folder or one of `data_folders`; `progress` (default: stderr is a terminal) shows a bar
    while decoding.
    """
    if labels not in LABEL_MODES:
        raise DataError(f"labels must be auto, folders or none, got {labels!r}")
    if crop not in CROPS:
        raise DataError(f"crop must be center or pad, got {crop!r}")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist: give the path of a folder of image files")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: give the path of a folder of image files")
    scanned = scan(root)
    if not scanned:
        raise DataError(
            f"no image files ({', '.join(sorted(EXTENSIONS))}) found in {root}: put images in it, "
            "or in one sub-folder per class"
        )
    rels = [rel for rel, _, _ in scanned]
    class_of = [rel.split("/", 1)[0] if "/" in rel else None for rel in rels]
    in_root = [rel for rel, c in zip(rels, class_of, strict=True) if c is None]  # readable or not: before decoding
    if labels == "folders" and in_root:
        shown = ", ".join(in_root[:3]) + (f" and {len(in_root) - 3} more" if len(in_root) > 3 else "")
        raise DataError(f"--labels folders needs every image in a class sub-folder, but {_lie(len(in_root))} "
                        f"in the root folder {root}: {shown}")
    where = cachefiles.usable_dir([root, *data_folders], log) if cache else None
    listing = cachefiles.listing_key(scanned)
    size = native_size(root, rels, crop, log, where=where, listing=listing) if image_size is None else image_size
    source = {"kind": "folder", "root": str(root.resolve()), "image_size": size, "channels": channels, "crop": crop,
              "labels": labels, "strict": strict}
    hit = _cached(where, source, listing, len(rels))
    if hit is None and channels is not None:  # decoded with channels left to the data, which made as many
        hit = _cached(where, {**source, "channels": None}, listing, len(rels))
        hit = hit if hit is not None and hit[0].shape[1] == channels else None
    if hit is not None:
        images, bad = hit
    else:
        images, bad = decode([root / rel for rel in rels], size, channels, crop,
                             sys.stderr.isatty() if progress is None else progress)

    if bad:
        i, why = bad[0]
        summary = f"{len(bad)} unreadable image file(s) in {root} (first: {rels[i]}: {why})"
        if strict:
            raise DataError(f"{summary}: remove or repair them, or load without strict")
        log(f"skipped {summary}")
    if images is None:
        raise DataError(f"none of the {len(rels)} image files in {root} could be read: {bad[0][1]}")
    if hit is None:
        cachefiles.save(where, source, listing, images, {"bad": bad})

    skipped = {i for i, _ in bad}
    good = [i for i in range(len(rels)) if i not in skipped]
    class_names = [class_of[i] for i in good]
    in_root = [rels[i] for i, c in zip(good, class_names, strict=True) if c is None]
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
