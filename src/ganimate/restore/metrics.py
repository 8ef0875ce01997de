"""Restoration metrics: PSNR and SSIM (Wang et al. 2004) per image, batched in torch, and the
reference-classifier scores of restored images: class accuracy and the Fréchet distance of restored
vs clean features (the FID recipe of Heusel et al. 2017 in `ganimate.metrics` classifier features).

SSIM follows scikit-image's defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance, the
mean over the window positions that fit inside the image), so values match
``skimage.metrics.structural_similarity(a, b, data_range=1)``; tests check both against the library.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganimate.metrics.classifier import embed, load_reference
from ganimate.metrics.fd import feature_stats, frechet_distance


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (N,) in dB of images (N, C, H, W) in [0, 1] (data range 1)."""
    mse = (restored.double() - clean.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-20))


def ssim(restored: torch.Tensor, clean: torch.Tensor, win: int = 7) -> torch.Tensor:
    """Structural similarity (N,) of images (N, C, H, W) in [0, 1], averaged over channels."""
    a, b = restored.double(), clean.double()
    c1, c2 = 0.01**2, 0.03**2

    def mean(x):  # means over every window that fits inside the image
        return F.avg_pool2d(x, win, stride=1)

    mu_a, mu_b = mean(a), mean(b)
    cov = win * win / (win * win - 1)  # sample covariance, as scikit-image
    var_a = cov * (mean(a * a) - mu_a**2)
    var_b = cov * (mean(b * b) - mu_b**2)
    cov_ab = cov * (mean(a * b) - mu_a * mu_b)
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)  # (N,)


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute finite-difference gradient of images (N, C, H, W): how much edge they hold."""
    x = x.double()
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def to_uint8_nchw(x: torch.Tensor) -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] -> uint8 (N, C, H, W), as a PNG would store it."""
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


def score(restored: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor | None, dataset: str,
          clean_stats: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """psnr, ssim (means), sharpness (gradient energy relative to the clean images: below 1 is blurrier,
    above 1 noisier) and, where the dataset has a reference classifier, class_acc and fd.

    restored / clean: float (N, C, H, W) in [0, 1]; the classifier sees both as 8-bit images.
    """
    out = {"psnr": float(psnr(restored, clean).mean()), "ssim": float(ssim(restored, clean).mean()),
           "sharpness": float(gradient_energy(restored) / gradient_energy(clean).clamp_min(1e-12))}
    if labels is None or dataset not in ("mnist", "fashion-mnist"):
        return out
    model = load_reference(dataset)
    feats, logits = embed(model, to_uint8_nchw(restored))
    if clean_stats is None:
        clean_stats = feature_stats(embed(model, to_uint8_nchw(clean))[0])
    mu, sigma = feature_stats(feats)
    out["class_acc"] = float((logits.argmax(1) == labels).double().mean())
    out["fd"] = frechet_distance(mu, sigma, *clean_stats)
    return out
