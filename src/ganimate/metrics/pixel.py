"""Pixel fidelity of images against their ground truth: PSNR and SSIM (Wang et al. 2004), batched in torch.

The one implementation that image restoration, clip evaluation and the trainers' validation all use.
Both compute in float64 and take float images (data_range 1 for [0, 1]) or uint8 ones (data_range 255).

- PSNR is capped at `PSNR_CAP_DB` (60 dB): the mean squared error is floored at data_range^2 * 1e-6, so an
  image identical to its target scores 60 dB rather than infinity, and one perfect frame or image cannot
  dominate a mean. 60 dB is an RMS error of 0.1% of the range, far below one 8-bit grey level (48 dB).
- SSIM follows scikit-image's defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance, the mean
  over the window positions that fit inside the image, channels averaged), so values match
  ``skimage.metrics.structural_similarity(a, b, data_range=..., channel_axis=...)``; tests check that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PSNR_CAP_DB = 60.0
_MSE_FLOOR = 10 ** (-PSNR_CAP_DB / 10)  # relative to data_range^2
_SSIM_WIN = 7
_CHUNK_VALUES = 1 << 22  # float64 values per chunk of images (32 MiB a temporary)


def psnr(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, capped at 60, of images (..., C, H, W) -> (...).

    pred and true broadcast against each other; float or uint8, computed in float64 in chunks of images.
    """
    pred, true = torch.as_tensor(pred), torch.as_tensor(true)
    shape = torch.broadcast_shapes(pred.shape, true.shape)
    if len(shape) < 3:
        raise ValueError(f"psnr needs images (..., C, H, W), got shapes {tuple(pred.shape)} and {tuple(true.shape)}")
    a, b = pred.expand(shape).reshape(-1, *shape[-3:]), true.expand(shape).reshape(-1, *shape[-3:])  # (M, C, H, W)
    step = max(1, _CHUNK_VALUES // max(1, a[0].numel()))
    mse = torch.cat([(a[i : i + step].double() - b[i : i + step].double()).pow(2).flatten(1).mean(1)
                     for i in range(0, len(a), step)] or [torch.zeros(0, dtype=torch.float64)])  # (M,)
    peak = float(data_range) ** 2
    return (10 * torch.log10(peak / mse.clamp_min(peak * _MSE_FLOOR))).reshape(shape[:-3])


def _ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM (N,) of float64 images (N, C, H, W): the mean of the map over valid windows and channels."""
    win = _SSIM_WIN
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(x):  # (N, C, H - 6, W - 6): means over every window that fits inside the image
        return F.avg_pool2d(x, win, stride=1)

    mu_a, mu_b = mean(a), mean(b)
    cov = win * win / (win * win - 1)  # sample covariance, as scikit-image
    var_a = cov * (mean(a * a) - mu_a**2)
    var_b = cov * (mean(b * b) - mu_b**2)
    cov_ab = cov * (mean(a * b) - mu_a * mu_b)
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)  # (N,)


def ssim(pred: torch.Tensor, true: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (N,) of images (N, C, H, W) with H, W >= 7, averaged over channels.

    float or uint8, computed in float64 in chunks of images, so millions of frames fit in memory.
    """
    pred, true = torch.as_tensor(pred), torch.as_tensor(true)
    if pred.shape != true.shape or pred.ndim != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) batches of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(true.shape)}")
    if min(pred.shape[-2:]) < _SSIM_WIN:
        raise ValueError(f"ssim needs images of at least {_SSIM_WIN}x{_SSIM_WIN}, got {tuple(pred.shape[-2:])}")
    step = max(1, _CHUNK_VALUES // max(1, pred[0].numel()))
    parts = [_ssim_map(pred[i : i + step].double(), true[i : i + step].double(), float(data_range))
             for i in range(0, len(pred), step)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
