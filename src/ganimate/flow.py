"""Classical optical flow between two grey frames: OpenCV's Farnebäck flow (Farnebäck 2003), backward
warping, and flow interpolation of the frames between a first and a last one. The optical-flow baseline
of the clip metrics (clips/baselines.py) and the inbetween generator's base clip (models/clip.py) use it.
OpenCV is imported where it is used, so that importing this module (and the commands) stays fast.
"""

from __future__ import annotations

import numpy as np


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense Farnebäck flow from grey frame a to b: (H, W, 2), a(x) ~ b(x + flow(x))."""
    import cv2

    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=2, winsize=9, iterations=3,
                                        poly_n=5, poly_sigma=1.1, flags=0)


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample img at x + flow(x) (bilinear, zero outside)."""
    import cv2

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
    alphas = np.linspace(0.0, 1.0, frames)
    out = np.empty((len(first), frames, *first.shape[1:]), np.float32)
    for i, (a, b) in enumerate(zip(first, last, strict=True)):
        f_ab, f_ba = farneback(a, b), farneback(b, a)
        out[i, 0], out[i, -1] = a, b
        for t in range(1, frames - 1):
            s = alphas[t]
            # the pixel at x in frame t came from x - s * f_ab(x) in a and from x - (1 - s) * f_ba(x) in b
            out[i, t] = (1 - s) * warp(a, -s * f_ab) + s * warp(b, -(1 - s) * f_ba)
    return out
