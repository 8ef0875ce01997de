"""Class accuracy of conditional samples: how often the reference classifier assigns each generated
image the class it was asked for (overall and per class), as used for conditional GANs since
Odena et al. 2017 (AC-GAN)."""

from __future__ import annotations

import torch


def class_acc(predicted: torch.Tensor, requested: torch.Tensor, num_classes: int) -> dict:
    """{"class_acc": overall accuracy, "class_acc_per_class": [accuracy of class k, ...]} (NaN for absent classes)."""
    correct = (predicted.cpu() == requested.cpu()).double()
    counts = torch.bincount(requested.cpu(), minlength=num_classes).float()
    hits = torch.bincount(requested.cpu(), weights=correct, minlength=num_classes)
    per_class = (hits / counts).tolist()
    return {"class_acc": float(correct.mean()), "class_acc_per_class": per_class}
