"""Training throughput of `ganimate train` on 1 and 2 processes (torchrun, DDP) and, on a GPU, in each precision.

    python bench/scaling.py                          # CPU: 1 process, then 2 under torchrun (gloo), same global batch
    python bench/scaling.py --procs 1,2,4            # the CPU's cores shared among 1, 2 and 4 processes
    python bench/scaling.py --gpu                    # 1 GPU: fp32, bf16, fp16
    python bench/scaling.py --gpu --arch paper --batch-size 256 --image-size 64

Each setting is a real `ganimate train` run (a subprocess, into a temporary folder) of --steps steps; the figure
is the mean of the runs' `samples_per_s` records (training time alone, images of the global batch per second)
after the first record, which holds the warm-up. On a 2-core CPU two processes share the same cores, so no
speed-up is expected there: the point of the CPU rows is that distributed training runs, at what cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(args, out: Path, *, nproc: int = 0, precision: str = "fp32", device: str = "cpu",
          threads: int | None = None) -> dict:
    """One `ganimate train` run; nproc 0: a plain process, else torchrun with nproc processes."""
    train_args = ["train", "--dataset", args.dataset, "--arch", args.arch, "--batch-size", str(args.batch_size),
                  "--max-steps", str(args.steps), "--epochs", "1000", "--log-every", str(args.log_every),
                  "--precision", precision, "--device", device, "--out", str(out), "--no-progress", "--no-report",
                  "--sample-every", "0", "--seed", "0"]
    if args.image_size:
        train_args += ["--image-size", str(args.image_size)]
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
               f"--master-port={free_port()}", "-m", "ganimate", *train_args]
    else:
        cmd = [sys.executable, "-m", "ganimate", *train_args]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records[1:]] or [records[-1]["samples_per_s"]]
    return {"rate": sum(rates) / len(rates), "wall": wall, "skipped": sum(r.get("skipped", 0) for r in records),
            "loss_d": records[-1]["loss_d"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="GPU rows: one GPU in fp32, bf16 and fp16")
    parser.add_argument("--procs", default="1,2", help="CPU rows: numbers of processes sharing the cores")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--arch", default="fast")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args()

    setting = (f"{args.dataset}, --arch {args.arch}, global batch {args.batch_size}"
               f"{f', {args.image_size} px' if args.image_size else ''}, {args.steps} steps")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.gpu:
            if not torch.cuda.is_available():
                sys.exit("--gpu: CUDA is not available here")
            name = torch.cuda.get_device_name(0)
            print(f"GPU: {name}; {setting}")
            for precision in ("fp32", "bf16", "fp16"):
                rows.append((f"1 GPU, {precision}", train(args, tmp / precision, precision=precision, device="cuda")))
        else:
            cores = os.cpu_count() or 1
            print(f"CPU; {setting}; fp32")
            for n in map(int, args.procs.split(",")):
                threads = max(cores // n, 1)
                label = (f"1 process, {threads} threads" if n == 1 else
                         f"torchrun, {n} processes (gloo), {threads} thread(s) each")
                rows.append((label, train(args, tmp / f"procs{n}", nproc=n if n > 1 else 0, threads=threads)))
    base = rows[0][1]["rate"]
    print(f"\n{'setting':<48} {'img/s':>9} {'vs first':>9} {'skipped':>8} {'run wall s':>11}")
    for label, r in rows:
        print(f"{label:<48} {r['rate']:9,.0f} {r['rate'] / base:8.2f}x {r['skipped']:8d} {r['wall']:11.1f}")


if __name__ == "__main__":
    main()
