"""Classical restoration baselines, each with a small parameter grid tuned on a validation split.

Super-resolution: bicubic and Lanczos upsampling (Pillow; nothing to tune). Denoising: Gaussian and
median filters, non-local means (Buades et al. 2005) and total-variation denoising (Chambolle 2004).
Deconvolution: Wiener filtering and Richardson-Lucy iterations (Richardson 1972, Lucy 1974) with the
known blur kernel. The scikit-image implementations are used throughout; the grids are small so that
tuning on a few hundred validation images takes seconds, and the test split is never used for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ganimate.metrics.pixel import psnr
from ganimate.restore.degrade import Degradation, gaussian_kernel


def _resize(obs: np.ndarray, deg: Degradation, resample) -> np.ndarray:
    side = obs.shape[-1] * deg.factor
    return np.asarray(Image.fromarray(obs.astype(np.float32), mode="F").resize((side, side), resample))


def _bicubic(obs, deg, p):
    return _resize(obs, deg, Image.Resampling.BICUBIC)


def _lanczos(obs, deg, p):
    return _resize(obs, deg, Image.Resampling.LANCZOS)


def _gaussian(obs, deg, p):
    from skimage.filters import gaussian

    return gaussian(obs, sigma=p["sigma"], mode="reflect", preserve_range=True)


def _median(obs, deg, p):
    from skimage.filters import median

    return median(obs, footprint=np.ones((p["size"], p["size"]), dtype=bool), mode="reflect")


def _nl_means(obs, deg, p):
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(obs, h=p["h"] * deg.sigma, sigma=p["sigma_scale"] * deg.sigma,
                            patch_size=p["patch_size"], patch_distance=p["patch_distance"], fast_mode=True)


def _tv(obs, deg, p):
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(obs, weight=p["weight"])


def _wiener(obs, deg, p):
    from skimage.restoration import wiener

    return wiener(obs, gaussian_kernel(deg.blur_sigma).numpy(), balance=p["balance"])


def _richardson_lucy(obs, deg, p):
    from skimage.restoration import richardson_lucy

    return richardson_lucy(obs, gaussian_kernel(deg.blur_sigma).numpy(), num_iter=p["num_iter"])


@dataclass(frozen=True)
class Baseline:
    """A classical method for one task: fn(observation (h, w) float64 in [0, 1], degradation, params)."""

    name: str
    task: str
    fn: Callable[[np.ndarray, Degradation, dict], np.ndarray]
    grid: tuple[dict, ...] = ({},)


BASELINES: tuple[Baseline, ...] = (
    Baseline("bicubic", "sr", _bicubic),
    Baseline("lanczos", "sr", _lanczos),
    Baseline("gaussian", "denoise", _gaussian, tuple({"sigma": s} for s in (0.3, 0.4, 0.5, 0.65, 0.8, 1.0))),
    Baseline("median", "denoise", _median, ({"size": 3}, {"size": 5}, {"size": 7})),
    Baseline("nl_means", "denoise", _nl_means, tuple(  # h and the noise level told to NLM, in units of sigma
        {"h": h, "sigma_scale": ss, "patch_size": ps, "patch_distance": 4}
        for h in (0.25, 0.35, 0.5, 0.7, 1.0) for ss in (0.0, 0.5, 1.0) for ps in (3, 5))),
    Baseline("tv", "denoise", _tv, tuple({"weight": w} for w in (0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45))),
    Baseline("wiener", "deblur", _wiener, tuple({"balance": b} for b in (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03))),
    Baseline("richardson_lucy", "deblur", _richardson_lucy,
             tuple({"num_iter": n} for n in (5, 10, 20, 40, 80, 160, 320))),
)


def baselines_for(task: str) -> list[Baseline]:
    return [b for b in BASELINES if b.task == task]


def run_baseline(b: Baseline, obs: torch.Tensor, deg: Degradation, params: dict) -> torch.Tensor:
    """Observations (N, C, h, w) in [0, 1] -> restored float32 (N, C, H, W) in [0, 1], image by image."""
    x = obs.double().numpy()
    out = [np.stack([b.fn(ch, deg, params) for ch in img]) for img in x]
    return torch.from_numpy(np.clip(np.stack(out), 0, 1).astype(np.float32))  # (N, C, H, W)


def tune(b: Baseline, obs: torch.Tensor, clean: torch.Tensor, deg: Degradation) -> tuple[dict, float]:
    """The grid point with the highest mean PSNR on validation pairs, and that PSNR."""
    scored = [(float(psnr(run_baseline(b, obs, deg, p), clean).mean()), i) for i, p in enumerate(b.grid)]
    best, i = max(scored)
    return dict(b.grid[i]), best
