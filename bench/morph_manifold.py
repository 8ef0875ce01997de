"""How strict is "on the real-data manifold"? The morph measure of `bench/projection.py` under stricter criteria.

`bench/projection.py` counts a frame as on the manifold when its reference-classifier features fall inside the
k-NN ball (k = 3) of one of 10,000 real training images (improved precision, Kynkäänniemi et al. 2019). There a
pixel cross-fade of two real digits scores 0.82 on MNIST, so "twice as often as a cross-fade" would need a share
of 1.64. This script asks whether a stricter criterion separates real-image morphs from cross-fades:

- k = 3 and k = 1 balls around the real features;
- each with the half of the balls with the largest radii dropped: the real manifold of the same paper's realism
  score (its outliers' big balls swallow almost anything);
- and, for scale, the share of held-out real test images inside each (what a perfect frame would score).

It reuses the projections `bench/projection.py` saved (`<dataset>-projections.npz`: test_index, z, y) and draws
the same pairs (seed + 2) and frames (t = 1/8 ... 7/8) as that script, so its first row repeats that report's
numbers.

    GANIMATE_DATA=/work/shared/datasets python bench/morph_manifold.py --run /work/runs-bench/mnist-demo \\
        --dataset mnist --projections reports/projection/mnist-n1000-projections.npz --pairs 500

Prints a markdown table and writes it to --out (default: beside the projections, <dataset>-morph-criteria.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from projection import as_uint8, morph_frames

from ganimate.data import load_dataset
from ganimate.metrics.classifier import embed
from ganimate.metrics.pr import inside, knn_radii
from ganimate.project import load_projector, to_float


def criteria(real: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{name: (centres, radii)} of the real-manifold estimates compared."""
    out = {}
    for k in (3, 1):
        radii = knn_radii(real, k)
        out[f"k = {k}"] = (real, radii)
        keep = radii <= radii.median()
        out[f"k = {k}, largest half of the balls dropped"] = (real[keep], radii[keep])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--projections", required=True, type=Path, help="<dataset>-projections.npz of bench/projection.py")
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="bench/projection.py's --seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    saved = np.load(args.projections)
    proj, _ = load_projector(args.run, encoder=False)
    G, ref = proj.G, proj.reference
    test = load_dataset(args.dataset, "test", log=lambda s: None)
    train = load_dataset(args.dataset, "train", log=lambda s: None)
    index = torch.from_numpy(saved["test_index"])
    n = len(index)
    x = to_float(test.images[index])
    z = torch.from_numpy(saved["z"])
    y = torch.from_numpy(saved["y"]) if "y" in saved else None

    g = torch.Generator().manual_seed(args.seed + 2)  # the draws of bench/projection.py, in its order
    a = torch.randint(0, n, (args.pairs,), generator=g)
    b = (a + torch.randint(1, n, (args.pairs,), generator=g)) % n
    ts = [i / 8 for i in range(1, 8)]
    frames = morph_frames(G, z, y, a, b, ts)  # (P, T, C, H, W)
    fades = torch.stack([(1 - t) * x[a] + t * x[b] for t in ts], 1)
    real_f, _ = embed(ref, train.images[torch.randperm(len(train), generator=g)[:10_000]])
    unseen = torch.ones(len(test), dtype=torch.bool)
    unseen[index] = False
    heldout_f, _ = embed(ref, test.images[unseen][:2000])
    morph_f, _ = embed(ref, as_uint8(frames.flatten(0, 1)))
    fade_f, _ = embed(ref, as_uint8(fades.flatten(0, 1)))

    lines = [f"{args.dataset}: {args.pairs} pairs of {n} projected test images ({args.projections.name}), run "
             f"{args.run}; share of frames on the real manifold (reference-classifier features, 10,000 real "
             "training images; middle = t 3/8 ... 5/8)", "",
             "| criterion | held-out real images | morph | cross-fade | morph / cross-fade | morph, middle | "
             "cross-fade, middle |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, (centres, radii) in criteria(real_f).items():
        real_share = float(inside(heldout_f, centres, radii).double().mean())
        m = inside(morph_f, centres, radii).view(args.pairs, len(ts)).double()
        f = inside(fade_f, centres, radii).view(args.pairs, len(ts)).double()
        lines.append(f"| {name} | {real_share:.3f} | {m.mean():.3f} | {f.mean():.3f} | {m.mean() / f.mean():.2f} | "
                     f"{m[:, 2:5].mean():.3f} | {f[:, 2:5].mean():.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or args.projections.with_name(f"{args.dataset}-morph-criteria.md")
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
