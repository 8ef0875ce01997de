"""Projecting real images into a trained generator: the latent z (and class) whose image matches a target.

The search follows stylegan2-ada-pytorch's projector (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"): Adam on the latent with a ramped learning rate and a latent noise that decays to
zero, several starts in one batch, the best kept. Two changes fit ganimate's small DCGANs: the perceptual loss is
measured in the domain's reference classifier (its penultimate features, as FD uses them) instead of VGG16
(Zhang et al. 2018), and the first start comes from an encoder trained on the generator's own samples (the
learned-inversion start of Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image Manifold"),
trained once per checkpoint and kept in RUN/projector/. A conditional run's class is given, or chosen among the
classes the reference classifier (else the encoder) finds most likely by which one reconstructs best.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganimate.config import option
from ganimate.errors import GanimateError
from ganimate.images import atomic_write, make_grid, save_npz, save_png, to_uint8
from ganimate.metrics.pixel import psnr
from ganimate.video import default_scale, upscale, write_videos

VIDEO_IMAGES = 16  # images shown in projection.mp4 (the first ones)
VIDEO_FRAMES = 120  # search steps recorded in projection.mp4 at most
ENCODER_FOLDER = "projector"


def warn(message: str) -> None:
    print(f"ganimate: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- the encoder


class Encoder(nn.Module):
    """image (B, C, S, S) in [-1, 1] -> (z (B, z_dim), class logits (B, K)): 4x4 stride-2 convolutions down to
    4x4 or less, then two dense layers."""

    def __init__(self, z_dim: int, image_size: int, channels: int, num_classes: int = 0, width: int = 32):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        layers, c, s, w = [], channels, image_size, width
        while s > 4:
            layers += [nn.Conv2d(c, w, 4, 2, 1), *([nn.BatchNorm2d(w)] if layers else []), nn.LeakyReLU(0.2)]
            c, s, w = w, s // 2, min(2 * w, 256)
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, 512), nn.LeakyReLU(0.2),
                                nn.Linear(512, z_dim + num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.fc(self.conv(x))  # (B, z_dim + K)
        return out[:, : self.z_dim], out[:, self.z_dim :]


def train_encoder(G, steps: int = 1500, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                  log: Callable[[str], object] | None = None) -> Encoder:
    """An `Encoder` trained on G's own samples: z ~ N(0, I) and uniform classes, G(z, y) in, z and y out
    (squared error on z, cross-entropy on the class); AdamW with a cosine decay. Returned in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        E = Encoder(G.z_dim, G.image_size, G.channels, G.num_classes)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(E.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    E.train()
    for step in range(steps):
        z = torch.randn(batch_size, G.z_dim, generator=gen)  # (B, D)
        y = torch.randint(0, G.num_classes, (batch_size,), generator=gen) if G.num_classes else None
        with torch.no_grad():
            x = G(z, y)  # (B, C, H, W)
        z_hat, logits = E(x)
        loss = F.mse_loss(z_hat, z)
        if y is not None:
            loss = loss + F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % 500 == 0:
            log(f"encoder step {step + 1}/{steps}: loss {loss.item():.4f}")
    return E.eval().requires_grad_(False)


def encoder_paths(run_dir: Path, checkpoint: Path) -> tuple[Path, Path]:
    """(weights, info) of the encoder of one checkpoint of a run."""
    folder = Path(run_dir) / ENCODER_FOLDER
    return folder / f"encoder-{checkpoint.stem}.safetensors", folder / f"encoder-{checkpoint.stem}.json"


def load_or_train_encoder(G, run_dir: Path, checkpoint: Path, steps: int,
                          log: Callable[[str], object] = print) -> Encoder:
    """The run's encoder for this checkpoint: loaded from RUN/projector/ when one was trained for it, else trained
    now for `steps` batches and saved there (kept in memory only when the run folder is read-only)."""
    from safetensors.torch import load_file, save_file

    weights, info = encoder_paths(run_dir, checkpoint)
    settings = {"z_dim": G.z_dim, "image_size": G.image_size, "channels": G.channels,
                "num_classes": G.num_classes, "steps": steps, "checkpoint": checkpoint.name,
                "checkpoint_bytes": checkpoint.stat().st_size}
    if weights.is_file() and info.is_file():
        try:
            saved = json.loads(info.read_text())
            if {**saved, "steps": steps} == settings:  # an encoder trained for longer or shorter is kept
                E = Encoder(G.z_dim, G.image_size, G.channels, G.num_classes)
                E.load_state_dict(load_file(str(weights)))
                return E.eval().requires_grad_(False)
        except (OSError, ValueError, RuntimeError, KeyError):
            pass
        log(f"{weights} does not fit this run: training a new one")
    log(f"training the projection encoder on {steps} batches of G's samples (once per checkpoint)")
    E = train_encoder(G, steps, log=log)
    try:
        weights.parent.mkdir(exist_ok=True)
        atomic_write(weights, lambda tmp: save_file(E.state_dict(), str(tmp)))
        atomic_write(info, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))
    except OSError as e:
        warn(f"could not save the encoder in {weights.parent} ({e.strerror or e}); it is trained again next time")
    return E


