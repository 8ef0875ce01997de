"""Moving MNIST (Srivastava et al. 2015): 28x28 digits bouncing inside a square canvas, made on the fly.

Clips are uint8 arrays (N, T, 1, S, S). Training clips use digits of the MNIST training split and test
clips digits of the test split, so a model is scored on digits it never saw. A clip is a function of
its seed alone: each digit starts at a uniform position, moves in a uniform direction by a tenth of the
free space per frame (the standard generator's step: 3.6 px on the 64 canvas, 0.4 px on 32), and bounces
off the canvas walls; positions are sub-pixel (bilinear), overlapping digits combine with a maximum.

`read_moving_mnist_npy` reads the standard `mnist_test_seq.npy` (20 x 10000 x 64 x 64, uint8).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganimate.errors import DataError

DIGIT = 28
SIZES = (32, 48, 64)
NPY_PREFIX = "npy:"
MOVING_DATASETS = {"moving-mnist": "mnist", "moving-synthetic": "synthetic"}  # clip dataset -> its digits' dataset


def clip_dataset_names() -> list[str]:
    """The clip dataset specs the clip trainers accept, as shown in messages."""
    return [*MOVING_DATASETS, f"{NPY_PREFIX}PATH"]


def is_clip_dataset(spec: str) -> bool:
    return spec in MOVING_DATASETS or spec.startswith(NPY_PREFIX)


def default_speed(size: int) -> tuple[float, float]:
    """Per-frame speed range in pixels: a tenth of the free space, as in the standard generator (3.6 px on
    the 64 canvas, 0.4 px on the 32 one)."""
    step = 0.1 * (size - DIGIT)
    return step, step


def trajectories(n: int, frames: int, size: int, digits: int, rng: np.random.Generator,
                 speed: tuple[float, float] | None = None) -> np.ndarray:
    """Top-left corners of each digit, float (n, digits, frames, 2) in [0, size - 28], bouncing off the walls."""
    room = size - DIGIT
    if room < 0:
        raise DataError(f"canvas {size} is smaller than a {DIGIT}x{DIGIT} digit")
    lo, hi = speed or default_speed(size)
    pos = rng.uniform(0, room, (n, digits, 2))
    angle = rng.uniform(0, 2 * np.pi, (n, digits))
    v = rng.uniform(lo, hi, (n, digits))[..., None] * np.stack([np.sin(angle), np.cos(angle)], -1)
    return bounce(pos, v, frames, room)


def bounce(pos: np.ndarray, v: np.ndarray, frames: int, room: float) -> np.ndarray:
    """Paths (..., frames, 2) from start positions and per-frame velocities (..., 2), mirrored at 0 and room."""
    out = np.empty((*pos.shape[:-1], frames, 2))
    for t in range(frames):
        out[..., t, :] = pos
        pos = pos + v
        for _ in range(4):  # fast digits on a small canvas can cross it more than once per frame
            low, high = pos < 0, pos > room
            pos = np.where(low, -pos, np.where(high, 2 * room - pos, pos))
            v = np.where(low | high, -v, v)
    return np.clip(out, 0, room)


def render(digit_images: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Paste digits (n, digits, 28, 28) at float corners (n, digits, T, 2) -> uint8 clips (n, T, 1, size, size).

    A digit at a fractional position is bilinearly resampled, so motion is smooth however slow; all of its
    ink stays on the canvas. Several digits combine with a pixel-wise maximum.
    """
    n, k, frames = corners.shape[:3]
    clips = np.zeros((n, frames, 1, size, size), dtype=np.uint8)
    layer = np.zeros((size, size))
    for i in range(n):
        for t in range(frames):
            frame = clips[i, t, 0]
            for d in range(k):
                img = digit_images[i, d].astype(np.float64)
                (y, x), layer[:] = corners[i, d, t], 0.0
                y0, x0 = min(int(y), size - DIGIT), min(int(x), size - DIGIT)
                fy, fx = y - y0, x - x0
                for dy, wy in ((0, 1 - fy), (1, fy)):
                    for dx, wx in ((0, 1 - fx), (1, fx)):
                        if wy * wx > 1e-9:
                            layer[y0 + dy : y0 + dy + DIGIT, x0 + dx : x0 + dx + DIGIT] += wy * wx * img
                np.maximum(frame, np.clip(np.rint(layer), 0, 255).astype(np.uint8), out=frame)
    return clips


class ClipSource:
    """Anything with `clips(n, seed) -> (uint8 (n, T, 1, S, S), labels or None)` gets seeded batches."""

    def clips(self, n: int, seed: int):
        raise NotImplementedError

    def batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[np.ndarray]:
        """Endless training batches; batch i is `clips(batch_size, hash(seed, i))[0]`, so a resume at
        batch `start` sees exactly the batches an uninterrupted run would have seen."""
        i = start
        while True:
            yield self.clips(batch_size, seed * 1_000_003 + i)[0]
            i += 1


