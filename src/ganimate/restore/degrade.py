"""Degradations of the restoration tasks, defined in code and seeded.

Images are float tensors (N, C, H, W) in [0, 1]; "pixel range" means that interval.

- ``sr``: area-average downscaling by ``factor`` (28x28 -> 7x7 for 4); the observation is the small image.
- ``denoise``: additive Gaussian noise of standard deviation ``sigma``, clipped to [0, 1].
- ``deblur``: convolution with a normalised Gaussian kernel (``blur_sigma`` px, zero padding) plus
  Gaussian noise of ``blur_noise``, clipped.

A model sees every observation at full size (`to_full`: pixel replication for ``sr``, which keeps the
low-resolution information exactly); the classical baselines work on the observation itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganimate.errors import GanimateError

TASKS = ("sr", "denoise", "deblur")
TEST_SEED = 12345  # the fixed seed of the degraded test split: every method sees the same inputs


@dataclass(frozen=True)
class Degradation:
    """One task and its parameters."""

    task: str
    factor: int = 4
    sigma: float = 0.2
    blur_sigma: float = 1.5
    blur_noise: float = 0.01

    def __post_init__(self):
        if self.task not in TASKS:
            raise GanimateError(f"unknown task {self.task!r}: choose from {', '.join(TASKS)}")
        if self.factor not in (2, 4):
            raise GanimateError(f"--factor must be 2 or 4, got {self.factor}")
        if not 0 < self.sigma <= 1:
            raise GanimateError(f"--sigma must lie in (0, 1] (a share of the pixel range), got {self.sigma}")
        if not 0 < self.blur_sigma <= 5:
            raise GanimateError(f"--blur-sigma must lie in (0, 5] pixels, got {self.blur_sigma}")
        if not 0 <= self.blur_noise < 1:
            raise GanimateError(f"--blur-noise must lie in [0, 1), got {self.blur_noise}")

    @classmethod
    def of(cls, cfg) -> Degradation:
        """The degradation of a config with task, factor, sigma, blur_sigma and blur_noise fields."""
        return cls(cfg.task, cfg.factor, cfg.sigma, cfg.blur_sigma, cfg.blur_noise)

    def describe(self) -> str:
        if self.task == "sr":
            return f"x{self.factor} super-resolution (area downscaling)"
        if self.task == "denoise":
            return f"Gaussian noise sigma {self.sigma:g} of the pixel range, clipped"
        return f"Gaussian blur sigma {self.blur_sigma:g} px + noise sigma {self.blur_noise:g}"

    def check_size(self, image_size: int) -> None:
        if self.task == "sr" and image_size % self.factor:
            raise GanimateError(f"x{self.factor} super-resolution needs an image size divisible by {self.factor}, "
                                f"got {image_size}")

    def observed_size(self, image_size: int) -> int:
        """Side of the observation a restorer is given (the small image for sr)."""
        return image_size // self.factor if self.task == "sr" else image_size


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian (K, K), K = 2 * ceil(3 sigma) + 1, float64."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) with zero padding (the dark background of MNIST-like images)."""
    k = gaussian_kernel(sigma).to(x.dtype)
    c = x.shape[1]
    weight = k.expand(c, 1, *k.shape).contiguous()  # (C, 1, K, K), one kernel per channel
    return F.conv2d(x, weight, padding=k.shape[-1] // 2, groups=c)


def degrade(x: torch.Tensor, deg: Degradation, gen: torch.Generator) -> torch.Tensor:
    """Clean (N, C, H, W) in [0, 1] -> the observation: (N, C, H/f, W/f) for sr, else (N, C, H, W)."""
    if deg.task == "sr":
        return F.avg_pool2d(x, deg.factor)
    if deg.task == "denoise":
        return (x + deg.sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)).clamp_(0, 1)
    y = blur(x, deg.blur_sigma)
    if deg.blur_noise > 0:
        y = y + deg.blur_noise * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    return y.clamp_(0, 1)


def to_full(obs: torch.Tensor, image_size: int) -> torch.Tensor:
    """An observation at the model's size: pixel replication for a small (sr) observation."""
    if obs.shape[-1] == image_size:
        return obs
    return F.interpolate(obs, size=(image_size, image_size), mode="nearest")


def degraded_split(images: torch.Tensor, deg: Degradation, seed: int = TEST_SEED) -> torch.Tensor:
    """The fixed observations of a split: uint8 (N, C, H, W) -> float observations, the same for a seed."""
    gen = torch.Generator().manual_seed(seed)
    return degrade(images.float() / 255, deg, gen)