# --------------------------------------------------------------------------- reference features


def reference_for(dataset: str) -> nn.Module | None:
    """The reference classifier of the run's dataset (None if it has none)."""
    from ganimate.metrics.classifier import has_reference, load_reference

    return load_reference(dataset) if has_reference(dataset) else None


def _fit_to(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] with `channels` channels at size x size."""
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def features(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable (penultimate features (B, F), logits (B, K)) of the reference classifier for images
    (B, C, H, W) in [-1, 1], the scale its uint8 input is mapped to."""
    spec = net.spec
    f = F.relu(net.fc(net.conv(_fit_to(x, spec.channels, spec.image_size)).flatten(1)))  # (B, F)
    return f, net.head(f)


# --------------------------------------------------------------------------- the search


@dataclass
class Projector:
    """What a search needs: the generator, and where they exist the reference classifier and the encoder."""

    G: nn.Module
    reference: nn.Module | None = None
    encoder: Encoder | None = None
    run: Path | None = None
    checkpoint: Path | None = None

    @property
    def classes_match(self) -> bool:
        """Whether the reference classifier's classes are the generator's (a conditional run on its dataset)."""
        return self.reference is not None and self.G.num_classes == self.reference.spec.num_classes


@dataclass
class Projection:
    """Per target image: the latent z (N, D), the class (N,) int64 (None for an unconditional run), the
    reconstruction (N, C, H, W) in [-1, 1], the final loss (N,) and PSNR in dB against the target (N,)."""

    z: torch.Tensor
    y: torch.Tensor | None
    images: torch.Tensor
    loss: torch.Tensor
    psnr: torch.Tensor


@dataclass(frozen=True)
class Search:
    """Settings of one search; the defaults are the measured ones (reports/projection.md)."""

    steps: int = 100
    starts: int = 2
    classes_tried: int = 2
    lr: float = 0.1
    feature_weight: float = 1.0
    prior_weight: float = 0.01
    noise: float = 0.05
    prune_at: float = 0.3
    use_encoder: bool = True
    seed: int = 0


def candidate_classes(proj: Projector, targets: torch.Tensor, k: int) -> torch.Tensor:
    """The k classes (N, k) to try per target: ranked by the reference classifier where its classes are G's,
    else by the encoder; all classes (ranked by nothing) when k is 0 or there is no ranker."""
    n, num_classes = len(targets), proj.G.num_classes
    if k <= 0 or k >= num_classes or (not proj.classes_match and proj.encoder is None):
        return torch.arange(num_classes).expand(n, -1)
    with torch.no_grad():
        if proj.classes_match:
            logits = features(proj.reference, targets)[1]
        else:
            logits = proj.encoder(targets)[1]
    return logits.topk(k, dim=1).indices  # (N, k)


