"""`ganimate clip evaluate RUN`: score a clip run and its baselines on test clips made with a fixed seed.

- Per-frame PSNR and SSIM (Wang et al. 2004; metrics/pixel.py) of the generated frames against the true ones.
  `predict` draws K noise samples per still (K = 10 by default, as stochastic video prediction papers
  report, e.g. Denton & Fergus 2018) and reports best-of-K (the sample with the best clip mean, per clip)
  and the mean over samples.
- Digit identity (clips whose digits' dataset has a reference classifier: moving-mnist): that classifier's
  accuracy on 28x28 crops of the generated frames against the digits' labels, over all samples. A clip
  of one digit is cropped around each frame's centre of mass; a clip of several digits at each digit's
  true position in that frame (the generator's paths), every digit read on its own.
- Frame quality: Fréchet distance (metrics/fd.py) between the reference classifier's features of those
  crops and of the crops of the true frames.

Forecast runs (`--task forecast`, the standard Moving MNIST benchmark) are scored instead with the
metrics exactly as OpenSTL computes them (clips/openstl.py: MSE and MAE per frame summed over the
pixels, SSIM, PSNR) on the model's float frames, registered as task "forecast" of the registry, beside
the forecast baselines (copy the last frame, all black, optical-flow extrapolation).

These are the clip metrics of the metric registry (metrics/registry.py, task "clip"), each a function of a
`ClipContext` returning a dict; `score` runs them. Baselines (baselines.py) get the same numbers. One JSON
line per call goes to RUN/metrics.jsonl.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganimate.clips import openstl
from ganimate.clips.inference import forecast, generate, load_clip_generator, unknown_frames
from ganimate.config import option
from ganimate.data import has_reference_classifier
from ganimate.data.moving_mnist import DIGIT, MOVING_DATASETS, clip_source
from ganimate.errors import GanimateError
from ganimate.metrics.classifier import embed, load_reference
from ganimate.metrics.fd import feature_stats, frechet_distance
from ganimate.metrics.pixel import psnr, ssim
from ganimate.metrics.registry import Row, compute_metrics, format_table, metric_rows, metrics_for, register_metric
from ganimate.runs import append_jsonl
from ganimate.runtime import resolve_device

TASK = "clip"
FORECAST = "forecast"


@dataclass
class ClipEvaluateConfig:
    """Options of `ganimate clip evaluate RUN`."""

    run: str = option("clip run folder")
    n: int = option("test clips", default=1000)
    samples: int = option("predict: noise samples per still (best-of-K)", default=10)
    seed: int = option("seed of the test clips and of the noise", default=0)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    views: int | None = option("inbetween: average G over this many symmetric views of the key frames (1, 2, 4, 8, "
                               "16; default: the run's --views)", default=None)
    device: str = option("auto | cpu | cuda | mps", default="auto")
    json: bool = option("print the JSON record instead of the tables", default=False)

    def __post_init__(self):
        if self.n < 2:
            raise GanimateError(f"--n must be at least 2, got {self.n}")
        if self.samples <= 0:
            raise GanimateError(f"--samples must be positive, got {self.samples}")


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


def digit_crops(frames: np.ndarray, corners: np.ndarray | None = None) -> np.ndarray:
    """28x28 crops of the digits in uint8 frames (K, N, T, 1, H, W) -> (K * N * T * D, 1, 28, 28), in that order.

    One digit (corners None, D = 1): around each frame's centre of mass. Several digits: at each digit's true
    top-left corner in that frame, `corners` float (N, D, T, 2) as (y, x) from the clip generator, so a digit
    is read where it should be even when another one crosses it.
    """
    if corners is None:
        return center_crops(frames.reshape(-1, *frames.shape[-3:]))
    n, t = frames.shape[1:3]
    c = np.rint(corners).astype(np.int64).transpose(0, 2, 1, 3)  # (N, T, D, 2)
    rows = (c[..., 0, None] + np.arange(DIGIT))[..., :, None]  # (N, T, D, 28, 1)
    cols = (c[..., 1, None] + np.arange(DIGIT))[..., None, :]  # (N, T, D, 1, 28)
    clip = np.arange(n)[:, None, None, None, None]
    frame = np.arange(t)[None, :, None, None, None]
    crops = frames[:, :, :, 0][:, clip, frame, rows, cols]  # (K, N, T, D, 28, 28)
    return crops.reshape(-1, 1, DIGIT, DIGIT)


def digit_labels(labels: np.ndarray, k: int, t: int, several: bool) -> np.ndarray:
    """The label of every crop of `digit_crops` from clip labels (N, D): (K * N * T * D,)."""
    labels = labels if several else labels[:, :1]
    return np.broadcast_to(labels[None, :, None, :], (k, labels.shape[0], t, labels.shape[1])).reshape(-1)


def crop_features(crops: np.ndarray, dataset: str, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(features, predicted class) of 28x28 digit crops (M, 1, 28, 28) under the reference classifier of
    `dataset` (the clips' digits)."""
    feats, logits = embed(load_reference(dataset, device), torch.from_numpy(np.ascontiguousarray(crops)))
    return feats, logits.argmax(1)


