"""Training: one GAN step as a plain function, and `fit`, which runs a whole resumable run.

A run folder holds config.json, log.txt, stats.jsonl, reals.png, samples/ (a grid from
fixed latents after every epoch and optionally every N steps, listed in
samples/index.jsonl) and checkpoints/ (everything needed to resume, bit for bit on CPU).
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
from tqdm import tqdm

from ganimate import losses
from ganimate.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ganimate.config import TrainConfig
from ganimate.errors import GanimateError
from ganimate.gan import GanState
from ganimate.images import make_grid, save_png, to_uint8
from ganimate.models import build_models, count_params
from ganimate.runs import RunLog, append_jsonl, open_run
from ganimate.runtime import resolve_device, resolve_precision


def train_step(G, D, opt_G, opt_D, x, y, z, bf16: bool = False) -> dict[str, torch.Tensor]:
    """One D update and one G update on a real batch x (B, C, H, W) in [-1, 1].

    G's forward pass is shared by both updates: D sees the fake detached, then G's
    loss flows back through D into G. Real and fake go through D as separate batches
    (the DCGAN recipe). bf16=True runs the forward passes under bfloat16 autocast;
    losses, weights and optimizer state stay fp32. Returns detached scalars (no sync).
    """
    amp = functools.partial(torch.autocast, x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with amp():
        fake = G(z, y)  # (B, C, H, W)

    opt_D.zero_grad(set_to_none=True)
    with amp():
        real_logits, fake_logits = D(x, y).float(), D(fake.detach(), y).float()
    loss_d = losses.d_loss(real_logits, fake_logits)
    loss_d.backward()
    opt_D.step()

    opt_G.zero_grad(set_to_none=True)
    with amp():
        g_logits = D(fake, y).float()
    loss_g = losses.g_loss(g_logits)
    loss_g.backward()
    opt_G.step()

    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
    }


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch, a function of (seed, epoch) alone so resume can rebuild it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


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
    """Load the dataset and fill in the config's dataset-derived fields (sizes, classes)."""
    from ganimate.data import load_dataset

    ds = load_dataset(
        cfg.dataset, "train", data_dir=cfg.data_dir, image_size=cfg.image_size,
        channels=cfg.channels, strict=cfg.strict, log=log,
    )
    if cfg.conditional and ds.num_classes == 0:
        raise GanimateError(f"--conditional needs class labels, and {cfg.dataset} has none (use sub-folders per class)")
    if cfg.conditional is None:
        cfg.conditional = ds.num_classes > 0
    if cfg.num_classes and cfg.num_classes != ds.num_classes:
        raise GanimateError(
            f"the run was trained with {cfg.num_classes} classes but {cfg.dataset} has {ds.num_classes}"
        )
    cfg.image_size, cfg.channels, cfg.num_classes = ds.image_size, ds.channels, ds.num_classes
    if len(ds.images) < cfg.batch_size:
        raise GanimateError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(ds.images)} images)")
    return ds


@dataclass
class _Interval:
    """Running sums between two log lines."""

    steps: int = 0
    start: float = 0.0
    sums: dict | None = None

    def add(self, stats: dict) -> None:
        self.steps += 1
        if self.sums is None:
            self.sums = {k: v.clone() for k, v in stats.items()}
        else:
            for k, v in stats.items():
                self.sums[k] += v

    def means(self) -> dict[str, float]:
        return {k: float(v) / self.steps for k, v in (self.sums or {}).items()}


