"""`ganimate clip train`: a conditional video GAN on Moving MNIST clips, with ganimate train's run folder.

The generators and discriminator are those of models/clip.py. G's loss is the non-saturating
adversarial loss plus `recon_weight` times a reconstruction term: L1 (pix2pix, Isola et al. 2017), or
with `--recon-loss l2` the squared error, whose minimiser is the mean of what the given frames leave
open (higher PSNR, softer digits). For `predict` the reconstruction term is the minimum over
`recon_samples` noise draws per still (the best-of-many objective of Bhattacharyya et al. 2018), so G
is not pushed to the blurry mean of all motions and different z keep giving different plausible ones.
`--views N` (inbetween) leaves training alone: validation, samples and the commands that load the run
use `ViewEnsemble` (the mean over N symmetric views).

`forecast` (the standard Moving MNIST benchmark: the next frames from the first --context ones) is
deterministic: G's loss is `recon_weight` times the mean squared error in [0, 1] (SimVP, Gao et al.
2022; the absolute error with `--recon-loss l1`), plus the adversarial term only when --adv-weight is
above 0 (its default there is 0, and then D is never updated). Its validation metric is OpenSTL's MSE
(clips/openstl.py).

The engine (engine.py) runs `ClipTask` into the usual run folder: metrics.jsonl gets the validation
PSNR on fixed test clips every --eval-every steps, samples/step_XXXXXX.mp4 shows ground truth |
generated, one fixed test clip per row. Training batches are a function of (seed, step), so a resumed
run sees the same data as an uninterrupted one. Before every evaluation, sample and checkpoint the EMA
generator's batch-norm statistics are re-estimated on fixed training batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganimate import losses
from ganimate.clips.config import ClipTrainConfig
from ganimate.clips.inference import (
    complete_clip,
    conditioning,
    forecast,
    generate,
    side_by_side_frames,
    to_float,
    unknown_frames,
    with_views,
)
from ganimate.clips.openstl import mae_per_frame, mse_per_frame
from ganimate.data.moving_mnist import clip_source
from ganimate.distributed import World
from ganimate.engine import run
from ganimate.gan import GanState, d_update, recompute_bn_stats
from ganimate.metrics.pixel import psnr
from ganimate.models import count_params
from ganimate.models.clip import build_clip_models, gaussian_blur
from ganimate.video import default_scale, write_video


def blur_clip(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Frames (B, 1, T, H, W) in [-1, 1] blurred as the warp generator blurs its key frames (black outside)."""
    b, _, t, h, w = x.shape
    y = gaussian_blur(x.transpose(1, 2).reshape(b * t, 1, h, w) + 1, sigma) - 1
    return y.view(b, t, 1, h, w).transpose(1, 2)


