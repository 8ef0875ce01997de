"""A tiny deterministic labelled dataset that needs no files: class k is a bar at angle 18*k degrees."""

from __future__ import annotations

import numpy as np

SIZE = 28
COUNT = {"train": 2000, "test": 500}
SEED = {"train": 20240, "test": 20241}
CLASSES = [f"bar-{18 * k}deg" for k in range(10)]


def load(spec: object, split: str, **_: object) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, 1, 28, 28), balanced labels int64 (N,), and the 10 class names; same every call.

    Takes a registry loader's arguments (`spec`, `data_dir`, `download`, `log`) and needs none of them."""
    n = COUNT[split]
    rng = np.random.default_rng(SEED[split])
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    angle = np.deg2rad(18.0 * labels + rng.uniform(-4, 4, n))[:, None, None]
    cx, cy = (SIZE - 1) / 2 + rng.uniform(-2, 2, (2, n))[:, :, None, None]
    half_len = rng.uniform(8, 10, n)[:, None, None]
    half_width = rng.uniform(1.0, 1.6, n)[:, None, None]

    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dx, dy = x[None] - cx, y[None] - cy
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    dist = np.hypot(np.maximum(np.abs(along) - half_len, 0), np.maximum(np.abs(across) - half_width, 0))
    ink = np.clip(1.0 - dist, 0.0, 1.0) * 255.0
    noisy = ink + rng.normal(0.0, 12.0, ink.shape)
    images = np.clip(noisy, 0, 255).round().astype(np.uint8)
    return images[:, None], labels, list(CLASSES)
