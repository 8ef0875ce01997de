"""Wall time to good samples: train the default CPU preset on MNIST (conditional) and log FD and
class accuracy against training time; print when the targets were first met.

    python bench/time_to_quality.py                 # the fast preset at `ganimate train`'s defaults (batch 128)
    python bench/time_to_quality.py --set batch_size=64 r1=0.1 beta1=0 beta2=0.99   # as `make demo` trains it
    python bench/time_to_quality.py --arch paper --epochs 3 --set bn_affine=true

Targets (issue 5): FD <= 5x the real-vs-real FD (10k real training images against the test set,
in the reference classifier's features) and class accuracy >= 0.97. The time axis is training
time: the seconds spent evaluating are subtracted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ganimate.config import TrainConfig
from ganimate.runtime import keep_freed_memory
from ganimate.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="fast")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", default="runs/time_to_quality")
    parser.add_argument("--fd-factor", type=float, default=5.0)
    parser.add_argument("--class-acc", type=float, default=0.97)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more TrainConfig settings as JSON values, e.g. lr_g=4e-4 bn_affine=true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the ganimate command does
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value

    cfg = TrainConfig(dataset="mnist", arch=args.arch, conditional=True, epochs=args.epochs, out=args.out,
                      eval_every=args.eval_every, eval_n=args.n, precision=args.precision, progress=False, **extra)
    run = fit(cfg, overwrite=True)
    records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]

    print(f"\n{cfg.arch} arch, precision {cfg.precision}, batch {cfg.batch_size}, {args.threads} threads, "
          f"N={args.n}, settings {extra}")
    print(f"{'step':>6} {'train s':>8} {'fd':>8} {'fd/floor':>8} {'class_acc':>9}")
    spent, fd_hit, acc_hit, both_hit = 0.0, None, None, None
    for r in records:
        train_s = r["time_s"] - spent
        spent += r.get("eval_s", 0.0)
        ratio = r["fd"] / r["fd_floor"]
        print(f"{r['step']:6d} {train_s:8.0f} {r['fd']:8.2f} {ratio:8.1f} {r['class_acc']:9.4f}")
        fd_ok, acc_ok = ratio <= args.fd_factor, r["class_acc"] >= args.class_acc
        fd_hit = fd_hit or (train_s if fd_ok else None)
        acc_hit = acc_hit or (train_s if acc_ok else None)
        both_hit = both_hit or (train_s if fd_ok and acc_ok else None)
    floor = records[-1]["fd_floor"]

    def when(t):
        return f"{t:.0f} s ({t / 60:.1f} min)" if t is not None else "not reached"

    print(f"\nreal-vs-real FD floor {floor:.3f}; target FD <= {args.fd_factor * floor:.3f}")
    print(f"FD target first met: {when(fd_hit)}")
    print(f"class accuracy >= {args.class_acc} first met: {when(acc_hit)}")
    print(f"both first met: {when(both_hit)}")


if __name__ == "__main__":
    main()