def _losses(proj: Projector, x: torch.Tensor, target: torch.Tensor, target_f: torch.Tensor | None,
            feature_weight: float) -> torch.Tensor:
    """Per-image search loss (B,): pixel squared error, plus the squared feature distance relative to the
    target's feature norm."""
    loss = (x - target).pow(2).flatten(1).mean(1)
    if target_f is not None and feature_weight > 0:
        f = features(proj.reference, x)[0]
        loss = loss + feature_weight * (f - target_f).pow(2).sum(1) / target_f.pow(2).sum(1).clamp_min(1e-6)
    return loss


def _schedule(t: float, lr: float) -> float:
    """stylegan2-ada's learning rate: a 5% linear ramp up, a cosine ramp down over the last 25%."""
    return lr * min(1.0, t / 0.05) * (0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / 0.25)))


def project(proj: Projector, targets: torch.Tensor, classes: torch.Tensor | None = None, search: Search = Search(),
            on_step: Callable[[int, torch.Tensor], object] | None = None) -> Projection:
    """Project targets (N, C, H, W) in [-1, 1] into proj.G.

    Every target gets `starts` latents per candidate class (`classes` (N,) given, else `candidate_classes`):
    the encoder's guess first where there is one, then N(0, I) draws. All are searched in one batch; after
    `prune_at` of the steps only the best of each target continues. `on_step(step, images)` sees the current
    best image of each target (N, C, H, W) after every step.
    """
    G, n = proj.G, len(targets)
    gen = torch.Generator().manual_seed(search.seed)
    if not G.num_classes:
        cand = None
    elif classes is not None:
        cand = classes.view(n, 1)
    else:
        cand = candidate_classes(proj, targets, search.classes_tried)
    k = 1 if cand is None else cand.shape[1]
    s = max(1, search.starts)
    z = torch.randn(n, k, s, G.z_dim, generator=gen)  # (N, k, S, D)
    if search.use_encoder and proj.encoder is not None:
        with torch.no_grad():
            z[:, :, 0] = proj.encoder(targets)[0][:, None]
    z = z.reshape(n * k * s, G.z_dim)
    y = None if cand is None else cand[:, :, None].expand(n, k, s).reshape(-1)  # (N k S,)
    owner = torch.arange(n).repeat_interleave(k * s)  # target of each latent
    target_f = features(proj.reference, targets)[0].detach() if proj.reference is not None else None

    def pick(loss: torch.Tensor) -> torch.Tensor:  # index of the best latent of each target
        per = loss.detach().view(n, -1)
        return per.argmin(1) + torch.arange(n) * per.shape[1]

    m, v = torch.zeros_like(z), torch.zeros_like(z)  # Adam's moments (beta 0.9, 0.999)
    steps, loss = int(search.steps), None
    for step in range(steps):
        t = step / steps
        if 0 < search.prune_at <= t and len(z) > n and loss is not None:  # by the last step's loss
            keep = pick(loss)
            z, m, v, owner = z[keep], m[keep], v[keep], owner[keep]
            y = None if y is None else y[keep]
        sigma = search.noise * max(0.0, 1.0 - t / 0.75) ** 2
        zz = z.clone().requires_grad_(True)
        x = G(zz + sigma * torch.randn(z.shape, generator=gen), y)  # (B, C, H, W)
        loss = _losses(proj, x, targets[owner], None if target_f is None else target_f[owner],
                       search.feature_weight)
        prior = (zz.pow(2).mean(1) - 1).pow(2)  # |z|^2 / D stays near 1, where N(0, I) latents lie
        (loss + search.prior_weight * prior).sum().backward()
        g = zz.grad
        m.mul_(0.9).add_(g, alpha=0.1)
        v.mul_(0.999).addcmul_(g, g, value=0.001)
        lr = _schedule(t, search.lr)
        z = z - lr * (m / (1 - 0.9 ** (step + 1))) / ((v / (1 - 0.999 ** (step + 1))).sqrt() + 1e-8)
        if on_step is not None:
            on_step(step, x.detach()[pick(loss)] if len(z) > n else x.detach())
    with torch.no_grad():
        x = _generate(G, z, y)
        loss = _losses(proj, x, targets[owner], None if target_f is None else target_f[owner], search.feature_weight)
    best = pick(loss)
    images = x[best]
    return Projection(z=z[best].detach(), y=None if y is None else y[best], images=images, loss=loss[best],
                      psnr=psnr(torch.from_numpy(to_uint8(images)), torch.from_numpy(to_uint8(targets)), 255.0))


