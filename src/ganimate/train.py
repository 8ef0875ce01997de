"""The image GAN trainer (`ganimate train`): one GAN step as a plain function and `ImageTask`, which the
engine (engine.py) runs into a resumable run folder.

Besides the engine's files, an image run holds reals.png (real images, one class per row when
conditional) and samples/ grids from fixed latents (epoch_XXXX.png, step_XXXXXX.png). D sees real and
generated images through the run's augmentation (augment.py: DiffAugment or ADA); `--mirror` adds the
left-right mirror image of every training image to the data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ganimate import losses
from ganimate.augment import SMALL_DATASET, Augmenter, resolve_augment, resolve_consistency
from ganimate.config import TrainConfig
from ganimate.distributed import World
from ganimate.engine import data_fingerprint, epoch_indices, run
from ganimate.errors import GanimateError
from ganimate.gan import GanState, d_update
from ganimate.images import make_grid, save_png, to_uint8
from ganimate.models import build_models, count_params
from ganimate.runtime import resolve_memory_format


def paired_labels(y: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Labels for a fake batch of `n` whose rows i and i + n/2 share a class (the mode-seeking term's pairs)."""
    if y is None:
        return None
    half = n // 2
    return torch.cat([y[:half], y[:half], y[2 * half : n]])


def train_step(gan: GanState, x, y, z, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
               on_real_logits: Callable[[torch.Tensor], None] | None = None,
               mode_seeking: float = 0.0, consistency: tuple[float, Callable] | None = None) -> dict[str, torch.Tensor]:
    """One D update and one G update of `gan` on a real batch x (B, C, H, W) in [-1, 1], labels y (B,) or None
    and latents z (B, z_dim).

    G's forward pass is shared by both updates: D sees the fake detached, then G's
    loss flows back through D into G. Real and fake go through D as separate batches
    (the DCGAN recipe). `augment` (differentiable; e.g. an `Augmenter`) is what D sees of every image, real
    and fake alike: the fake is augmented once and shared by both updates, and G's gradient flows back
    through it. `on_real_logits` receives D's logits on the (augmented) reals. The forward passes run in the
    gan's precision (bf16 / fp16 autocast, or fp32); losses, weights and optimizer state stay fp32.
    `mode_seeking` > 0 adds that weight of `losses.mode_seeking` to G's loss: the fakes are then drawn in pairs
    (i, i + B/2) of one class (`paired_labels`). `consistency` (weight, T) adds bCR to D's loss on what D sees
    (`gan.d_update`). Returns detached scalars, and `skipped` 1.0 when a non-finite loss
    left an update out (checking costs one host sync per update).
    """
    y_fake = paired_labels(y, len(z)) if mode_seeking else y
    with gan.amp():
        fake = gan.G_step(z, y_fake)  # (B, C, H, W)
    seek = losses.mode_seeking(fake, z) if mode_seeking else None
    if augment is not None:
        x, fake = augment(x), augment(fake)  # (B, C, H, W) each, fresh draws per image

    stats = d_update(gan, (x, y), (fake.detach(), y_fake), on_real_logits, consistency)
    with gan.g_pass():
        with gan.amp():
            loss_g = losses.g_loss(gan.D_step(fake, y_fake).float(), gan.loss)
        total = loss_g + mode_seeking * seek if seek is not None else loss_g
        g_skipped = not gan.step_G(total)
    out = {"loss_d": stats["loss_d"], "loss_g": loss_g.detach(), "d_real": stats["d_real"], "d_fake": stats["d_fake"],
           "skipped": max(stats["skipped"], float(g_skipped))}
    if seek is not None:
        out["mode_seeking"] = seek.detach()
    if "consistency" in stats:
        out["consistency"] = stats["consistency"]
    return out


