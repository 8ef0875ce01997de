"""The reference network of any dataset: the feature space of FD, KID and precision/recall.

MNIST and Fashion-MNIST use the classifiers shipped in ganimate/weights (classifier.py). Every other dataset
with real image files gets a network that ganimate trains on first use and caches under
``$GANIMATE_CACHE/reference/`` (never in a data folder), keyed by the dataset's identity: its name for a
built-in dataset, the sha256 of the decoded images and labels for a folder (cache.data_identity), plus the
image format and this recipe's version.

- Labelled data (CIFAR-10, a folder with class sub-folders): a `SmallCNN` classifier, trained with
  `train_classifier` (random shifts, pixel noise, label smoothing); its logits also give class accuracy.
- Unlabelled folders: the same network as a self-supervised encoder, trained contrastively on two augmented
  views of each image (SimCLR, Chen et al. 2020, NT-Xent loss): random resized crops and shifts, x-flips,
  brightness / contrast / saturation jitter and pixel noise. The 128-d layer before the projection head is
  the feature space, as in SimCLR.

Both train on the "train" part of the data (for a folder: one half of it, cache.py) with a budget scaled to
the data (`reference_budget`: 10 epochs, 300 to 2,000 steps of 128), so a few-hundred-image folder takes
seconds on 2 CPU cores and CIFAR-10 a few minutes; the held-out part measures the classifier's accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ganimate.data import DATASETS
from ganimate.data.download import cache_root
from ganimate.errors import GanimateError
from ganimate.metrics import classifier as clf
from ganimate.metrics.cache import cache_key, data_identity, is_folder, real_images

RECIPE = 1  # bump when the networks or their training change: older cached networks are then not used
EPOCHS, MIN_STEPS, MAX_STEPS, BATCH = 10, 300, 2000, 128
MIN_IMAGES = 20  # in the whole dataset: 10 per half of a folder
ENCODER_OUT = 64  # projection head size
TEMPERATURE = 0.2
CROP_SCALE = (0.7, 1.0)  # side of a view's crop, as a share of the image side


@dataclass
class Reference:
    """A reference network in eval mode with its JSON record; `kind` is shipped, classifier or encoder."""

    dataset: str
    model: clf.SmallCNN
    info: dict
    kind: str
    path: Path | None = None

    @property
    def sha256(self) -> str:
        return self.info["sha256"]

    @property
    def classifies(self) -> bool:
        return self.kind != "encoder"

    def describe(self) -> str:
        if self.kind == "shipped":
            return f"the shipped {self.dataset} classifier"
        what = "classifier" if self.classifies else "self-supervised encoder (SimCLR)"
        return f"a {what} trained for {self.dataset} ({self.path})"


def trainable(dataset: str) -> bool:
    """Whether ganimate trains a reference network for `dataset`: folders, and built-in datasets read from
    files that ship none (a dataset that ships one always uses it; file-less test data such as synthetic has none)."""
    if is_folder(dataset):
        return True
    spec = DATASETS.get(dataset)
    return spec is not None and spec.source is not None and not spec.reference_classifier


def shipped(dataset: str, device: str = "cpu") -> Reference:
    return Reference(dataset, clf.load_reference(dataset, device), clf.reference_info(dataset), "shipped")


def reference_spec(image_size: int, channels: int, outputs: int) -> clf.NetSpec:
    """The `SmallCNN` shape for an image format: the shipped classifiers' stages, stride 2 first above 32 px."""
    strides = (1, 2, 2, 2) if image_size <= 32 else (2, 2, 2, 2)
    return clf.NetSpec(channels=channels, image_size=image_size, num_classes=outputs, strides=strides)


def reference_budget(n: int) -> clf.TrainBudget:
    """`EPOCHS` epochs of `n` images, clipped to [MIN_STEPS, MAX_STEPS] optimiser steps of up to BATCH images."""
    batch = min(BATCH, n)
    steps = min(MAX_STEPS, max(MIN_STEPS, round(EPOCHS * math.ceil(n / batch))))
    return clf.TrainBudget(steps=steps, batch_size=batch, lr=3e-3, noise=48.0)


# ---------------------------------------------------------------- the self-supervised encoder


