"""`ganimate restore train`: fit the restoration GAN (or, with --adv-weight 0, the same generator with
L1 only) on degradations drawn on the fly; the engine (engine.py) runs `RestoreTask` into a resumable
run folder, as `ganimate train`.

samples/ holds grids of degraded | restored | clean validation images (rows in that order); every
--eval-every steps and at the end, validation PSNR/SSIM go to metrics.jsonl. The last `val_size`
training images are held out for validation and baseline tuning.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ganimate import losses
from ganimate.distributed import World
from ganimate.engine import data_fingerprint, epoch_indices, run
from ganimate.errors import GanimateError
from ganimate.gan import GanState, d_update
from ganimate.images import make_grid, save_png, to_uint8
from ganimate.metrics.pixel import psnr, ssim
from ganimate.models import count_params
from ganimate.restore.config import RestoreTrainConfig
from ganimate.restore.degrade import degrade, degraded_split, to_full
from ganimate.restore.inference import VAL_SEED, load_split, model_input, restore
from ganimate.restore.model import build_restore_models


def restore_step(gan: GanState, inp, target, adv_weight: float, l1_weight: float) -> dict[str, torch.Tensor]:
    """One D update (skipped when adv_weight is 0) and one G update on degraded `inp` and clean `target`
    (B, C, H, W) in [-1, 1]. G's loss: l1_weight * L1 + adv_weight * non-saturating BCE on D's logits."""
    with gan.amp():
        fake = gan.G_step(inp)  # (B, C, H, W)
    stats = d_update(gan, (inp, target), (inp, fake.detach())) if adv_weight > 0 else {}
    l1 = F.l1_loss(fake.float(), target)
    loss = l1_weight * l1
    with gan.g_pass():
        if adv_weight > 0:
            with gan.amp():
                g_adv = losses.g_loss(gan.D_step(inp, fake).float())
            loss = loss + adv_weight * g_adv
            stats["loss_g_adv"] = g_adv.detach()
        g_skipped = not gan.step_G(loss)
    stats["skipped"] = max(stats.get("skipped", 0.0), float(g_skipped))
    return {"l1": l1.detach(), **stats}


class RestoreTask:
    """Super-resolution, denoising or deblurring of the dataset's images: the engine's task for
    `ganimate restore train`."""

    unit = "img"

    def __init__(self, cfg: RestoreTrainConfig, device: torch.device, log):
        self.cfg, self.device = cfg, device
        self.world = World()  # the engine sets the world of a torchrun job
        self.images, _ = load_split(cfg, "train", log)
        self.val_images, _ = load_split(cfg, "val", log)
        cfg.channels, cfg.image_size = self.images.shape[1], self.images.shape[2]
        self.deg = cfg.degradation
        self.deg.check_size(cfg.image_size)
        if cfg.image_size % 4:
            raise GanimateError(f"the restoration model needs an image size divisible by 4, got {cfg.image_size}")
        if len(self.images) < cfg.batch_size:
            raise GanimateError(f"--batch-size {cfg.batch_size} is larger than the training split "
                                f"({len(self.images)} images)")
        self.steps_per_epoch = len(self.images) // cfg.batch_size

    def build_models(self):
        return build_restore_models(self.cfg)

    def fingerprint(self) -> str:
        return data_fingerprint(self.images)

    def describe(self) -> list[str]:
        cfg = self.cfg
        return [f"{cfg.method} restoration, task {cfg.task}: {self.deg.describe()} | data {cfg.dataset}, "
                f"{len(self.images):,} training and {len(self.val_images):,} validation images "
                f"{cfg.channels}x{cfg.image_size}x{cfg.image_size} | G {count_params(self.gan.G):,} params, "
                f"D {count_params(self.gan.D):,} params | device {self.device}, {cfg.precision}"]

    def start(self, run_dir: Path) -> None:
        self.images = self.images.to(self.device)
        self.val_clean = self.val_images[:500].float() / 255  # (V, C, H, W)
        self.val_obs = degraded_split(self.val_images[:500], self.deg, VAL_SEED)

    def batches(self, step: int):
        for idx in epoch_indices(len(self.images), self.cfg.batch_size, self.cfg.seed, step, self.device):
            yield self.images[idx].float().div_(255)  # (B, C, H, W) in [0, 1]

    def train_step(self, clean) -> dict[str, torch.Tensor]:
        cfg, gan = self.cfg, self.gan
        obs = degrade(clean.cpu(), self.deg, gan.noise).to(self.device)  # the global batch's noise draws
        obs, clean = self.world.rows((obs, clean))  # this process's rows
        return restore_step(gan, model_input(obs, cfg.image_size), clean * 2 - 1, cfg.adv_weight, cfg.l1_weight)

    def format_stats(self, means: dict[str, float]) -> str:
        return " ".join(f"{k} {v:.4f}" for k, v in means.items())

    def prepare_outputs(self) -> None:
        pass

    def write_sample(self, run_dir: Path, stem: str) -> str:
        n, size = 10, self.cfg.image_size
        rows = torch.cat([to_full(self.val_obs[:n], size), restore(self.gan.sampler, self.val_obs[:n], size),
                          self.val_clean[:n]])  # degraded | restored | clean
        save_png(make_grid(to_uint8(rows * 2 - 1), n), run_dir / "samples" / f"{stem}.png")
        return f"{stem}.png"

    def evaluate(self) -> dict:
        restored = restore(self.gan.sampler, self.val_obs, self.cfg.image_size)
        return {"val_psnr": round(float(psnr(restored, self.val_clean).mean()), 3),
                "val_ssim": round(float(ssim(restored, self.val_clean).mean()), 4), "val_n": len(self.val_obs)}


def fit_restore(cfg: RestoreTrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a restoration run from `cfg` (or continue it with resume=True); returns the run folder."""
    return run(cfg, RestoreTask, resume=resume, overwrite=overwrite)
