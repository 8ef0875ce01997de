"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", §4): the unbiased estimate of
the squared maximum mean discrepancy between real and generated features under the cubic polynomial kernel
k(x, y) = (x·y / d + 1)³, averaged over random subsets, with its standard deviation across them.

Unlike FD it has an unbiased estimator, so it is the number to trust for small sets (below ~10k images);
for two samples of one distribution it is ~0 and can be slightly negative. Here it is computed in the
features of the dataset's reference network (metrics/reference.py) rather than Inception's.
"""

from __future__ import annotations

import numpy as np
import torch

from ganimate.metrics.cache import cached_arrays
from ganimate.metrics.fd import features_key, real_sets


def _kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(x·y / d + 1)³ for rows of x (M, D) and y (M, D) -> (M, M) float64; the product in float32 for speed."""
    d = x.shape[1]
    return (x.float() @ y.float().T).double().div_(d).add_(1).pow_(3)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² of equal-sized feature sets x (m, D) and y (m, D) under the cubic polynomial kernel."""
    m = len(x)
    k_xx, k_yy, k_xy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid(real_features: torch.Tensor, fake_features: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict:
    """{"kid", "kid_std"}: mean and standard deviation of the unbiased MMD² over `subsets` random subsets.

    Each subset draws `subset_size` rows without replacement from each set (clipped to the smaller set, at
    least 2 rows each); the draws come from a generator seeded with `seed`, so the result is reproducible.
    """
    real = torch.as_tensor(np.asarray(real_features) if not torch.is_tensor(real_features) else real_features)
    fake = torch.as_tensor(np.asarray(fake_features) if not torch.is_tensor(fake_features) else fake_features)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need features (N, D) and (M, D), got shapes {tuple(real.shape)} and {tuple(fake.shape)}")
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each set, got {len(real)} and {len(fake)}")
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    real, fake = real.float().cpu(), fake.float().cpu()
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=gen)[:m]]  # (m, D)
        y = fake[torch.randperm(len(fake), generator=gen)[:m]]  # (m, D)
        values.append(mmd2_unbiased(x, y))
    v = np.asarray(values, dtype=np.float64)
    return {"kid": float(v.mean()), "kid_std": float(v.std())}


KID_SEED = 0  # the subsets of the real-vs-real floor (cached), whatever the evaluation's seed


def kid_vs_real(gen_features: torch.Tensor, dataset: str, data_dir: str | None = None, *, reference=None,
                real: dict | None = None, seed: int = 0, subsets: int = 100, subset_size: int = 1000) -> dict:
    """{"kid", "kid_std", "kid_floor", "kid_real_n"}: KID of generated features against the same N real test
    images as FD (fd.real_sets), and the cached real-training-vs-test floor at that N. Subsets hold at most
    half of N (at most `subset_size`), so that they differ and kid_std says how much the estimate varies."""
    n, test, train = real_sets(len(gen_features), dataset, data_dir, reference=reference, real=real)
    subset_size = min(subset_size, max(2, n // 2))
    out = kid(test["features"], gen_features, subsets=subsets, subset_size=subset_size, seed=seed)

    def floor() -> dict[str, np.ndarray]:
        value = kid(test["features"], train["features"], subsets=subsets, subset_size=subset_size, seed=KID_SEED)
        return {"kid": np.float64(value["kid"])}

    parts = {"kind": "kid_floor", "dataset": dataset, "n": n, "subsets": subsets, "subset_size": subset_size,
             "seed": KID_SEED, **features_key(dataset, reference, real)}
    return {**out, "kid_floor": float(cached_arrays(parts, floor)["kid"]), "kid_real_n": n}