def grid_inputs(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Latents and labels for progress grids, drawn once from the seed: (z, y, images per row).

    Conditional runs get one class per row (10 samples each, up to 20 classes).
    """
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    if cfg.conditional:
        rows, cols = min(cfg.num_classes, 20), 10
        y = torch.arange(rows).repeat_interleave(cols)
    else:
        rows = cols = 8
        y = None
    z = torch.randn(rows * cols, cfg.z_dim, generator=gen)
    return z, y, cols


def load_training_data(cfg: TrainConfig, log=print):
    """Load the dataset and fill in the config's dataset-derived fields (sizes, classes, `--augment auto`)."""
    from ganimate.data import load_dataset

    ds = load_dataset(
        cfg.dataset, "train", data_dir=cfg.data_dir, image_size=cfg.image_size,
        channels=cfg.channels, strict=cfg.strict, labels=cfg.labels, crop=cfg.crop, cache=cfg.cache, log=log,
    )
    if cfg.conditional and ds.num_classes == 0:
        why = ("--labels none drops them" if cfg.labels == "none"
               else f"{cfg.dataset} has none (use sub-folders per class)")
        raise GanimateError(f"--conditional needs class labels, and {why}")
    if cfg.conditional is None:
        cfg.conditional = ds.num_classes > 0
    if cfg.class_norm and not cfg.conditional:
        raise GanimateError("--class-norm modulates G per class: it needs a conditional run (class labels)")
    if cfg.num_classes and cfg.num_classes != ds.num_classes:
        raise GanimateError(
            f"the run was trained with {cfg.num_classes} classes but {cfg.dataset} has {ds.num_classes}"
        )
    cfg.image_size, cfg.channels, cfg.num_classes = ds.image_size, ds.channels, ds.num_classes
    cfg.consistency = resolve_consistency(cfg.consistency, cfg.augment, len(ds.images))
    if cfg.augment == "auto":
        cfg.augment = resolve_augment(cfg.augment, len(ds.images))
        bcr = f" with bCR weight {cfg.consistency:g}" if cfg.augment == "ada" and cfg.consistency else ""
        log(f"--augment auto: {cfg.augment}{bcr} ({len(ds.images):,} images, "
            f"{'under' if cfg.augment == 'ada' else 'at least'} {SMALL_DATASET:,})")
    if len(ds.images) < cfg.batch_size:
        raise GanimateError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(ds.images)} images)")
    return ds


