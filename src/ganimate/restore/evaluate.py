"""`ganimate restore evaluate RUN`: score restoration runs against the tuned classical baselines on the
test split, degraded once with a fixed seed so every method sees the same inputs.

Rows: the degraded input itself, every baseline of the task with the grid point that scored best on
validation images (held out from training, never the test set), each model run (the GAN and, with
--compare, the L1-only ablation) and the clean images as the reference. Columns: PSNR, SSIM, the
reference classifier's accuracy, the FD of restored vs clean test features and sharpness (gradient
energy relative to the clean images; 1 is the clean images' own): the restore metrics of the metric
registry (`restore.metrics`), shown by its one table formatter.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganimate.config import option
from ganimate.data import has_reference_classifier
from ganimate.errors import GanimateError
from ganimate.images import atomic_write
from ganimate.metrics.classifier import embed, load_reference
from ganimate.metrics.fd import feature_stats
from ganimate.metrics.registry import MISSING, Row, fmt, format_table, metric_rows
from ganimate.restore.baselines import baselines_for, run_baseline, tune
from ganimate.restore.degrade import degraded_split, to_full
from ganimate.restore.inference import VAL_SEED, load_restorer, load_split, restore
from ganimate.restore.metrics import TASK, score
from ganimate.runs import append_jsonl

PREVIEW = 10  # test images kept per row for figures


@dataclass
class RestoreEvaluateConfig:
    """`ganimate restore evaluate RUN`: the table of baselines and models; saved in RUN."""

    run: str = option("restoration run folder", default="")
    compare: str | None = option("more runs of the same task and dataset to add as rows (comma list), such as "
                                 "the L1-only run", default=None)
    n: int = option("test images: the first N of the test split", default=10000)
    tune_n: int = option("validation images the baselines are tuned on", default=500)
    baselines: bool = option("include the classical baselines", default=True)
    json: bool = option("print the result as one JSON line instead of the table", default=False)
    device: str = option("device for the generators: cpu | cuda | mps", default="cpu")

    def __post_init__(self):
        if not self.run:
            raise GanimateError("restore evaluate needs a run folder")
        if self.n < 2 or self.tune_n < 1:
            raise GanimateError(f"--n must be at least 2 and --tune-n at least 1, got {self.n} and {self.tune_n}")

    @property
    def runs(self) -> list[str]:
        return [self.run] + [r.strip() for r in (self.compare or "").split(",") if r.strip()]


def restore_table(record: dict) -> str:
    """A markdown table of a `restore evaluate` record: one line per method, the registered restore
    metrics' columns (restore/metrics.py) between its tuned parameters and its training and wall time."""
    subjects = {}
    for r in record["rows"]:
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        training = f"{r['steps']:,} steps" if r.get("steps") else MISSING
        subjects[r["method"]] = [Row("tuned parameters", params or MISSING), *metric_rows(TASK, r),
                                 Row("training", training), Row("wall time s", fmt(r.get("wall_s"), ".0f"))]
    return format_table(subjects, corner="method")


