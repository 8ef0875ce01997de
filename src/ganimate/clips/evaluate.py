"""`ganimate clip evaluate RUN`: score a clip run and its baselines on test clips made with a fixed seed.

- Per-frame PSNR and SSIM (Wang et al. 2004, scikit-image) of the generated frames against the true ones.
  `predict` draws K noise samples per still (K = 10 by default, as stochastic video prediction papers
  report, e.g. Denton & Fergus 2018) and reports best-of-K (the sample with the best clip mean, per clip)
  and the mean over samples.
- Digit identity (single-digit MNIST clips): the reference MNIST classifier's accuracy on 28x28 crops
  around each generated frame's centre of mass, against the clip's digit label, over all samples.
- Frame quality: Fréchet distance (metrics/fd.py) between the reference classifier's features of those
  crops and of the crops of the true frames.

Baselines (baselines.py) get the same numbers. One JSON line per call goes to RUN/metrics.jsonl.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from ganimate.clips.baselines import BASELINES, run_baseline
from ganimate.clips.train import generate, load_clip_generator, psnr, unknown_frames
from ganimate.config import option
from ganimate.data.moving_mnist import DIGIT, clip_source
from ganimate.errors import GanimateError
from ganimate.metrics.classifier import embed, load_reference
from ganimate.metrics.fd import feature_stats, frechet_distance
from ganimate.runs import append_jsonl
from ganimate.runtime import resolve_device


@dataclass
class ClipEvaluateConfig:
    """Options of `ganimate clip evaluate RUN`."""

    run: str = option("clip run folder")
    n: int = option("test clips", default=1000)
    samples: int = option("predict: noise samples per still (best-of-K)", default=10)
    seed: int = option("seed of the test clips and of the noise", default=0)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    device: str = option("auto | cpu | cuda | mps", default="auto")
    json: bool = option("print the JSON record instead of the tables", default=False)

    def __post_init__(self):
        if self.n < 2:
            raise GanimateError(f"--n must be at least 2, got {self.n}")
        if self.samples <= 0:
            raise GanimateError(f"--samples must be positive, got {self.samples}")


def ssim(pred: np.ndarray, true: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """SSIM of uint8 grey frames (..., 1, H, W) -> (...), scikit-image's defaults (7x7 window)."""
    shape = pred.shape[:-3]
    a = pred.reshape(-1, *pred.shape[-2:]).transpose(1, 2, 0)  # (H, W, M): frames as channels
    b = true.reshape(-1, *true.shape[-2:]).transpose(1, 2, 0)
    pad = 3
    out = []
    for i in range(0, a.shape[2], chunk):
        _, full = structural_similarity(a[..., i : i + chunk], b[..., i : i + chunk], data_range=255,
                                        channel_axis=2, full=True)
        out.append(full[pad:-pad, pad:-pad].mean((0, 1)))
    return np.concatenate(out).reshape(shape)


def center_crops(frames: np.ndarray) -> np.ndarray:
    """28x28 crops around the centre of mass of uint8 frames (M, 1, H, W) -> (M, 1, 28, 28), zero outside."""
    m, _, h, w = frames.shape
    x = frames[:, 0].astype(np.float64)
    mass = x.sum((1, 2))
    safe = np.where(mass > 0, mass, 1)
    cy = np.where(mass > 0, (x.sum(2) * np.arange(h)).sum(1) / safe, (h - 1) / 2)
    cx = np.where(mass > 0, (x.sum(1) * np.arange(w)).sum(1) / safe, (w - 1) / 2)
    top = np.rint(cy - (DIGIT - 1) / 2).astype(np.int64) + DIGIT
    left = np.rint(cx - (DIGIT - 1) / 2).astype(np.int64) + DIGIT
    padded = np.pad(frames[:, 0], ((0, 0), (DIGIT, DIGIT), (DIGIT, DIGIT)))
    rows = (top[:, None] + np.arange(DIGIT))[:, :, None]  # (M, 28, 1)
    cols = (left[:, None] + np.arange(DIGIT))[:, None, :]  # (M, 1, 28)
    return padded[np.arange(m)[:, None, None], rows, cols][:, None]


