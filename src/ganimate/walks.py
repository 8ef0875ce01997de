"""Latent walks and class morphs: frame generators over a trained generator, and the video entry point.

A sample is identified by its seed: `latents_from_seed(seed, z_dim)` always gives the same z. Frames
are uint8 grids (H, W, C) built with `images.make_grid`, produced one at a time for `video.write_videos`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganimate.config import option, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import make_grid, to_uint8
from ganimate.video import FORMATS, default_scale, is_positive, is_whole, output_paths, upscale, write_videos


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between batches of vectors a, b (..., D) at t (scalar or (...,)).

    Falls back to linear interpolation where a and b are nearly parallel (or zero).
    """
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim:
        t = t.unsqueeze(-1)
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    parallel = so.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(so), so)
    spherical = (torch.sin((1 - t) * omega) / safe) * a + (torch.sin(t * omega) / safe) * b
    linear = (1 - t) * a + t * b
    return torch.where(parallel, linear, spherical)


def latents_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """Latent (z_dim,) of sample `seed`: standard normal from torch.Generator().manual_seed(seed)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(z_dim), generator=g)


def _device(G: torch.nn.Module) -> torch.device:
    try:
        return next(G.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _render(G, z: torch.Tensor, y: torch.Tensor | None, nrow: int) -> np.ndarray:
    with torch.no_grad():
        images = G(z) if y is None else G(z, y)
    return make_grid(to_uint8(images), nrow)


def _check_transition(frames_per_transition: int, nrow: int) -> None:
    if not is_whole(frames_per_transition, 1):
        raise GanimateError(f"frames per transition must be a whole number >= 1, got {frames_per_transition}")
    if not is_whole(nrow, 1):
        raise GanimateError(f"grid columns must be a whole number >= 1, got {nrow}")


def latent_walk_frames(
    G, keyframe_seeds: Sequence[Sequence[int]], frames_per_transition: int, nrow: int
) -> Iterator[np.ndarray]:
    """Grid frames of a looping latent walk: cell c moves through the latents of keyframe_seeds[c].

    Every cell has the same number K >= 2 of keyframes; each transition k -> k+1 (the last one back to
    the first) is a slerp at t = i / frames_per_transition, i < frames_per_transition, so the walk has
    K * frames_per_transition frames and frame k * frames_per_transition is exactly keyframe k. All cells
    are generated in one batch per frame. A conditional G draws cell c as class c % G.num_classes
    throughout the walk.
    """
    _check_transition(frames_per_transition, nrow)
    cells = len(keyframe_seeds)
    if cells == 0:
        raise GanimateError("a latent walk needs at least one grid cell")
    k = len(keyframe_seeds[0])
    if k < 2 or any(len(s) != k for s in keyframe_seeds):
        raise GanimateError(
            "a latent walk needs the same number (at least 2) of keyframe seeds for every cell"
        )
    device = _device(G)
    z = torch.stack([torch.stack([latents_from_seed(s, G.z_dim) for s in seeds]) for seeds in keyframe_seeds])
    z = z.to(device)
    y = torch.arange(cells, device=device) % G.num_classes if G.num_classes else None
    return _walk(G, z, y, int(frames_per_transition), nrow)


def _walk(G, z: torch.Tensor, y: torch.Tensor | None, fpt: int, nrow: int) -> Iterator[np.ndarray]:
    k = z.shape[1]
    for key in range(k):
        a, b = z[:, key], z[:, (key + 1) % k]
        for i in range(fpt):
            yield _render(G, a if i == 0 else slerp(a, b, i / fpt), y, nrow)


def class_morph_frames(
    G, classes: Sequence[int], seeds: Sequence[int], frames_per_transition: int, nrow: int
) -> Iterator[np.ndarray]:
    """Grid frames of a looping class morph: one cell per seed (fixed z), class weights moving linearly
    from classes[k] to classes[k+1] (the last back to the first).

    Frame k * frames_per_transition is conditioned on exactly one-hot(classes[k]).
    """
    num_classes = int(getattr(G, "num_classes", 0) or 0)
    if num_classes == 0:
        raise GanimateError(
            "this run is unconditional; class morphs need a conditional run (train with --conditional)"
        )
    _check_transition(frames_per_transition, nrow)
    if len(classes) < 2:
        raise GanimateError("a class morph needs at least 2 classes")
    bad = [c for c in classes if not 0 <= int(c) < num_classes]
    if bad:
        raise GanimateError(f"class {bad[0]} is out of range: this run has classes 0 to {num_classes - 1}")
    if not seeds:
        raise GanimateError("a class morph needs at least one seed")
    device = _device(G)
    z = torch.stack([latents_from_seed(s, G.z_dim) for s in seeds]).to(device)
    onehot = F.one_hot(torch.tensor([int(c) for c in classes]), num_classes).float().to(device)
    return _morph(G, z, onehot, int(frames_per_transition), nrow)


def _morph(G, z: torch.Tensor, onehot: torch.Tensor, fpt: int, nrow: int) -> Iterator[np.ndarray]:
    n, steps = z.shape[0], onehot.shape[0]
    for key in range(steps):
        a, b = onehot[key], onehot[(key + 1) % steps]
        for i in range(fpt):
            t = i / fpt
            w = a if i == 0 else (1 - t) * a + t * b
            yield _render(G, z, w.expand(n, -1).contiguous(), nrow)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise GanimateError(
            f"{what} must be comma-separated whole numbers like 1,2,3, got {text!r}"
        ) from None
    if not values:
        raise GanimateError(f"{what} is empty")
    if any(v < 0 for v in values):
        raise GanimateError(f"{what} must be >= 0, got {text!r}")
    return values


def parse_grid(text: str) -> tuple[int, int]:
    """Parse "3x4" or "3×4" into (rows, cols)."""
    m = re.fullmatch(r"\s*(\d+)\s*[x×X*]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise GanimateError(f"--grid must be ROWSxCOLS like 3x4, got {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass
class InterpolateConfig:
    """Options of `ganimate interpolate`: a latent walk, or a class morph when `morph_classes` is set.

    Walk seeds: without `seeds`, cell c of the R×C grid uses keyframe seeds seed + c*keyframes + k,
    k < keyframes. With `seeds`, the list is split into R*C equal consecutive groups, one per cell (so
    its length must be a multiple of R*C, with at least 2 seeds per cell). Morph seeds: one per cell,
    `seeds` (exactly R*C of them) or seed + c. `morph_classes` is "0,1,2" or "all". Default output is
    RUN/videos/walk or RUN/videos/morph with the extension(s) of `format`; `out` works as in
    `video.output_paths`.
    """

    run: str = option("run folder")
    out: str | None = option("output file (.mp4/.gif) or base name (default RUN/videos/walk or morph)", default=None)
    seeds: str | None = option("keyframe seeds, e.g. 1,2,3 (morphs: one seed per cell)", default=None)
    keyframes: int = option("keyframes per walk when --seeds is not given", default=4)
    seed: int = option("first seed when --seeds is not given", default=0)
    grid: str = option("walks (or morph cells) shown at once, ROWSxCOLS", default="1x1")
    frames_per_transition: int = option("frames from one keyframe (or class) to the next", default=24)
    morph_classes: str | None = option("class morph instead of a walk: 0,1,2 or all (conditional runs)", default=None)
    fps: float = option("frames per second", default=24)
    format: str | None = option("mp4 | gif | both (default: mp4, or the --out extension)", default=None)
    scale: int | None = option("integer nearest-neighbour upscaling (default: frame >= 512 px)", default=None)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)

    def __post_init__(self):
        rows, cols = parse_grid(self.grid)
        cells = rows * cols
        if not is_whole(self.frames_per_transition, 1):
            raise GanimateError(
                f"--frames-per-transition must be a whole number >= 1, got {self.frames_per_transition}"
            )
        if not is_positive(self.fps):
            raise GanimateError(f"--fps must be a number > 0, got {self.fps}")
        if self.format is not None and self.format not in FORMATS:
            raise GanimateError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.scale is not None and not is_whole(self.scale, 1):
            raise GanimateError(f"--scale must be a whole number >= 1, got {self.scale}")
        if not is_whole(self.seed, 0):
            raise GanimateError(f"--seed must be a whole number >= 0, got {self.seed}")
        seeds = _int_list(self.seeds, "--seeds") if self.seeds is not None else None
        if self.morph_classes is not None:
            if self.morph_classes.strip().lower() != "all":
                if len(_int_list(self.morph_classes, "--morph-classes")) < 2:
                    raise GanimateError("--morph-classes needs at least 2 classes, e.g. 0,1 or all")
            if seeds is not None and len(seeds) != cells:
                raise GanimateError(
                    f"a class morph on a {rows}x{cols} grid needs {cells} seeds (one per cell), "
                    f"got {len(seeds)}; change --grid or --seeds"
                )
        elif seeds is not None:
            if len(seeds) % cells or len(seeds) // cells < 2:
                raise GanimateError(
                    f"a latent walk on a {rows}x{cols} grid needs at least 2 seeds per cell, "
                    f"{cells} equal groups in all; got {len(seeds)} seeds"
                )
        elif not is_whole(self.keyframes, 2):
            raise GanimateError(f"--keyframes must be a whole number >= 2, got {self.keyframes}")

    @property
    def rows_cols(self) -> tuple[int, int]:
        return parse_grid(self.grid)

    def walk_seeds(self) -> list[list[int]]:
        """Keyframe seeds of each grid cell."""
        rows, cols = self.rows_cols
        cells = rows * cols
        if self.seeds is not None:
            seeds = _int_list(self.seeds, "--seeds")
            k = len(seeds) // cells
            return [seeds[c * k : (c + 1) * k] for c in range(cells)]
        k = int(self.keyframes)
        return [[self.seed + c * k + i for i in range(k)] for c in range(cells)]

    def morph_seeds(self) -> list[int]:
        """The fixed seed of each grid cell in a class morph."""
        rows, cols = self.rows_cols
        if self.seeds is not None:
            return _int_list(self.seeds, "--seeds")
        return [self.seed + c for c in range(rows * cols)]

    def classes(self, num_classes: int) -> list[int]:
        """The classes of the morph for a generator with `num_classes` classes."""
        assert self.morph_classes is not None
        if self.morph_classes.strip().lower() == "all":
            return list(range(num_classes))
        return _int_list(self.morph_classes, "--morph-classes")


def run_interpolate(cfg: InterpolateConfig) -> list[Path]:
    """Load the run's generator, render the walk or morph and write the video(s); returns their paths."""
    from ganimate.runs import load_generator

    G, _ = load_generator(cfg.run, checkpoint=cfg.checkpoint, device="cpu")
    G.eval()
    _, cols = cfg.rows_cols
    if cfg.morph_classes is not None:
        num_classes = int(getattr(G, "num_classes", 0) or 0)
        classes = cfg.classes(num_classes) if num_classes else []
        frames = class_morph_frames(G, classes, cfg.morph_seeds(), cfg.frames_per_transition, cols)
        name = "morph"
    else:
        frames = latent_walk_frames(G, cfg.walk_seeds(), cfg.frames_per_transition, cols)
        name = "walk"
    first = next(frames)
    scale = cfg.scale or default_scale(*first.shape[:2])
    stream = (upscale(f, scale) for f in itertools.chain([first], frames))
    default = Path(cfg.run) / "videos" / name
    paths = output_paths(cfg.out, cfg.format, default, "mp4", run_data_folders(cfg.run))
    if cfg.out is None:
        default.parent.mkdir(parents=True, exist_ok=True)
    write_videos(stream, paths, cfg.fps)
    return paths
