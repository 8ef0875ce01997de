"""Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for Conditional
Generative Models"): train a fresh classifier only on generated labelled samples, test it on real data.

The classifier is `SmallCNN` with a fixed, seeded budget (`CAS_BUDGET`: 300 AdamW steps of 128 images,
about 4 epochs of 10,000 samples, whatever N is; warm-up and cosine decay of the learning rate; random
shifts of up to 2 px; about 33 s on 2 AVX2 CPU cores, see bench/RESULTS.md). ``cas_real`` is the same recipe
on N real training images, the score a perfect generator would get.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch

from ganimate.metrics.cache import cached_arrays, data_identity, real_images
from ganimate.metrics.classifier import NetSpec, TrainBudget, accuracy, train_classifier

CAS_BUDGET = TrainBudget(steps=300, batch_size=128, lr=3e-3)


def cas(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
        num_classes: int, seed: int = 0, budget: TrainBudget | None = None, stop: threading.Event | None = None
        ) -> float:
    """Real-test accuracy of a SmallCNN trained with `budget` (default `CAS_BUDGET`) on uint8 images
    train_x and labels train_y (`stop`: see `train_classifier`)."""
    budget = budget or CAS_BUDGET
    spec = NetSpec(channels=train_x.shape[1], image_size=train_x.shape[2], num_classes=num_classes)
    model = train_classifier(train_x, train_y, spec, budget, seed=seed, stop=stop)
    return accuracy(model, test_x, test_y)


def cas_real(dataset: str, n: int, num_classes: int, *, seed: int = 0, data_dir: str | None = None,
             image_size: int | None = None, channels: int | None = None, budget: TrainBudget | None = None,
             labels: str = "auto", crop: str = "center", stop: threading.Event | None = None) -> float:
    """CAS of the first `n` real training images (cached per dataset, n, seed, budget, image format and thread
    count, which changes the float path; a folder also by its data identity, its "train" half training and its
    held-out half testing, see cache.py)."""
    budget = budget or CAS_BUDGET
    folder = dict(labels=labels, crop=crop)

    def compute():
        kw = dict(data_dir=data_dir, image_size=image_size, channels=channels, **folder)
        train_x, train_y = real_images(dataset, "train", n, **kw)
        test_x, test_y = real_images(dataset, "test", **kw)
        return {"accuracy": np.float64(cas(train_x, train_y, test_x, test_y, num_classes, seed, budget, stop))}

    parts = {"kind": "cas_real", "dataset": dataset, "n": n, "seed": seed, "budget": dataclasses.asdict(budget),
             "image_size": image_size, "channels": channels, "torch": torch.__version__.split("+")[0],
             "memory_format": "channels_last",  # as `cas` trains now (classifier.SmallCNN)
             "threads": torch.get_num_threads(),  # the float path, as `cas` beside it trains (one thread of two)
             **data_identity(dataset, image_size=image_size, channels=channels, **folder)}
    return float(cached_arrays(parts, compute)["accuracy"])
