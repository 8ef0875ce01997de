"""The video-prediction metrics exactly as OpenSTL computes them (openstl/core/metrics.py, Tan et al. 2023,
"OpenSTL: A Comprehensive Benchmark of Spatio-Temporal Predictive Learning"), so Moving MNIST numbers
stand beside published ones. Frames are float in [0, 1], arrays (N, T, C, H, W):

- MSE and MAE: per frame, summed over the pixels (C*H*W), averaged over frames and sequences; the
  prediction is NOT clipped for these two.
- SSIM (after clipping the prediction to [0, 1]): scikit-image's `structural_similarity` per frame as
  OpenSTL calls it on float frames: a 7x7 uniform window, sample covariance, K1 0.01, K2 0.03, and the
  data range of a float dtype, 2 (scikit-image took it from the dtype, -1..1, when OpenSTL was written),
  averaged over the valid windows and over channels, then over frames and sequences.
- PSNR (after clipping): -10 log10(mean squared error) per frame, averaged; infinite for a perfect frame.
"""

from __future__ import annotations

import numpy as np

SSIM_WINDOW = 7
SSIM_DATA_RANGE = 2.0


def _pairs(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pred.shape != true.shape or pred.ndim != 5:
        raise ValueError(f"pred and true must be (N, T, C, H, W) of one shape, got {pred.shape} and {true.shape}")
    return pred.astype(np.float32, copy=False), true.astype(np.float32, copy=False)


def mse_per_frame(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Squared error summed over each frame's pixels: (N, T)."""
    pred, true = _pairs(pred, true)
    return ((pred - true) ** 2).sum((2, 3, 4), dtype=np.float64)


def mae_per_frame(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute error summed over each frame's pixels: (N, T)."""
    pred, true = _pairs(pred, true)
    return np.abs(pred - true).sum((2, 3, 4), dtype=np.float64)


def psnr_per_frame(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """-10 log10(mean squared error) of each frame, prediction clipped to [0, 1]: (N, T), inf where equal."""
    pred, true = _pairs(np.clip(pred, 0, 1), true)
    mse = ((pred - true) ** 2).mean((2, 3, 4), dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -10 * np.log10(mse)


def _window_means(x: np.ndarray) -> np.ndarray:
    """Means of x (..., H, W) over every whole 7x7 window: (..., H-6, W-6), from integral images."""
    k = SSIM_WINDOW
    c = np.pad(np.cumsum(x, -2), [(0, 0)] * (x.ndim - 2) + [(1, 0), (0, 0)])  # (..., H+1, W)
    x = c[..., k:, :] - c[..., :-k, :]  # window sums along H
    c = np.pad(np.cumsum(x, -1), [(0, 0)] * (x.ndim - 1) + [(1, 0)])  # (..., H-6, W+1)
    return (c[..., k:] - c[..., :-k]) / k**2


def ssim_per_frame(pred: np.ndarray, true: np.ndarray, batch: int = 64) -> np.ndarray:
    """OpenSTL's SSIM of each frame (see the module docstring), prediction clipped to [0, 1]: (N, T).

    scikit-image filters with a uniform 7x7 window and keeps the windows away from the border by 3 pixels:
    exactly the whole windows, so no padding rule matters."""
    pred, true = _pairs(np.clip(pred, 0, 1), true)
    n, t, c, h, w = pred.shape
    x_all, y_all = pred.reshape(-1, h, w), true.reshape(-1, h, w)
    c1, c2 = (0.01 * SSIM_DATA_RANGE) ** 2, (0.03 * SSIM_DATA_RANGE) ** 2
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    out = []
    for i in range(0, len(x_all), batch):
        x, y = x_all[i : i + batch].astype(np.float64), y_all[i : i + batch].astype(np.float64)  # (M, H, W)
        ux, uy, uxx, uyy, uxy = _window_means(np.stack([x, y, x * x, y * y, x * y]))  # each (M, H-6, W-6)
        vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean((1, 2)))
    return np.concatenate(out).reshape(n, t, c).mean(2)


def openstl_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """{"mse", "mae", "ssim", "psnr"} of float frames in [0, 1] (N, T, C, H, W), and each one per frame index."""
    scores = {"mse": mse_per_frame(pred, true), "mae": mae_per_frame(pred, true),
              "ssim": ssim_per_frame(pred, true), "psnr": psnr_per_frame(pred, true)}
    r = {name: float(v.mean()) for name, v in scores.items()}
    r.update({f"{name}_per_frame": v.mean(0).round(4).tolist() for name, v in scores.items()})
    return r
