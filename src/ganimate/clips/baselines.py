"""Baselines that learn nothing, for the clip metrics: linear cross-fade and optical-flow interpolation
(Farnebäck 2003, OpenCV, with backward warping from both key frames) between a first and a last frame,
and repeating the still for prediction. All take and return uint8 clips (N, T, 1, H, W); the key
frames of the input are kept, the unknown frames replaced.
"""

from __future__ import annotations

import numpy as np

from ganimate.flow import flow_interpolation

BASELINES = {"inbetween": ("crossfade", "optical_flow"), "predict": ("repeat_still",)}


def crossfade(clips: np.ndarray) -> np.ndarray:
    """Frame t = (1 - t/(T-1)) * first + t/(T-1) * last."""
    first, last = clips[:, :1].astype(np.float64), clips[:, -1:].astype(np.float64)
    a = np.linspace(0.0, 1.0, clips.shape[1]).reshape(1, -1, 1, 1, 1)
    return np.rint((1 - a) * first + a * last).astype(np.uint8)


def repeat_still(clips: np.ndarray) -> np.ndarray:
    """Every frame is the first one."""
    return np.repeat(clips[:, :1], clips.shape[1], axis=1)


def optical_flow(clips: np.ndarray) -> np.ndarray:
    """Flow interpolation (`flow_interpolation`) of the unknown frames from the first and last one."""
    out = clips.copy()
    frames = flow_interpolation(clips[:, 0, 0], clips[:, -1, 0], clips.shape[1])
    out[:, 1:-1, 0] = np.clip(np.rint(frames[:, 1:-1]), 0, 255).astype(np.uint8)
    return out


def run_baseline(name: str, clips: np.ndarray) -> np.ndarray:
    """The named baseline's clips: crossfade | optical_flow | repeat_still."""
    return {"crossfade": crossfade, "optical_flow": optical_flow, "repeat_still": repeat_still}[name](clips)
