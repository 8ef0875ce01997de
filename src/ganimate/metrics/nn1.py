"""The 1-nearest-neighbour test of the DCGAN paper (Radford et al. 2015, §8.1 / Table 3 style):
fit a 1-NN classifier on raw pixels of N generated labelled samples and report its error on the real
test set, beside the same classifier fitted on N real training images.

Distances are exact: pixels are shifted to -128..127, which fit int8, and the dot products are
integer matrix products (`torch._int_mm`, int8 in, int32 out, where this PyTorch has it on the CPU:
4-5x the float32 rate on CPUs with VNNI, bench/RESULTS.md). Elsewhere every product and every partial
sum of a dot product over at most 1024 pixels is an integer below 2**24, so float32 matrix products of
1024-pixel blocks are exact too. Either way the blocks are summed and compared with the norms as
integers (int32 while they fit, else int64). Ties go to the lowest index. One pass over the training
images serves every N: the nearest among the first N is tracked as the columns are walked in order.
"""

from __future__ import annotations

import functools
import time

import torch

from ganimate.metrics.cache import cached_arrays, data_identity, real_images

_BLOCK = 1024  # float32: 1024 * 128 * 128 == 2**24, the last integer float32 holds exactly
_INT8_BLOCK = 65536  # int8 -> int32: 65536 * 128 * 128 == 2**30


@functools.cache
def int8_matmul() -> bool:
    """Whether nn1 multiplies int8 matrices here: `torch._int_mm` exists on this PyTorch's CPU (2.4 and later),
    is exact, and beats float32 (4-5x on CPUs with VNNI; 20-50x slower without, bench/RESULTS.md). Timed once
    per process on a 256 x 1024 x 1024 product; either answer gives the same distances."""
    a = torch.arange(256 * 1024, dtype=torch.int32).remainder_(251).sub_(125).to(torch.int8).reshape(256, 1024)
    b = a[:, :256].T.contiguous().repeat(4, 4)  # (1024, 1024)
    try:
        exact = torch.equal(torch._int_mm(a[:8], b[:, :8].contiguous()).long(), a[:8].long() @ b[:, :8].long())
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    af, bf = a.float(), b.float()
    return exact and _seconds(lambda: torch._int_mm(a, b)) < _seconds(lambda: af @ bf)


def _seconds(f, repeats: int = 3) -> float:
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def _centred(x: torch.Tensor, int8: bool) -> torch.Tensor:
    """uint8 images (N, ...) -> pixels shifted to -128..127, (N, D) int8 or float32."""
    if x.dtype != torch.uint8:
        raise TypeError(f"nn1 works on uint8 pixels, got {x.dtype}")
    x = x.reshape(len(x), -1)
    return x.bitwise_xor(128).view(torch.int8) if int8 else x.to(torch.float32).sub_(128)


def _dense(x: torch.Tensor) -> torch.Tensor:
    """A row-major copy of a 2-D tensor with canonical strides: `.contiguous()` keeps odd strides on dimensions
    of size 1, which `torch._int_mm` reads as its leading dimension."""
    return torch.empty(x.shape, dtype=x.dtype).copy_(x)


def nearest(train_x: torch.Tensor, test_x: torch.Tensor, sizes: list[int] | None = None, chunk: int = 512,
            cols: int = 4096, int8: bool | None = None) -> dict[int, torch.Tensor]:
    """{N: index (M,) of each test image's nearest among the first N training images} for each N of `sizes`
    (default: all of them; an N above their count means all), by squared Euclidean distance on uint8 pixels.

    Test rows go in chunks of `chunk`, training columns in tiles of `cols`, so memory stays bounded. `int8`:
    integer matrix products (default: where `int8_matmul()`), else exact float32 ones; the result is the same.
    """
    int8 = int8_matmul() if int8 is None else int8
    a, b = _centred(test_x, int8), _centred(train_x, int8)  # (M, D), (N, D)
    n, d = b.shape
    if a.shape[1] != d:
        raise ValueError(f"test images have {a.shape[1]} pixels, training images {d}")
    ends = sorted({min(s, n) for s in (sizes or [n])})
    acc = torch.int32 if 3 * d * 128 * 128 < 2**31 else torch.int64  # |b|^2 + 2 |a.b| fits
    step = _INT8_BLOCK if int8 else _BLOCK
    blocks = [slice(i, i + step) for i in range(0, d, step)]
    b_norm = b.to(torch.int64).pow_(2).sum(1).to(acc)  # (N,)
    tiles = [slice(c, min(c + cols, end)) for start, end in zip([0, *ends[:-1]], ends, strict=True)
             for c in range(start, end, cols)]
    # each tile's pixel blocks, transposed once: (D_block, t), the layout the matrix products read fastest
    tile_t = [[_dense(b[tile, s].T) for s in blocks] for tile in tiles]
    del b
    out = {end: torch.zeros(len(a), dtype=torch.int64) for end in ends}
    for i in range(0, len(a), chunk):
        rows = [_dense(a[i : i + chunk, s]) for s in blocks]  # (m, D_block) each
        best = torch.full((len(rows[0]),), torch.iinfo(acc).max, dtype=acc)  # (m,)
        best_j = torch.zeros(len(rows[0]), dtype=torch.int64)
        for tile, parts in zip(tiles, tile_t, strict=True):
            ab = None
            for r, t in zip(rows, parts, strict=True):
                part = (torch._int_mm(r, t) if int8 else r @ t).to(acc)  # (m, t), exact
                ab = part if ab is None else ab.add_(part)
            value, j = torch.sub(b_norm[tile], ab, alpha=2).min(1)  # |b|^2 - 2 a.b; the first of equals
            closer = value < best  # strictly: an equal distance further on keeps the lower index
            best = torch.where(closer, value, best)
            best_j = torch.where(closer, j + tile.start, best_j)
            if tile.stop in out:  # the nearest among the first tile.stop training images is known
                out[tile.stop][i : i + chunk] = best_j
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
