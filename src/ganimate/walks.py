"""Latent walks, class morphs and morphs between real images: frame generators over a trained generator, and
the video entry point.

A sample is identified by its seed: `latents_from_seed(seed, z_dim)` always gives the same z. Frames
are uint8 grids (H, W, C) built with `images.make_grid`, produced one at a time for `video.write_videos`.
A morph between real images walks between their projections (`ganimate.project`): slerp for z, a straight
line for the class embedding (class weights mixed linearly; G embeds them with a linear layer).
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
from ganimate.memory import check_fits
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


def image_morph_frames(
    G, z: torch.Tensor, y: torch.Tensor | None, frames_per_transition: int, loop: bool = False,
    real: np.ndarray | None = None, real_frames: int = 0,
) -> Iterator[np.ndarray]:
    """Frames of a morph through K >= 2 keyframe latents z (K, D) with classes y (K,) (None: unconditional).

    Transition k -> k+1 slerps z and moves the class weights in a straight line at t = i / frames_per_transition;
    frame k * frames_per_transition is exactly keyframe k. Without `loop` the last frame is keyframe K-1; with
    it a last transition returns to keyframe 0 (which is not repeated). With `real` (K, H, W, C) uint8 and
    `real_frames` > 0 the morph opens on real[0] cross-fading into keyframe 0 and closes by cross-fading into
    the real image of the keyframe it ends on (for a loop, up to the frame before real[0]).
    """
    _check_transition(frames_per_transition, 1)
    if len(z) < 2:
        raise GanimateError("a morph between images needs at least 2 images")
    if not is_whole(real_frames, 0):
        raise GanimateError(f"real frames must be a whole number >= 0, got {real_frames}")
    device, fpt, k = _device(G), int(frames_per_transition), len(z)
    z = z.to(device)
    weights = None if y is None else F.one_hot(y.long(), G.num_classes).float().to(device)  # (K, num_classes)

    def frame(a: int, b: int, t: float) -> np.ndarray:
        zt = z[a : a + 1] if t == 0 else slerp(z[a : a + 1], z[b : b + 1], t)
        wt = None if weights is None else (1 - t) * weights[a : a + 1] + t * weights[b : b + 1]
        return _render(G, zt, wt, 1)

    def fade(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        return np.round((1 - t) * a.astype(np.float32) + t * b.astype(np.float32)).astype(np.uint8)

    fading = real is not None and real_frames > 0
    end = 0 if loop else k - 1
    if fading:
        first_real = make_grid(real[:1], 1)
        first = frame(0, 0, 0.0)
        for i in range(int(real_frames)):
            yield fade(first_real, first, i / real_frames)
    for key in range(k if loop else k - 1):
        for i in range(fpt):
            yield frame(key, (key + 1) % k, i / fpt)
    last = frame(end, end, 0.0)
    if not loop:
        yield last
    if fading:
        end_real = make_grid(real[end : end + 1], 1)
        for i in range(0 if loop else 1, int(real_frames) + (0 if loop else 1)):
            yield fade(last, end_real, i / real_frames)


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
    images: list[str] | None = option("morph between your own images (2 or more; files, folders, or .npz files "
                                      "written by `ganimate project`): each is projected into G first", default=None)
    loop: bool = option("--images: end with a transition back to the first image", default=False)
    real_frames: int = option("--images: frames cross-fading from the first real image into the morph and out "
                              "into the last one (0: the morph alone)", default=0)
    steps: int = option("--images: Adam steps of each projection (see `ganimate project`)", default=100)

    def __post_init__(self):
        if self.images is not None:
            self._check_images()
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

    def _check_images(self) -> None:
        if isinstance(self.images, str):
            self.images = [self.images]
        if self.morph_classes is not None or self.seeds is not None:
            raise GanimateError("--images morphs between your images; it does not take --morph-classes or --seeds")
        if parse_grid(self.grid) != (1, 1):
            raise GanimateError("--images makes a single morph; it does not take --grid")
        if len(self.images) < 1:
            raise GanimateError("--images needs at least 2 images (files, folders or .npz projections)")
        if not is_whole(self.real_frames, 0):
            raise GanimateError(f"--real-frames must be a whole number >= 0, got {self.real_frames}")
        if not is_whole(self.steps, 0):
            raise GanimateError(f"--steps must be a whole number >= 0, got {self.steps}")

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

    if cfg.images is not None:
        return run_image_morph(cfg)
    default = Path(cfg.run) / "videos" / ("morph" if cfg.morph_classes is not None else "walk")
    paths = output_paths(cfg.out, cfg.format, default, "mp4", run_data_folders(cfg.run))  # checked before any work
    G, _ = load_generator(cfg.run, checkpoint=cfg.checkpoint, device="cpu")
    G.eval()
    rows, cols = cfg.rows_cols
    cell = G.channels * G.image_size**2
    check_fits(rows * cols * cell * (4 * 16 + 3 * (cfg.scale or 1) ** 2), f"a {rows}x{cols} grid of "
               f"{G.image_size}x{G.image_size} cells per frame", "use a smaller --grid or --scale")
    if cfg.morph_classes is not None:
        num_classes = int(getattr(G, "num_classes", 0) or 0)
        classes = cfg.classes(num_classes) if num_classes else []
        frames = class_morph_frames(G, classes, cfg.morph_seeds(), cfg.frames_per_transition, cols)
    else:
        frames = latent_walk_frames(G, cfg.walk_seeds(), cfg.frames_per_transition, cols)
    first = next(frames)
    scale = cfg.scale or default_scale(*first.shape[:2])
    stream = (upscale(f, scale) for f in itertools.chain([first], frames))
    if cfg.out is None:
        default.parent.mkdir(parents=True, exist_ok=True)
    write_videos(stream, paths, cfg.fps)
    return paths


def _read_projection(path: Path, G) -> tuple[torch.Tensor, int | None, np.ndarray | None]:
    """(z (D,), class or None, target uint8 (H, W, C) or None) of an .npz written by `ganimate project`."""
    try:
        with np.load(path) as f:
            data = {key: f[key] for key in f.files}
    except (OSError, ValueError) as e:
        raise GanimateError(f"cannot read projection {path}: {' '.join(str(e).split())[:100]}") from None
    z = data.get("z")
    if z is None or z.shape != (G.z_dim,):
        raise GanimateError(f"{path} holds no latent z of this run's size {G.z_dim}: project with this run")
    y = data.get("class")
    if G.num_classes and (y is None or not 0 <= int(y) < G.num_classes):
        raise GanimateError(f"{path} holds no class of this conditional run (0..{G.num_classes - 1})")
    target = data.get("target")
    if target is not None and target.shape != (G.image_size, G.image_size, G.channels):
        target = None
    return torch.from_numpy(z.astype(np.float32)), None if not G.num_classes else int(y), target


def run_image_morph(cfg: InterpolateConfig) -> list[Path]:
    """`ganimate interpolate RUN --images A B ...`: project the images (or read .npz projections), then write
    the morph between them (`image_morph_frames`); returns the video paths."""
    from ganimate.project import ProjectConfig, add_encoder, image_files, load_projector, project_batches, to_float
    from ganimate.project import read_targets as read_images

    items = [Path(p) for p in cfg.images]
    paths = output_paths(cfg.out, cfg.format, Path(cfg.run) / "videos" / "morph-images")
    if cfg.out is not None and not paths[0].parent.is_dir():
        raise GanimateError(f"cannot write video {paths[0]}: folder {paths[0].parent} does not exist")
    proj, train_cfg = load_projector(cfg.run, cfg.checkpoint, encoder=False)
    G = proj.G
    entries: list[tuple[Path, bool]] = []  # (file, is a projection)
    for item in items:
        if item.suffix.lower() == ".npz" and item.is_file():
            entries.append((item, True))
        else:
            entries += [(f, False) for f in image_files([item])]
    if len(entries) < 2:
        raise GanimateError("--images needs at least 2 images (files, folders or .npz projections)")
    read = {f: _read_projection(f, G) for f, is_npz in entries if is_npz}
    files = [f for f, is_npz in entries if not is_npz]
    if files:
        targets = read_images(files, G.image_size, G.channels, getattr(train_cfg, "crop", "center"))
        settings = ProjectConfig(run=cfg.run, images=[str(f) for f in files], steps=cfg.steps, seed=cfg.seed)
        add_encoder(proj, settings.encoder_steps)
        result = project_batches(proj, to_float(targets), None, settings.search())
        for i, f in enumerate(files):
            y = None if result.y is None else int(result.y[i])
            read[f] = (result.z[i], y, targets[i].permute(1, 2, 0).numpy())
    z = torch.stack([read[f][0] for f, _ in entries])  # (K, D)
    y = torch.tensor([read[f][1] for f, _ in entries]) if G.num_classes else None
    with torch.no_grad():
        rendered = to_uint8(G(z, y))  # (K, H, W, C): where an .npz has no target, its projection stands in
    real = np.stack([read[f][2] if read[f][2] is not None else rendered[i] for i, (f, _) in enumerate(entries)])
    frames = image_morph_frames(G, z, y, cfg.frames_per_transition, cfg.loop, real, cfg.real_frames)
    first = next(frames)
    scale = cfg.scale or default_scale(*first.shape[:2])
    if cfg.out is None:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
    write_videos((upscale(f, scale) for f in itertools.chain([first], frames)), paths, cfg.fps)
    return paths
