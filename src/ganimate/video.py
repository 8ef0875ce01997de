"""Streaming MP4/GIF writing, frame helpers and training time-lapses from saved sample grids.

Frames are uint8 arrays (H, W, 3), (H, W, 1) or (H, W). Writers consume them one at a time, so memory
stays flat however long the video is, and every output is written to a temporary file beside its final
name and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image, ImageDraw, ImageFont

from ganimate.config import option, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import atomic_paths, check_output_file, image_size, inside, open_image
from ganimate.memory import check_fits

VIDEO_EXTENSIONS = (".mp4", ".gif")
FORMATS = ("mp4", "gif", "both")
SOURCES = ("epochs", "steps", "all")
_GRID_NAME = re.compile(r"^(epoch|step)_(\d+)\.png$")
_GREY_PALETTE = bytes(v for v in range(256) for _ in range(3))


def is_whole(x, minimum: int) -> bool:
    """Whether x is a whole number of at least `minimum` (option checks of the video commands)."""
    try:
        return int(x) == x and x >= minimum
    except (TypeError, ValueError):
        return False


def is_positive(x) -> bool:
    """Whether x is a finite number above 0."""
    try:
        return math.isfinite(float(x)) and float(x) > 0
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- frames


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W[, C]) array by an integer factor."""
    if not is_whole(scale, 1):
        raise GanimateError(f"scale must be a whole number >= 1, got {scale}")
    scale = int(scale)
    if scale == 1:
        return frame
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def default_scale(h: int, w: int, target: int = 512) -> int:
    """Smallest integer scale with max(h, w) * scale >= target (at least 1)."""
    return max(1, math.ceil(target / max(h, w, 1)))