def crop_features(frames: np.ndarray, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(features, predicted digit) of the centre crops of uint8 frames (M, 1, H, W)."""
    feats, logits = embed(load_reference("mnist", device), torch.from_numpy(center_crops(frames)))
    return feats, logits.argmax(1)


def score(task: str, fake: np.ndarray, true: np.ndarray, labels: np.ndarray | None, true_feats=None,
          device="cpu") -> dict:
    """Metrics of completed clips fake (K, N, T, 1, H, W) against true clips (N, T, 1, H, W)."""
    sl = unknown_frames(task)
    f, t = fake[:, :, sl], true[None, :, sl]
    p, s = psnr(f, t), ssim(f, np.broadcast_to(t, f.shape))  # (K, N, T')
    best_p = np.take_along_axis(p, p.mean(2).argmax(0)[None, :, None], 0)[0]  # (N, T')
    best_s = np.take_along_axis(s, s.mean(2).argmax(0)[None, :, None], 0)[0]
    r = {"psnr": float(p.mean()), "ssim": float(s.mean()), "psnr_per_frame": p.mean((0, 1)).round(3).tolist(),
         "ssim_per_frame": s.mean((0, 1)).round(4).tolist()}
    if len(fake) > 1:
        r.update({"psnr_best": float(best_p.mean()), "ssim_best": float(best_s.mean()),
                  "psnr_best_per_frame": best_p.mean(0).round(3).tolist(),
                  "ssim_best_per_frame": best_s.mean(0).round(4).tolist()})
    if labels is not None:
        frames = f.reshape(-1, *f.shape[-3:])
        feats, pred = crop_features(frames, device)
        digit = np.broadcast_to(labels[None, :, None, 0], f.shape[:3]).reshape(-1)
        r["identity"] = float((pred.numpy() == digit).mean())
        if true_feats is not None:
            first = feats[: f.shape[1] * f.shape[2]]  # the first sample's frames, as many as the true ones
            r["fd"] = frechet_distance(*feature_stats(first), *feature_stats(true_feats))
    return r


def evaluate_clips(cfg: ClipEvaluateConfig) -> dict:
    """Score the run's EMA generator and the task's baselines; append the record to RUN/metrics.jsonl."""
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    G, run_cfg, step = load_clip_generator(cfg.run, cfg.checkpoint, device=device)
    src = clip_source(run_cfg.dataset, "test", size=run_cfg.size, frames=run_cfg.frames, digits=run_cfg.digits,
                      data_dir=run_cfg.data_dir)
    clips, labels = src.clips(cfg.n, cfg.seed)
    task = run_cfg.task
    with_digits = run_cfg.dataset == "moving-mnist" and run_cfg.digits == 1 and labels is not None
    labels = labels if with_digits else None
    true_feats = None
    record = {"step": step, "task": task, "n": cfg.n, "seed": cfg.seed, "frames": run_cfg.frames,
              "size": run_cfg.size, "digits": run_cfg.digits, "dataset": run_cfg.dataset,
              "samples": cfg.samples if task == "predict" else 1, "device": str(device),
              "threads": torch.get_num_threads(), "methods": {}}
    if with_digits:
        true_frames = clips[:, unknown_frames(task)].reshape(-1, 1, run_cfg.size, run_cfg.size)
        true_feats, pred = crop_features(true_frames, device)
        digit = np.broadcast_to(labels[:, None, 0], clips[:, unknown_frames(task)].shape[:2]).reshape(-1)
        record["identity_true_frames"] = float((pred.numpy() == digit).mean())
    else:
        record["n/a"] = {"identity, fd": "need single-digit moving-mnist clips (the reference MNIST classifier)"}
    fake = generate(task, G, clips, samples=record["samples"], seed=cfg.seed + 1, device=device)
    record["methods"]["model"] = score(task, fake, clips, labels, true_feats, device)
    for name in BASELINES[task]:
        record["methods"][name] = score(task, run_baseline(name, clips)[None], clips, labels, true_feats, device)
    record.update({"eval_s": round(time.perf_counter() - start, 1),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    append_jsonl(Path(cfg.run) / "metrics.jsonl", record)
    return record


def format_clip_tables(r: dict) -> str:
    """Markdown tables of one record: a summary per method and PSNR per frame index."""
    m = r["methods"]
    predict = r["task"] == "predict"
    k = r["samples"]
    cols = ([f"best-of-{k} PSNR", "mean PSNR", f"best-of-{k} SSIM", "mean SSIM"] if predict
            else ["PSNR (dB)", "SSIM"]) + ["digit identity", "FD (crops)"]
    lines = [f"| method | {' | '.join(cols)} |", "|---" * (len(cols) + 1) + "|"]
    for name, x in m.items():
        vals = ([x.get("psnr_best", x["psnr"]), x["psnr"], x.get("ssim_best", x["ssim"]), x["ssim"]] if predict
                else [x["psnr"], x["ssim"]])
        cells = [f"{v:.2f}" if "PSNR" in c else f"{v:.3f}" for c, v in zip(cols, vals, strict=False)]
        cells += [f"{x['identity']:.3f}" if "identity" in x else "n/a", f"{x['fd']:.2f}" if "fd" in x else "n/a"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if "identity_true_frames" in r:
        lines.append(f"| true frames | {' | '.join(['-'] * (len(cols) - 2))} | {r['identity_true_frames']:.3f} | 0 |")
    key = "psnr_best_per_frame" if predict else "psnr_per_frame"
    names = list(m)
    head = [f"{n} ({'best-of-' + str(k) if predict and n == 'model' else 'PSNR'})" for n in names]
    lines += ["", f"| frame | {' | '.join(head)} |", "|---" * (len(names) + 1) + "|"]
    for i in range(len(m["model"][key])):
        vals = [m[n].get(key, m[n]["psnr_per_frame"])[i] for n in names]
        lines.append(f"| {1 + i} | {' | '.join(f'{v:.2f}' for v in vals)} |")
    return "\n".join(lines)


def run_clip_evaluate(cfg: ClipEvaluateConfig) -> dict:
    """CLI entry: evaluate, then print the tables (or the JSON record)."""
    r = evaluate_clips(cfg)
    if cfg.json:
        print(json.dumps(r))
    else:
        print(f"{cfg.run} step {r['step']}, {r['task']}, {r['n']} test clips of {r['frames']} frames "
              f"{r['size']}x{r['size']}, seed {r['seed']} ({r['eval_s']} s)")
        print(format_clip_tables(r))
    return r