@torch.no_grad()
def _generate(G, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return G(z, y)


def project_batches(proj: Projector, targets: torch.Tensor, classes: torch.Tensor | None = None,
                    search: Search = Search(), batch: int = 64,
                    on_step: Callable[[int, torch.Tensor], object] | None = None) -> Projection:
    """`project` in batches of `batch` targets (memory stays bounded); `on_step` sees the first batch only."""
    parts = []
    for i in range(0, len(targets), batch):
        part = project(proj, targets[i : i + batch], None if classes is None else classes[i : i + batch],
                       Search(**{**search.__dict__, "seed": search.seed + i}), on_step if i == 0 else None)
        parts.append(part)
    return Projection(*(None if parts[0].y is None and name == "y" else torch.cat([getattr(p, name) for p in parts])
                        for name in ("z", "y", "images", "loss", "psnr")))


# --------------------------------------------------------------------------- images in


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named: files as given, folders searched recursively (sorted)."""
    from ganimate.data.folder import find_images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = find_images(p)
            if not found:
                raise GanimateError(f"no image files found in folder {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise GanimateError(f"image {p} does not exist")
    if not files:
        raise GanimateError("no images given")
    return files


def read_targets(files: Sequence[Path], image_size: int, channels: int, crop: str = "center") -> torch.Tensor:
    """Images as the run's training data: uint8 (N, C, S, S), converted the way folders are loaded (`crop`
    center: shorter side resized and centre-cropped; pad: padded to a square; grey or RGB), with a warning for
    each image that needed it."""
    from PIL import Image

    from ganimate.data.folder import GREY_MODES, load_image

    out = []
    for path in files:
        try:
            with Image.open(path) as img:
                size, grey = img.size, img.mode in GREY_MODES
            array, _ = load_image(path, image_size, channels, crop)
        except Exception as e:  # noqa: BLE001 - Pillow fails in open-ended ways on damaged files
            reason = " ".join(str(e).split())[:120] or type(e).__name__
            raise GanimateError(f"cannot read image {path}: {reason}") from None
        changes = []
        if size != (image_size, image_size):
            changes.append(f"{size[0]}x{size[1]} -> {image_size}x{image_size}")
        if grey != (channels == 1):
            changes.append("colour -> grey" if channels == 1 else "grey -> RGB")
        if changes:
            warn(f"{path} converted as the run's training data was ({', '.join(changes)})")
        out.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, H, W) in [-1, 1], the generator's scale."""
    return images.float() / 127.5 - 1


# --------------------------------------------------------------------------- the command


