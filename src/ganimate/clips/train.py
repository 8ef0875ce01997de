"""`ganimate clip train`: a conditional video GAN on Moving MNIST clips, with ganimate train's run folder.

The generators and discriminator are those of models/clip.py. G's loss is the non-saturating
adversarial loss plus `recon_weight` times an L1 reconstruction term (pix2pix, Isola et al. 2017). For
`predict` the reconstruction term is the minimum over `recon_samples` noise draws per still (the
best-of-many objective of Bhattacharyya et al. 2018), so G is not pushed to the blurry mean of all
motions and different z keep giving different plausible ones.

RUN/ holds config.json, log.txt, stats.jsonl (losses and, every --eval-every steps, validation PSNR on
fixed test clips), samples/step_XXXXXX.mp4 (ground truth | generated, one fixed test clip per row) with
samples/index.jsonl, and checkpoints/. Training batches are a function of (seed, step), so a resumed
run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganimate import losses
from ganimate.checkpoint import list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint
from ganimate.config import TrainBase, option
from ganimate.data.moving_mnist import SIZES, clip_source
from ganimate.errors import GanimateError
from ganimate.gan import GanState, recompute_bn_stats
from ganimate.images import make_grid
from ganimate.models import count_params
from ganimate.models.clip import BASES, TASKS, build_clip_models, spatial_plan
from ganimate.runs import RunLog, append_jsonl, open_run
from ganimate.runtime import resolve_device, resolve_precision
from ganimate.video import default_scale, upscale, write_video

CLIP_DATASETS = ("moving-mnist", "moving-synthetic", "npy:PATH")


@dataclass
class ClipTrainConfig(TrainBase):
    """Everything `ganimate clip train` needs; saved as RUN/config.json and inside every checkpoint."""

    dataset: str = option("moving-mnist | moving-synthetic (bars, for tests) | npy:PATH (mnist_test_seq.npy)",
                          default="moving-mnist")
    out: str | None = option("run folder (default runs/clip-<task>)", default=None)
    data_dir: str | None = option("folder holding the MNIST files (searched first)", default=None)
    max_steps: int | None = option("optimiser steps in total", positive=True, default=3000)
    batch_size: int = option("clips per step", positive=True, default=16)
    log_every: int = option("log line every N steps", positive=True, default=50)
    eval_every: int = option("validation PSNR on fixed test clips every N steps and at the end (0: never)",
                             nonneg=True, default=250)
    sample_every: int = option("side-by-side sample video every N steps (0: only at the end)", nonneg=True,
                               default=500)
    checkpoint_every: int = option("checkpoint every N steps (and at the end)", nonneg=True, default=500)
    task: str = option("predict (a clip from its first frame) | inbetween (frames between first and last)",
                       choices=TASKS, default="inbetween")
    digits: int = option("digits per clip: 1 or 2", default=1)
    size: int = option("canvas side: 32 or 48 (CPU presets) or 64 (standard)", default=32)
    frames: int = option("frames per clip T (20 is the standard)", default=10)
    base: str = option("inbetween: the clip G corrects: flow (optical-flow interpolation of the key frames) | "
                       "crossfade", choices=BASES, default="flow")
    z_dim: int = option("noise size of the predict generator", positive=True, default=32)
    g_width: int = option("channels of G's full-resolution layers", positive=True, default=16)
    d_width: int = option("channels of D's first layer", positive=True, default=16)
    adv_weight: float = option("weight of the adversarial loss in G's loss", nonneg=True, default=1.0)
    recon_weight: float = option("weight of the L1 reconstruction loss in G's loss", nonneg=True, default=100.0)
    recon_samples: int = option("predict: noise draws per still; the best one's L1 is the loss", positive=True,
                                default=3)
    eval_clips: int = option("test clips of the validation PSNR", positive=True, default=64)

    def __post_init__(self):
        if not (self.dataset in CLIP_DATASETS or self.dataset.startswith("npy:")):
            raise GanimateError(f"unknown clip dataset {self.dataset!r}: choose from {', '.join(CLIP_DATASETS)}")
        super().__post_init__()
        if self.max_steps is None:
            raise GanimateError("--max-steps is needed: clip training has no epochs")
        if self.digits not in (1, 2):
            raise GanimateError(f"--digits must be 1 or 2, got {self.digits}")
        if self.size < 28:
            raise GanimateError(f"--size must hold a 28x28 digit ({', '.join(map(str, SIZES))}), got {self.size}")
        try:
            spatial_plan(self.size)
        except ValueError as e:
            raise GanimateError(str(e)) from None
        if self.frames < 3:
            raise GanimateError(f"--frames must be at least 3, got {self.frames}")
        if self.out is None:
            self.out = str(Path("runs") / f"clip-{self.task}")

    @classmethod
    def from_dict(cls, d: dict) -> ClipTrainConfig:
        """Unknown settings are an error; runs saved before --base existed corrected the cross-fade."""
        if "task" not in d:
            raise GanimateError("not a clip run: its config.json has no task (train one with `ganimate clip train`)")
        return super().from_dict.__func__(cls, {"base": "crossfade", **d})


def to_float(clips: np.ndarray | torch.Tensor, device="cpu") -> torch.Tensor:
    """uint8 clips (B, T, 1, H, W) -> float (B, 1, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(clips).to(device)
    return x.permute(0, 2, 1, 3, 4).float().div_(127.5).sub_(1.0)


def to_uint8_clips(x: torch.Tensor) -> np.ndarray:
    """float (B, 1, T, H, W) in [-1, 1] -> uint8 clips (B, T, 1, H, W)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 1, 3, 4).numpy()


def complete_clip(task: str, G, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The whole clip (B, 1, T, H, W) with G's frames in place of the unknown ones of real clips `x`."""
    first = x[:, :, 0]  # (B, 1, H, W)
    if task == "predict":
        return torch.cat([first.unsqueeze(2), G(first, z)], 2)
    last = x[:, :, -1]
    return torch.cat([first.unsqueeze(2), G(first, last), last.unsqueeze(2)], 2)


def conditioning(task: str, x: torch.Tensor) -> torch.Tensor:
    """The frames G is given, (B, 1 or 2, H, W): the first frame, or first and last."""
    return x[:, :, 0] if task == "predict" else torch.cat([x[:, :, 0], x[:, :, -1]], 1)


def clip_train_step(cfg: ClipTrainConfig, G, D, opt_G, opt_D, x: torch.Tensor, z: torch.Tensor | None,
                    bf16: bool = False) -> dict[str, torch.Tensor]:
    """One D update and one G update on real clips x (B, 1, T, H, W) in [-1, 1].

    z: predict noise (recon_samples * B, z_dim), draw k of clip b at row k * B + b. Returns detached scalars.
    """
    amp = functools.partial(torch.autocast, x.device.type, dtype=torch.bfloat16, enabled=bf16)
    b, k = x.shape[0], cfg.recon_samples if cfg.task == "predict" else 1
    cond = conditioning(cfg.task, x)
    with amp():
        if cfg.task == "predict":
            xs = x.repeat(k, 1, 1, 1, 1)
            fakes = complete_clip("predict", G, xs, z).float()  # (K*B, 1, T, H, W)
            err = (fakes[:, :, 1:] - xs[:, :, 1:]).abs().mean((1, 2, 3, 4)).view(k, b)
            recon = err.min(0).values.mean()  # best of K draws per clip
            fake = fakes[:b]
        else:
            fake = complete_clip("inbetween", G, x).float()
            recon = (fake[:, :, 1:-1] - x[:, :, 1:-1]).abs().mean()

    opt_D.zero_grad(set_to_none=True)
    with amp():
        real_logits, fake_logits = D(x, cond).float(), D(fake.detach(), cond).float()
    loss_d = losses.d_loss(real_logits, fake_logits)
    loss_d.backward()
    opt_D.step()

    opt_G.zero_grad(set_to_none=True)
    with amp():
        adv = losses.g_loss(D(fake, cond).float())
    loss_g = cfg.adv_weight * adv + cfg.recon_weight * recon
    loss_g.backward()
    opt_G.step()
    return {"loss_d": loss_d.detach(), "loss_g_adv": adv.detach(), "l1": recon.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(), "d_fake": torch.sigmoid(fake_logits.detach()).mean()}


def psnr(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 frames, averaged over the last three axes: (..., C, H, W) -> (...); capped at 60."""
    mse = ((pred.astype(np.float64) - true.astype(np.float64)) ** 2).mean((-3, -2, -1))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-6))


@torch.no_grad()
def generate(task: str, G, clips: np.ndarray, samples: int = 1, seed: int = 0, batch_size: int = 256,
             device="cpu") -> np.ndarray:
    """uint8 clips (N, T, 1, H, W) completed by G from their key frame(s): uint8 (samples, N, T, 1, H, W).

    Predict noise for draw s of clip i comes from seed + s, so the same seed gives the same clips.
    """
    was_training = G.training
    G.eval()
    out = []
    for s in range(samples):
        gen = torch.Generator().manual_seed(seed + s)
        z_all = torch.randn(len(clips), getattr(G, "z_dim", 1), generator=gen)
        parts = []
        for i in range(0, len(clips), batch_size):
            x = to_float(clips[i : i + batch_size], device)
            z = z_all[i : i + batch_size].to(device) if task == "predict" else None
            parts.append(to_uint8_clips(complete_clip(task, G, x, z)))
        out.append(np.concatenate(parts))
    G.train(was_training)
    return np.stack(out)


def unknown_frames(task: str) -> slice:
    """The frames a task generates: 1.. for predict, 1..T-2 for inbetween."""
    return slice(1, None) if task == "predict" else slice(1, -1)


def side_by_side_frames(true: np.ndarray, fake: np.ndarray, scale: int = 4):
    """Video frames of clips (N, T, 1, H, W): row i is true clip i | generated clip i (grey, upscaled)."""
    for t in range(true.shape[1]):
        tiles = np.stack([true[:, t], fake[:, t]], 1).reshape(-1, *true.shape[2:])  # (2N, 1, H, W)
        yield upscale(make_grid(tiles.transpose(0, 2, 3, 1), 2, pad_value=128), scale)


def load_clip_generator(run_dir: str | Path, checkpoint: str | None = None, device="cpu", ema: bool = True):
    """(G in eval mode, ClipTrainConfig, step) of a clip run, rebuilt from a checkpoint alone."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    state = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    if "task" not in state.get("config", {}):
        raise GanimateError(f"{run_dir} is not a clip run (train one with `ganimate clip train`)")
    cfg = ClipTrainConfig.from_dict(state["config"])
    G, _ = build_clip_models(cfg)
    try:
        G.load_state_dict(state["G_ema"] if ema else state["G"])
    except (RuntimeError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0][:100]
        raise GanimateError(f"checkpoint of {run_dir} does not fit its config ({reason})") from None
    return G.to(device).eval(), cfg, state["step"]


def fit_clips(cfg: ClipTrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a clip run from `cfg` (or continue it with resume=True); returns the run folder."""
    run_dir = Path(cfg.out)
    device = resolve_device(cfg.device)
    ckpt_path = list_checkpoints(run_dir)[-1] if resume else None
    state = load_checkpoint(ckpt_path) if resume else None
    bar = None
    log = RunLog(None, lambda: bar is not None)
    train_src = clip_source(cfg.dataset, "train", size=cfg.size, frames=cfg.frames, digits=cfg.digits,
                            data_dir=cfg.data_dir)
    test_src = clip_source(cfg.dataset, "test", size=cfg.size, frames=cfg.frames, digits=cfg.digits,
                           data_dir=cfg.data_dir)
    cfg.precision = resolve_precision(cfg.precision, device)
    bf16 = cfg.precision == "bf16"

    torch.manual_seed(cfg.seed)
    gan = GanState.create(*build_clip_models(cfg), lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=(cfg.beta1, cfg.beta2),
                          seed=cfg.seed)
    G, D, G_ema, opt_G, opt_D, noise = gan.G, gan.D, gan.G_ema, gan.opt_G, gan.opt_D, gan.noise
    step, elapsed = gan.resume(state, ckpt_path, device, cfg.max_steps, "--max-steps")

    open_run(run_dir, cfg, log, resume=resume, overwrite=overwrite, step=step, ckpt_path=ckpt_path)
    log(f"data: {cfg.dataset}, {cfg.digits} digit(s), {cfg.frames} frames of {cfg.size}x{cfg.size} | task "
        f"{cfg.task} | G {count_params(G):,} params, D {count_params(D):,} params | device {device}, "
        f"{cfg.precision}, {torch.get_num_threads()} thread(s)")
    gan.to(device)

    val_clips, _ = test_src.clips(cfg.eval_clips, cfg.seed + 12_345)  # fixed test clips
    show = val_clips[:4]
    frames_slice = unknown_frames(cfg.task)
    # G_ema's inputs for re-estimating its batch-norm statistics: 8 fixed batches of training clips
    bn_clips, _ = train_src.clips(8 * cfg.batch_size, cfg.seed + 54_321)
    bn_z = torch.randn(len(bn_clips), cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 54_321))
    bn_batches = []
    for i in range(0, len(bn_clips), cfg.batch_size):
        x = to_float(bn_clips[i : i + cfg.batch_size], device)
        extra = bn_z[i : i + cfg.batch_size].to(device) if cfg.task == "predict" else x[:, :, -1]
        bn_batches.append((x[:, :, 0], extra))

    def validate() -> dict:
        k = 4 if cfg.task == "predict" else 1
        fake = generate(cfg.task, G_ema, val_clips, samples=k, seed=cfg.seed + 99, device=device)
        p = psnr(fake[:, :, frames_slice], val_clips[None, :, frames_slice]).mean(2)  # (K, N)
        result = {"val_psnr": float(p.mean())}
        if cfg.task == "predict":
            result["val_psnr_best4"] = float(p.max(0).mean())
        return result

    def save_sample() -> None:
        fake = generate(cfg.task, G_ema, show, seed=cfg.seed + 99, device=device)[0]
        name = f"step_{step:06d}.mp4"
        frames = side_by_side_frames(show, fake, scale=default_scale(show.shape[-1] * 4, show.shape[-1] * 2, 256))
        write_video(frames, run_dir / "samples" / name, fps=4)
        append_jsonl(run_dir / "samples" / "index.jsonl", {"file": name, "step": step, "kind": "step"})

    def checkpoint() -> Path:
        state = {"config": cfg.to_dict(), "step": step, "elapsed_s": elapsed + time.perf_counter() - t_start,
                 **gan.state_dict(device)}
        return save_checkpoint(state, run_dir, step, keep=cfg.keep_checkpoints)

    stop = {"requested": False}
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))
    show_bar = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    t_start = time.perf_counter()
    t_interval, sums, n_interval = t_start, {}, 0
    batches = train_src.batches(cfg.batch_size, cfg.seed, start=step)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not show_bar, leave=False, dynamic_ncols=True)
    G.train(), D.train()
    try:
        while step < cfg.max_steps and not stop["requested"]:
            x = to_float(next(batches), device)  # (B, 1, T, H, W)
            z = None
            if cfg.task == "predict":
                z = torch.randn(cfg.recon_samples * cfg.batch_size, cfg.z_dim, generator=noise).to(device)
            stats = clip_train_step(cfg, G, D, opt_G, opt_D, x, z, bf16=bf16)
            step += 1
            gan.update_ema(step, cfg.ema_decay)
            for key, v in stats.items():
                sums[key] = sums.get(key, 0.0) + v
            n_interval += 1
            bar.update(1)
            minutes = (elapsed + time.perf_counter() - t_start) / 60
            out_of_time = cfg.max_minutes is not None and minutes >= cfg.max_minutes
            last = step >= cfg.max_steps or out_of_time or stop["requested"]
            logging = step % cfg.log_every == 0 or last
            validating = logging and cfg.eval_every and (step % cfg.eval_every == 0 or last)
            sampling = (cfg.sample_every and step % cfg.sample_every == 0) or last
            saving = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last
            if validating or sampling or saving:  # update_ema copies G's statistics, which G_ema's weights do not fit
                recompute_bn_stats(G_ema, bn_batches)
            if logging:
                now = time.perf_counter()
                means = {k: round(float(v) / n_interval, 5) for k, v in sums.items()}
                rate = n_interval * cfg.batch_size / max(now - t_interval, 1e-9)
                record = {"step": step, **means, "clips_per_s": round(rate, 2),
                          "time_s": round(elapsed + now - t_start, 2)}
                if validating:
                    record.update({k: round(v, 3) for k, v in validate().items()})
                append_jsonl(run_dir / "stats.jsonl", record)
                val = " ".join(f"{k} {record[k]:.2f}" for k in ("val_psnr", "val_psnr_best4") if k in record)
                log(f"step {step:,}/{cfg.max_steps:,} | loss_d {means['loss_d']:.3f} adv {means['loss_g_adv']:.3f} "
                    f"l1 {means['l1']:.4f} | D(x) {means['d_real']:.2f} D(G) {means['d_fake']:.2f} | "
                    f"{record['clips_per_s']:.1f} clips/s {minutes:.1f} min {val}".rstrip())
                t_interval, sums, n_interval = time.perf_counter(), {}, 0
            if sampling:
                save_sample()
            if saving:
                checkpoint()
            if out_of_time:
                log(f"--max-minutes {cfg.max_minutes} reached at step {step:,}")
                break
    finally:
        bar.close()
        bar = None
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if stop["requested"]:
        log(f"interrupted at step {step:,}; checkpoint saved, continue with --resume")
        raise KeyboardInterrupt
    log(f"done: step {step:,} in {(time.perf_counter() - t_start) / 60:.1f} min this session "
        f"({(elapsed + time.perf_counter() - t_start) / 60:.1f} min in all); samples and checkpoints in {run_dir}")
    return run_dir
