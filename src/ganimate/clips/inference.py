"""What clip training, `animate`, `inbetween` and `clip evaluate` share: clips as tensors, completing a
clip from its key frame(s) with G, and loading a clip run's generator from a checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganimate.clips.config import ClipTrainConfig
from ganimate.images import make_grid
from ganimate.models.clip import ViewEnsemble, build_clip_models
from ganimate.runs import load_run_generator
from ganimate.video import upscale


def to_float(clips: np.ndarray | torch.Tensor, device="cpu") -> torch.Tensor:
    """uint8 clips (B, T, 1, H, W) -> float (B, 1, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(clips).to(device)
    return x.permute(0, 2, 1, 3, 4).float().div_(127.5).sub_(1.0)


def to_uint8_clips(x: torch.Tensor) -> np.ndarray:
    """float (B, 1, T, H, W) in [-1, 1] -> uint8 clips (B, T, 1, H, W)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 1, 3, 4).numpy()


def complete_clip(task: str, G, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The whole clip (B, 1, T, H, W) with G's frames in place of the unknown ones of real clips `x`."""
    if task == "forecast":
        given = x[:, :, : G.context]  # (B, 1, C, H, W)
        return torch.cat([given, G(given)], 2)
    first = x[:, :, 0]  # (B, 1, H, W)
    if task == "predict":
        return torch.cat([first.unsqueeze(2), G(first, z)], 2)
    last = x[:, :, -1]
    return torch.cat([first.unsqueeze(2), G(first, last), last.unsqueeze(2)], 2)


def conditioning(task: str, x: torch.Tensor, context: int = 1) -> torch.Tensor:
    """The frames G is given, (B, K, H, W): the first frame, first and last, or the first `context` (forecast)."""
    if task == "forecast":
        return x[:, 0, :context]
    return x[:, :, 0] if task == "predict" else torch.cat([x[:, :, 0], x[:, :, -1]], 1)


@torch.no_grad()
def generate(task: str, G, clips: np.ndarray, samples: int = 1, seed: int = 0, batch_size: int = 256,
             device="cpu") -> np.ndarray:
    """uint8 clips (N, T, 1, H, W) completed by G from their key frame(s): uint8 (samples, N, T, 1, H, W).

    Predict noise for draw s of clip i comes from seed + s, so the same seed gives the same clips.
    """
    was_training = G.training
    G.eval()
    out = []
    for s in range(samples):
        gen = torch.Generator().manual_seed(seed + s)
        z_all = torch.randn(len(clips), getattr(G, "z_dim", 1), generator=gen)
        parts = []
        for i in range(0, len(clips), batch_size):
            x = to_float(clips[i : i + batch_size], device)
            z = z_all[i : i + batch_size].to(device) if task == "predict" else None
            parts.append(to_uint8_clips(complete_clip(task, G, x, z)))
        out.append(np.concatenate(parts))
    G.train(was_training)
    return np.stack(out)


def unknown_frames(task: str, context: int = 1) -> slice:
    """The frames a task generates: 1.. for predict, 1..T-2 for inbetween, context.. for forecast."""
    if task == "forecast":
        return slice(context, None)
    return slice(1, None) if task == "predict" else slice(1, -1)


@torch.no_grad()
def forecast(G, clips: np.ndarray, batch_size: int = 64, device="cpu", clamp: bool = False) -> np.ndarray:
    """G's frames after the first G.context ones of uint8 clips (N, T, 1, H, W): float32 (N, T - context, 1, H, W)
    on the [0, 1] scale, not quantised, and not clipped unless `clamp` (OpenSTL takes MSE and MAE of the
    prediction as it is, and clips it for SSIM and PSNR; pictures need clamp=True)."""
    was_training = G.training
    G.eval()
    parts = []
    for i in range(0, len(clips), batch_size):
        x = to_float(clips[i : i + batch_size, : G.context], device)  # (B, 1, C, H, W)
        y = G(x).float().add(1).div(2)  # (B, 1, T', H, W)
        y = y.clamp(0, 1) if clamp else y
        parts.append(y.transpose(1, 2).cpu().numpy())
    G.train(was_training)
    return np.concatenate(parts)


def side_by_side_frames(true: np.ndarray, fake: np.ndarray, scale: int = 4):
    """Video frames of clips (N, T, 1, H, W): row i is true clip i | generated clip i (grey, upscaled)."""
    for t in range(true.shape[1]):
        tiles = np.stack([true[:, t], fake[:, t]], 1).reshape(-1, *true.shape[2:])  # (2N, 1, H, W)
        yield upscale(make_grid(tiles.transpose(0, 2, 3, 1), 2, pad_value=128), scale)


def with_views(G, task: str, views: int):
    """G as inference uses it: an in-between G averaged over `views` symmetric views (models/clip.py), else G."""
    return ViewEnsemble(G, views) if task == "inbetween" and views > 1 else G


def load_clip_generator(run_dir: str | Path, checkpoint: str | None = None, device="cpu", ema: bool = True,
                        views: int | None = None):
    """(G in eval mode, ClipTrainConfig, step) of a clip run, rebuilt from a checkpoint alone; an in-between G
    averages over `views` symmetric views (default: the run's --views), which cfg.views then records."""
    G, cfg, state = load_run_generator(run_dir, ClipTrainConfig, build_clip_models, checkpoint, device, ema)
    if views is not None:
        cfg = ClipTrainConfig.from_dict({**cfg.to_dict(), "views": views})  # checks it as --views
    return with_views(G, cfg.task, cfg.views), cfg, state["step"]


