"""Fréchet distance between Gaussians fitted to classifier features (FID, Heusel et al. 2017), with the
reference network of the dataset (metrics/reference.py) in place of Inception.

``fd_floor`` is the same distance for the same number of real training images against the test set
(for a folder: its two halves, metrics/cache.py): the value a perfect generator would get, given
finite-sample bias at this N.
"""

from __future__ import annotations

import numpy as np
import torch

from ganimate.metrics.cache import cached_arrays, data_identity, real_images
from ganimate.metrics.classifier import embed, load_reference, reference_info


def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64; needs at least two rows."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need features (N >= 2, D), got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), by symmetric eigendecompositions in float64.

    Equal to the usual tr(S1 + S2 - 2 sqrtm(S1 S2)) but stable for singular covariances (no complex parts).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)
    return max(value, 0.0)


def real_features(dataset: str, split: str, n: int, data_dir: str | None = None, *, reference=None,
                  real: dict | None = None) -> dict[str, np.ndarray]:
    """Reference-network features of the first `n` real images of a split, with their mean and covariance,
    from the stats cache (computed once per dataset, split, n, network weights and, for folders, data).

    reference: a `metrics.reference.Reference` (default: the dataset's shipped classifier); real: the
    image format and folder settings for `real_images` (image_size, channels, labels, crop; default native).
    """
    real = real or {}

    def compute() -> dict[str, np.ndarray]:
        images, _ = real_images(dataset, split, n, data_dir=data_dir, **real)
        model = reference.model if reference is not None else load_reference(dataset)
        feats, _ = embed(model, images)
        mu, sigma = feature_stats(feats)
        return {"features": feats.numpy(), "mu": mu, "sigma": sigma}

    return cached_arrays({"kind": "features", "dataset": dataset, "split": split, "n": n,
                          **features_key(dataset, reference, real)}, compute)


def features_key(dataset: str, reference=None, real: dict | None = None) -> dict:
    """The cache-key parts that identify a feature space and its real data: the network's sha256, a non-native
    image format, and a folder's data identity (nothing more for a built-in dataset at its own format)."""
    real = real or {}
    sha = reference.sha256 if reference is not None else reference_info(dataset)["sha256"]
    extra = {k: v for k, v in real.items() if k in ("image_size", "channels") and v is not None}
    return {"classifier": sha, **extra, **data_identity(dataset, **real)}


def real_sets(n_gen: int, dataset: str, data_dir: str | None = None, *, reference=None, real: dict | None = None):
    """(N, test features, train features) for scoring `n_gen` generated images: the first N = min(n_gen, test
    size) real test images (a folder: its held-out half) and as many training images (a folder: the other half)."""
    real = real or {}
    n = min(n_gen, len(real_images(dataset, "test", data_dir=data_dir, **real)[0]))
    test = real_features(dataset, "test", n, data_dir, reference=reference, real=real)
    train = real_features(dataset, "train", n, data_dir, reference=reference, real=real)
    return n, test, train


def fd(gen_features: torch.Tensor, dataset: str, data_dir: str | None = None, *, reference=None,
       real: dict | None = None) -> dict:
    """FD of generated features against the first N real test images (N = number of generated
    features, at most the test set's size), and the real-training-vs-test floor at the same N."""
    n, test, train = real_sets(len(gen_features), dataset, data_dir, reference=reference, real=real)
    mu, sigma = feature_stats(gen_features)
    return {
        "fd": frechet_distance(mu, sigma, test["mu"], test["sigma"]),
        "fd_floor": frechet_distance(train["mu"], train["sigma"], test["mu"], test["sigma"]),
        "fd_real_n": n,
    }
