"""`ganimate restore train`: fit the restoration GAN (or, with --adv-weight 0, the same generator with
L1 only) on degradations drawn on the fly; one resumable run folder per run, as `ganimate train`.

The run folder holds config.json, log.txt, stats.jsonl (losses, images/s, wall time and validation
PSNR/SSIM), samples/ (grids of degraded | restored | clean validation images, rows in that order,
listed in samples/index.jsonl) and checkpoints/ (G, D, EMA G, optimizers, step and RNG states).
The last `val_size` training images are held out for validation and baseline tuning.
"""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ganimate import losses
from ganimate.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ganimate.config import TrainBase, check_image_dataset, default_out, option
from ganimate.errors import GanimateError
from ganimate.gan import GanState
from ganimate.images import make_grid, save_png, to_uint8
from ganimate.models import count_params
from ganimate.restore.degrade import Degradation, degrade, degraded_split, to_full
from ganimate.restore.metrics import psnr, ssim
from ganimate.restore.model import build_restore_models
from ganimate.runs import RunLog, append_jsonl, open_run, read_saved_config
from ganimate.runtime import resolve_device, resolve_precision
from ganimate.train import _Interval, epoch_permutation

VAL_SEED = 777  # degradations of the fixed validation images (grids, validation PSNR, baseline tuning)


@dataclass
class RestoreTrainConfig(TrainBase):
    """Everything `ganimate restore train` needs; saved as RUN/config.json and inside every checkpoint."""

    dataset: str = option("mnist | fashion-mnist | cifar10 | synthetic | folder:PATH", default="mnist")
    out: str | None = option("run folder (default runs/restore-<dataset>-<task>)", default=None)
    eval_every: int = option("validation PSNR/SSIM into RUN/metrics.jsonl every N steps and at the end (0: never)",
                             nonneg=True, default=1000)
    task: str = option("sr | denoise | deblur", default="sr")
    factor: int = option("sr: downscaling factor, 2 or 4", default=4)
    sigma: float = option("denoise: noise standard deviation as a share of the pixel range", default=0.2)
    blur_sigma: float = option("deblur: Gaussian blur sigma in pixels", default=1.5)
    blur_noise: float = option("deblur: noise added after the blur (share of the pixel range)", default=0.01)
    image_size: int = option("set from the dataset", default=0)
    channels: int = option("set from the dataset", default=0)
    g_width: int = option("channels of G's first feature map", positive=True, default=32)
    d_width: int = option("channels of D's first convolution", positive=True, default=32)
    bn_affine: bool = option("batch norm with scale and bias", default=True)
    adv_weight: float = option("weight of the adversarial loss; 0 trains the L1-only ablation (no D)", nonneg=True,
                               default=0.01)
    l1_weight: float = option("weight of the L1 reconstruction loss (images in [-1, 1])", nonneg=True, default=1.0)
    epochs: int = option("training epochs", positive=True, default=1)
    val_size: int = option("last training images held out for validation and baseline tuning", positive=True,
                           default=5000)

    RESUMABLE = (*TrainBase.RESUMABLE, "epochs")

    def __post_init__(self):
        Degradation.of(self)  # validates task, factor, sigma and the blur settings
        check_image_dataset(self.dataset)
        super().__post_init__()
        if self.adv_weight == 0 and self.l1_weight == 0:
            raise GanimateError("--adv-weight and --l1-weight cannot both be 0")
        if self.out is None:
            self.out = default_out("restore-", self.dataset) + f"-{self.task}"

    @property
    def degradation(self) -> Degradation:
        return Degradation.of(self)

    @property
    def method(self) -> str:
        return "GAN" if self.adv_weight > 0 else "L1-only"

    @classmethod
    def from_dict(cls, d: dict) -> RestoreTrainConfig:
        if "task" not in d:
            raise GanimateError("not a restoration run: its config.json has no task (a `ganimate train` run?)")
        return super().from_dict.__func__(cls, d)


def read_run_config(run_dir: str | Path) -> RestoreTrainConfig:
    """The saved config of a restoration run; one-line errors for anything else."""
    return RestoreTrainConfig.from_dict(read_saved_config(run_dir))


def load_split(cfg: RestoreTrainConfig, split: str, log=print) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images (N, C, H, W) and labels of a split; for "train" / "val" the held-out cut is applied."""
    from ganimate.data import load_dataset

    ds = load_dataset(cfg.dataset, "test" if split == "test" else "train", data_dir=cfg.data_dir,
                      image_size=cfg.image_size or None, channels=cfg.channels or None, log=log)
    images, labels = ds.images, ds.labels
    if split != "test":
        if len(images) <= cfg.val_size:
            raise GanimateError(f"--val-size {cfg.val_size} leaves no training images "
                                f"({cfg.dataset} has {len(images)})")
        cut = slice(None, -cfg.val_size) if split == "train" else slice(-cfg.val_size, None)
        images, labels = images[cut], None if labels is None else labels[cut]
    return images, labels


def model_input(obs: torch.Tensor, image_size: int) -> torch.Tensor:
    """Observations in [0, 1] -> G's input: full size, in [-1, 1]."""
    return to_full(obs, image_size) * 2 - 1


