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


def flow_interpolation(first: np.ndarray, last: np.ndarray, frames: int) -> np.ndarray:
    """Float frames (N, frames, H, W) between uint8 key frames (N, H, W), key frames included.

    Frame t blends the first frame warped by -s * flow(first -> last) and the last frame warped by
    -(1 - s) * flow(last -> first), weighted (1 - s, s), s = t / (frames - 1).
    """
    alphas = _alphas(frames)
    out = np.empty((len(first), frames, *first.shape[1:]), np.float32)
    for i, (a, b) in enumerate(zip(first, last, strict=True)):
        f_ab, f_ba = _flow(a, b), _flow(b, a)
        out[i, 0], out[i, -1] = a, b
        for t in range(1, frames - 1):
            s = alphas[t]
            # the pixel at x in frame t came from x - s * f_ab(x) in a and from x - (1 - s) * f_ba(x) in b
            out[i, t] = (1 - s) * _warp(a, -s * f_ab) + s * _warp(b, -(1 - s) * f_ba)
    return out


def optical_flow(clips: np.ndarray) -> np.ndarray:
    """Flow interpolation (`flow_interpolation`) of the unknown frames from the first and last one."""
    out = clips.copy()
    frames = flow_interpolation(clips[:, 0, 0], clips[:, -1, 0], clips.shape[1])
    out[:, 1:-1, 0] = np.clip(np.rint(frames[:, 1:-1]), 0, 255).astype(np.uint8)
    return out


def run_baseline(name: str, clips: np.ndarray) -> np.ndarray:
    """The named baseline's clips: crossfade | optical_flow | repeat_still."""
    return {"crossfade": crossfade, "optical_flow": optical_flow, "repeat_still": repeat_still}[name](clips)
