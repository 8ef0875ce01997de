"""Where dataset files are looked for, and how missing ones are downloaded into the user cache.

Lookup order for dataset NAME, first match wins: ``data_dir`` and ``data_dir/NAME``,
``$GANIMATE_DATA/NAME``, ``/usr/share/datasets/NAME`` (Debian's dataset packages), then the cache
``$GANIMATE_CACHE/NAME`` (default ``${XDG_CACHE_HOME:-~/.cache}/ganimate/NAME``). Only the cache is
ever written to, and only downloaded files are checked against their md5.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ganimate.errors import DataError

T = TypeVar("T")

SYSTEM_DIRS: list[Path] = [Path("/usr/share/datasets")]
TIMEOUT_S = 60.0



@dataclass(frozen=True)
class DownloadSpec:
    """Where a dataset's files can be fetched from: mirror base URLs, tried in order, and each file's md5."""

    mirrors: tuple[str, ...]
    md5: dict[str, str]


class DownloadFailed(Exception):
    """No mirror delivered a file with the expected md5."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def cache_root() -> Path:
    """The folder that holds one sub-folder of downloaded files per dataset."""
    env = os.environ.get("GANIMATE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "ganimate"


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for dataset `name`, in lookup order (the cache last)."""
    dirs = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        dirs += [root, root / name]
    env = os.environ.get("GANIMATE_DATA")
    if env:
        dirs.append(Path(env).expanduser() / name)
    dirs += [Path(d) / name for d in SYSTEM_DIRS]
    dirs.append(cache_root() / name)
    return dirs


def download_file(
    source: DownloadSpec, filename: str, dest_dir: Path, log: Callable[[str], object] = print
) -> Path:
    """Fetch `filename` from the mirrors of `source` into `dest_dir`, md5-checked, atomically."""
    expected = source.md5[filename]
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadFailed(f"cannot create cache folder {dest_dir}: {_one_line(e)}") from None
    errors = []
    for mirror in source.mirrors:
        url = mirror.rstrip("/") + "/" + filename
        log(f"downloading {url} -> {dest_dir / filename}")
        try:
            fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
        except OSError as e:
            raise DownloadFailed(f"cannot write to cache folder {dest_dir}: {_one_line(e)}") from None
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    md5.update(chunk)
                    out.write(chunk)
            if md5.hexdigest() != expected:
                errors.append(f"{url}: md5 {md5.hexdigest()} != expected {expected}")
                continue
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest_dir / filename)
            return dest_dir / filename
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{url}: {_one_line(e)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DownloadFailed("; ".join(errors) or f"no mirror known for {filename}")


def locate(
    name: str,
    probe: Callable[[Path], T | None],
    files: list[str],
    what: str,
    *,
    source: DownloadSpec | None,
    data_dir: str | Path | None = None,
    download: bool = True,
    log: Callable[[str], object] = print,
) -> T:
    """Return `probe(folder)` for the first searched folder where it is not None.

    When no folder qualifies and `download` is set, the missing `files` are downloaded from `source`
    into the cache, which is then probed again. `what` describes the files for the error message.
    """
    dirs = search_dirs(name, data_dir)
    for folder in dirs:
        if folder.is_dir():
            found = probe(folder)
            if found is not None:
                return found
    cache = cache_root() / name
    if source is None:
        reason = f"{name} cannot be downloaded"
    elif not download or os.environ.get("GANIMATE_OFFLINE", "") not in ("", "0"):
        reason = "downloading is disabled (GANIMATE_OFFLINE)" if download else "downloading is disabled"
    else:
        try:
            for filename in files:
                if not (cache / filename).is_file():
                    download_file(source, filename, cache, log)
            found = probe(cache)
            if found is not None:
                return found
            reason = f"downloaded files in {cache} are incomplete"
        except DownloadFailed as e:
            reason = f"download failed: {e}"
    places = []
    if data_dir is not None:
        places.append(f"{Path(data_dir).expanduser()}/")
    env = os.environ.get("GANIMATE_DATA")
    places.append(f"{Path(env).expanduser() / name}/" if env else f"$GANIMATE_DATA/{name}/")
    places.append(f"{cache}/")
    raise DataError(
        f"{name} not found: put {what} in {', '.join(places[:-1])} or {places[-1]} "
        f"(looked in {', '.join(str(d) for d in dirs)}; {reason})"
    )