@dataclass
class ProjectConfig:
    """`ganimate project RUN IMAGE... --out DIR`: the latent (and class) of each image in a run's generator."""

    run: str = option("run folder", default="")
    images: list[str] = option("image files or folders of images", default_factory=list)
    out: str | None = option("output folder (default RUN/projections)", default=None)
    class_: int | None = option("class of every image (conditional runs; default: inferred per image)",
                                nonneg=True, default=None)
    steps: int = option("Adam steps on the latent (0: the starting guess only)", nonneg=True, default=Search.steps)
    starts: int = option("starts per image and class searched together; the best is kept", positive=True,
                         default=Search.starts)
    classes_tried: int = option("classes tried per image when --class is not given: the most likely ones by the "
                                "reference classifier (else the encoder); 0 tries all", nonneg=True,
                                default=Search.classes_tried)
    seed: int = option("seed of the random starts and the latent noise", nonneg=True, default=0)
    lr: float = option("Adam learning rate on the latent", positive=True, default=Search.lr)
    feature_weight: float = option("weight of the feature loss in the reference classifier (datasets that have "
                                   "one)", nonneg=True, default=Search.feature_weight)
    prior_weight: float = option("weight of the N(0, I) prior on the latent", nonneg=True,
                                 default=Search.prior_weight)
    noise: float = option("initial latent noise, decaying to 0 over 3/4 of the steps", nonneg=True,
                          default=Search.noise)
    encoder: bool = option("start from an encoder trained on G's samples (trained once per checkpoint, kept in "
                           "RUN/projector/)", default=True)
    encoder_steps: int = option("training batches of the encoder", positive=True, default=1500)
    batch: int = option("images searched together", positive=True, default=64)
    video: bool = option("write projection.mp4: target | reconstruction as the search runs", default=True)
    fps: float = option("frames per second of projection.mp4", positive=True, default=24.0)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)

    def __post_init__(self):
        from ganimate.config import check_options

        check_options(self)
        if not self.run:
            raise GanimateError("project needs a run folder")
        if isinstance(self.images, str):
            self.images = [self.images]
        if not self.images:
            raise GanimateError("project needs at least one image (a file or a folder)")

    def search(self) -> Search:
        return Search(steps=self.steps, starts=self.starts, classes_tried=self.classes_tried, lr=self.lr,
                      feature_weight=self.feature_weight, prior_weight=self.prior_weight, noise=self.noise,
                      use_encoder=self.encoder, seed=self.seed)


def load_projector(run: str | Path, checkpoint: str | None = None, encoder: bool = True, encoder_steps: int = 1500,
                   log: Callable[[str], object] = print):
    """(Projector, the run's TrainConfig) of a run's EMA generator at a checkpoint (default: the latest)."""
    from ganimate.checkpoint import resolve_checkpoint
    from ganimate.runs import load_generator

    run = Path(run)
    if not run.is_dir():
        raise GanimateError(f"run folder {run} does not exist")
    path = resolve_checkpoint(run, checkpoint)
    G, cfg = load_generator(run, str(path), device="cpu")
    proj = Projector(G.requires_grad_(False), reference_for(cfg.dataset), None, run, path)
    if encoder:
        add_encoder(proj, encoder_steps, log)
    return proj, cfg


def add_encoder(proj: Projector, steps: int = 1500, log: Callable[[str], object] = print) -> None:
    """Give `proj` its run's encoder (loaded, or trained now and saved in RUN/projector/)."""
    proj.encoder = load_or_train_encoder(proj.G, proj.run, proj.checkpoint, steps, log)


def check_class(class_: int | None, num_classes: int) -> None:
    if class_ is None:
        return
    if not num_classes:
        raise GanimateError("--class needs a conditional run; this run is unconditional")
    if not 0 <= class_ < num_classes:
        raise GanimateError(f"--class {class_} is out of range: this run has classes 0..{num_classes - 1}")


def check_out_folder(out: Path, data_folders: Sequence[Path]) -> None:
    """Refuse an output folder inside one of the run's data folders (ganimate never writes into data)."""
    resolved = out.expanduser().resolve()
    for folder in data_folders:
        folder = Path(folder).expanduser().resolve()
        if resolved == folder or folder in resolved.parents:
            raise GanimateError(f"refusing to write into {out}: it lies inside the data folder {folder}; "
                                "choose another --out")
    if out.exists() and not out.is_dir():
        raise GanimateError(f"--out {out} is a file, not a folder")


def output_names(files: Sequence[Path]) -> list[str]:
    """One output name per image: its file name without extension, -2, -3 ... added where names repeat."""
    seen: dict[str, int] = {}
    names = []
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        names.append(f.stem if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}")
    return names


