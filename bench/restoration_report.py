"""Write reports/restoration.md: the restoration GAN and its L1-only ablation against tuned classical
baselines, for super-resolution, denoising and deblurring on MNIST and Fashion-MNIST (issue 6).

For each dataset and task it trains (or resumes, or reuses when finished) two runs under RUNS_ROOT,
the GAN and the same generator with --adv-weight 0, evaluates them beside every baseline on the
seeded test split (`ganimate.restore.evaluate`), saves the record as JSON and a figure
reports/restoration/<dataset>_<task>.png (rows: degraded, best baseline, L1-only, GAN, clean), and
rewrites the report after every pair so a partial run leaves a readable report.

    OMP_NUM_THREADS=1 python bench/restoration_report.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.images import atomic_write, make_grid, save_png, to_uint8
from ganimate.restore.config import RestoreTrainConfig
from ganimate.restore.evaluate import evaluate_restoration, restore_table
from ganimate.restore.train import fit_restore

ROW_NAMES = ("degraded", "best baseline", "L1-only", "GAN", "clean")
DEFAULT_ADV = 0.01


def key_of(dataset: str, task: str, sigma: float) -> str:
    return f"{dataset}_{task}" + (f"{sigma:g}" if task == "denoise" and sigma != 0.2 else "")


def train_or_reuse(cfg: RestoreTrainConfig, log) -> Path:
    """Train the run, resume it if a checkpoint is short of its goal, or reuse it when finished."""
    run = Path(cfg.out)
    found = list_checkpoints(run)
    if found:
        state = load_checkpoint(found[-1])
        if state["config"]["task"] != cfg.task:
            raise SystemExit(f"{run} holds a {state['config']['task']} run, not {cfg.task}")
        goal = cfg.max_steps or 0
        if goal and state["step"] >= goal:
            log(f"reusing {run} (step {state['step']})")
            return run
        from ganimate.runs import resume_config

        extend = {"max_steps": cfg.max_steps, "epochs": cfg.epochs}
        return fit_restore(resume_config(run, extend, RestoreTrainConfig), resume=True)
    return fit_restore(cfg, overwrite=True)


def labelled_figure(previews: dict[str, torch.Tensor], best: str, path: Path, scale: int = 3) -> None:
    """Rows degraded | best baseline | L1-only | GAN | clean, 10 test images each, with row labels."""
    rows = [previews["degraded input"], previews[best], previews["L1-only"], previews["GAN"], previews["clean"]]
    grid = make_grid(to_uint8(torch.cat(rows) * 2 - 1), len(rows[0]))
    img = Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).convert("RGB")
    margin = 120
    canvas = Image.new("RGB", (img.width + margin, img.height), "white")
    canvas.paste(img, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    side = (grid.shape[0] - 2) // len(rows) * scale
    for i, name in enumerate(ROW_NAMES):
        label = f"{name}\n({best})" if name == "best baseline" else name
        draw.multiline_text((6, i * side + side // 3), label, fill="black")
    save_png(np.asarray(canvas), path)


def targets(record: dict) -> list[str]:
    rows = {r["method"]: r for r in record["rows"]}
    base = [r for r in record["rows"] if r["kind"] == "baseline"]
    best = max(base, key=lambda r: r["psnr"])
    gan, l1 = rows["GAN"], rows["L1-only"]
    margin = gan["psnr"] - best["psnr"]
    out = [f"GAN PSNR {gan['psnr']:.2f} dB vs best baseline {best['method']} {best['psnr']:.2f} dB: "
           f"{margin:+.2f} dB ({'met' if margin >= 3 else 'MISSED'}, target +3 dB)"]
    if "class_acc" in gan:
        table = base + [gan, l1]
        top = max(r["class_acc"] for r in table)
        rank = "highest" if gan["class_acc"] >= top else f"not highest (top: {top:.4f}, " + ", ".join(
            r["method"] for r in table if r["class_acc"] == top) + ")"
        verdict = "met" if gan["class_acc"] >= top else "MISSED"
        out.append(f"GAN class accuracy {gan['class_acc']:.4f}: {rank} among baselines, L1-only and GAN ({verdict}); "
                   f"degraded input {rows['degraded input']['class_acc']:.4f}, "
                   f"clean {rows['clean (reference)']['class_acc']:.4f}")
    if l1["psnr"] > gan["psnr"]:
        wins = [f"FD {gan['fd']:.3f} vs {l1['fd']:.3f}" if gan.get("fd", 1e9) < l1.get("fd", 0) else None,
                f"class accuracy {gan['class_acc']:.4f} vs {l1['class_acc']:.4f}"
                if gan.get("class_acc", 0) > l1.get("class_acc", 1) else None]
        if gan.get("sharpness") is not None and abs(gan["sharpness"] - 1) < abs(l1["sharpness"] - 1):
            wins.append(f"sharpness {gan['sharpness']:.3f} vs {l1['sharpness']:.3f} (clean 1)")
        wins = [w for w in wins if w]
        measured = "FD, class accuracy and sharpness" if gan.get("sharpness") is not None else "FD and class accuracy"
        out.append(f"L1-only has the higher PSNR ({l1['psnr']:.2f} vs {gan['psnr']:.2f} dB); the GAN wins on "
                   + ("; ".join(wins) if wins else f"none of {measured} at this adversarial weight and length"))
    else:
        out.append(f"the GAN also has the higher PSNR than L1-only ({gan['psnr']:.2f} vs {l1['psnr']:.2f} dB)")
    return out


def write_report(path: Path, records: list[dict], args, started: str, sweeps: list[dict] = ()) -> None:
    lines = [
        "# Image restoration with the DCGAN design (issue 6)",
        "",
        "The seed paper's conclusion claims that the DCGAN design serves as one architecture for",
        "super-resolution, denoising and deconvolution. Here a conditional encoder-decoder GAN in its style",
        "(`ganimate.restore.model`) and the same generator trained with L1 only are compared with classical",
        "methods whose parameters were tuned on held-out validation images (the last 5,000 training images,",
        f"of which the first {args.tune_n} are used; never the test set).",
        "",
        f"Command: `OMP_NUM_THREADS=1 python bench/restoration_report.py {' '.join(args.argv)}` "
        f"(started {started} UTC).",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s) on a 2-core machine shared with other jobs, so wall times are pessimistic.",
        f"Test set: the first {args.n_test:,} test images, degraded once with a fixed seed (every method sees",
        "the same inputs). PSNR/SSIM against the clean image (data range 1, SSIM with scikit-image's",
        "defaults); class acc: the reference classifier of `ganimate.metrics` on the restored images; FD:",
        "Fréchet distance of restored vs clean test images in that classifier's features. Training: batch",
        f"{args.batch_size}, {'bf16 autocast' if args.precision == 'bf16' else args.precision}, Adam 2e-4 (β1 0.5), "
        "EMA of G; the GAN's loss is L1 + 0.01 × BCE",
        "adversarial; L1-only is the same run with `--adv-weight 0`. Wall time: training plus evaluation for",
        "the models, tuning plus running on the test set for the baselines. Sharpness: gradient energy of the",
        "restored images relative to the clean ones (1.00 = as sharp as clean; below is blurrier, above noisier).",
        "A pair whose record already lies under the runs folder is reused, not recomputed (the per-row times",
        "are those of the invocation that computed it; records older than the sharpness column show it as —).",
        "Class accuracies at N = 10,000 carry a standard error of about 0.001 (near 0.99) to 0.002 (near 0.95),",
        "so differences of a few thousandths are within sampling noise.",
        "",
    ]
    lines += ["## Summary", "", "| dataset | task | best tuned baseline | GAN | GAN − baseline | target +3 dB "
              "| L1-only | GAN class acc highest |", "|---|---|---|---|---|---|---|---|"]
    for rec in records:
        rows = {r["method"]: r for r in rec["rows"]}
        base = max((r for r in rec["rows"] if r["kind"] == "baseline"), key=lambda r: r["psnr"])
        gan, l1 = rows["GAN"], rows["L1-only"]
        top = max(r.get("class_acc", 0) for r in rec["rows"] if r["kind"] in ("baseline", "model"))
        task = rec["key"].split("_", 1)[1]  # denoise0.4 for sigma 0.4
        margin = gan["psnr"] - base["psnr"]
        lines.append(f"| {rec['dataset']} | {task} | {base['method']} {base['psnr']:.2f} dB | {gan['psnr']:.2f} dB | "
                     f"{margin:+.2f} dB | {'met' if margin >= 3 else 'missed'} | "
                     f"{l1['psnr']:.2f} dB | {'yes' if gan.get('class_acc', -1) >= top else 'no'} "
                     f"({gan.get('class_acc', 0):.4f} vs top {top:.4f}) |")
    lines.append("")
    for rec in records:
        lines += [f"## {rec['dataset']}, {rec['task']}: {rec['degradation']}", "",
                  restore_table(rec), ""]
        lines += [f"- {t}" for t in targets(rec)]
        fig = f"restoration/{rec['key']}.png"
        lines += ["", f"![{rec['key']}]({fig})", f"`{fig}`: rows degraded, best baseline, L1-only, GAN, clean.", ""]
    if sweeps:
        lines += ["## What the adversary adds: adversarial-weight sweep", "",
                  "The same generator and training length with a larger weight on the adversarial loss",
                  f"(`--adv-weight`; 0 is L1-only, {DEFAULT_ADV:g} is the GAN of the tables above), models only, same "
                  "test images.", ""]
        for rec in sweeps:
            lines += [f"### {rec['dataset']}, {rec['task']}", "", restore_table(rec), "",
                      f"![{rec['key']}](restoration/{rec['key']}.png)",
                      f"`restoration/{rec['key']}.png`: rows degraded, L1-only, then the GANs by adversarial weight, "
                      "clean.", ""]
    text = "\n".join(lines) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,fashion-mnist")
    p.add_argument("--tasks", default="sr,denoise,deblur")
    p.add_argument("--sigmas", default="0.2", help="denoise noise levels (comma list)")
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=859, help="training steps of every run (859: one epoch at 64)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--tune-n", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs-root", default="runs/restoration")
    p.add_argument("--out", default="reports/restoration.md")
    p.add_argument("--adv-sweep", default="", help="adversarial weights of extra GAN runs for a sweep (comma list)")
    p.add_argument("--sweep", default="mnist_sr", help="dataset_task keys the sweep covers (comma list)")
    args = p.parse_args(argv)
    args.argv = argv if argv is not None else os.sys.argv[1:]
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    root, out = Path(args.runs_root), Path(args.out)
    figures = out.parent / "restoration"
    figures.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    log = print
    jobs = []
    for dataset in args.datasets.split(","):
        for task in args.tasks.split(","):
            for sigma in ([float(s) for s in args.sigmas.split(",")] if task == "denoise" else [0.2]):
                jobs.append((dataset, task, sigma))
    records = []
    for dataset, task, sigma in jobs:
        key = key_of(dataset, task, sigma)
        record_path = root / f"{key}.json"
        if record_path.is_file():
            records.append(json.loads(record_path.read_text()))
            log(f"{key}: reusing {record_path}")
            continue
        t0 = time.perf_counter()
        runs = []
        for name, adv in (("gan", DEFAULT_ADV), ("l1", 0.0)):
            cfg = RestoreTrainConfig(task=task, dataset=dataset, out=str(root / f"{key}_{name}"), factor=args.factor,
                                     sigma=sigma, adv_weight=adv, epochs=args.epochs, max_steps=args.max_steps,
                                     batch_size=args.batch_size, precision=args.precision, device="cpu",
                                     log_every=100)
            runs.append(train_or_reuse(cfg, log))
        record, previews = evaluate_restoration(runs, n=args.n_test, tune_n=args.tune_n, log=log)
        record["key"] = key
        best = max((r for r in record["rows"] if r["kind"] == "baseline"), key=lambda r: r["psnr"])["method"]
        labelled_figure(previews, best, figures / f"{key}.png")
        record["pair_wall_s"] = time.perf_counter() - t0
        atomic_write(record_path, lambda tmp, r=record: tmp.write_text(json.dumps(r, indent=1)))
        records.append(record)
        write_report(out, records, args, started)
        log(f"{key}: done in {time.perf_counter() - t0:.0f} s; {out} updated")
    sweeps = []
    weights = [float(w) for w in args.adv_sweep.split(",") if w.strip()]
    for key in [k for k in args.sweep.split(",") if k.strip()] if weights else []:
        job = next((j for j in jobs if key_of(*j) == key), None)
        if job is None:
            raise SystemExit(f"--sweep {key}: not one of this report's dataset_task keys")
        record_path = root / f"{key}_sweep.json"
        if record_path.is_file():
            sweeps.append(json.loads(record_path.read_text()))
            continue
        dataset, task, sigma = job
        runs = [root / f"{key}_l1", root / f"{key}_gan"]
        for w in weights:
            cfg = RestoreTrainConfig(task=task, dataset=dataset, out=str(root / f"{key}_gan{w:g}"), factor=args.factor,
                                     sigma=sigma, adv_weight=w, epochs=args.epochs, max_steps=args.max_steps,
                                     batch_size=args.batch_size, precision=args.precision, device="cpu",
                                     log_every=100)
            runs.append(train_or_reuse(cfg, log))
        record, previews = evaluate_restoration(runs, n=args.n_test, baselines=False, log=log)
        record["key"] = f"{key}_sweep"
        models = [r["method"] for r in record["rows"] if r["kind"] == "model"]
        rows = [previews[m] for m in ["degraded input", *models, "clean"]]
        grid = make_grid(to_uint8(torch.cat(rows) * 2 - 1), len(rows[0]))
        save_png(np.kron(grid, np.ones((3, 3, 1), np.uint8)), figures / f"{key}_sweep.png")
        atomic_write(record_path, lambda tmp, r=record: tmp.write_text(json.dumps(r, indent=1)))
        sweeps.append(record)
        write_report(out, records, args, started, sweeps)
    write_report(out, records, args, started, sweeps)


if __name__ == "__main__":
    main()