def clip_train_step(cfg: ClipTrainConfig, gan: GanState, x: torch.Tensor,
                    z: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """One D update and one G update on real clips x (B, 1, T, H, W) in [-1, 1].

    z: predict noise (recon_samples * B, z_dim), draw k of clip b at row k * B + b. Returns detached scalars.
    """
    G, D, amp = gan.G_step, gan.D_step, gan.amp
    if cfg.task == "forecast":
        return forecast_train_step(cfg, gan, x)
    b, k = x.shape[0], cfg.recon_samples if cfg.task == "predict" else 1
    cond = conditioning(cfg.task, x)
    with amp():
        if cfg.task == "predict":
            xs = x.repeat(k, 1, 1, 1, 1)
            fakes = complete_clip("predict", G, xs, z).float()  # (K*B, 1, T, H, W)
            err = losses.reconstruction(fakes[:, :, 1:] - xs[:, :, 1:], cfg.recon_loss, (1, 2, 3, 4)).view(k, b)
            recon = err.min(0).values.mean()  # best of K draws per clip
            fake = fakes[:b]
        elif cfg.synthesis == "warp":  # the error also of the same motion applied to blurred key frames
            levels = G(x[:, :, 0], x[:, :, -1], pyramid=True).float()  # (S, B, 1, T-2, H, W)
            fake = torch.cat([x[:, :, :1], levels[0], x[:, :, -1:]], 2)
            recon = losses.reconstruction(levels[0] - x[:, :, 1:-1], cfg.recon_loss) + sum(
                losses.reconstruction(lv - blur_clip(x[:, :, 1:-1], s), cfg.recon_loss)
                for lv, s in zip(levels[1:], gan.G.sigmas, strict=True))
        else:
            fake = complete_clip("inbetween", G, x).float()
            recon = losses.reconstruction(fake[:, :, 1:-1] - x[:, :, 1:-1], cfg.recon_loss)

    stats = d_update(gan, (x, cond), (fake.detach(), cond))
    with gan.g_pass():
        with amp():
            adv = losses.g_loss(D(fake, cond).float())
        g_skipped = not gan.step_G(cfg.adv_weight * adv + cfg.recon_weight * recon)
    return {"loss_d": stats["loss_d"], "loss_g_adv": adv.detach(), "l1": recon.detach(), "d_real": stats["d_real"],
            "d_fake": stats["d_fake"], "skipped": max(stats["skipped"], float(g_skipped))}


def forecast_train_step(cfg: ClipTrainConfig, gan: GanState, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One G update (and one D update when cfg.adv_weight > 0) of the forecast task on clips x (B, 1, T, H, W)."""
    c, adv = cfg.context, torch.zeros(())
    stats = {"loss_d": torch.zeros(()), "d_real": torch.zeros(()), "d_fake": torch.zeros(()), "skipped": 0.0}
    with gan.amp():
        fake = complete_clip("forecast", gan.G_step, x).float()  # (B, 1, T, H, W)
        err = losses.reconstruction((fake[:, :, c:] - x[:, :, c:]) / 2, cfg.recon_loss)  # in [0, 1] units
    cond = conditioning("forecast", x, c)
    if cfg.adv_weight > 0:
        stats = d_update(gan, (x, cond), (fake.detach(), cond))
    with gan.g_pass():
        if cfg.adv_weight > 0:
            with gan.amp():
                adv = losses.g_loss(gan.D_step(fake, cond).float())
        g_skipped = not gan.step_G(cfg.recon_weight * err + cfg.adv_weight * adv)
    return {"loss_d": stats["loss_d"], "loss_g_adv": adv.detach(), "l1": err.detach(), "d_real": stats["d_real"],
            "d_fake": stats["d_fake"], "skipped": max(stats["skipped"], float(g_skipped))}


class ClipTask:
    """Video from images on Moving MNIST (predict or inbetween): the engine's task for `ganimate clip train`."""

    unit = "clips"
    steps_per_epoch = None  # an endless stream of clips
    # --precision auto trains clips in fp32 on a CPU: there bf16 3-D convolutions (torch 2.13's oneDNN, measured on
    # an AVX-512 BF16 AMD EPYC) return NaN weight gradients in most steps, so training diverged at step 1 or 2
    cpu_bf16 = False

    def __init__(self, cfg: ClipTrainConfig, device: torch.device, log):
        self.cfg, self.device = cfg, device
        self.world = World()  # the engine sets the world of a torchrun job
        kw = dict(size=cfg.size, frames=cfg.frames, digits=cfg.digits, data_dir=cfg.data_dir)
        self.train_src = clip_source(cfg.dataset, "train", **kw)
        self.test_src = clip_source(cfg.dataset, "test", **kw)

    def build_models(self):
        return build_clip_models(self.cfg)

    def fingerprint(self) -> None:
        return None  # clips are drawn from the digits on the fly; their source is in the config

    def describe(self) -> list[str]:
        cfg = self.cfg
        return [f"data: {cfg.dataset}, {cfg.digits} digit(s), {cfg.frames} frames of {cfg.size}x{cfg.size} | task "
                f"{cfg.task} | G {count_params(self.gan.G):,} params, D {count_params(self.gan.D):,} params | "
                f"device {self.device}, {cfg.precision}, {torch.get_num_threads()} thread(s)"]

    def start(self, run_dir: Path) -> None:
        cfg, device = self.cfg, self.device
        self.val_clips, _ = self.test_src.clips(cfg.eval_clips, cfg.seed + 12_345)  # fixed test clips
        # G_ema's inputs for re-estimating its batch-norm statistics: 8 fixed batches of training clips
        bn_clips, _ = self.train_src.clips(8 * cfg.batch_size, cfg.seed + 54_321)
        bn_z = torch.randn(len(bn_clips), cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 54_321))
        self.bn_batches = []
        for i in range(0, len(bn_clips) if cfg.task != "forecast" else 0, cfg.batch_size):  # forecast: no BN
            x = to_float(bn_clips[i : i + cfg.batch_size], device)
            extra = bn_z[i : i + cfg.batch_size].to(device) if cfg.task == "predict" else x[:, :, -1]
            self.bn_batches.append((x[:, :, 0], extra))

    def batches(self, step: int):
        for clips in self.train_src.batches(self.cfg.batch_size, self.cfg.seed, start=step):
            yield to_float(self.world.rows(clips), self.device)  # (B / processes, 1, T, H, W)

    def train_step(self, x) -> dict[str, torch.Tensor]:
        cfg, gan = self.cfg, self.gan
        z = None
        if cfg.task == "predict":
            z = torch.randn(cfg.recon_samples, cfg.batch_size, cfg.z_dim, generator=gan.noise)  # (K, B, z_dim)
            z = self.world.rows(z.transpose(0, 1)).transpose(0, 1).reshape(-1, cfg.z_dim).to(self.device)
        return clip_train_step(cfg, gan, x, z)

    def format_stats(self, m: dict[str, float]) -> str:
        if self.cfg.task == "forecast":
            name = "mse" if self.cfg.recon_loss == "l2" else "mae"
            return f"{name} {m['l1']:.5f} (per pixel, [0, 1]) | adv {m['loss_g_adv']:.3f} loss_d {m['loss_d']:.3f}"
        return (f"loss_d {m['loss_d']:.3f} adv {m['loss_g_adv']:.3f} {self.cfg.recon_loss} {m['l1']:.4f} | "
                f"D(x) {m['d_real']:.2f} D(G) {m['d_fake']:.2f}")

    def prepare_outputs(self) -> None:
        # update_ema copies G's batch-norm statistics, which G_ema's averaged weights do not fit
        recompute_bn_stats(self.gan.G_ema, self.bn_batches)

    def inference_G(self):
        """G_ema as samples, validation and `clip evaluate` use it (with --views, the mean over the views)."""
        return with_views(self.gan.G_ema, self.cfg.task, self.cfg.views)

    def write_sample(self, run_dir: Path, stem: str) -> str:
        show = self.val_clips[:4]
        fake = generate(self.cfg.task, self.inference_G(), show, seed=self.cfg.seed + 99, device=self.device)[0]
        side = show.shape[-1]
        write_video(side_by_side_frames(show, fake, scale=default_scale(side * 4, side * 2, 256)),
                    run_dir / "samples" / f"{stem}.mp4", fps=4)
        return f"{stem}.mp4"

    def evaluate(self) -> dict:
        cfg, unknown = self.cfg, unknown_frames(self.cfg.task)
        if cfg.task == "forecast":
            pred = forecast(self.gan.G_ema, self.val_clips, device=self.device)
            true = self.val_clips[:, cfg.context :].astype(np.float32) / 255
            return {"val_mse": round(float(mse_per_frame(pred, true).mean()), 3),
                    "val_mae": round(float(mae_per_frame(pred, true).mean()), 3)}
        k = 4 if cfg.task == "predict" else 1
        fake = generate(cfg.task, self.inference_G(), self.val_clips, samples=k, seed=cfg.seed + 99, device=self.device)
        p = psnr(torch.from_numpy(fake[:, :, unknown]), torch.from_numpy(self.val_clips[None, :, unknown]),
                 data_range=255).mean(2)  # (K, N)
        result = {"val_psnr": round(float(p.mean()), 3)}
        if cfg.task == "predict":
            result["val_psnr_best4"] = round(float(p.max(0).values.mean()), 3)
        return result


def fit_clips(cfg: ClipTrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a clip run from `cfg` (or continue it with resume=True); returns the run folder."""
    return run(cfg, ClipTask, resume=resume, overwrite=overwrite)
