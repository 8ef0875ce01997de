"""Sampling from a trained run: seeded latents, balanced labels, grids and .npz files."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from ganimate.config import SampleConfig, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import check_output_file, make_grid, save_npz, save_png, to_uint8
from ganimate.memory import check_fits
from ganimate.models.folded import FoldedGenerator, foldable
from ganimate.runs import load_generator
from ganimate.runtime import autocast


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """n latents (n, z_dim) from one seed; the first k of them do not depend on n."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def sample_labels(n: int, num_classes: int, class_: int | None = None) -> torch.Tensor | None:
    """Labels for n samples: all `class_`, or balanced (0, 1, ..., K-1, 0, ...); None if unconditional."""
    if num_classes == 0:
        if class_ is not None:
            raise GanimateError("--class needs a conditional run; this run is unconditional")
        return None
    if class_ is not None:
        if not 0 <= class_ < num_classes:
            raise GanimateError(f"--class {class_} is out of range: this run has classes 0..{num_classes - 1}")
        return torch.full((n,), class_, dtype=torch.int64)
    return torch.arange(n) % num_classes


def inference_copy(G):
    """A copy of G for sampling only: eval mode, no gradients and, on the CPU, channels_last weights (oneDNN's
    transposed convolutions run faster in that layout; the demo run's images came out identical, bench/RESULTS.md)
    and, for the image GANs' generators, batch norm folded into the layers before it (`models.folded`)."""
    cpu = next(G.parameters()).device.type == "cpu"
    G = FoldedGenerator(G) if cpu and foldable(G) else copy.deepcopy(G).eval().requires_grad_(False)  # G untouched
    return G.to(memory_format=torch.channels_last) if cpu else G


GENERATE_BATCH = 500  # images per forward pass of generate_images


def generate_images(G, n: int, seed: int, y: torch.Tensor | None, batch_size: int = GENERATE_BATCH,
                    precision: str = "fp32", start: int = 0) -> torch.Tensor:
    """Images start..n-1 of seed's n as uint8 (n - start, C, H, W) on the CPU, from `inference_copy(G)` in batches
    under inference mode (and bf16 autocast for precision "bf16"); G itself is left as it was. y holds the labels
    of the first n images or more. Two calls, the second starting where the first stopped at a multiple of
    batch_size, make the same batches, so the same images, as one call."""
    G = inference_copy(G)
    device = next(G.parameters()).device
    z = latents(n, G.z_dim, seed)  # (n, z_dim)
    out = torch.empty(n - start, G.channels, G.image_size, G.image_size, dtype=torch.uint8)  # (n - start, C, H, W)
    for i in range(start, n, batch_size):
        stop = min(i + batch_size, n)
        with torch.inference_mode(), autocast(device, precision):
            yb = y[i:stop].to(device) if y is not None else None
            x = to_uint8(G(z[i:stop].to(device), yb))  # (b, H, W, C)
        out[i - start : stop - start] = torch.from_numpy(x).permute(0, 3, 1, 2)
    return out


def generate(G, n: int, seed: int, y: torch.Tensor | None, batch_size: int = 500) -> np.ndarray:
    """n images as uint8 (n, H, W, C), in batches so memory stays bounded."""
    return np.ascontiguousarray(generate_images(G, n, seed, y, batch_size).permute(0, 2, 3, 1).numpy())


def class_rows_grid(x: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """A grid with one class per row; shorter rows are padded with blank cells."""
    rows = [x[y == c] for c in range(num_classes)]
    width = max(len(r) for r in rows)
    blank = np.zeros((1, *x.shape[1:]), dtype=x.dtype)
    cells = [r[i] if i < len(r) else blank[0] for r in rows if len(r) for i in range(width)]
    return make_grid(np.stack(cells), width)


def run_sample(cfg: SampleConfig) -> list[Path]:
    """`ganimate sample`: write a grid and/or an .npz; returns the paths written."""
    from ganimate.runtime import resolve_device

    if cfg.npz is not None and Path(cfg.npz).suffix != ".npz":  # every output is checked before any is written
        raise GanimateError(f"--npz {cfg.npz}: the file name must end in .npz")
    out = cfg.out
    if out is None and cfg.npz is None:
        out = str(Path(cfg.run) / "generated" / f"seed{cfg.seed}.png")
    data = run_data_folders(cfg.run)
    if out is not None:  # the default RUN/generated/ is made; a folder the user names must exist
        check_output_file(out, data, create_parent=cfg.out is None)
    if cfg.npz is not None:
        check_output_file(cfg.npz, data)
    G, train_cfg = load_generator(cfg.run, cfg.checkpoint, str(resolve_device(cfg.device)), ema=not cfg.no_ema)
    pixels = G.channels * G.image_size**2
    check_fits(cfg.n * pixels * (1 + (out is not None) + (cfg.npz is not None)) + 500 * pixels * 8,
               f"sampling {cfg.n:,} images of {G.image_size}x{G.image_size}", "use a smaller --n")
    y = sample_labels(cfg.n, G.num_classes, cfg.class_)
    if y is not None and cfg.class_ is None:
        y, _ = torch.sort(y, stable=True)  # one class per row in the grid
    x = generate(G, cfg.n, cfg.seed, y)  # (N, H, W, C)
    written = []
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if y is not None and cfg.class_ is None and cfg.nrow is None:
            grid = class_rows_grid(x, y.numpy(), G.num_classes)
        else:
            grid = make_grid(x, cfg.nrow or math.ceil(math.sqrt(cfg.n)))
        written.append(save_png(grid, out))
    if cfg.npz is not None:
        arrays = {"x": x[..., 0] if x.shape[-1] == 1 else x}
        if y is not None:
            arrays["y"] = y.numpy()
        written.append(save_npz(Path(cfg.npz), **arrays))
    return written