def random_views(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random augmented view of each uint8 image (N, C, H, W) -> uint8 (N, C, H, W).

    Resized crop (`CROP_SCALE`: 0.7..1 of the side, milder than SimCLR's, to keep shape detail) at a random
    place plus up to 1/8 of the side of shift, x-flip with probability 1/2, and with probability 0.8
    brightness (+-0.2), contrast (0.7..1.3) and, for RGB, saturation (0.6..1.4) jitter; then pixel noise
    (sigma up to 24 grey levels) on half of the images.
    """
    b = len(x)
    u = torch.rand(b, 8, generator=gen)
    scale = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u[:, 0]
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    room = (1 - scale) + 0.25  # crop offset plus up to 1/8 of the side of shift, in [-1, 1] units
    tx, ty = (2 * u[:, 2] - 1) * room, (2 * u[:, 3] - 1) * room
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = scale * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = scale, ty
    img = x.float().div_(255)  # (B, C, H, W) in [0, 1]
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    jitter = (u[:, 4] < 0.8).float()[:, None, None, None]
    brightness = (0.4 * u[:, 5] - 0.2)[:, None, None, None]
    contrast = (0.7 + 0.6 * u[:, 6])[:, None, None, None]
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    jittered = (img - mean) * contrast + mean + brightness
    if img.shape[1] == 3:
        grey = jittered.mean(dim=1, keepdim=True)
        jittered = grey + (jittered - grey) * (0.6 + 0.8 * u[:, 7])[:, None, None, None]
    img = jitter * jittered + (1 - jitter) * img
    views = img.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return clf.random_noise(views, 24.0, 0.5, gen)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss for projections z1, z2 (B, P) of two views: each view must pick its partner among 2B - 1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, P)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, target)


def train_encoder(images: torch.Tensor, spec: clf.NetSpec, budget: clf.TrainBudget, seed: int = 0,
                  log: Callable[[str], object] | None = None) -> clf.SmallCNN:
    """Train a fresh `SmallCNN` (head = projection) with NT-Xent on uint8 images; returns it in eval mode.
    Same seed, data and thread count, same network; the global RNG is left as it was."""
    if len(images) < 2:
        raise GanimateError("the self-supervised encoder needs at least 2 images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clf.SmallCNN(spec)
    gen = torch.Generator().manual_seed(seed)
    n, total = len(images), budget.steps
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: clf.warmup_cosine(s, total))
    model.train()
    step, start = 0, time.perf_counter()
    while step < total:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - 1, budget.batch_size):
            if step >= total:
                break
            x = images[order[i : i + budget.batch_size]]
            if len(x) < 2:
                break
            loss = nt_xent(model(random_views(x, gen)), model(random_views(x, gen)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if log is not None and step % max(1, total // 5) == 0:
                log(f"step {step}/{total} loss {loss.item():.4f} {time.perf_counter() - start:.0f}s")
    return model.eval()


# ---------------------------------------------------------------- trained on first use, cached


def reference_dir() -> Path:
    return cache_root() / "reference"


def _slug(dataset: str) -> str:
    name = dataset.rstrip("/").rsplit("/", 1)[-1] if is_folder(dataset) else dataset
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ("folder-" if is_folder(dataset) else "") + name)[:60] or "data"


_LOADED: dict[tuple[str, str], Reference] = {}


def _load(weights: Path, info_path: Path, dataset: str, device: str) -> Reference | None:
    """The cached network, or None when a file is missing, unreadable or fails its sha256."""
    from safetensors.torch import load_file

    try:
        info = json.loads(info_path.read_text())
        if clf.sha256_file(weights) != info["sha256"]:
            return None
        model = clf.SmallCNN(clf.NetSpec.from_dict(info["spec"]))
        model.load_state_dict(load_file(str(weights)))
    except (OSError, ValueError, KeyError, RuntimeError, TypeError):
        return None
    model.to(device).eval().requires_grad_(False)
    return Reference(dataset, model, info, info["kind"], weights)


def trained(dataset: str, *, image_size: int | None = None, channels: int | None = None, labels: str = "auto",
            crop: str = "center", data_dir: str | None = None, device: str = "cpu",
            log: Callable[[str], object] = print) -> Reference:
    """The reference network that ganimate trains for `dataset` at this image format (and for a folder, these
    labels / crop settings), loaded from the cache or trained now and cached; once per process."""
    real = dict(image_size=image_size, channels=channels, labels=labels, crop=crop, data_dir=data_dir)
    x, y = real_images(dataset, "train", **real)
    test_x, test_y = real_images(dataset, "test", **real)
    if len(x) + len(test_x) < MIN_IMAGES:
        raise GanimateError(f"{dataset} has {len(x) + len(test_x)} images; the feature metrics need at least "
                            f"{MIN_IMAGES} (half of a folder is held out)")
    kind = "classifier" if y is not None else "encoder"
    classes = int(max(y.max(), test_y.max())) + 1 if y is not None else 0
    _, c, s, _ = x.shape
    parts = {"kind": "reference", "recipe": RECIPE, "dataset": dataset, "network": kind, "image_size": s,
             "channels": c, "classes": classes, "train_images": len(x),
             **data_identity(dataset, **real)}
    key = cache_key(**parts)
    if (key, str(device)) in _LOADED:
        return _LOADED[key, str(device)]
    weights = reference_dir() / f"{_slug(dataset)}-{key}.safetensors"
    info_path = weights.with_suffix(".json")
    ref = _load(weights, info_path, dataset, device)
    if ref is None:
        ref = _train(dataset, kind, x, y, test_x, test_y, classes, parts, weights, info_path, log)
        ref.model.to(device).eval().requires_grad_(False)
    _LOADED[key, str(device)] = ref
    return ref


def _train(dataset, kind, x, y, test_x, test_y, classes, parts, weights: Path, info_path: Path, log) -> Reference:
    from safetensors.torch import save_file

    from ganimate.images import atomic_paths

    _, c, s, _ = x.shape
    spec = reference_spec(s, c, classes if kind == "classifier" else ENCODER_OUT)
    budget = reference_budget(len(x))
    held = f"{len(test_x):,} held out" if is_folder(dataset) else f"the {len(test_x):,} test images held out"
    what = f"a classifier of {classes} classes" if kind == "classifier" else "a self-supervised encoder"
    log(f"training the reference network for {dataset} (first use, cached): {what} on {len(x):,} images "
        f"{c}x{s}x{s} ({held}), {budget.steps} steps of {budget.batch_size}, {torch.get_num_threads()} threads")
    start = time.perf_counter()
    progress = log if budget.steps >= 1000 else None
    if kind == "classifier":
        model = clf.train_classifier(x, y, spec, budget, seed=0, log=progress)
        accuracy = round(clf.accuracy(model, test_x, test_y), 6)
    else:
        model = train_encoder(x, spec, budget, seed=0, log=progress)
        accuracy = None
    seconds = time.perf_counter() - start
    info = {
        "dataset": dataset, "kind": kind, "spec": clf.spec_dict(spec),
        "input": "uint8 (N, C, H, W) in 0..255, scaled to [-1, 1] inside the model",
        "feature_layer": f"dense {spec.feature_dim} + ReLU (penultimate)", "seed": 0,
        "budget": dataclasses.asdict(budget), "train_images": len(x), "held_out_images": len(test_x),
        "test_accuracy": accuracy, "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "key": parts,
    }
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_paths([weights, info_path]) as (tmp_weights, tmp_info):
        save_file(state, str(tmp_weights))
        info["sha256"] = clf.sha256_file(tmp_weights)
        tmp_info.write_text(json.dumps(info, indent=2) + "\n")
    acc = "" if accuracy is None else f", accuracy on the held-out images {accuracy:.4f}"
    log(f"reference network trained in {seconds:.0f}s{acc}: {weights}")
    return Reference(dataset, model.eval().requires_grad_(False), info, kind, weights)


def reference_for(dataset: str, *, image_size: int | None = None, channels: int | None = None,
                  labels: str = "auto", crop: str = "center", data_dir: str | None = None, device: str = "cpu",
                  log: Callable[[str], object] = print) -> Reference:
    """The shipped classifier where the dataset has one, else the trained network (see `trained`)."""
    if DATASETS.get(dataset) is not None and DATASETS[dataset].reference_classifier:
        return shipped(dataset, device)
    if not trainable(dataset):
        raise GanimateError(f"no reference network for {dataset}: it has no real image files to train one on")
    return trained(dataset, image_size=image_size, channels=channels, labels=labels, crop=crop, data_dir=data_dir,
                   device=device, log=log)