def digit_dataset(clip_dataset: str, digits: int, paths: bool = False) -> str | None:
    """The image dataset whose reference classifier reads the digits of the frames, or None: single-digit
    clips, or clips of several digits when their true paths are known (`paths`)."""
    source = MOVING_DATASETS.get(clip_dataset)
    known = digits == 1 or paths
    return source if known and source is not None and has_reference_classifier(source) else None


def pixel_scores(fake: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR, SSIM) of uint8 frames fake (K, N, T, 1, H, W) against true (N, T, 1, H, W): each (K, N, T)."""
    f, t = torch.from_numpy(fake), torch.from_numpy(np.ascontiguousarray(true))
    p = psnr(f, t[None], data_range=255)  # (K, N, T)
    s = ssim(f.reshape(-1, *f.shape[-3:]), t[None].expand_as(f).reshape(-1, *f.shape[-3:]), data_range=255)
    return p.numpy(), s.reshape(f.shape[:3]).numpy()


@dataclass
class ClipContext:
    """Completed clips fake (K, N, T', 1, H, W) and true clips (N, T', 1, H, W) over the task's unknown frames,
    the clips' digit labels (N, digits) where identity applies, the true frames' crop features, and for clips
    of several digits their true corners (N, digits, T', 2) in those frames (see `digit_crops`)."""

    fake: np.ndarray
    true: np.ndarray
    labels: np.ndarray | None = None
    dataset: str | None = None  # the digits' dataset, whose reference classifier reads the crops
    true_feats: torch.Tensor | None = None
    device: str = "cpu"
    corners: np.ndarray | None = None
    _pixel: tuple[np.ndarray, np.ndarray] | None = None
    _crops: tuple[torch.Tensor, torch.Tensor] | None = None

    def pixel(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pixel is None:
            self._pixel = pixel_scores(self.fake, self.true)
        return self._pixel

    def crops(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, predicted digit) of the crops of every generated frame, sample after sample."""
        if self._crops is None:
            self._crops = crop_features(digit_crops(self.fake, self.corners), self.dataset, self.device)
        return self._crops

    def crop_labels(self) -> np.ndarray:
        """The true digit of every crop of `crops`."""
        k, _, t = self.fake.shape[:3]
        return digit_labels(self.labels, k, t, self.corners is not None)


def _identity_problem(ctx: ClipContext) -> str | None:
    if ctx.labels is None or not ctx.dataset:
        return "needs clips of digits with a reference classifier (and their paths, for several digits)"
    return None


def _fd_problem(ctx: ClipContext) -> str | None:
    return _identity_problem(ctx) or (None if ctx.true_feats is not None else "needs the true frames' features")


def _per_sample(name: str, v: np.ndarray, digits: int) -> dict:
    """{name, name_per_frame} of scores (K, N, T) and, for K > 1, best-of-K (per clip, by its clip mean)."""
    r = {name: float(v.mean()), f"{name}_per_frame": v.mean((0, 1)).round(digits).tolist()}
    if len(v) > 1:
        best = np.take_along_axis(v, v.mean(2).argmax(0)[None, :, None], 0)[0]  # (N, T)
        r.update({f"{name}_best": float(best.mean()), f"{name}_best_per_frame": best.mean(0).round(digits).tolist()})
    return r


def _pixel_rows(name: str, spec: str):
    def rows(x: dict) -> list[Row]:
        if name not in x:
            return []
        if x.get("task") == "predict":
            k = x["samples"]
            return [Row(f"best-of-{k} {name.upper()}", format(x.get(f"{name}_best", x[name]), spec)),
                    Row(f"mean {name.upper()}", format(x[name], spec))]
        return [Row("PSNR (dB)" if name == "psnr" else "SSIM", format(x[name], spec))]

    return rows


@register_metric("psnr", task=TASK, rows=_pixel_rows("psnr", ".2f"), about="PSNR in dB (metrics.pixel, capped at 60)")
def psnr_metric(ctx: ClipContext) -> dict:
    """{"psnr", "psnr_per_frame"} over all samples, and best-of-K ("psnr_best", ...) for K > 1."""
    return _per_sample("psnr", ctx.pixel()[0], 3)


@register_metric("ssim", task=TASK, rows=_pixel_rows("ssim", ".3f"), about="SSIM (metrics.pixel)")
def ssim_metric(ctx: ClipContext) -> dict:
    """{"ssim", "ssim_per_frame"} over all samples, and best-of-K ("ssim_best", ...) for K > 1."""
    return _per_sample("ssim", ctx.pixel()[1], 4)


@register_metric("identity", task=TASK, requires=(_identity_problem,), about="digit identity of frame crops",
                 rows=lambda x: [Row("digit identity", f"{x['identity']:.3f}" if "identity" in x else "n/a")])
def identity_metric(ctx: ClipContext) -> dict:
    """{"identity"}: the reference classifier's accuracy on the generated frames' crops, all samples."""
    return {"identity": float((ctx.crops()[1].numpy() == ctx.crop_labels()).mean())}


@register_metric("fd", task=TASK, requires=(_fd_problem,), about="Fréchet distance of crop features",
                 rows=lambda x: [Row("FD (crops)", f"{x['fd']:.2f}" if "fd" in x else "n/a")])
def fd_metric(ctx: ClipContext) -> dict:
    """{"fd"} between the crop features of the first sample's frames and of the true frames."""
    first = ctx.crops()[0][: len(ctx.true_feats)]  # the first sample's crops, as many as the true frames' 
    return {"fd": frechet_distance(*feature_stats(first), *feature_stats(ctx.true_feats))}


@dataclass
class ForecastContext:
    """Predicted and true frames after the given ones, float in [0, 1], (N, T', 1, H, W)."""

    pred: np.ndarray
    true: np.ndarray


def _forecast_metric(name: str, label: str, spec: str, fn):
    @register_metric(name, task=FORECAST, about=f"{label}, as OpenSTL computes it (clips/openstl.py)",
                     rows=lambda x: [Row(label, format(x[name], spec))] if name in x else [])
    def metric(ctx: ForecastContext) -> dict:
        v = fn(ctx.pred, ctx.true)  # (N, T')
        return {name: float(v.mean()), f"{name}_per_frame": v.mean(0).round(4).tolist()}

    metric.__doc__ = f"{{{name!r}, {name + '_per_frame'!r}}}: {label} averaged over sequences (and frames)."
    return metric


mse_metric = _forecast_metric("mse", "MSE", ".2f", openstl.mse_per_frame)
mae_metric = _forecast_metric("mae", "MAE", ".2f", openstl.mae_per_frame)
openstl_ssim_metric = _forecast_metric("ssim", "SSIM", ".4f", openstl.ssim_per_frame)
openstl_psnr_metric = _forecast_metric("psnr", "PSNR (dB)", ".2f", openstl.psnr_per_frame)


def score_forecast(pred: np.ndarray, true: np.ndarray) -> dict:
    """The forecast metrics (MSE, MAE, SSIM, PSNR as OpenSTL) of float frames in [0, 1] (N, T', 1, H, W)."""
    results, _, _ = compute_metrics(FORECAST, ForecastContext(pred, true), list(metrics_for(FORECAST)))
    return results


def evaluate_forecast(G, clips: np.ndarray, context: int, device="cpu") -> dict:
    """{method: forecast metrics} of G and the forecast baselines on uint8 clips (N, T, 1, H, W)."""
    from ganimate.clips.baselines import BASELINES, run_baseline  # optical flow: OpenCV, imported on use

    true = clips[:, context:].astype(np.float32) / 255
    methods = {"model": score_forecast(forecast(G, clips, device=device), true)}
    for name in BASELINES[FORECAST]:
        methods[name] = score_forecast(run_baseline(name, clips, context)[:, context:].astype(np.float32) / 255, true)
    return methods


def score(task: str, fake: np.ndarray, true: np.ndarray, labels: np.ndarray | None, true_feats=None,
          device="cpu", dataset: str | None = None, corners: np.ndarray | None = None) -> dict:
    """The clip metrics of completed clips fake (K, N, T, 1, H, W) against true clips (N, T, 1, H, W), on the
    task's unknown frames; identity and fd where `labels` and the digits' `dataset` are given (and the digits'
    `corners` (N, D, T, 2) for clips of several digits)."""
    sl = unknown_frames(task)
    corners = corners[:, :, sl] if corners is not None else None
    ctx = ClipContext(fake[:, :, sl], true[:, sl], labels, dataset, true_feats, str(device), corners)
    results, _, _ = compute_metrics(TASK, ctx, list(metrics_for(TASK)))
    return results


def evaluate_clips(cfg: ClipEvaluateConfig) -> dict:
    """Score the run's EMA generator and the task's baselines; append the record to RUN/metrics.jsonl."""
    from ganimate.clips.baselines import BASELINES, run_baseline  # optical flow: OpenCV, imported on use

    start = time.perf_counter()
    device = resolve_device(cfg.device)
    G, run_cfg, step = load_clip_generator(cfg.run, cfg.checkpoint, device=device, views=cfg.views)
    src = clip_source(run_cfg.dataset, "test", size=run_cfg.size, frames=run_cfg.frames, digits=run_cfg.digits,
                      data_dir=run_cfg.data_dir)
    corners = None
    if hasattr(src, "clips_with_paths"):
        clips, labels, corners = src.clips_with_paths(cfg.n, cfg.seed)
    else:
        clips, labels = src.clips(cfg.n, cfg.seed)
    corners = corners if run_cfg.digits > 1 else None  # one digit: crops around the centre of mass
    task = run_cfg.task
    if task == FORECAST:
        record = {"step": step, "task": task, "n": cfg.n, "seed": cfg.seed, "frames": run_cfg.frames,
                  "context": run_cfg.context, "size": run_cfg.size, "digits": run_cfg.digits,
                  "dataset": run_cfg.dataset, "samples": 1, "device": str(device),
                  "threads": torch.get_num_threads(), "metrics": "openstl",
                  "methods": evaluate_forecast(G, clips, run_cfg.context, device)}
        record.update({"eval_s": round(time.perf_counter() - start, 1),
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        append_jsonl(Path(cfg.run) / "metrics.jsonl", record)
        return record
    dataset = digit_dataset(run_cfg.dataset, run_cfg.digits, corners is not None) if labels is not None else None
    labels = labels if dataset else None
    true_feats = None
    record = {"step": step, "task": task, "n": cfg.n, "seed": cfg.seed, "frames": run_cfg.frames,
              "size": run_cfg.size, "digits": run_cfg.digits, "dataset": run_cfg.dataset,
              "samples": cfg.samples if task == "predict" else 1, "views": run_cfg.views, "device": str(device),
              "threads": torch.get_num_threads(), "methods": {}}
    if dataset:
        sl = unknown_frames(task)
        true = clips[None, :, sl]
        true_feats, pred = crop_features(digit_crops(true, corners[:, :, sl] if corners is not None else None),
                                         dataset, device)
        digit = digit_labels(labels, 1, true.shape[2], corners is not None)
        record["identity_true_frames"] = float((pred.numpy() == digit).mean())
    else:
        record["n/a"] = {"identity, fd": "need clips of digits with a reference classifier (moving-mnist)"}
    fake = generate(task, G, clips, samples=record["samples"], seed=cfg.seed + 1, device=device)
    record["methods"]["model"] = score(task, fake, clips, labels, true_feats, device, dataset, corners)
    for name in BASELINES[task]:
        record["methods"][name] = score(task, run_baseline(name, clips)[None], clips, labels, true_feats, device,
                                        dataset, corners)
    record.update({"eval_s": round(time.perf_counter() - start, 1),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    append_jsonl(Path(cfg.run) / "metrics.jsonl", record)
    return record


def clip_tables(r: dict) -> str:
    """Markdown tables of one `clip evaluate` record: the registered clip metrics per method (and the true
    frames' digit identity), then PSNR per frame index."""
    m = r["methods"]
    if r["task"] == FORECAST:
        return forecast_tables(m)
    predict = r["task"] == "predict"
    k = r["samples"]
    views = r.get("views", 1)
    name_of = {n: f"model ({views} views)" if n == "model" and views > 1 else n for n in m}
    summary = {name_of[n]: metric_rows(TASK, {"task": r["task"], "samples": k, **x}) for n, x in m.items()}
    if "identity_true_frames" in r:
        truth = {"digit identity": f"{r['identity_true_frames']:.3f}", "FD (crops)": "0"}
        summary["true frames"] = [Row(row.label, truth.get(row.label, "-")) for row in summary[name_of["model"]]]
    key = "psnr_best_per_frame" if predict else "psnr_per_frame"
    head = {n: f"{name_of[n]} ({'best-of-' + str(k) if predict and n == 'model' else 'PSNR'})" for n in m}
    frames = {str(1 + i): [Row(head[n], f"{m[n].get(key, m[n]['psnr_per_frame'])[i]:.2f}") for n in m]
              for i in range(len(m["model"][key]))}
    return format_table(summary, corner="method") + "\n\n" + format_table(frames, corner="frame")


def forecast_tables(methods: dict) -> str:
    """Markdown tables of forecast metrics per method, then MSE per predicted frame."""
    summary = {name: metric_rows(FORECAST, x) for name, x in methods.items()}
    frames = {str(1 + i): [Row(n, f"{x['mse_per_frame'][i]:.1f}") for n, x in methods.items()]
              for i in range(len(methods["model"]["mse_per_frame"]))}
    return (format_table(summary, corner="method") + "\n\n"
            + format_table(frames, corner="frame (MSE)"))


def run_clip_evaluate(cfg: ClipEvaluateConfig) -> dict:
    """CLI entry: evaluate, then print the tables (or the JSON record)."""
    r = evaluate_clips(cfg)
    if cfg.json:
        print(json.dumps(r))
    else:
        given = f" ({r['context']} given, OpenSTL's metrics)" if r["task"] == FORECAST else ""
        print(f"{cfg.run} step {r['step']}, {r['task']}, {r['n']} test clips of {r['frames']} frames{given} "
              f"{r['size']}x{r['size']}, seed {r['seed']} ({r['eval_s']} s)")
        print(clip_tables(r))
    return r
