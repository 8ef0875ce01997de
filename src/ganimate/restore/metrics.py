"""Restoration metrics, registered under the task "restore" of the metric registry (metrics/registry.py).

PSNR and SSIM (Wang et al. 2004) from `ganimate.metrics.pixel`; sharpness (gradient energy relative to
the clean images); and, where the dataset has a reference classifier, its class accuracy on restored
images and the Fréchet distance of restored vs clean features (the FID recipe of Heusel et al. 2017 in
`ganimate.metrics` classifier features). Each is a plain function of a `RestoreContext` returning a dict;
`score` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganimate.data import has_reference_classifier
from ganimate.metrics.classifier import embed, load_reference
from ganimate.metrics.fd import feature_stats, frechet_distance
from ganimate.metrics.pixel import psnr, ssim
from ganimate.metrics.registry import Row, compute_metrics, fmt, metrics_for, register_metric

TASK = "restore"


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute finite-difference gradient of images (N, C, H, W): how much edge they hold."""
    x = x.double()
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def to_uint8_nchw(x: torch.Tensor) -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] -> uint8 (N, C, H, W), as a PNG would store it."""
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


@dataclass
class RestoreContext:
    """Restored and clean float images (N, C, H, W) in [0, 1], the clean labels, and lazy classifier outputs."""

    restored: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor | None
    dataset: str
    clean_stats: tuple[np.ndarray, np.ndarray] | None = None  # (mu, sigma) of the clean features
    _embedded: tuple[torch.Tensor, torch.Tensor] | None = None

    def embedded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the restored images as 8-bit images under the reference classifier."""
        if self._embedded is None:
            self._embedded = embed(load_reference(self.dataset), to_uint8_nchw(self.restored))
        return self._embedded


def _classifier_problem(ctx: RestoreContext) -> str | None:
    if ctx.labels is None:
        return "needs labelled test images"
    return None if has_reference_classifier(ctx.dataset) else f"no reference classifier for {ctx.dataset}"


@register_metric("psnr", task=TASK, rows=lambda r: [Row("PSNR dB", fmt(r.get("psnr"), ".2f"))],
                 about="mean PSNR in dB (metrics.pixel, capped at 60)")
def psnr_metric(ctx: RestoreContext) -> dict:
    return {"psnr": float(psnr(ctx.restored, ctx.clean).mean())}


@register_metric("ssim", task=TASK, rows=lambda r: [Row("SSIM", fmt(r.get("ssim"), ".3f"))],
                 about="mean SSIM (metrics.pixel, scikit-image's defaults)")
def ssim_metric(ctx: RestoreContext) -> dict:
    return {"ssim": float(ssim(ctx.restored, ctx.clean).mean())}


@register_metric("sharpness", task=TASK, rows=lambda r: [Row("sharpness", fmt(r.get("sharpness"), ".2f"))],
                 about="gradient energy relative to the clean images: below 1 blurrier, above 1 noisier")
def sharpness_metric(ctx: RestoreContext) -> dict:
    return {"sharpness": float(gradient_energy(ctx.restored) / gradient_energy(ctx.clean).clamp_min(1e-12))}


@register_metric("class_acc", task=TASK, rows=lambda r: [Row("class acc", fmt(r.get("class_acc"), ".4f"))],
                 requires=(_classifier_problem,), about="reference-classifier accuracy on restored images")
def class_acc_metric(ctx: RestoreContext) -> dict:
    return {"class_acc": float((ctx.embedded()[1].argmax(1) == ctx.labels).double().mean())}


@register_metric("fd", task=TASK, rows=lambda r: [Row("FD", fmt(r.get("fd"), ".2f"))],
                 requires=(_classifier_problem,), about="Fréchet distance of restored vs clean features")
def fd_metric(ctx: RestoreContext) -> dict:
    clean_stats = ctx.clean_stats
    if clean_stats is None:
        clean_stats = feature_stats(embed(load_reference(ctx.dataset), to_uint8_nchw(ctx.clean))[0])
    return {"fd": frechet_distance(*feature_stats(ctx.embedded()[0]), *clean_stats)}


def score(restored: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor | None, dataset: str,
          clean_stats: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """psnr, ssim (means), sharpness and, where the dataset has a reference classifier and labels,
    class_acc and fd: every restore metric that applies.

    restored / clean: float (N, C, H, W) in [0, 1]; the classifier sees both as 8-bit images.
    """
    ctx = RestoreContext(restored, clean, labels, dataset, clean_stats)
    results, _, _ = compute_metrics(TASK, ctx, list(metrics_for(TASK)))
    return results
