"""Projecting real test images into a trained generator (issue 16): reconstruction quality against baselines,
seconds per image, and how often the in-between frames of real-image morphs lie on the real-data manifold.

For each run (a demo-preset run: `ganimate train --dataset D --conditional --arch fast --epochs 4`):
- the first --n images of a seeded shuffle of the test split (never seen in training) are projected by
  ganimate's method (encoder start, Adam on z with pixel + reference-feature loss; `ganimate.project.Search`),
  by the encoder alone, and by the same search from random starts only;
- baselines without search: the nearest (pixel L2) of 10,000 generated samples (retrieval), and as a
  memorisation check the nearest real training image;
- metrics: PSNR and SSIM against the target, label agreement (the reference classifier's label of the
  reconstruction against the true label), seconds per image;
- morphs: --pairs random pairs of projected test images, 7 in-between frames each (slerp on z, straight line on
  the class weights) against a pixel cross-fade of the two real images at the same t; the share of frames inside
  the real manifold (k-NN balls, k = 3, around 10,000 real training images in reference features, as the
  precision of Kynkäänniemi et al. 2019).

    python bench/projection.py --run mnist=/work/runs-bench/mnist-demo \\
        --run fashion-mnist=/work/runs-bench/fashion-demo --n 1000 --pairs 500 --threads 2

Writes reports/projection/<dataset>.json, <dataset>.md (the tables) and <dataset>.png (targets,
reconstructions, retrieval, and morph strips) and prints the tables.
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

from ganimate.data import load_dataset
from ganimate.images import atomic_write, make_grid, save_npz, save_png, to_uint8
from ganimate.metrics.classifier import embed
from ganimate.metrics.pixel import psnr, ssim
from ganimate.metrics.pr import inside, knn_radii
from ganimate.project import Search, load_projector, project_batches, to_float
from ganimate.sample import generate, sample_labels
from ganimate.video import upscale
from ganimate.walks import slerp

SURE = 0.8  # a second view of "looks like a real image": the reference classifier is this sure of one class
SURE_TEXT = "reference classifier >= 80% sure of one class (not k-NN)"
TARGETS = {"mnist": (0.98, 3.0), "fashion-mnist": (0.90, 3.0)}  # label agreement, PSNR above retrieval (dB)


def nearest(targets: torch.Tensor, pool: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """Index (N,) of the nearest pool image (pixel L2) of each uint8 target (N, C, H, W)."""
    p = pool.flatten(1).float()  # (M, P)
    p2 = p.pow(2).sum(1)
    out = []
    for i in range(0, len(targets), chunk):
        t = targets[i : i + chunk].flatten(1).float()
        out.append((p2[None] - 2 * t @ p.T).argmin(1))
    return torch.cat(out)


def scores(name: str, recon: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, ref, seconds: float | None):
    """PSNR, SSIM, label agreement of uint8 reconstructions (N, C, H, W)."""
    _, logits = embed(ref, recon)
    return {"method": name, "psnr": float(psnr(recon, targets, 255.0).mean()),
            "ssim": float(ssim(recon, targets, 255.0).mean()),
            "label_agreement": float((logits.argmax(1) == labels).double().mean()),
            "seconds_per_image": seconds}


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def morph_frames(G, z: torch.Tensor, y: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, ts) -> torch.Tensor:
    """In-between frames (P, T, C, H, W) in [-1, 1] of the morphs from latent a[i] to b[i] (index pairs)."""
    out = []
    with torch.no_grad():
        for t in ts:
            zt = slerp(z[a], z[b], t)
            w = None
            if y is not None:
                k = G.num_classes
                w = (1 - t) * torch.nn.functional.one_hot(y[a], k).float() + t * torch.nn.functional.one_hot(y[b], k)
            out.append(G(zt, w))
    return torch.stack(out, 1)


def bench_run(dataset: str, run: Path, n: int, pairs: int, search: Search, out: Path, seed: int = 0) -> dict:
    log = print
    t0 = time.perf_counter()
    proj, cfg = load_projector(run, encoder=True)
    encoder_seconds = time.perf_counter() - t0
    G, ref = proj.G, proj.reference
    test = load_dataset(dataset, "test", log=lambda s: None)
    train = load_dataset(dataset, "train", log=lambda s: None)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    targets, labels = test.images[order], test.labels[order]  # uint8 (N, 1, 28, 28), (N,)
    x = to_float(targets)
    rows, results = [], {}

    load = os.getloadavg()
    t, cpu = time.perf_counter(), time.process_time()
    ours = project_batches(proj, x, None, search, batch=100)
    ours_s = (time.perf_counter() - t) / n
    ours_cpu = (time.process_time() - cpu) / n  # CPU seconds: what the search costs, whatever else runs
    results["ours"] = ours
    rows.append(scores(f"ganimate ({search.steps} steps, encoder start)", as_uint8(ours.images), targets, labels, ref,
                       ours_s))
    log(rows[-1])

    t = time.perf_counter()
    enc = project_batches(proj, x, None, Search(**{**search.__dict__, "steps": 0, "starts": 1}), batch=100)
    rows.append(scores("encoder only", as_uint8(enc.images), targets, labels, ref, (time.perf_counter() - t) / n))
    log(rows[-1])

    t = time.perf_counter()
    rand = project_batches(proj, x, None, Search(**{**search.__dict__, "use_encoder": False}), batch=100)
    rows.append(scores(f"random starts only ({search.steps} steps)", as_uint8(rand.images), targets, labels, ref,
                       (time.perf_counter() - t) / n))
    log(rows[-1])

    t = time.perf_counter()
    y = sample_labels(10_000, G.num_classes)
    pool = torch.from_numpy(generate(G, 10_000, seed + 1, y)).permute(0, 3, 1, 2).contiguous()
    retrieved = pool[nearest(targets, pool)]
    rows.append(scores("retrieval: nearest of 10,000 samples", retrieved, targets, labels, ref,
                       (time.perf_counter() - t) / n))
    log(rows[-1])

    t = time.perf_counter()
    memorised = train.images[nearest(targets, train.images)]
    rows.append(scores("nearest real training image (memorisation check)", memorised, targets, labels, ref,
                       (time.perf_counter() - t) / n))
    log(rows[-1])

    # morphs between projected test images, against a cross-fade of the real images
    g = torch.Generator().manual_seed(seed + 2)
    a = torch.randint(0, n, (pairs,), generator=g)
    b = (a + torch.randint(1, n, (pairs,), generator=g)) % n
    ts = [i / 8 for i in range(1, 8)]
    frames = morph_frames(G, ours.z, ours.y, a, b, ts)  # (P, T, C, H, W)
    fades = torch.stack([(1 - t_) * x[a] + t_ * x[b] for t_ in ts], 1)
    real_f, _ = embed(ref, train.images[torch.randperm(len(train), generator=g)[:10_000]])
    radii = knn_radii(real_f, 3)
    on, by_t = {}, {}
    same = labels[a] == labels[b]  # pairs of one true class
    for name, imgs in (("morph", frames), ("cross-fade", fades)):
        f, logits = embed(ref, as_uint8(imgs.flatten(0, 1)))
        hit = inside(f, real_f, radii).view(pairs, len(ts)).double()  # (P, T)
        on[f"{name}: {SURE_TEXT}"] = float((logits.softmax(1).amax(1) >= SURE).double().mean())
        on[name] = float(hit.mean())
        on[f"{name}, pairs of one class ({int(same.sum())})"] = float(hit[same].mean()) if same.any() else float("nan")
        on[f"{name}, pairs of two classes ({int((~same).sum())})"] = float(hit[~same].mean())
        by_t[name] = [float(v) for v in hit.mean(0)]
    recon_f, _ = embed(ref, as_uint8(ours.images))
    on["endpoints (projections)"] = float(inside(recon_f, real_f, radii).double().mean())
    real_test_f, real_test_logits = embed(ref, targets)
    on["endpoints (real test images)"] = float(inside(real_test_f, real_f, radii).double().mean())
    on[f"real test images: {SURE_TEXT}"] = float((real_test_logits.softmax(1).amax(1) >= SURE).double().mean())
    log(on)

    # the figure: targets, ours, retrieval; then morph strips (real a | frames | real b) for 4 pairs
    k = 10
    grid = torch.cat([targets[:k], as_uint8(ours.images[:k]), retrieved[:k]])
    top = make_grid(grid.permute(0, 2, 3, 1).numpy(), k, pad_value=128)
    strip = []
    for i in range(4):
        strip += [targets[a[i]][None], as_uint8(frames[i]), targets[b[i]][None]]
    strips = make_grid(torch.cat(strip).permute(0, 2, 3, 1).numpy(), len(ts) + 2, pad_value=128)
    width = max(top.shape[1], strips.shape[1])
    pad = lambda im: np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=128)  # noqa: E731
    figure = np.concatenate([pad(top), np.full((6, width, top.shape[2]), 255, np.uint8), pad(strips)])
    out.mkdir(parents=True, exist_ok=True)
    save_png(upscale(figure, 3), out / f"{dataset}.png")

    retrieval_psnr = rows[3]["psnr"]
    agree_target, margin = TARGETS.get(dataset, (None, 3.0))
    summary = {
        "dataset": dataset, "run": str(run), "checkpoint": proj.checkpoint.name, "n": n, "pairs": pairs,
        "search": search.__dict__, "rows": rows, "on_manifold": on, "on_manifold_by_t": by_t, "t": ts,
        "encoder_load_or_train_seconds": encoder_seconds, "threads": torch.get_num_threads(),
        "cpu_seconds_per_image": ours_cpu,
        "load_average_at_start": load, "machine": platform.processor() or platform.machine(),
        "targets": {"label_agreement": agree_target, "psnr_above_retrieval_db": margin,
                    "met_label_agreement": rows[0]["label_agreement"] >= (agree_target or 0),
                    "met_psnr": rows[0]["psnr"] >= retrieval_psnr + margin,
                    "met_morph": on["morph"] >= 2 * on["cross-fade"],
                    "met_speed_100_under_60s": 100 * ours_s < 60,
                    "met_speed_100_under_60s_in_cpu_time": 100 * ours_cpu / 2 < 60},
    }
    save_npz(out / f"{dataset}-projections.npz", test_index=order.numpy(), z=ours.z.numpy(),
             **({} if ours.y is None else {"y": ours.y.numpy()}))
    atomic_write(out / f"{dataset}.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    atomic_write(out / f"{dataset}.md", lambda tmp: tmp.write_text(table(summary)))
    return summary


def table(s: dict) -> str:
    lines = [f"### {s['dataset']}: {s['n']} test images, run {s['run']} ({s['checkpoint']})", "",
             "| method | PSNR (dB) | SSIM | label agreement | s / image |", "|---|---:|---:|---:|---:|"]
    for r in s["rows"]:
        sec = "" if r["seconds_per_image"] is None else f"{r['seconds_per_image']:.3f}"
        lines.append(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['label_agreement']:.3f} | {sec} |")
    lines += ["", f"Morphs, {s['pairs']} random pairs of projected test images, 7 in-between frames each: share of "
              "frames inside the real-data manifold (k-NN, k = 3, reference features)", "",
              "| frames | on the manifold |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in s["on_manifold"].items()]
    lines += ["", "| t | " + " | ".join(f"{t:.3f}" for t in s["t"]) + " |", "|---" * (len(s["t"]) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for k, vals in s["on_manifold_by_t"].items()]
    load = ", ".join(f"{v:.1f}" for v in s["load_average_at_start"])
    lines += ["", f"{s['threads']} threads; load average at the start {load}; the search took "
              f"{s['cpu_seconds_per_image']:.3f} CPU seconds per image; encoder loaded or trained in "
              f"{s['encoder_load_or_train_seconds']:.0f} s. Targets met: "
              + ", ".join(f"{k[4:]} {'yes' if v else 'NO'}" for k, v in s["targets"].items() if k.startswith("met_")),
              ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="DATASET=RUN_FOLDER (repeatable)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--steps", type=int, default=Search.steps)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="reports/projection")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.run:
        dataset, run = spec.split("=", 1)
        summary = bench_run(dataset, Path(run), args.n, args.pairs, Search(steps=args.steps), Path(args.out))
        print(table(summary))


if __name__ == "__main__":
    main()