def training_models(cfg: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """(G, D, memory format) as `ganimate train` trains them: built from `cfg` and laid out in the memory format
    `cfg.memory_format` resolves to on `device` at `cfg.precision` (already resolved, not "auto")."""
    G, D = build_models(cfg)
    memory_format = resolve_memory_format(cfg.memory_format, device, cfg.precision, cfg.arch)
    if memory_format == "channels_last":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D, memory_format


class ImageTask:
    """Unconditional or class-conditional image generation: the engine's task for `ganimate train`."""

    unit = "img"

    def __init__(self, cfg: TrainConfig, device: torch.device, log):
        self.cfg, self.device, self.log = cfg, device, log
        self.ds = load_training_data(cfg, log)
        self.copies = 2 if cfg.mirror else 1  # --mirror: index i + N is image i mirrored
        self.steps_per_epoch = self.copies * len(self.ds.images) // cfg.batch_size
        self.aug = Augmenter(cfg.augment, target=cfg.ada_target, batch_size=cfg.batch_size, seed=cfg.seed)
        self.world = World()  # the engine sets the world of a torchrun job

    def build_models(self):
        G, D, self.memory_format = training_models(self.cfg, self.device)  # the engine resolved the precision
        return G, D

    def fingerprint(self) -> str:
        return data_fingerprint(self.ds.images, self.ds.labels if self.cfg.conditional else None)

    def state_dict(self) -> dict:
        """What the engine checkpoints besides the GAN: the augmentation's p and random state (which bCR's shifts
        draw from too)."""
        return {"augment": self.aug.state_dict()} if self.aug.active or self.cfg.consistency else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the augmentation's state; a checkpoint without one was trained without augmentation (a run from
        before --augment, whose config's missing `augment` read as auto), and so it continues."""
        if "augment" in state:
            self.aug.load_state_dict(state["augment"])
        elif self.aug.active or self.cfg.consistency:
            self.log(f"--augment {self.cfg.augment} -> none: the checkpoint was trained without augmentation")
            self.cfg.augment, self.cfg.consistency = "none", 0.0
            self.aug = Augmenter("none")

    def describe(self) -> list[str]:
        cfg, ds = self.cfg, self.ds
        classes = f"{ds.num_classes} classes" if cfg.conditional else "unconditional"
        mirror = " and their mirror images" if cfg.mirror else ""
        augment = {"none": "D sees real and generated images as they are (no augmentation)",
                   "diffaug": "D sees real and generated images through DiffAugment (colour, translation, cutout "
                              "on every image)",
                   "ada": f"D sees real and generated images through ADA (colour, translation, cutout with "
                          f"adaptive p, target {cfg.ada_target})"}[cfg.augment]
        if cfg.consistency:
            augment += f"; bCR weight {cfg.consistency:g} (D's logits kept under shifts of up to 1/8 of the size)"
        return [f"data: {cfg.dataset}, {len(ds.images):,} images{mirror} {cfg.channels}x{cfg.image_size}x"
                f"{cfg.image_size}, {classes} | G {count_params(self.gan.G):,} params, D {count_params(self.gan.D):,} "
                f"params | device {self.device}, {cfg.precision}, {self.memory_format.replace('_', '-')}",
                augment]

    def start(self, run_dir: Path) -> None:
        cfg, ds, device = self.cfg, self.ds, self.device
        self.aug.world = self.world  # draws for the global batch; ADA's p from the signs of all processes
        self.images = ds.images.to(device)  # (N, C, H, W) uint8, the whole dataset in memory
        self.labels = ds.labels.to(device) if cfg.conditional else None
        z, y, self.nrow = grid_inputs(cfg)
        self.z_grid, self.y_grid = z.to(device), (y.to(device) if y is not None else None)
        if not (run_dir / "reals.png").exists():
            if cfg.conditional:  # one class per row, padded with black where a class has fewer images
                blank = torch.zeros_like(ds.images[:1])
                classes = range(min(cfg.num_classes, 20))
                rows = [ds.images[torch.nonzero(ds.labels == c)[: self.nrow, 0]] for c in classes]
                reals = torch.cat([torch.cat([r, blank.expand(self.nrow - len(r), -1, -1, -1)]) for r in rows])
            else:
                reals = ds.images[: min(64, len(ds.images))]
            save_png(make_grid(reals.permute(0, 2, 3, 1).numpy(), self.nrow), run_dir / "reals.png")

    def batches(self, step: int):
        n = len(self.images)
        for idx in epoch_indices(self.copies * n, self.cfg.batch_size, self.cfg.seed, step, self.device):
            idx = self.world.rows(idx)  # (B / processes,) this process's share of the global batch
            src = idx % n
            x = self.images[src].float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]
            if self.copies == 2:
                x = torch.where((idx >= n).view(-1, 1, 1, 1), x.flip(3), x)  # mirror the second copy
            yield x, (self.labels[src] if self.labels is not None else None)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        gan, aug = self.gan, self.aug
        z = torch.randn(self.cfg.batch_size, self.cfg.z_dim, generator=gan.noise)  # (B, z_dim), the global batch's
        z = self.world.rows(z).to(self.device)
        p = aug.p  # the probability this step ran with
        consistency = (self.cfg.consistency, aug.shift) if self.cfg.consistency else None
        stats = train_step(gan, x, y, z, augment=aug if aug.active else None, on_real_logits=aug.observe,
                           mode_seeking=self.cfg.mode_seeking, consistency=consistency)
        aug.step()
        if aug.mode == "ada":
            stats["aug_p"] = torch.tensor(p)
        return stats

    def format_stats(self, m: dict[str, float]) -> str:
        p = f" | aug p {m['aug_p']:.3f}" if "aug_p" in m else ""
        return (f"loss_d {m['loss_d']:.3f} loss_g {m['loss_g']:.3f} | D(x) {m['d_real']:.2f} "
                f"D(G(z)) {m['d_fake']:.2f}{p}")

    def prepare_outputs(self) -> None:
        pass

    def write_sample(self, run_dir: Path, stem: str) -> str:
        sampler = self.gan.sampler
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = make_grid(to_uint8(sampler(self.z_grid, self.y_grid)), self.nrow)
        sampler.train(was_training)
        save_png(grid, run_dir / "samples" / f"{stem}.png")
        return f"{stem}.png"

    def evaluate(self) -> dict:
        from ganimate.metrics.evaluate import quick_eval

        cfg = self.cfg
        result = quick_eval(self.gan.sampler, cfg.dataset, n=cfg.eval_n, device=str(self.device),
                            data_dir=cfg.data_dir, seed=cfg.seed)
        return {"n": cfg.eval_n, **result} if result else {}


def fit(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train an image GAN from `cfg` (or continue it with resume=True); returns the run folder."""
    return run(cfg, ImageTask, resume=resume, overwrite=overwrite)
