"""The 1-nearest-neighbour test of the DCGAN paper (Radford et al. 2015, §8.1 / Table 3 style):
fit a 1-NN classifier on raw pixels of N generated labelled samples and report its error on the real
test set, beside the same classifier fitted on N real training images.

Distances are exact: pixels are shifted to -128..127, so every product and every partial sum of a
dot product over at most 1024 pixels is an integer below 2**24 and float32 matrix products are
exact; those are summed and compared with the norms as integers (int32 while they fit, else int64).
Ties go to the lowest index. One pass over the training images serves every N: the nearest among the
first N is tracked as the columns are walked in order.
"""

from __future__ import annotations

import torch

from ganimate.metrics.cache import cached_arrays, data_identity, real_images

_BLOCK = 1024  # 1024 * 128 * 128 == 2**24


def _centred(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        raise TypeError(f"nn1 works on uint8 pixels, got {x.dtype}")
    return x.reshape(len(x), -1).to(torch.float32).sub_(128)


def nearest(train_x: torch.Tensor, test_x: torch.Tensor, sizes: list[int] | None = None, chunk: int = 512,
            cols: int = 4096) -> dict[int, torch.Tensor]:
    """{N: index (M,) of each test image's nearest among the first N training images} for each N of `sizes`
    (default: all of them; an N above their count means all), by squared Euclidean distance on uint8 pixels.

    Test rows go in chunks of `chunk`, training columns in tiles of `cols`, so memory stays bounded.
    """
    a, b = _centred(test_x), _centred(train_x)  # (M, D), (N, D)
    n, d = b.shape
    if a.shape[1] != d:
        raise ValueError(f"test images have {a.shape[1]} pixels, training images {d}")
    ends = sorted({min(s, n) for s in (sizes or [n])})
    acc = torch.int32 if 3 * d * 128 * 128 < 2**31 else torch.int64  # |b|^2 + 2 |a.b| fits
    blocks = [slice(i, i + _BLOCK) for i in range(0, d, _BLOCK)]
    b_norm = b.to(torch.int64).pow_(2).sum(1).to(acc)  # (N,)
    out = {end: torch.zeros(len(a), dtype=torch.int64) for end in ends}
    for i in range(0, len(a), chunk):
        rows = a[i : i + chunk]  # (m, D)
        best = torch.full((len(rows),), torch.iinfo(acc).max, dtype=acc)  # (m,)
        best_j = torch.zeros(len(rows), dtype=torch.int64)
        start = 0
        for end in ends:
            for c in range(start, end, cols):
                tile = slice(c, min(c + cols, end))
                ab = None
                for s in blocks:
                    part = (rows[:, s] @ b[tile, s].T).to(acc)  # (m, t), exact
                    ab = part if ab is None else ab.add_(part)
                value, j = torch.sub(b_norm[tile], ab, alpha=2).min(1)  # |b|^2 - 2 a.b; the first of equals
                closer = value < best  # strictly: an equal distance further on keeps the lower index
                best = torch.where(closer, value, best)
                best_j = torch.where(closer, j + c, best_j)
            start = end
            out[end][i : i + chunk] = best_j
    return out


def nn1_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Label of each test image's nearest training image (squared Euclidean distance on uint8 pixels)."""
    return train_y[nearest(train_x, test_x, chunk=chunk)[len(train_x)]]


def nn1_error(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> float:
    """Test error of 1-NN fitted on (train_x, train_y)."""
    return float((nn1_predict(train_x, train_y, test_x) != test_y).double().mean())


def nn1_real_error(dataset: str, n: int, *, data_dir: str | None = None, image_size: int | None = None,
                   channels: int | None = None, labels: str = "auto", crop: str = "center") -> float:
    """1-NN test error when fitted on the first `n` real training images (cached; a folder: see cache.py)."""
    kw = dict(data_dir=data_dir, image_size=image_size, channels=channels, labels=labels, crop=crop)

    def compute():
        train_x, train_y = real_images(dataset, "train", n, **kw)
        test_x, test_y = real_images(dataset, "test", **kw)
        return {"error": torch.tensor(nn1_error(train_x, train_y, test_x, test_y), dtype=torch.float64).numpy(),
                "n": torch.tensor(len(train_x)).numpy()}

    parts = {"kind": "nn1_real", "dataset": dataset, "n": n, "image_size": image_size, "channels": channels,
             **data_identity(dataset, **kw)}
    return float(cached_arrays(parts, compute)["error"])


def nn1(gen_x: torch.Tensor, gen_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, sizes: list[int],
        real_error=None) -> dict:
    """For each N in `sizes`: 1-NN test error fitted on the first N generated samples
    (``nn1_error_N``) and, when `real_error(N)` is given, on N real training images (``nn1_real_error_N``)."""
    found = nearest(gen_x[: max(sizes)], test_x, sizes)  # one pass for every N
    out = {}
    for n in sizes:
        out[f"nn1_error_{n}"] = float((gen_y[found[min(n, len(gen_x))]] != test_y).double().mean())
        if real_error is not None:
            out[f"nn1_real_error_{n}"] = real_error(n)
    return out