@torch.no_grad()
def restore(G, obs: torch.Tensor, image_size: int, batch_size: int = 500, bf16: bool = False) -> torch.Tensor:
    """Observations (N, C, h, w) in [0, 1] -> restored float (N, C, H, W) in [0, 1] by G in eval mode."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(obs), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            y = G(model_input(obs[i : i + batch_size].to(device), image_size))
        out.append((y.float().cpu() + 1) / 2)
    G.train(was_training)
    return torch.cat(out).clamp_(0, 1)


def restore_step(G, D, opt_G, opt_D, inp, target, adv_weight: float, l1_weight: float,
                 bf16: bool = False) -> dict[str, torch.Tensor]:
    """One D update (skipped when adv_weight is 0) and one G update on degraded `inp` and clean `target`
    (B, C, H, W) in [-1, 1]. G's loss: l1_weight * L1 + adv_weight * non-saturating BCE on D's logits."""
    amp = functools.partial(torch.autocast, inp.device.type, dtype=torch.bfloat16, enabled=bf16)
    with amp():
        fake = G(inp)  # (B, C, H, W)
    stats = {}
    if adv_weight > 0:
        opt_D.zero_grad(set_to_none=True)
        with amp():
            real_logits, fake_logits = D(inp, target).float(), D(inp, fake.detach()).float()
        loss_d = losses.d_loss(real_logits, fake_logits)
        loss_d.backward()
        opt_D.step()
        stats = {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_logits.detach()).mean(),
                 "d_fake": torch.sigmoid(fake_logits.detach()).mean()}
    opt_G.zero_grad(set_to_none=True)
    l1 = F.l1_loss(fake.float(), target)
    loss = l1_weight * l1
    if adv_weight > 0:
        with amp():
            g_adv = losses.g_loss(D(inp, fake).float())
        loss = loss + adv_weight * g_adv
        stats["loss_g_adv"] = g_adv.detach()
    loss.backward()
    opt_G.step()
    return {"l1": l1.detach(), **stats}


def fit_restore(cfg: RestoreTrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a restoration run from `cfg` (or continue it with resume=True); returns the run folder."""
    run_dir = Path(cfg.out)
    device = resolve_device(cfg.device)
    state, ckpt_path, bar = None, None, None
    if resume:
        ckpt_path = list_checkpoints(run_dir)[-1]
        state = load_checkpoint(ckpt_path)
    log = RunLog(None, lambda: bar is not None)

    images, _ = load_split(cfg, "train", log)
    val_images, _ = load_split(cfg, "val", log)
    cfg.channels, cfg.image_size = images.shape[1], images.shape[2]
    deg = cfg.degradation
    deg.check_size(cfg.image_size)
    if cfg.image_size % 4:
        raise GanimateError(f"the restoration model needs an image size divisible by 4, got {cfg.image_size}")
    if len(images) < cfg.batch_size:
        raise GanimateError(f"--batch-size {cfg.batch_size} is larger than the training split ({len(images)} images)")
    cfg.precision = resolve_precision(cfg.precision, device)
    bf16 = cfg.precision == "bf16"
    spe = len(images) // cfg.batch_size
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)

    torch.manual_seed(cfg.seed)
    gan = GanState.create(*build_restore_models(cfg), lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=(cfg.beta1, cfg.beta2),
                          seed=cfg.seed)
    G, D, G_ema, opt_G, opt_D, noise = gan.G, gan.D, gan.G_ema, gan.opt_G, gan.opt_D, gan.noise
    step, elapsed = gan.resume(state, ckpt_path, device, total, "--epochs or --max-steps")

    open_run(run_dir, cfg, log, resume=resume, overwrite=overwrite, step=step, ckpt_path=ckpt_path)
    log(f"{cfg.method} restoration, task {cfg.task}: {deg.describe()} | data {cfg.dataset}, {len(images):,} training "
        f"and {len(val_images):,} validation images {cfg.channels}x{cfg.image_size}x{cfg.image_size} | "
        f"G {count_params(G):,} params, D {count_params(D):,} params | device {device}, {cfg.precision}")
    log(f"{spe:,} steps per epoch, training to step {total:,}")

    images = images.to(device)
    gan.to(device)
    val_clean = val_images[:500].float() / 255  # (V, C, H, W)
    val_obs = degraded_split(val_images[:500], deg, VAL_SEED)
    grid_n = 10

    def save_grid(name: str, kind: str) -> None:
        rows = torch.cat([to_full(val_obs[:grid_n], cfg.image_size), restore(G_ema, val_obs[:grid_n], cfg.image_size),
                          val_clean[:grid_n]])  # degraded | restored | clean
        save_png(make_grid(to_uint8(rows * 2 - 1), grid_n), run_dir / "samples" / name)
        append_jsonl(run_dir / "samples" / "index.jsonl",
                      {"file": name, "step": step, "epoch": math.ceil(step / spe), "kind": kind})

    def validate() -> None:
        restored = restore(G_ema, val_obs, cfg.image_size)
        v_psnr, v_ssim = float(psnr(restored, val_clean).mean()), float(ssim(restored, val_clean).mean())
        record = {"step": step, "val_psnr": round(v_psnr, 3), "val_ssim": round(v_ssim, 4), "val_n": len(val_obs)}
        append_jsonl(run_dir / "stats.jsonl", record)
        log(f"validation at step {step:,}: PSNR {v_psnr:.2f} dB, SSIM {v_ssim:.3f} ({len(val_obs)} images)")

    def checkpoint() -> Path:
        state = {"config": cfg.to_dict(), "step": step, "epoch": step // spe,
                 "elapsed_s": elapsed + time.perf_counter() - t_start, **gan.state_dict(device)}
        return save_checkpoint(state, run_dir, step, keep=cfg.keep_checkpoints)

    stop = {"requested": False}
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))
    t_start = time.perf_counter()
    interval = _Interval(start=t_start)
    G.train(), D.train()
    show_bar = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=total, initial=step, desc=f"{cfg.method} {cfg.task}", disable=not show_bar, leave=False,
               dynamic_ncols=True)
    try:
        while step < total and not stop["requested"]:
            epoch = step // spe
            perm = epoch_permutation(cfg.seed, epoch, len(images)).to(device)
            for b in range(step % spe, spe):
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                clean = images[idx].float().div_(255)  # (B, C, H, W) in [0, 1]
                obs = degrade(clean.cpu(), deg, noise).to(device)
                stats = restore_step(G, D, opt_G, opt_D, model_input(obs, cfg.image_size), clean * 2 - 1,
                                     cfg.adv_weight, cfg.l1_weight, bf16)
                step += 1
                gan.update_ema(step, cfg.ema_decay)
                interval.add(stats)
                bar.update(1)
                if step % cfg.log_every == 0 or step == total:
                    now = time.perf_counter()
                    means = interval.means()
                    rate = interval.steps * cfg.batch_size / max(now - interval.start, 1e-9)
                    append_jsonl(run_dir / "stats.jsonl", {
                        "step": step, "epoch": epoch + 1, **{k: round(v, 5) for k, v in means.items()},
                        "img_per_s": round(rate, 1), "time_s": round(elapsed + now - t_start, 2)})
                    log(f"epoch {epoch + 1} step {step:,}/{total:,} | "
                        + " ".join(f"{k} {v:.4f}" for k, v in means.items()) + f" | {rate:,.0f} img/s")
                    interval = _Interval(start=time.perf_counter())
                if cfg.sample_every and step % cfg.sample_every == 0:
                    save_grid(f"step_{step:06d}.png", "step")
                if step % spe == 0:
                    save_grid(f"epoch_{step // spe:04d}.png", "epoch")
                    validate()
                    saved = checkpoint()
                    log(f"epoch {step // spe} done at step {step:,}: checkpoints/{saved.name}")
                elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    checkpoint()
                if step >= total or stop["requested"]:
                    break
        if step % spe != 0:  # stopped mid-epoch: keep its progress
            if not (cfg.sample_every and step % cfg.sample_every == 0):
                save_grid(f"step_{step:06d}.png", "step")
            if not stop["requested"]:
                validate()
            if not (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                checkpoint()
    finally:
        bar.close()
        bar = None
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if stop["requested"]:
        log(f"interrupted at step {step:,}; checkpoint saved, continue with --resume")
        raise KeyboardInterrupt
    log(f"done: step {step:,} in {(time.perf_counter() - t_start) / 60:.1f} min this session "
        f"({elapsed + time.perf_counter() - t_start:.0f} s in all); latest grid and checkpoint in {run_dir}")
    return run_dir


def load_restorer(run_dir: str | Path, checkpoint: str | None = None, device: str = "cpu"):
    """A restoration run's EMA generator in eval mode and its config, rebuilt from the checkpoint alone;
    plus the checkpoint's step and training seconds: (G, cfg, step, elapsed_s)."""
    from ganimate.checkpoint import resolve_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    read_run_config(run_dir)  # a run of `ganimate train` is refused here with a clear message
    state = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    cfg = RestoreTrainConfig.from_dict(state["config"])
    G, _ = build_restore_models(cfg)
    try:
        G.load_state_dict(state["G_ema"])
    except (RuntimeError, TypeError, KeyError) as e:
        reason = str(e).splitlines()[0][:100]
        raise GanimateError(f"checkpoint of {run_dir} does not fit its config ({reason})") from None
    return G.to(device).eval(), cfg, state["step"], state.get("elapsed_s", 0.0)