def pair_frame(targets: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """A grid frame with target | reconstruction side by side for each image (uint8 (N, H, W, C) each)."""
    n = len(targets)
    cols = max(1, math.ceil(math.sqrt(n)))
    pairs = np.stack([targets, recon], 1).reshape(2 * n, *targets.shape[1:])  # (2N, H, W, C)
    return make_grid(pairs, 2 * cols)


def prepare(cfg: ProjectConfig) -> tuple[Projector, object, list[Path], torch.Tensor, torch.Tensor | None]:
    """What a search needs, bad input refused first: (projector without its encoder, the run's TrainConfig,
    image files, uint8 targets (N, C, H, W), classes (N,) or None)."""
    proj, train_cfg = load_projector(cfg.run, cfg.checkpoint, encoder=False)
    check_class(cfg.class_, proj.G.num_classes)
    files = image_files(cfg.images)
    targets = read_targets(files, proj.G.image_size, proj.G.channels, getattr(train_cfg, "crop", "center"))
    classes = None if cfg.class_ is None else torch.full((len(files),), cfg.class_, dtype=torch.int64)
    return proj, train_cfg, files, targets, classes


def run_project(cfg: ProjectConfig) -> list[Path]:
    """`ganimate project`: <name>.npz (z, class), <name>.png (reconstruction) per image and projection.mp4;
    returns the paths written."""
    import time

    proj, train_cfg, files, targets, classes = prepare(cfg)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.run) / "projections"
    check_out_folder(out, train_cfg.data_folders())
    names = output_names(files)
    inputs = {f.resolve() for f in files}
    for name in names:
        for ext in (".png", ".npz"):
            if (out / f"{name}{ext}").resolve() in inputs:
                raise GanimateError(f"--out {out} would overwrite the input image {out / (name + ext)}: "
                                    "choose another --out")
    if cfg.encoder:
        add_encoder(proj, cfg.encoder_steps)
    out.mkdir(parents=True, exist_ok=True)

    shown = to_uint8(to_float(targets[:VIDEO_IMAGES]))
    frames: list[np.ndarray] = []
    every = max(1, math.ceil(cfg.steps / VIDEO_FRAMES))

    def record(step: int, images: torch.Tensor) -> None:
        if step % every == 0 or step == cfg.steps - 1:
            frames.append(pair_frame(shown, to_uint8(images[:VIDEO_IMAGES])))

    start = time.perf_counter()
    result = project_batches(proj, to_float(targets), classes, cfg.search(), cfg.batch,
                             record if cfg.video else None)
    seconds = time.perf_counter() - start
    recon = to_uint8(result.images)  # (N, H, W, C)
    written = []
    for i, name in enumerate(names):
        arrays = {"z": result.z[i].numpy().astype(np.float32), "psnr": np.float32(result.psnr[i]),
                  "target": targets[i].permute(1, 2, 0).numpy()}
        if result.y is not None:
            arrays["class"] = np.int64(result.y[i])
        written.append(save_npz(out / f"{name}.npz", **arrays))
        written.append(save_png(recon[i], out / f"{name}.png"))
    if cfg.video:
        frames.append(pair_frame(shown, recon[:VIDEO_IMAGES]))
        scale = default_scale(*frames[0].shape[:2])
        path = out / "projection.mp4"
        write_videos((upscale(f, scale) for f in frames), [path], cfg.fps, hold=round(cfg.fps))
        written.append(path)
    mean = float(result.psnr.double().mean())
    print(f"projected {len(files)} image(s) in {seconds:.1f} s: mean PSNR {mean:.1f} dB", file=sys.stderr)
    return written


__all__ = ["Encoder", "ProjectConfig", "Projection", "Projector", "Search", "add_encoder", "candidate_classes",
           "check_class", "features", "image_files", "load_or_train_encoder", "load_projector", "prepare", "project",
           "project_batches", "read_targets", "run_project", "to_float", "train_encoder"]
