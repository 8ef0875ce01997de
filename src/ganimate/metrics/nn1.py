"""The 1-nearest-neighbour test of the DCGAN paper (Radford et al. 2015, §8.1 / Table 3 style):
fit a 1-NN classifier on raw pixels of N generated labelled samples and report its error on the real
test set, beside the same classifier fitted on N real training images.

Distances are exact: pixels are shifted to -128..127, so every product and every partial sum of a
dot product over at most 1024 pixels is an integer below 2**24 and float32 matrix products are
exact; norms and the final |b|^2 - 2ab comparisons are done in int64. Ties go to the lowest index.
"""

from __future__ import annotations

import torch

from ganimate.metrics.cache import cached_arrays, data_identity, real_images

_BLOCK = 1024  # 1024 * 128 * 128 == 2**24


def _centred(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.uint8:
        raise TypeError(f"nn1 works on uint8 pixels, got {x.dtype}")
    return x.reshape(len(x), -1).to(torch.float32).sub_(128)


def nn1_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Label of each test image's nearest training image (squared Euclidean distance on uint8 pixels)."""
    a, b = _centred(test_x), _centred(train_x)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"test images have {a.shape[1]} pixels, training images {b.shape[1]}")
    blocks = [slice(i, i + _BLOCK) for i in range(0, b.shape[1], _BLOCK)]
    b_blocks_t = [b[:, s].T.contiguous() for s in blocks]
    b_norm = b.to(torch.int64).pow_(2).sum(1)  # (N,)
    nearest = torch.empty(len(a), dtype=torch.int64)
    for i in range(0, len(a), chunk):
        ab = torch.zeros(min(chunk, len(a) - i), len(b), dtype=torch.int64)
        for s, bt in zip(blocks, b_blocks_t, strict=True):
            ab += (a[i : i + chunk, s] @ bt).to(torch.int64)
        nearest[i : i + chunk] = ab.mul_(-2).add_(b_norm).argmin(dim=1)
    return train_y[nearest]


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
    out = {}
    for n in sizes:
        out[f"nn1_error_{n}"] = nn1_error(gen_x[:n], gen_y[:n], test_x, test_y)
        if real_error is not None:
            out[f"nn1_real_error_{n}"] = real_error(n)
    return out