@dataclass
class MovingMNIST(ClipSource):
    """Clip generator over a pool of 28x28 digit images (uint8 (M, 28, 28)) with their labels (M,)."""

    images: np.ndarray
    labels: np.ndarray
    size: int = 64
    frames: int = 20
    digits: int = 2
    speed: tuple[float, float] | None = None

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 3 or self.images.shape[1:] != (DIGIT, DIGIT):
            raise DataError(f"digit images must be uint8 (M, 28, 28), got {self.images.dtype} {self.images.shape}")
        if self.size < DIGIT:
            raise DataError(f"--size {self.size} is smaller than a {DIGIT}x{DIGIT} digit")
        if self.frames < 3:
            raise DataError(f"--frames must be at least 3, got {self.frames}")
        if self.digits not in (1, 2):
            raise DataError(f"--digits must be 1 or 2, got {self.digits}")

    @classmethod
    def from_dataset(cls, name: str, split: str, *, data_dir=None, **kw) -> MovingMNIST:
        """Digits of one split of a 28x28 grey dataset (mnist; synthetic for tests) as the pool."""
        from ganimate.data import load_dataset

        ds = load_dataset(name, split, data_dir=data_dir, log=lambda _: None)
        if ds.image_size != DIGIT or ds.channels != 1:
            raise DataError(f"{name} does not hold 28x28 grey digits")
        return cls(ds.images[:, 0].numpy(), ds.labels.numpy(), **kw)

    def clips(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` clips uint8 (n, T, 1, S, S) and their digit labels int64 (n, digits), a function of `seed`."""
        clips, labels, _ = self.clips_with_paths(n, seed)
        return clips, labels

    def clips_with_paths(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`clips(n, seed)` and the digits' true top-left corners, float (n, digits, T, 2) as (y, x)."""
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(self.images), (n, self.digits))
        corners = trajectories(n, self.frames, self.size, self.digits, rng, self.speed)
        return render(self.images[pick], corners, self.size), self.labels[pick].astype(np.int64), corners



def read_moving_mnist_npy(path: str | Path) -> np.ndarray:
    """The standard `mnist_test_seq.npy` (T, N, 64, 64) uint8 -> clips uint8 (N, T, 1, 64, 64)."""
    path = Path(path)
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy file ({' '.join(str(e).split())[:100]})") from None
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[2] != data.shape[3] or data.shape[0] < 3:
        raise DataError(
            f"{path} holds {data.dtype} {tuple(data.shape)}; a Moving MNIST file is uint8 (frames, clips, H, W) "
            f"like mnist_test_seq.npy (20, 10000, 64, 64)"
        )
    return np.ascontiguousarray(np.asarray(data).transpose(1, 0, 2, 3)[:, :, None])


@dataclass
class ClipArray(ClipSource):
    """Fixed clips (N, T0, 1, S, S) served like `MovingMNIST`: random clips, first `frames` frames, no labels."""

    data: np.ndarray
    frames: int

    def __post_init__(self):
        if self.frames > self.data.shape[1]:
            raise DataError(f"--frames {self.frames} is more than the {self.data.shape[1]} frames of the clips")
        if len(self.data) == 0:
            raise DataError("no clips to draw from")

    @classmethod
    def from_npy(cls, path: str | Path, split: str, frames: int, size: int) -> ClipArray:
        """The standard file's clips, the first 90% as the training split and the rest as the test split."""
        data = read_moving_mnist_npy(path)
        if data.shape[-1] != size:
            raise DataError(f"{path} holds {data.shape[-1]}x{data.shape[-1]} frames; use --size {data.shape[-1]}")
        cut = int(len(data) * 0.9)
        return cls(data[:cut] if split == "train" else data[cut:], frames)

    def clips(self, n: int, seed: int) -> tuple[np.ndarray, None]:
        pick = np.random.default_rng(seed).integers(0, len(self.data), n)
        return self.data[pick, : self.frames], None



def clip_source(dataset: str, split: str, *, size: int, frames: int, digits: int, data_dir=None):
    """`moving-mnist` (MNIST digits), `moving-synthetic` (the synthetic bars, for tests) or `npy:PATH`."""
    if dataset.startswith(NPY_PREFIX):
        return ClipArray.from_npy(dataset[len(NPY_PREFIX):], split, frames, size)
    if dataset not in MOVING_DATASETS:
        raise DataError(f"unknown clip dataset {dataset!r}: use one of {', '.join(clip_dataset_names())}")
    return MovingMNIST.from_dataset(MOVING_DATASETS[dataset], split, data_dir=data_dir, size=size, frames=frames,
                                    digits=digits)
