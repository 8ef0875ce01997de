"""`ganimate restore apply RUN IMAGE_OR_DIR --out DIR`: restore a user's own degraded PNGs with a run's
EMA generator.

The images must already be in the form the run restores: the model's channels (grey L or RGB) and
its input size (the small image for super-resolution, e.g. 7x7 for x4 on 28x28 data). Anything else,
an unreadable file, or a run trained for another task is refused with one line before anything is
written; existing outputs are kept unless --overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganimate.config import option, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import check_output_folder, open_image, save_png, to_uint8
from ganimate.restore.degrade import TASKS
from ganimate.restore.inference import load_restorer, read_run_config, restore

MODES = {1: "L", 3: "RGB"}


@dataclass
class RestoreApplyConfig:
    """`ganimate restore apply RUN IMAGE_OR_DIR --out DIR`."""

    run: str = option("restoration run folder", default="")
    input: str = option("a PNG file or a folder of PNG files (degraded images)", default="")
    out: str | None = option("output folder; restored images keep their file names", default=None)
    task: str | None = option("what your images need (sr | denoise | deblur); refused if the run restores "
                              "another degradation", default=None)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    overwrite: bool = option("replace existing files in --out", default=False)
    device: str = option("cpu | cuda | mps", default="cpu")

    def __post_init__(self):
        if not self.run or not self.input:
            raise GanimateError("restore apply needs a run folder and an image or folder of images")
        if not self.out:
            raise GanimateError("restore apply needs --out DIR for the restored images")
        if self.task is not None and self.task not in TASKS:
            raise GanimateError(f"unknown task {self.task!r}: choose from {', '.join(TASKS)}")


def read_image(path: Path, channels: int, side: int) -> np.ndarray:
    """A PNG as uint8 (C, H, W), checked against the model's channels and input size."""
    img = open_image(path)
    mode, size, array = img.mode, img.size, np.asarray(img)
    if mode != MODES[channels]:
        raise GanimateError(f"{path} is a {mode} image; this run restores {MODES[channels]} images "
                            f"({channels} channel{'s' if channels > 1 else ''})")
    if size != (side, side):
        raise GanimateError(f"{path} is {size[0]}x{size[1]}; this run restores {side}x{side} inputs")
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def apply_restore(cfg: RestoreApplyConfig) -> list[Path]:
    """Restore every input image into cfg.out; returns the written paths."""
    run_cfg = read_run_config(cfg.run)
    if cfg.task is not None and cfg.task != run_cfg.task:
        raise GanimateError(f"{cfg.run} was trained for {run_cfg.task}, not {cfg.task}: use a {cfg.task} run")
    src = Path(cfg.input)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() == ".png" and p.is_file())
        if not files:
            raise GanimateError(f"{src} holds no .png files")
    elif src.is_file():
        files = [src]
    else:
        raise GanimateError(f"{src} does not exist")
    side = run_cfg.degradation.observed_size(run_cfg.image_size)
    arrays = [read_image(p, run_cfg.channels, side) for p in files]
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise GanimateError(f"--out {out} exists and is not a folder")
    check_output_folder(out, run_data_folders(cfg.run))
    targets = [out / f"{p.stem}.png" for p in files]
    clash = [t for t in targets if t.exists()]
    if clash and not cfg.overwrite:
        raise GanimateError(f"{clash[0]} already exists: use --overwrite to replace it")
    if any(t.resolve() == p.resolve() for t, p in zip(targets, files, strict=True)):
        raise GanimateError(f"--out {out} is the input folder: choose another folder")
    G, _, _, _ = load_restorer(cfg.run, cfg.checkpoint, cfg.device)
    obs = torch.from_numpy(np.stack(arrays)).float() / 255  # (N, C, h, w)
    restored = to_uint8(restore(G, obs, run_cfg.image_size) * 2 - 1)  # (N, H, W, C)
    out.mkdir(parents=True, exist_ok=True)
    return [save_png(img, t) for img, t in zip(restored, targets, strict=True)]
