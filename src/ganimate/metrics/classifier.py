"""Small CNN classifiers: the per-dataset reference networks whose penultimate layer is the feature
space of FD and precision/recall, and the same network trained from scratch for CAS.

The feature space follows the practice of FID (Heusel et al. 2017) with a domain classifier in place
of Inception, as is usual for MNIST-like data. Every network takes **uint8 images (N, C, H, W) in
0..255** and normalises them itself; float input is refused, so a caller cannot pass [-1, 1] or
[0, 1] images by mistake.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganimate.data import DATASETS, has_reference_classifier
from ganimate.errors import GanimateError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
# The datasets of the registry (ganimate.data) that name a reference classifier, as of import; the functions
# below ask the registry itself, so a dataset registered later counts too.
REFERENCE_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.reference_classifier)


@dataclass(frozen=True)
class NetSpec:
    """Shape of a `SmallCNN`: input format, conv stage widths and strides, feature size."""

    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    widths: tuple[int, ...] = (32, 32, 64, 128)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    feature_dim: int = 128

    @classmethod
    def from_dict(cls, d: dict) -> NetSpec:
        return cls(**{**d, "widths": tuple(d["widths"]), "strides": tuple(d["strides"])})


class SmallCNN(nn.Module):
    """uint8 image -> 3x3 conv + BN + ReLU stages -> dense feature layer + ReLU -> logits."""

    def __init__(self, spec: NetSpec = NetSpec()):
        super().__init__()
        self.spec = spec
        layers, c, side = [], spec.channels, spec.image_size
        for cout, stride in zip(spec.widths, spec.strides, strict=True):
            layers += [nn.Conv2d(c, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            c, side = cout, (side - 1) // stride + 1
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c * side * side, spec.feature_dim)
        self.head = nn.Linear(spec.feature_dim, spec.num_classes)
        self.to(memory_format=torch.channels_last)  # oneDNN trains it 1.3-1.8x faster so (bench/RESULTS.md)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise TypeError(f"SmallCNN takes uint8 images (N, C, H, W) in 0..255, got {x.dtype}")
        return x.to(self.fc.weight.device, torch.float32).mul_(2 / 255).sub_(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> penultimate ReLU activations (N, feature_dim)."""
        return F.relu(self.fc(self.conv(self._prepare(x)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> class logits (N, num_classes)."""
        return self.head(self.features(x))


@torch.no_grad()
def embed(model: SmallCNN, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float32 (N, D), logits float32 (N, K)) of uint8 images in one batched pass, on the CPU."""
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(images[i : i + batch_size])
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    model.train(was_training)
    if not feats:
        d, k = model.spec.feature_dim, model.spec.num_classes
        return torch.zeros(0, d), torch.zeros(0, k)
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def accuracy(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of uint8 images the model labels correctly."""
    _, logits = embed(model, images, batch_size)
    return float((logits.argmax(1) == labels.cpu()).double().mean())


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each uint8 image by its own random integer offset in [-max_shift, max_shift], zero fill."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def random_noise(x: torch.Tensor, max_sigma: float, p: float, gen: torch.Generator) -> torch.Tensor:
    """Add Gaussian pixel noise to a random share `p` of uint8 images, each with its own sigma in [0, max_sigma]."""
    if max_sigma <= 0 or p <= 0:
        return x
    b = len(x)
    sigma = torch.rand(b, generator=gen) * max_sigma * (torch.rand(b, generator=gen) < p)
    noisy = x.float() + torch.randn(x.shape, generator=gen) * sigma[:, None, None, None]
    return noisy.round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class TrainBudget:
    """A fixed training recipe: AdamW with warm-up and cosine decay of the learning rate, label smoothing,
    random shifts and (optionally) pixel noise, which keeps the classifier from reading faint background
    speckle of GAN samples (checkerboard artefacts of transposed convolutions) as ink."""

    epochs: float = 3.0
    steps: int | None = None  # if set, a fixed number of optimiser steps instead of epochs
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    max_shift: int = 2
    noise: float = 0.0
    noise_p: float = 0.5


REFERENCE_BUDGET = TrainBudget(epochs=4.0, noise=48.0)  # scripts/train_reference.py sets epochs per dataset


class Stopped(Exception):
    """A classifier's training was stopped from another thread (`train_classifier(stop=...)`)."""


def warmup_cosine(step: int, total: int, warmup: float = 0.25, start: float = 0.04) -> float:
    """Learning-rate factor: linear warm-up from `start` over the first `warmup` share, then cosine to 0."""
    ramp = max(1, round(warmup * total))
    if step < ramp:
        return start + (1 - start) * step / ramp
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - ramp) / max(1, total - ramp))))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: NetSpec,
    budget: TrainBudget = TrainBudget(),
    seed: int = 0,
    log: Callable[[str], object] | None = None,
    stop: threading.Event | None = None,
) -> SmallCNN:
    """Train a fresh `SmallCNN` on uint8 images and int64 labels with a fixed budget; returns it in eval mode.

    Fractional epochs are allowed; the run is the same for the same seed, data and thread count, and
    the global RNG is left as it was. Once `stop` is set, the next step raises `Stopped`.
    """
    if len(images) == 0:
        raise GanimateError("cannot train a classifier on zero images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(spec)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    steps_per_epoch = math.ceil(n / budget.batch_size)
    total = budget.steps or max(1, round(budget.epochs * steps_per_epoch))
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total))
    model.train()
    step, start = 0, time.perf_counter()
    while step < total:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, budget.batch_size):
            if step >= total:
                break
            if stop is not None and stop.is_set():
                raise Stopped(f"classifier training stopped at step {step} of {total}")
            idx = order[i : i + budget.batch_size]
            x = random_noise(random_shift(images[idx], budget.max_shift, gen), budget.noise, budget.noise_p, gen)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=budget.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if log is not None and (step % steps_per_epoch == 0 or step == total):
                log(f"step {step}/{total} (epoch {step / steps_per_epoch:.2f}) loss {loss.item():.4f} "
                    f"{time.perf_counter() - start:.0f}s")
    return model.eval()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reference_paths(dataset: str) -> tuple[Path, Path]:
    """(weights .safetensors, info .json) of a dataset's reference classifier in the package."""
    return WEIGHTS_DIR / f"{dataset}_classifier.safetensors", WEIGHTS_DIR / f"{dataset}_classifier.json"


