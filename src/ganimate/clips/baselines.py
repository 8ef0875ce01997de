"""Baselines that learn nothing, for the clip metrics: linear cross-fade and optical-flow interpolation
(Farnebäck 2003, OpenCV, with backward warping from both key frames) between a first and a last frame,
and repeating the still for prediction. All take and return uint8 clips (N, T, 1, H, W); the key
frames of the input are kept, the unknown frames replaced.
"""

from __future__ import annotations

import cv2
import numpy as np

BASELINES = {"inbetween": ("crossfade", "optical_flow"), "predict": ("repeat_still",)}


def _alphas(frames: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, frames)


def crossfade(clips: np.ndarray) -> np.ndarray:
    """Frame t = (1 - t/(T-1)) * first + t/(T-1) * last."""
    first, last = clips[:, :1].astype(np.float64), clips[:, -1:].astype(np.float64)
    a = _alphas(clips.shape[1]).reshape(1, -1, 1, 1, 1)
    return np.rint((1 - a) * first + a * last).astype(np.uint8)


def repeat_still(clips: np.ndarray) -> np.ndarray:
    """Every frame is the first one."""
    return np.repeat(clips[:, :1], clips.shape[1], axis=1)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense Farnebäck flow from grey frame a to b: (H, W, 2), a(x) ~ b(x + flow(x))."""
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=2, winsize=9, iterations=3,
                                        poly_n=5, poly_sigma=1.1, flags=0)


def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample img at x + flow(x) (bilinear, zero outside)."""
    h, w = img.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    flow = flow.astype(np.float32)
    return cv2.remap(img.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def optical_flow(clips: np.ndarray) -> np.ndarray:
    """Flow interpolation: frame t blends the first frame warped by -t * flow(first -> last) and the last
    frame warped by -(1 - t) * flow(last -> first), weighted (1 - t, t), t = index / (T - 1)."""
    out = clips.copy()
    alphas = _alphas(clips.shape[1])
    for i, clip in enumerate(clips):
        a, b = clip[0, 0], clip[-1, 0]
        f_ab, f_ba = _flow(a, b), _flow(b, a)
        for t in range(1, clip.shape[0] - 1):
            s = alphas[t]
            # the pixel at x in frame t came from x - s * f_ab(x) in a and from x - (1 - s) * f_ba(x) in b
            frame = (1 - s) * _warp(a, -s * f_ab) + s * _warp(b, -(1 - s) * f_ba)
            out[i, t, 0] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def run_baseline(name: str, clips: np.ndarray) -> np.ndarray:
    """The named baseline's clips: crossfade | optical_flow | repeat_still."""
    return {"crossfade": crossfade, "optical_flow": optical_flow, "repeat_still": repeat_still}[name](clips)
