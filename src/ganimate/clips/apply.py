"""Turn a user's images into clips with a trained clip run: `animate` (K different clips from one still,
as a grid video) and `inbetween` (the frames between a first and a last frame).

Inputs are grey images like the training frames (light digits on black). A square image of another size
is resized to the run's frame size with a warning (`--no-resize` refuses instead); a non-square one is
refused, since stretching it would change the digits' shapes. Wrong channel counts, unreadable files,
key frames of different sizes and a run of the other task end in one-line errors before anything is
written; videos are written atomically (ganimate.video).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ganimate.clips.inference import generate, load_clip_generator
from ganimate.config import option, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import make_grid, open_image
from ganimate.memory import check_fits
from ganimate.runtime import resolve_device
from ganimate.video import FORMATS, default_scale, is_positive, output_paths, upscale, write_videos


def warn(message: str) -> None:
    print(f"ganimate: warning: {message}", file=sys.stderr)


def read_image(path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """A grey image as uint8 (H, W) and its original (width, height); one-line errors for anything else."""
    path = Path(path)
    im = open_image(path)
    bands = im.getbands()
    if im.mode in ("1", "L", "I", "I;16", "F"):
        im = im.convert("L") if im.mode in ("1", "L") else im
        array = np.asarray(im, dtype=np.float64)
        if im.mode != "L":  # 16-bit or float grey: scale its range to 0..255
            array = array * 255.0 / max(float(array.max()), 1.0)
        return np.clip(np.rint(array), 0, 255).astype(np.uint8), im.size
    if im.mode in ("P", "RGB") and "A" not in bands:
        rgb = np.asarray(im.convert("RGB"))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0].copy(), im.size
        raise GanimateError(f"{path} is a colour image (3 channels); the run makes grey (1-channel) "
                            f"frames: convert it to greyscale first")
    raise GanimateError(f"{path} has {len(bands)} channels ({im.mode}); the run makes grey (1-channel) "
                        f"frames: save it as a greyscale image without alpha")


def fit_size(image: np.ndarray, path: str | Path, size: int, resize: bool) -> np.ndarray:
    """The image at size x size: resized with a warning if square, else refused."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image
    if h != w:
        raise GanimateError(f"{path} is {w}x{h} but the run makes square {size}x{size} frames: "
                            f"crop it to a square first (stretching would distort the digits)")
    if not resize:
        raise GanimateError(f"{path} is {w}x{h} but the run makes {size}x{size} frames (resize allowed without "
                            f"--no-resize)")
    warn(f"{path} is {w}x{h}; resized to the run's {size}x{size} frames")
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


def as_frame(image: np.ndarray, path: str | Path, size: int, resize: bool) -> np.ndarray:
    """A user's image as one uint8 frame (1, size, size), warning when it looks like dark ink on white."""
    image = fit_size(image, path, size, resize)
    if image.mean() > 127:
        warn(f"{path} is mostly light; the run was trained on light digits on black (invert it if the clip "
             f"looks wrong)")
    return image[None]


def _check_task(run: str, task: str, wanted: str, command: str, other: str) -> None:
    if task != wanted:
        article = "an" if wanted[0] in "aeiou" else "a"
        use = "`ganimate clip evaluate`" if task == "forecast" else f"`ganimate {other}`"
        raise GanimateError(f"{run} is a {task} run; `ganimate {command}` needs {article} {wanted} run "
                            f"(use {use} with this one)")


def _check_video_options(fps: float, fmt: str, scale: int | None) -> None:
    if not is_positive(fps):
        raise GanimateError(f"--fps must be a number > 0, got {fps}")
    if fmt is not None and fmt not in FORMATS:
        raise GanimateError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if scale is not None and scale < 1:
        raise GanimateError(f"--scale must be a whole number >= 1, got {scale}")


def _write(frames: list[np.ndarray], out: str | None, fmt: str | None, default: Path, fps: float,
           scale: int | None, run: str):
    paths = output_paths(out, fmt, default, "mp4", run_data_folders(run))
    if out is None:
        default.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    s = scale or default_scale(h, w, 256)
    write_videos((upscale(f, s) for f in frames), paths, fps)
    return paths


