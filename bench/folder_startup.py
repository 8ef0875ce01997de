"""Start-up of `ganimate train` on a user's own folder: the first run decodes it, the second reads the cache.

    GANIMATE_DATA=/path/to/datasets python bench/folder_startup.py            # 50,000 MNIST digits as PNGs
    GANIMATE_DATA=/path/to/datasets python bench/folder_startup.py --n 5000 --keep
    GANIMATE_DATA=/path/to/datasets python bench/folder_startup.py --repeat 9    # the cached run 9 times, median
    python bench/folder_startup.py --folder /tmp/ganimate-folder-startup-XXXX/digits   # a kept or own folder

Writes the first N MNIST training digits as 28x28 PNGs in one sub-folder per class under a fresh temporary
folder (never in the data folder), or takes --folder; puts a fresh decode cache (GANIMATE_CACHE) in the
temporary folder; runs `ganimate train --dataset folder:DIR --max-steps 1 --log-every 1` once to decode it and
--repeat times (1) from the cache, and prints, for each run, the seconds from the process start to its log
lines (the chosen image size, the data summary, the first step) and its CPU seconds (user + system, which a
loaded machine does not inflate the way it does wall time); with --repeat, the median of the cached runs.
The issue's target: the second run's first step within 5 s of its start on 2 cores. It also times the imports
alone (torch, and torch._dynamo, which torch.optim imports when the first optimizer is built): the floor under
any torch trainer's start.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ganimate.data import load_dataset

LOAD_ONLY = """
import sys, time
from ganimate.data import load_dataset
w, c = time.perf_counter(), time.process_time()
ds = load_dataset(sys.argv[1], log=lambda _: None)
print(f"{time.perf_counter() - w:.2f} {time.process_time() - c:.2f} {len(ds)}")
"""
MARKS = (("image size", "image size "), ("data", "data: "), ("step 1", "step 1/"))


def write_folder(root: Path, n: int) -> None:
    ds = load_dataset("mnist", "train", download=False, log=lambda _: None)
    if n > len(ds):
        raise SystemExit(f"--n {n} is more than MNIST's {len(ds)} training images")
    images, labels = ds.images[:n, 0].numpy(), ds.labels[:n].tolist()  # (N, 28, 28), (N,)
    for c in set(labels):
        (root / str(c)).mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        Image.fromarray(images[i]).save(root / str(labels[i]) / f"{i:05d}.png")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(n)))


def timed_run(folder: Path, out: Path, env: dict) -> dict[str, float]:
    """Seconds from the start of `ganimate train` to each of `MARKS`' log lines and to its exit, and the CPU
    seconds it used in all (user + system: what its wall time would be on an idle machine, near enough)."""
    args = [sys.executable, "-m", "ganimate.cli", "train", "--dataset", f"folder:{folder}", "--max-steps", "1",
            "--log-every", "1", "--device", "cpu", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    seen: dict[str, float] = {}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as p:
        for line in p.stdout:
            for name, start in MARKS:
                if name not in seen and start in line:
                    seen[name] = time.perf_counter() - t0
                    if name == "image size":
                        print(f"  {line.strip()}")
    seen["exit"] = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen["cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if p.returncode:
        raise SystemExit(f"ganimate train failed with exit code {p.returncode}")
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="images in the folder")
    ap.add_argument("--repeat", type=int, default=1, help="time the run from the cache this many times and "
                    "print the median too")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (digits/ can be --folder later)")
    ap.add_argument("--folder", type=Path, help="time this existing folder of images instead of writing one")
    args = ap.parse_args()
    if args.folder is None and not os.environ.get("GANIMATE_DATA"):
        raise SystemExit("set GANIMATE_DATA to the folder holding mnist/ (read only)")

    work = Path(tempfile.mkdtemp(prefix="ganimate-folder-startup-"))
    try:
        folder = args.folder or work / "digits"
        if args.folder is None:
            t = time.perf_counter()
            write_folder(folder, args.n)
            print(f"wrote {args.n:,} 28x28 PNGs in {folder} in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "GANIMATE_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
        print(f"cpus: {os.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("run     image size  data    step 1  exit    cpu    (seconds from process start; cpu: user + system)")
        columns = ("image size", "data", "step 1", "exit", "cpu")
        cached_runs = []
        for i, name in enumerate(["first"] + ["second"] * args.repeat):
            seen = timed_run(folder, work / f"run-{i}", env)
            cached_runs += [seen] if i else []
            print(f"{name:<7} " + "  ".join(f"{seen.get(k, float('nan')):6.2f}" for k in columns))
        if args.repeat > 1:  # start-up times of one command vary by a second or more from run to run
            print("median  " + "  ".join(f"{statistics.median(r.get(k, float('nan')) for r in cached_runs):6.2f}"
                                         for k in columns) + f"  (of the {args.repeat} runs from the cache)")
        out = subprocess.run([sys.executable, "-c", LOAD_ONLY, f"folder:{folder}"], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        print(f"load_dataset alone from the cache, in a fresh process (list + stat, size, arrays, labels): "
              f"{out[0]} s wall, {out[1]} s cpu, {int(out[2]):,} images")
        floor = []
        for what, modules in (("torch", "torch"),
                              ("torch + torch._dynamo (which torch.optim imports with the first optimizer)",
                               "torch, torch._dynamo")):
            code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
            out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
            floor.append(f"{what}: {float(out.stdout):.2f} s")
        print("importing alone, timed inside a fresh process (a floor under any torch trainer): " + "; ".join(floor))
        cached = sum(f.stat().st_size for f in (work / "cache").rglob("*") if f.is_file())
        print(f"cache: {cached / 1e6:.1f} MB in {work / 'cache'}; "
              f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
