"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models"): k-NN hyperspheres around each feature vector estimate the real and the
generated manifolds; precision is the share of generated samples inside the real manifold, recall the
share of real samples inside the generated one. k = 3 as in the paper.
"""

from __future__ import annotations

import torch


def knn_radii(x: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (N,), computed in row chunks."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} points, got {len(x)}")
    x = x.float()
    out = torch.empty(len(x))
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out[i : i + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the point itself
    return out


def inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each query (M,): does it lie within radii[j] of some centre j?"""
    queries, centres = queries.float(), centres.float()
    out = torch.empty(len(queries), dtype=torch.bool)
    for i in range(0, len(queries), chunk):
        d = torch.cdist(queries[i : i + chunk], centres)
        out[i : i + chunk] = (d <= radii[None, :]).any(dim=1)
    return out


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024,
                     real_radii: torch.Tensor | None = None) -> dict:
    """{"precision", "recall"} of feature sets real (N, D) and fake (M, D); `real_radii` (N,), if given, are
    `knn_radii(real, k)` computed before (evaluate.py caches them with the real features)."""
    real, fake = torch.as_tensor(real).float(), torch.as_tensor(fake).float()
    radii = knn_radii(real, k, chunk) if real_radii is None else torch.as_tensor(real_radii).float()
    precision = inside(fake, real, radii, chunk).double().mean()
    recall = inside(real, fake, knn_radii(fake, k, chunk), chunk).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def per_class(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
              num_classes: int, k: int = 3, chunk: int = 1024) -> dict:
    """Precision and recall of each class on its own: the real images of class c against the samples drawn for
    class c, each set's k-NN manifold estimated within the class. An average hides a class that collapsed; this
    does not. {"precision_per_class", "recall_per_class"}: lists of K floats, NaN where a class has k or fewer
    images on either side."""
    real, fake = torch.as_tensor(real).float(), torch.as_tensor(fake).float()
    real_labels, fake_labels = torch.as_tensor(real_labels), torch.as_tensor(fake_labels)
    precision, recall = [], []
    for c in range(num_classes):
        r, f = real[real_labels == c], fake[fake_labels == c]
        if len(r) <= k or len(f) <= k:
            precision.append(float("nan"))
            recall.append(float("nan"))
            continue
        out = precision_recall(r, f, k, chunk)
        precision.append(out["precision"])
        recall.append(out["recall"])
    return {"precision_per_class": precision, "recall_per_class": recall}