def caption_height(h: int) -> int:
    """Height of the caption bar added below a frame `h` pixels tall: ~8% of it, at least 16 px."""
    return max(16, round(0.08 * h))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return frame


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """Return a new RGB frame with `text` in white, centred on a black bar below the image."""
    frame = _as_rgb(np.asarray(frame))
    h, w = frame.shape[:2]
    bar = caption_height(h)
    canvas = Image.new("RGB", (w, h + bar), (0, 0, 0))
    canvas.paste(Image.fromarray(np.ascontiguousarray(frame)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    size = max(6, int(bar * 0.65))
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    if right - left > w - 4 and size > 6:
        font = _font(max(6, int(size * (w - 4) / (right - left))))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (w - (right - left)) / 2 - left
    y = h + (bar - (bottom - top)) / 2 - top
    draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


_add_caption = caption


# --------------------------------------------------------------------------- writers


class _GifWriter:
    """Animated GIF written frame by frame (Pillow's own GIF writer keeps every frame in memory).

    Grey frames use an exact 256-level grey palette; colour frames are octree-quantized with a
    local palette. Only the rectangle that changed since the previous frame is stored.
    """

    def __init__(self, path: Path, fps: float):
        self._fp = open(path, "wb")
        self._delay_ms = 10 * max(2, round(100 / fps))
        self._prev: np.ndarray | None = None

    def append(self, frame: np.ndarray) -> None:
        if self._prev is None:
            h, w = frame.shape[:2]
            self._fp.write(b"GIF89a" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + b"\x00\x00\x00")
            self._fp.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")
            x0, y0, part = 0, 0, frame
        else:
            changed = np.any(frame != self._prev, axis=2)
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size:
                y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            else:
                y0, y1, x0, x1 = 0, 1, 0, 1
            part = frame[y0:y1, x0:x1]
        self._prev = frame
        if np.array_equal(part[:, :, 0], part[:, :, 1]) and np.array_equal(part[:, :, 0], part[:, :, 2]):
            im = Image.fromarray(np.ascontiguousarray(part[:, :, 0]))
            im.putpalette(_GREY_PALETTE)
        else:
            im = Image.fromarray(np.ascontiguousarray(part)).quantize(256, method=Image.Quantize.FASTOCTREE)
        for chunk in GifImagePlugin.getdata(
            im, offset=(int(x0), int(y0)), duration=self._delay_ms, disposal=1, include_color_table=True
        ):
            self._fp.write(chunk)

    def close(self) -> None:
        try:
            if self._prev is not None:
                self._fp.write(b";")
        finally:
            self._fp.close()


class _Mp4Writer:
    """H.264 / yuv420p MP4 through imageio's ffmpeg writer, frames piped one at a time."""

    def __init__(self, path: Path, fps: float):
        import imageio.v2 as iio

        self._writer = iio.get_writer(
            path,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            quality=None,
            output_params=["-crf", "18", "-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )

    def append(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        self._writer.append_data(frame)

    def close(self) -> None:
        self._writer.close()


def _unknown_extension(path: Path) -> GanimateError:
    return GanimateError(f"cannot write video {path}: unknown extension {path.suffix!r} (use .mp4 or .gif)")


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise _unknown_extension(path)
    parent = path.parent
    if not parent.is_dir():
        raise GanimateError(f"cannot write video {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GanimateError(f"cannot write video {path}: folder {parent} is not writable")
    if path.is_dir():
        raise GanimateError(f"cannot write video {path}: it is a folder")


def _normalize(frame: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    channels = frame.shape[2] if frame.ndim == 3 else 1
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or channels not in (1, 3):
        raise GanimateError(
            f"frame {index} must be a uint8 array (H, W), (H, W, 1) or (H, W, 3), "
            f"got {frame.dtype} {tuple(frame.shape)}"
        )
    return np.ascontiguousarray(_as_rgb(frame))


def _same_size(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    for i, raw in enumerate(rest, 1):
        frame = _normalize(raw, i)
        if frame.shape != first.shape:
            raise GanimateError(
                f"frame {i} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
                f"{first.shape[1]}x{first.shape[0]}; all frames of a video must be the same size"
            )
        yield frame


def write_videos(
    frames: Iterable[np.ndarray], paths: Sequence[str | Path], fps: float, *, hold: int = 0
) -> int:
    """Write one stream of frames to several videos (format from each extension) in a single pass.

    Returns the number of frames in each video, held frames included. See `write_video`.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise GanimateError("no output video given")
    if not is_positive(fps):
        raise GanimateError(f"fps must be a number > 0, got {fps}")
    fps = float(fps)
    if not is_whole(hold, 0):
        raise GanimateError(f"hold must be a whole number of frames >= 0, got {hold}")
    for path in paths:
        _check_output(path)

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise GanimateError(f"no frames to write to {paths[0]}")
    first = _normalize(first, 0)

    with atomic_paths(paths) as temps, contextlib.ExitStack() as stack:  # writers close before the rename
        writers = []
        for tmp in temps:
            writer = _Mp4Writer(tmp, fps) if tmp.suffix.lower() == ".mp4" else _GifWriter(tmp, fps)
            stack.callback(writer.close)
            writers.append(writer)

        count, last = 0, first
        for frame in _same_size(first, it):
            for writer in writers:
                writer.append(frame)
            count += 1
            last = frame
        for _ in range(int(hold)):
            for writer in writers:
                writer.append(last)
            count += 1
    return count


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float, *, hold: int = 0) -> int:
    """Stream `frames` into an .mp4 (H.264, yuv420p, padded to even size) or a looping .gif.

    `hold` repeats the last frame that many extra times. GIF frame delays are whole hundredths of a
    second (at least 2, since browsers slow faster GIFs down), so GIF playback speed is approximate.
    Returns the number of frames written, held frames included.
    """
    return write_videos(frames, [path], fps, hold=hold)


def output_paths(out: str | Path | None, fmt: str | None, default: Path, default_fmt: str = "both",
                 data_folders: Sequence[Path] = ()) -> list[Path]:
    """Videos to write: `out` with an .mp4/.gif extension names one file; `out` without an extension (or None,
    meaning `default`, a path without extension) gets .mp4 and/or .gif per `fmt` (None: `default_fmt`). A
    `fmt` given beside an extension that says otherwise is an error, and so is a path inside `data_folders`.
    """
    if fmt is not None and fmt not in FORMATS:
        raise GanimateError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    base = Path(out) if out is not None else default
    if out is not None and base.suffix:
        ext = base.suffix.lower()
        if ext not in VIDEO_EXTENSIONS:
            raise _unknown_extension(base)
        if fmt is not None and f".{fmt}" != ext:
            raise GanimateError(f"--format {fmt} contradicts --out {base} (a {ext} file): drop --format, or name "
                                f"the output without an extension")
        paths = [base]
    else:
        fmt = fmt or default_fmt
        exts = [".mp4", ".gif"] if fmt == "both" else [f".{fmt}"]
        paths = [base.parent / (base.name + ext) for ext in exts]
    for path in paths:
        check_output_file(path, data_folders, create_parent=out is None)
    return paths


# --------------------------------------------------------------------------- grids -> time-lapse


def _natural_key(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


def _check_sizes(paths: Sequence[Path]) -> tuple[int, int]:
    sizes = None
    for path in paths:
        size = image_size(path)
        if sizes is None:
            sizes = (path, size)
        elif size != sizes[1]:
            raise GanimateError(
                f"{path} is {size[0]}x{size[1]} but {sizes[0].name} is {sizes[1][0]}x{sizes[1][1]}; "
                "all frames must be the same size"
            )
    assert sizes is not None
    return sizes[1]


def _caption(kind: str, number: int) -> str:
    return f"epoch {number:,}" if kind == "epoch" else f"step {number:,}"


def _from_index(samples: Path, index: Path, kinds: set[str]) -> list[tuple[Path, str]]:
    entries: dict[str, tuple[Path, str]] = {}
    last: tuple[str, int] | None = None  # (file, step) of the latest kept grid
    with open(index, encoding="utf-8", errors="replace") as f:  # damage shows as a line that is not JSON
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                name, kind = str(rec["file"]), rec["kind"]
                number = int(rec["epoch"] if kind == "epoch" else rec["step"])
            except (ValueError, KeyError, TypeError) as e:
                raise GanimateError(f"{index} line {lineno} is not a valid grid record: {e}") from e
            if kind not in kinds:
                continue
            path = samples / name
            if not inside(path.resolve(), samples.resolve()):
                raise GanimateError(f"{index} line {lineno} names {name!r}, outside {samples}")
            if not path.is_file():
                raise GanimateError(f"{index} line {lineno} lists {name}, which is missing from {samples}")
            entries.pop(name, None)
            step = rec.get("step")
            if last is not None and step is not None and last[1] == step:
                entries.pop(last[0], None)  # the epoch grid and a step grid of the same step: one frame
            entries[name] = (path, _caption(kind, number))
            last = (name, step)
    return list(entries.values())


def _from_names(samples: Path, kinds: set[str]) -> list[tuple[Path, str]]:
    found: dict[str, list[tuple[int, Path]]] = {"step": [], "epoch": []}
    for path in samples.iterdir():
        m = _GRID_NAME.match(path.name)
        if m and m.group(1) in kinds and path.is_file():
            found[m.group(1)].append((int(m.group(2)), path))
    lists = []
    for kind in ("step", "epoch"):
        items = sorted(found[kind])
        lists.append([(p.stat().st_mtime_ns, n, p, _caption(kind, n)) for n, p in items])
    merged = heapq.merge(*lists, key=lambda rec: rec[0])
    return [(p, cap) for _, _, p, cap in merged]


def grid_frames(run_dir: str | Path, source: str = "epochs") -> list[tuple[Path, str]]:
    """Sample grids of a training run in training order, with captions ("epoch 12", "step 3,500").

    `source` is "epochs", "steps" or "all" (a step grid and an epoch grid saved at the same step count
    once, as the epoch grid). The order comes from RUN/samples/index.jsonl (a grid listed
    twice, e.g. after a resume, keeps its last position). Without an index, epoch and step grids are
    each sorted by the number in their name, and for "all" the two sorted lists are merged by file
    modification time (ties put the step grid first), which is the training order unless the files
    were copied without preserving times.
    """
    if source not in SOURCES:
        raise GanimateError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    run = Path(run_dir)
    if not run.is_dir():
        raise GanimateError(f"run folder {run} does not exist")
    samples = run / "samples"
    kinds = {"epochs": {"epoch"}, "steps": {"step"}, "all": {"epoch", "step"}}[source]
    items: list[tuple[Path, str]] = []
    if samples.is_dir():
        index = samples / "index.jsonl"
        items = _from_index(samples, index, kinds) if index.is_file() else _from_names(samples, kinds)
    if not items:
        what = "" if source == "all" else f" {source.rstrip('s')}"
        raise GanimateError(
            f"{run} has no saved{what} grids in {samples}; train first "
            "(grids are saved there during training)"
        )
    _check_sizes([p for p, _ in items])
    return items


def folder_frames(folder: str | Path) -> list[tuple[Path, str]]:
    """PNG files of a folder in natural file-name order, captioned with their file stems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GanimateError(f"frames folder {folder} does not exist")
    paths = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
        key=lambda p: _natural_key(p.name),
    )
    if not paths:
        raise GanimateError(f"frames folder {folder} has no .png files")
    _check_sizes(paths)
    return [(p, p.stem) for p in paths]


def frames_from_files(
    items: Iterable[tuple[Path, str]], scale: int, caption: bool = True
) -> Iterator[np.ndarray]:
    """Load each PNG as RGB, upscale it by `scale` and (optionally) add its caption, one at a time."""
    for path, text in items:
        frame = upscale(np.asarray(open_image(path).convert("RGB")), scale)
        yield _add_caption(frame, text) if caption else frame


@dataclass
class VideoConfig:
    """Options of `ganimate video`: a time-lapse of a run's sample grids or of any folder of PNGs.

    `out` with an .mp4/.gif extension writes that one file whatever `format` says; without an
    extension it is the base name for the formats chosen.
    Defaults: RUN/videos/training.{mp4,gif}, or FRAMES/videos/timelapse.{mp4,gif}.
    """

    run: str | None = option("run folder whose samples/ grids become the video", default=None)
    frames: str | None = option("instead of a run: any folder of PNGs, in natural file-name order", default=None)
    out: str | None = option("output file (.mp4/.gif) or base name (default RUN/videos/training)", default=None)
    source: str = option("which grids: epochs | steps | all", default="all")
    format: str | None = option("mp4 | gif | both (default: both, or the --out extension)", default=None)
    fps: float = option("frames per second", default=8)
    hold: int = option("extra copies of the last frame", default=8)
    scale: int | None = option("integer nearest-neighbour upscaling (default: frame >= 512 px)", default=None)
    caption: bool = option('draw "epoch 12" / "step 3,500" under each frame', default=True)

    def __post_init__(self):
        if (self.run is None) == (self.frames is None):
            raise GanimateError("give exactly one of RUN (a training run folder) or --frames DIR (a folder of PNGs)")
        if not is_positive(self.fps):
            raise GanimateError(f"--fps must be a number > 0, got {self.fps}")
        if not is_whole(self.hold, 0):
            raise GanimateError(f"--hold must be a whole number of frames >= 0, got {self.hold}")
        if self.scale is not None and not is_whole(self.scale, 1):
            raise GanimateError(f"--scale must be a whole number >= 1, got {self.scale}")
        if self.source not in SOURCES:
            raise GanimateError(f"--source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.format is not None and self.format not in FORMATS:
            raise GanimateError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")


def make_timelapse(cfg: VideoConfig) -> list[Path]:
    """Render the grids named by `cfg` into video(s); returns the paths written."""
    if cfg.run is not None:
        items = grid_frames(cfg.run, cfg.source)
        default = Path(cfg.run) / "videos" / "training"
    else:
        items = folder_frames(cfg.frames)
        default = Path(cfg.frames) / "videos" / "timelapse"
    paths = output_paths(cfg.out, cfg.format, default, data_folders=run_data_folders(cfg.run) if cfg.run else ())
    w, h = image_size(items[0][0])
    scale = cfg.scale or default_scale(h, w)
    check_fits(6 * 3 * h * w * scale**2, f"a {w * scale}x{h * scale} video (--scale {scale})",
               "use a smaller --scale")
    if cfg.out is None:
        default.parent.mkdir(parents=True, exist_ok=True)
    write_videos(frames_from_files(items, scale, cfg.caption), paths, cfg.fps, hold=cfg.hold)
    return paths
