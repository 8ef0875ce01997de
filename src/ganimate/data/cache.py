"""Decode once: decoded images kept as uint8 arrays in the user cache, never inside a data folder.

An entry is two files in ``${GANIMATE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/ganimate}/decoded/``:
``<source>-<listing>.npy``, the images, memory-mapped copy-on-write when loaded (no second copy beside the
page cache, and writes to the array stay private), and ``<source>-<listing>.json`` beside it, written second:
the format version, the array's shape and crc32, and what the loader needs besides pixels (skipped files,
labels). ``<source>`` hashes what was read and how (resolved path, image size, channels, crop, ...),
``<listing>`` each file's relative path, size and mtime_ns, so a touched, added or removed file misses and is
decoded again; writing a new listing removes the files of the older ones of the same source. Writes are atomic
(temp + rename); an entry whose JSON, shape or checksum does not match is ignored and rebuilt. A note
(`save_note`) is a JSON file alone, `<source>-<listing>.note.json`: what was read from the files' headers, not
their pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ganimate.data.download import cache_root
from ganimate.images import atomic_write, inside

FORMAT = 1
_SAID: set[tuple[str, str]] = set()  # (cache folder, data folder) pairs already reported as unusable


def decoded_dir() -> Path:
    return cache_root() / "decoded"


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def usable_dir(data_folders: Iterable[str | Path], log: Callable[[str], object]) -> Path | None:
    """The cache folder, or None when it lies inside one of `data_folders` (said once per process and pair)."""
    where = decoded_dir().expanduser().resolve()
    for folder in data_folders:
        folder = Path(folder).expanduser().resolve()
        if inside(where, folder):
            if (str(where), str(folder)) not in _SAID:
                _SAID.add((str(where), str(folder)))
                log(f"not caching decoded images: the cache folder {where} lies inside the data folder {folder} "
                    "(set GANIMATE_CACHE to a folder outside it)")
            return None
    return where


def listing_key(files: Iterable[tuple[str, int, int]]) -> str:
    """The part of an entry's name that says which files were read: a hash of each one's (path, size, mtime_ns)."""
    return _digest(list(files))


def _paths(where: Path, source: dict, listing: str) -> tuple[Path, Path, str]:
    stem = _digest({"format": FORMAT, **source})
    return where / f"{stem}-{listing}.npy", where / f"{stem}-{listing}.json", stem


def load(where: Path | None, source: dict, listing: str) -> tuple[np.ndarray, dict] | None:
    """(images, the saved `info`) of the entry for `source` and `listing` (`listing_key` of the files read), or None
    when there is no intact one."""
    if where is None:
        return None
    npy, meta_path, _ = _paths(where, source, listing)
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(npy, mmap_mode="c", allow_pickle=False)
        if (meta.get("format") != FORMAT or meta.get("shape") != list(images.shape) or images.dtype != np.uint8
                or meta.get("crc32") != zlib.crc32(images)):
            return None
        info = meta["info"]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):  # missing, truncated or corrupt: decode again
        return None
    return images, info


def save(where: Path | None, source: dict, listing: str, images: np.ndarray, info: dict) -> None:
    """Store `images` (uint8) and the JSON-serialisable `info` for `source` and `listing`; a cache that cannot be
    written is no error (the next run decodes again)."""
    if where is None:
        return
    npy, meta_path, stem = _paths(where, source, listing)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    meta = {"format": FORMAT, "source": source, "shape": list(images.shape), "crc32": zlib.crc32(images),
            "info": info}
    try:
        where.mkdir(parents=True, exist_ok=True)

        def write_npy(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, images, allow_pickle=False)

        atomic_write(npy, write_npy)
        atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))
        _drop_older(where, stem, (npy, meta_path))
    except OSError:
        pass


def _drop_older(where: Path, stem: str, keep: tuple[Path, ...]) -> None:
    """Remove the files of older listings of the source `stem`."""
    for old in where.glob(f"{stem}-*"):
        if old not in keep and not old.name.startswith("."):
            old.unlink(missing_ok=True)


def _note_path(where: Path, source: dict, listing: str) -> Path:
    return _paths(where, source, listing)[0].with_suffix(".note.json")


def load_note(where: Path | None, source: dict, listing: str) -> dict | None:
    """A small JSON note saved by `save_note` for `source` and `listing` (what was learnt from the files without
    decoding them, e.g. their typical size), or None."""
    if where is None:
        return None
    path = _note_path(where, source, listing)
    try:
        note = json.loads(path.read_text())
        return note["note"] if note.get("format") == FORMAT and isinstance(note.get("note"), dict) else None
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def save_note(where: Path | None, source: dict, listing: str, note: dict) -> None:
    """Keep `note` (JSON-serialisable) for `source` and `listing`; the notes of older listings go."""
    if where is None:
        return
    npy, _, stem = _paths(where, source, listing)
    path = npy.with_suffix(".note.json")
    try:
        where.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps({"format": FORMAT, "source": source, "note": note})))
        _drop_older(where, stem, (path,))
    except OSError:
        pass


def file_stats(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(resolved path, size, mtime_ns) of each path: the `files` of a source that is a few known files."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return out