def fit(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a run from `cfg` (or continue it with resume=True); returns the run folder."""
    run_dir = Path(cfg.out)
    device = resolve_device(cfg.device)
    ckpt_path = list_checkpoints(run_dir)[-1] if resume else None
    state = load_checkpoint(ckpt_path) if resume else None
    bar = None
    log = RunLog(None, lambda: bar is not None)

    ds = load_training_data(cfg, log)
    cfg.precision = resolve_precision(cfg.precision, device)
    spe = len(ds.images) // cfg.batch_size
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)

    torch.manual_seed(cfg.seed)
    gan = GanState.create(*build_models(cfg), lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=(cfg.beta1, cfg.beta2),
                          seed=cfg.seed, ema=cfg.ema)
    G, D, G_ema, opt_G, opt_D, noise = gan.G, gan.D, gan.G_ema, gan.opt_G, gan.opt_D, gan.noise
    step, elapsed = gan.resume(state, ckpt_path, device, total, "--epochs or --max-steps")

    open_run(run_dir, cfg, log, resume=resume, overwrite=overwrite, step=step, ckpt_path=ckpt_path)
    log(
        f"data: {cfg.dataset}, {len(ds.images):,} images {cfg.channels}x{cfg.image_size}x{cfg.image_size}, "
        f"{ds.num_classes} classes | G {count_params(G):,} params, D {count_params(D):,} params | device {device}"
    )
    log(f"{spe:,} steps per epoch, training to step {total:,}")

    images = ds.images.to(device)  # (N, C, H, W) uint8, the whole dataset in memory
    labels = ds.labels.to(device) if cfg.conditional else None
    gan.to(device)
    sampler = G_ema if G_ema is not None else G
    z_grid, y_grid, nrow = grid_inputs(cfg)
    z_grid = z_grid.to(device)
    y_grid = y_grid.to(device) if y_grid is not None else None

    if not (run_dir / "reals.png").exists():
        if cfg.conditional:
            per_class = [torch.nonzero(ds.labels == c)[:nrow, 0] for c in range(min(cfg.num_classes, 20))]
            idx = torch.cat(per_class)
        else:
            idx = torch.arange(min(64, len(ds.images)))
        reals = ds.images[idx].permute(0, 2, 3, 1).numpy()
        save_png(make_grid(reals, nrow), run_dir / "reals.png")

    def save_grid(name: str, kind: str) -> None:
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = make_grid(to_uint8(sampler(z_grid, y_grid)), nrow)
        sampler.train(was_training)
        save_png(grid, run_dir / "samples" / name)
        append_jsonl(run_dir / "samples" / "index.jsonl",
                      {"file": name, "step": step, "epoch": math.ceil(step / spe), "kind": kind})

    def checkpoint() -> Path:
        state = {"config": cfg.to_dict(), "step": step, "epoch": step // spe,
                 "elapsed_s": elapsed + time.perf_counter() - t_start, **gan.state_dict(device)}
        return save_checkpoint(state, run_dir, step, keep=cfg.keep_checkpoints)

    def evaluate(G_eval) -> None:
        from ganimate.metrics.evaluate import quick_eval

        t = time.perf_counter()
        result = quick_eval(G_eval, cfg.dataset, n=cfg.eval_n, device=str(device), data_dir=cfg.data_dir,
                            seed=cfg.seed)
        record = {"step": step, "time_s": round(elapsed + t - t_start, 2), "kind": "train", "n": cfg.eval_n,
                  "eval_s": round(time.perf_counter() - t, 2), **result}
        append_jsonl(run_dir / "metrics.jsonl", record)
        shown = " ".join(f"{k} {v:.4g}" for k, v in result.items() if k in ("fd", "fd_floor", "class_acc"))
        log(f"eval at step {step:,}: {shown or 'n/a'} ({time.perf_counter() - t:.1f} s)")

    stop = {"requested": False}
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))

    show_bar = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    t_start = time.perf_counter()
    interval = _Interval(start=t_start)
    G.train(), D.train()
    try:
        while step < total and not stop["requested"]:
            epoch = step // spe  # 0-based
            perm = epoch_permutation(cfg.seed, epoch, len(images)).to(device)
            bar = tqdm(total=spe, initial=step % spe, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not show_bar, leave=False, dynamic_ncols=True)
            for b in range(step % spe, spe):
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x = images[idx].float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]
                y = labels[idx] if labels is not None else None
                z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise).to(device)
                stats = train_step(G, D, opt_G, opt_D, x, y, z, bf16=cfg.precision == "bf16")
                step += 1
                gan.update_ema(step, cfg.ema_decay)
                interval.add(stats)
                bar.update(1)

                if step % cfg.log_every == 0 or step == total:
                    now = time.perf_counter()
                    means = interval.means()
                    rate = interval.steps * cfg.batch_size / max(now - interval.start, 1e-9)
                    record = {"step": step, "epoch": epoch + 1, **{k: round(v, 5) for k, v in means.items()},
                              "img_per_s": round(rate, 1), "time_s": round(elapsed + now - t_start, 2)}
                    append_jsonl(run_dir / "stats.jsonl", record)
                    log(f"epoch {epoch + 1} step {step:,}/{total:,} | loss_d {means['loss_d']:.3f} "
                        f"loss_g {means['loss_g']:.3f} | D(x) {means['d_real']:.2f} D(G(z)) {means['d_fake']:.2f}"
                        f" | {rate:,.0f} img/s")
                    bar.set_postfix(loss_d=f"{means['loss_d']:.3f}", loss_g=f"{means['loss_g']:.3f}",
                                    img_s=f"{rate:,.0f}")
                    interval = _Interval(start=time.perf_counter())
                if cfg.eval_every and step % cfg.eval_every == 0:
                    t_eval = time.perf_counter()
                    evaluate(sampler)
                    interval.start += time.perf_counter() - t_eval  # img/s counts training only
                if cfg.sample_every and step % cfg.sample_every == 0:
                    save_grid(f"step_{step:06d}.png", "step")
                if step % spe == 0:
                    save_grid(f"epoch_{step // spe:04d}.png", "epoch")
                    saved = checkpoint()
                    log(f"epoch {step // spe} done at step {step:,} "
                        f"({(elapsed + time.perf_counter() - t_start) / 60:.1f} min): "
                        f"samples/epoch_{step // spe:04d}.png, checkpoints/{saved.name}")
                elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    checkpoint()
                if step >= total or stop["requested"]:
                    break
            bar.close()
            bar = None
        if step % spe != 0:  # stopped mid-epoch: keep its progress
            if not (cfg.sample_every and step % cfg.sample_every == 0):
                save_grid(f"step_{step:06d}.png", "step")
            if not (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                checkpoint()
    finally:
        if bar is not None:
            bar.close()
            bar = None
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)

    minutes = (time.perf_counter() - t_start) / 60
    if stop["requested"]:
        log(f"interrupted at step {step:,}; checkpoint saved, continue with --resume")
        raise KeyboardInterrupt
    else:
        log(f"done: step {step:,} in {minutes:.1f} min this session; latest grid and checkpoint in {run_dir}")
    return run_dir