def has_reference(dataset: str) -> bool:
    return has_reference_classifier(dataset) and all(p.is_file() for p in reference_paths(dataset))


def reference_info(dataset: str) -> dict:
    """The JSON record written beside the reference weights (spec, accuracy, sha256, command...)."""
    if not has_reference_classifier(dataset):
        known = [name for name in DATASETS if has_reference_classifier(name)]
        raise GanimateError(
            f"no reference classifier for {dataset}; feature metrics (fd, pr, class_acc) exist only for "
            f"{', '.join(known)}"
        )
    weights, info = reference_paths(dataset)
    if not weights.is_file() or not info.is_file():
        raise GanimateError(
            f"no reference classifier for {dataset}; {weights.name} is missing from {WEIGHTS_DIR}: "
            f"run scripts/train_reference.py --dataset {dataset}"
        )
    return json.loads(info.read_text())


_LOADED: dict[tuple[str, str], SmallCNN] = {}


def load_reference(dataset: str, device: str = "cpu") -> SmallCNN:
    """The reference classifier of `dataset` in eval mode, loaded once per process and checked by sha256."""
    from safetensors.torch import load_file

    if (dataset, str(device)) in _LOADED:
        return _LOADED[dataset, str(device)]
    info = reference_info(dataset)
    weights, _ = reference_paths(dataset)
    if sha256_file(weights) != info["sha256"]:
        raise GanimateError(f"{weights} does not match the sha256 in {weights.with_suffix('.json').name}")
    model = SmallCNN(NetSpec.from_dict(info["spec"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    model.load_state_dict(state)
    model.to(device).eval().requires_grad_(False)
    _LOADED[dataset, str(device)] = model
    return model


def spec_dict(spec: NetSpec) -> dict:
    return {**asdict(spec), "widths": list(spec.widths), "strides": list(spec.strides)}
