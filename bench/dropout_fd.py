"""Sample quality at equal steps with ganimate's CPU dropout mask and with torch's (issue 20's "show FD at the
same step before and after").

`models.dcgan.Dropout` draws its CPU mask from 16-bit slices of numpy's SFC64 random bits instead of torch's
`bernoulli_`; the two draw different random numbers, so a run takes another path. This trains the same
configuration both ways over several seeds, with nothing else changed (the torch runs replace the class by
`torch.nn.Dropout` before the networks are built), and prints FD, KID, precision and recall of each run's EMA
generator, N = 10,000, with the mean and spread per implementation.

    python bench/dropout_fd.py                                   # tutorial arch, MNIST, 900 steps, seeds 0 and 1
    python bench/dropout_fd.py --arch paper --conditional --seeds 0 1 2 --jobs 2

Each run is a real `ganimate train` run folder under --out (one thread per run, --jobs at a time); finished
runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMPLS = ("ganimate", "torch")
METRICS = ("fd", "kid", "precision", "recall")


def train_one(impl: str, train_args: list[str]) -> int:
    """`ganimate train` in this process, with torch's dropout in place of ganimate's when impl == "torch"."""
    import torch

    import ganimate.models.dcgan as dcgan
    from ganimate.cli import main

    if impl == "torch":
        dcgan.Dropout = torch.nn.Dropout  # looked up when a discriminator is built
    return main(["train", *train_args])


def run_dir(out: Path, impl: str, seed: int) -> Path:
    return out / f"{impl}-s{seed}"


def launch(args, impl: str, seed: int) -> subprocess.Popen:
    run = run_dir(Path(args.out), impl, seed)
    train = ["--dataset", args.dataset, "--arch", args.arch, "--max-steps", str(args.steps), "--batch-size",
             str(args.batch_size), "--seed", str(seed), "--out", str(run), "--overwrite", "--no-progress",
             "--no-report", "--log-every", "300", "--memory-format", args.memory_format,
             *(["--conditional"] if args.conditional else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log = open(Path(args.out) / f"{impl}-s{seed}.log", "w")
    return subprocess.Popen([sys.executable, __file__, "--train", impl, "--", *train], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def evaluate(run: Path) -> dict:
    done = run / "dropout_fd.json"
    if done.is_file():
        return json.loads(done.read_text())
    out = subprocess.run([sys.executable, "-m", "ganimate", "evaluate", str(run), "--metrics", "fd,kid,pr", "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"evaluate {run} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    result["img_s"] = statistics.mean(r["samples_per_s"] for r in stats[1:]) if len(stats) > 1 else None
    done.write_text(json.dumps(result))
    return result


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--train":
        sys.exit(train_one(sys.argv[2], sys.argv[4:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="tutorial")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/dropout_fd")
    ap.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"))
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS, help="dropout masks to train with")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)

    todo = [(impl, seed) for seed in args.seeds for impl in args.impls
            if not (run_dir(Path(args.out), impl, seed) / "dropout_fd.json").is_file()]
    running: list[tuple[subprocess.Popen, str, int]] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            impl, seed = todo.pop(0)
            running.append((launch(args, impl, seed), impl, seed))
            print(f"training {impl}-s{seed}", flush=True)
        time.sleep(5)
        for proc, impl, seed in list(running):
            if proc.poll() is None:
                continue
            running.remove((proc, impl, seed))
            if proc.returncode != 0:
                sys.exit(f"{impl}-s{seed} failed (exit {proc.returncode}); see {args.out}/{impl}-s{seed}.log")
            evaluate(run_dir(Path(args.out), impl, seed))  # one process at a time, so scoring is not crowded
            print(f"{impl}-s{seed} done", flush=True)

    print(f"\n{args.arch} on {args.dataset}, {args.steps} steps of {args.batch_size}, --memory-format "
          f"{args.memory_format}, EMA generator, N = 10,000\n")
    print("| dropout mask | seed | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for impl in args.impls:
        rows = [evaluate(run_dir(Path(args.out), impl, s)) for s in args.seeds]
        for seed, r in zip(args.seeds, rows, strict=True):
            print(f"| {impl} | {seed} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |")
        if len(rows) > 1:
            cells = [f"{statistics.mean(r[m] for r in rows):.4f} ± {statistics.stdev(r[m] for r in rows):.4f}"
                     for m in METRICS]
            print(f"| {impl} | mean ± sd | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
