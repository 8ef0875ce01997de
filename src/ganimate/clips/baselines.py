"""Baselines that learn nothing, for the clip metrics: linear cross-fade and optical-flow interpolation
(Farnebäck 2003, OpenCV, with backward warping from both key frames) between a first and a last frame,
repeating the still for prediction, and for forecasting (the frames after the first `context` ones):
copying the last given frame, an all-black frame, and optical-flow extrapolation (the Farnebäck flow
between the last two given frames, applied again for every further frame: constant velocity). All take
and return uint8 clips (N, T, 1, H, W); the given frames of the input are kept, the unknown ones replaced.
"""

from __future__ import annotations

import numpy as np

from ganimate.flow import farneback, flow_interpolation, warp

BASELINES = {"inbetween": ("crossfade", "optical_flow"), "predict": ("repeat_still",),
             "forecast": ("copy_last", "all_black", "flow_extrapolation")}


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


def copy_last(clips: np.ndarray, context: int) -> np.ndarray:
    """Every frame after the first `context` is the last given one."""
    out = clips.copy()
    out[:, context:] = clips[:, context - 1 : context]
    return out


def all_black(clips: np.ndarray, context: int) -> np.ndarray:
    """Every frame after the first `context` is black."""
    out = clips.copy()
    out[:, context:] = 0
    return out


def flow_extrapolation(clips: np.ndarray, context: int) -> np.ndarray:
    """Frame context - 1 + k is the last given frame warped by k times the flow of its previous frame to it
    (backward warping with the flow from the last frame to the one before: b(x) ~ a(x + g(x)), so the
    pixel at x k frames later came from x + k g(x))."""
    if context < 2:
        raise ValueError("flow extrapolation needs at least 2 given frames")
    out = clips.copy()
    for i, clip in enumerate(clips):
        a, b = clip[context - 2, 0], clip[context - 1, 0]
        g = farneback(b, a)  # (H, W, 2)
        for k in range(1, clips.shape[1] - context + 1):
            out[i, context - 1 + k, 0] = np.clip(np.rint(warp(b, k * g)), 0, 255).astype(np.uint8)
    return out


def run_baseline(name: str, clips: np.ndarray, context: int = 1) -> np.ndarray:
    """The named baseline's clips: crossfade | optical_flow | repeat_still, or (with the number of given
    frames `context`) copy_last | all_black | flow_extrapolation."""
    fn = {"crossfade": crossfade, "optical_flow": optical_flow, "repeat_still": repeat_still, "copy_last": copy_last,
          "all_black": all_black, "flow_extrapolation": flow_extrapolation}[name]
    return fn(clips, context) if name in BASELINES["forecast"] else fn(clips)