def evaluate_restoration(runs: list[str | Path], n: int = 10000, tune_n: int = 500, baselines: bool = True,
                         device: str = "cpu", log=print) -> tuple[dict, dict[str, torch.Tensor]]:
    """(record with one row per method, previews: method -> the first PREVIEW outputs float (k, C, H, W)).

    Every run must restore the same degradation of the same dataset; the first run's config decides it.
    """
    models = [load_restorer(r, device=device) + (Path(r),) for r in runs]
    cfg = models[0][1]
    deg = cfg.degradation
    for _, other, _, _, path in models[1:]:
        if (other.degradation, other.dataset, other.image_size) != (deg, cfg.dataset, cfg.image_size):
            raise GanimateError(f"{path} restores {other.degradation.describe()} on {other.dataset}; {runs[0]} "
                                f"restores {deg.describe()} on {cfg.dataset}: compare runs of one task")
    test_images, test_labels = load_split(cfg, "test", log=lambda _: None)
    test_images, test_labels = test_images[:n], None if test_labels is None else test_labels[:n]
    clean = test_images.float() / 255  # (N, C, H, W)
    obs = degraded_split(test_images, deg)
    has_classifier = test_labels is not None and has_reference_classifier(cfg.dataset)
    clean_stats = feature_stats(embed(load_reference(cfg.dataset), test_images)[0]) if has_classifier else None

    rows, previews = [], {}

    def add(method: str, kind: str, restored: torch.Tensor, **extra) -> None:
        t = time.perf_counter()
        scores = score(restored, clean, test_labels, cfg.dataset, clean_stats)
        rows.append({"method": method, "kind": kind, "params": {}, **scores, **extra})
        previews[method] = restored[:PREVIEW]
        shown = " ".join(f"{k} {v:.4g}" for k, v in scores.items())
        log(f"  {method:<16} {shown} (scored in {time.perf_counter() - t:.1f} s)")

    log(f"{cfg.dataset} {cfg.task}: {deg.describe()}; {len(obs):,} test images (seeded), "
        f"baselines tuned on {tune_n} validation images")
    add("degraded input", "input", to_full(obs, cfg.image_size))
    if baselines:
        val_images, _ = load_split(cfg, "val", log=lambda _: None)
        val_clean = val_images[:tune_n].float() / 255
        val_obs = degraded_split(val_images[:tune_n], deg, VAL_SEED)
        for b in baselines_for(cfg.task):
            t = time.perf_counter()
            params, val_psnr = tune(b, val_obs, val_clean, deg)
            tune_s = time.perf_counter() - t
            restored = run_baseline(b, obs, deg, params)
            add(b.name, "baseline", restored, wall_s=time.perf_counter() - t, tune_s=tune_s, val_psnr=val_psnr)
            rows[-1]["params"] = params
    for G, run_cfg, step, train_s, path in models:
        t = time.perf_counter()
        restored = restore(G, obs, run_cfg.image_size)
        name = run_cfg.method if run_cfg.method not in previews else f"{run_cfg.method} (adv {run_cfg.adv_weight:g})"
        if name in previews:
            name = f"{name} ({path.name})"
        add(name, "model", restored, run=str(path), steps=step, train_s=train_s,
            wall_s=train_s + time.perf_counter() - t, eval_s=time.perf_counter() - t)
        rows[-1]["params"] = {"adv_weight": run_cfg.adv_weight, "g_width": run_cfg.g_width}
    if has_classifier:
        rows.append({"method": "clean (reference)", "kind": "reference", "params": {},
                     **score(clean, clean, test_labels, cfg.dataset, clean_stats), "psnr": None})
    previews["clean"] = clean[:PREVIEW]
    previews["degraded input"] = to_full(obs[:PREVIEW], cfg.image_size)
    record = {"kind": "restore", "task": cfg.task, "dataset": cfg.dataset, "degradation": deg.describe(),
              "n": len(obs), "tune_n": tune_n, "runs": [str(m[4]) for m in models], "rows": rows}
    return record, previews


def run_restore_evaluate(cfg: RestoreEvaluateConfig) -> list[Path]:
    """Print the table, append the record to RUN/metrics.jsonl and write RUN/restore_eval.md."""
    record, _ = evaluate_restoration(cfg.runs, cfg.n, cfg.tune_n, cfg.baselines, cfg.device,
                                     log=(lambda _: None) if cfg.json else print)
    table = restore_table(record)
    run = Path(cfg.run)
    append_jsonl(run / "metrics.jsonl", record)
    text = f"{record['dataset']} {record['task']}: {record['degradation']}, n={record['n']}\n\n{table}\n"
    atomic_write(run / "restore_eval.md", lambda tmp: tmp.write_text(text))
    print(json.dumps(record) if cfg.json else text)
    return []