@dataclass
class AnimateConfig:
    """Options of `ganimate animate RUN --image still.png`: K clips from one still, as a grid video."""

    run: str = option("predict run folder")
    image: str = option("the still: a grey image, light digit(s) on black", default="")
    out: str | None = option("output .mp4/.gif or base name (default RUN/videos/animate-<image name>)", default=None)
    samples: int = option("different clips (noise samples) shown as a grid", default=4)
    seed: int = option("seed of the noise; the same seed gives the same clips", default=0)
    fps: float = option("frames per second", default=4)
    format: str | None = option("mp4 | gif | both (default: mp4, or the --out extension)", default=None)
    scale: int | None = option("integer upscaling of the frames (default: about 256 px)", default=None)
    resize: bool = option("resize a square still of another size (with a warning) instead of refusing", default=True)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    device: str = option("auto | cpu | cuda | mps", default="auto")

    def __post_init__(self):
        if not self.image:
            raise GanimateError("give the still with --image PATH")
        if self.samples <= 0:
            raise GanimateError(f"--samples must be positive, got {self.samples}")
        _check_video_options(self.fps, self.format, self.scale)


def animate(cfg: AnimateConfig) -> list[Path]:
    """Write a grid video of cfg.samples clips predicted from one still; returns the paths written."""
    device = resolve_device(cfg.device)
    G, run_cfg, _ = load_clip_generator(cfg.run, cfg.checkpoint, device=device)
    _check_task(cfg.run, run_cfg.task, "predict", "animate", "inbetween")
    still = as_frame(read_image(cfg.image)[0], cfg.image, run_cfg.size, cfg.resize)
    check_fits(3 * cfg.samples * run_cfg.frames * run_cfg.size**2, f"{cfg.samples:,} clips of {run_cfg.frames} "
               f"{run_cfg.size}x{run_cfg.size} frames", "use a smaller --samples")
    clip = np.zeros((1, run_cfg.frames, 1, run_cfg.size, run_cfg.size), np.uint8)
    clip[0, 0] = still
    clips = generate("predict", G, clip, samples=cfg.samples, seed=cfg.seed, device=device)[:, 0]  # (K, T, 1, H, W)
    nrow = math.ceil(math.sqrt(cfg.samples))
    frames = [make_grid(clips[:, t].transpose(0, 2, 3, 1), nrow, pad_value=128) for t in range(run_cfg.frames)]
    return _write(frames, cfg.out, cfg.format, Path(cfg.run) / "videos" / f"animate-{Path(cfg.image).stem}",
                  cfg.fps, cfg.scale, cfg.run)


@dataclass
class InbetweenConfig:
    """Options of `ganimate inbetween RUN first.png last.png`: the frames between two key frames."""

    run: str = option("inbetween run folder")
    first: str = option("first frame: a grey image, light digit(s) on black", default="")
    last: str = option("last frame, the same size as the first", default="")
    out: str | None = option("output .mp4/.gif or base name (default RUN/videos/inbetween)", default=None)
    fps: float = option("frames per second", default=4)
    format: str | None = option("mp4 | gif | both (default: mp4, or the --out extension)", default=None)
    scale: int | None = option("integer upscaling of the frames (default: about 256 px)", default=None)
    resize: bool = option("resize square frames of another size (with a warning) instead of refusing", default=True)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    views: int | None = option("average G over this many symmetric views of the key frames (1, 2, 4, 8, 16; "
                               "default: the run's --views)", default=None)
    device: str = option("auto | cpu | cuda | mps", default="auto")

    def __post_init__(self):
        if not (self.first and self.last):
            raise GanimateError("give the first and the last frame: ganimate inbetween RUN FIRST LAST")
        _check_video_options(self.fps, self.format, self.scale)


def inbetween(cfg: InbetweenConfig) -> list[Path]:
    """Write the clip first, generated middle frames, last; returns the paths written."""
    device = resolve_device(cfg.device)
    G, run_cfg, _ = load_clip_generator(cfg.run, cfg.checkpoint, device=device, views=cfg.views)
    _check_task(cfg.run, run_cfg.task, "inbetween", "inbetween", "animate")
    (first, size_a), (last, size_b) = read_image(cfg.first), read_image(cfg.last)
    if size_a != size_b:
        raise GanimateError(f"{cfg.first} is {size_a[0]}x{size_a[1]} but {cfg.last} is {size_b[0]}x{size_b[1]}: "
                            f"the first and last frame must be the same size")
    clip = np.zeros((1, run_cfg.frames, 1, run_cfg.size, run_cfg.size), np.uint8)
    clip[0, 0] = as_frame(first, cfg.first, run_cfg.size, cfg.resize)
    clip[0, -1] = as_frame(last, cfg.last, run_cfg.size, cfg.resize)
    done = generate("inbetween", G, clip, device=device)[0, 0]  # (T, 1, H, W)
    frames = [done[t].transpose(1, 2, 0) for t in range(run_cfg.frames)]
    return _write(frames, cfg.out, cfg.format, Path(cfg.run) / "videos" / "inbetween", cfg.fps, cfg.scale, cfg.run)
