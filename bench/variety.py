"""What buys sample variety: the demo recipe trained with one lever changed at a time, scored at the same step.

    python bench/variety.py                                  # every lever, seed 0
    python bench/variety.py --levers base mbstd --seeds 0 1 2
    python bench/variety.py --steps 468                      # a quicker screen: one epoch
    python bench/variety.py --levers base --extra --epochs 8  # options added to every run
    python bench/variety.py --speed 80 --levers base r1 ms1   # per-step speed only (run it on an idle machine)
    python bench/variety.py --levers r1-ms0.5 q-b64 q-d64       # levers on top of the quality preset's recipe

Each lever is a real `ganimate train` run of the batch-128 demo recipe (`make demo`'s until 2026-12-02: conditional
MNIST, --arch fast, 4 epochs, 1,872 steps at batch 128; `b64-r1-adam0` is the demo preset since then; a lever that
changes the batch keeps the step count, except those in `EPOCH_LEVERS`, which keep the 4 epochs) into
runs/variety/<lever>-s<seed>-<steps>, then `ganimate evaluate --metrics
fd,pr,class_acc` on N = 10,000 samples. The `q-` levers add one change to the quality preset's recipe
(`r1-ms0.5`: R1 0.1 and mode seeking 0.5). The table shows FD, precision, recall and class accuracy, the training
speed relative to the first lever's (the speeds of runs made while something else runs beside them are not
comparable), and the mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

DEMO = ["--dataset", "mnist", "--conditional", "--arch", "fast", "--epochs", "4", "--batch-size", "128"]
STEPS = 1872  # the demo's 4 epochs at batch 128

LEVERS = {
    "base": [],
    "mbstd": ["--mbstd", "4"],
    "hinge": ["--loss", "hinge"],
    "batch256": ["--batch-size", "256", "--epochs", "8"],
    "lr3e-4": ["--lr-g", "3e-4", "--lr-d", "3e-4"],
    "ttur": ["--lr-g", "3e-4", "--lr-d", "6e-4"],
    "z128": ["--z-dim", "128"],
    "diffaug": ["--augment", "diffaug"],
    "bn-affine": ["--bn-affine"],
    "r1": ["--r1", "0.1"],
    "r1-1": ["--r1", "1"],
    "d64": ["--d-width", "64"],
    "ema0.995": ["--ema-decay", "0.995"],
    "batch64": ["--batch-size", "64"],
    "ms1": ["--mode-seeking", "1"],
    "ms0.3": ["--mode-seeking", "0.3"],
    "r1-d64": ["--r1", "0.1", "--d-width", "64"],
    "r1-ms0.5": ["--r1", "0.1", "--mode-seeking", "0.5"],  # the quality preset's levers
    "cr1": ["--consistency", "1"],
}
# One more lever on top of the quality preset's (R1 0.1, mode seeking 0.5): "q-" + what it adds.
QUALITY = LEVERS["r1-ms0.5"]
LEVERS |= {
    "q-r1-1": [*QUALITY, "--r1", "1"],
    "q-ttur": [*QUALITY, "--lr-g", "3e-4"],
    "q-mbstd": [*QUALITY, "--mbstd", "4"],
    "q-ema0.995": [*QUALITY, "--ema-decay", "0.995"],
    "q-d64": [*QUALITY, "--d-width", "64"],
    "q-b256": [*QUALITY, "--batch-size", "256"],
    "q-b64": [*QUALITY, "--batch-size", "64"],
}
# One more lever on top of the batch-64 quality preset (`q-b64`, the shipped one): "q64-" + what it adds.
QUALITY64 = LEVERS["q-b64"]
LEVERS |= {
    "q64-ms1": [*QUALITY64, "--mode-seeking", "1"],
    "q64-g256": [*QUALITY64, "--g-width", "256"],
    "q64-adam0": [*QUALITY64, "--beta1", "0", "--beta2", "0.99"],
    "q64-b32": [*QUALITY64, "--batch-size", "32"],
    "q64-cr1": [*QUALITY64, "--consistency", "1"],
    "q64-z128": [*QUALITY64, "--z-dim", "128"],
    "q64-cbn": [*QUALITY64, "--class-norm"],
}
# Candidates for the demo preset itself (same 4 epochs): class-conditional batch norm, R1, batch 64, and on top of
# those Adam without momentum (`b64-r1-adam0`: the demo preset since 2026-12-02) or a little mode seeking.
B64_R1 = ["--batch-size", "64", "--r1", "0.1"]
LEVERS |= {
    "cbn": ["--class-norm"],
    "r1-cbn": ["--r1", "0.1", "--class-norm"],
    "b64-r1": B64_R1,
    "b64-r1-cbn": [*B64_R1, "--class-norm"],
    "b64-r1-adam0": [*B64_R1, "--beta1", "0", "--beta2", "0.99"],
    "b64-r1-ms0.2": [*B64_R1, "--mode-seeking", "0.2"],
}
DEMO_NOW = LEVERS["b64-r1-adam0"]  # the demo preset since 697c0d2
LEVERS |= {
    "b64-r1-adam0-lrd": [*DEMO_NOW, "--lr-decay", "1250"],  # both rates to zero over the last third
    "b64-r1-adam0-g256": [*DEMO_NOW, "--g-width", "256"],
    "b64-r1-adam0-b32": [*DEMO_NOW, "--batch-size", "32"],  # the same 4 epochs: 7,488 steps
    "b64-r1-adam0-b32-ms0.1": [*DEMO_NOW, "--batch-size", "32", "--mode-seeking", "0.1"],
    "b64-r1-adam0-b32-g256": [*DEMO_NOW, "--batch-size", "32", "--g-width", "256"],
    # batch 32's precision margin spent on the two levers that sell precision for recall
    "b64-r1-adam0-b32-ms0.3": [*DEMO_NOW, "--batch-size", "32", "--mode-seeking", "0.3"],
    "b64-r1-adam0-b32-r1-0.3": [*DEMO_NOW, "--batch-size", "32", "--r1", "0.3"],  # the later --r1 wins
    # more progress per step: both learning rates 1.5x (the fast arch's are 6e-4), with and without decay
    "b64-r1-adam0-lr9e-4": [*DEMO_NOW, "--lr-g", "9e-4", "--lr-d", "9e-4"],
    "b64-r1-adam0-lr9e-4-lrd": [*DEMO_NOW, "--lr-g", "9e-4", "--lr-d", "9e-4", "--lr-decay", "1250"],
    "b64-r1-adam0-lr9e-4-lrd2500": [*DEMO_NOW, "--lr-g", "9e-4", "--lr-d", "9e-4", "--lr-decay", "2500"],
    "b64-r1-adam0-b32-lr9e-4-lrd": [*DEMO_NOW, "--batch-size", "32", "--lr-g", "9e-4", "--lr-d", "9e-4",
                                    "--lr-decay", "2500"],  # the last third of 7,488 steps
    # twice the fast arch's rates, with the same decay over the last third
    "b64-r1-adam0-lr1.2e-3-lrd": [*DEMO_NOW, "--lr-g", "1.2e-3", "--lr-d", "1.2e-3", "--lr-decay", "1250"],
    "b64-r1-adam0-b32-lr1.2e-3-lrd": [*DEMO_NOW, "--batch-size", "32", "--lr-g", "1.2e-3", "--lr-d", "1.2e-3",
                                      "--lr-decay", "2500"],
    "b64-r1-adam0-b32-lr1.5e-3-lrd": [*DEMO_NOW, "--batch-size", "32", "--lr-g", "1.5e-3", "--lr-d", "1.5e-3",
                                      "--lr-decay", "2500"],
}
# One more lever on top of the demo preset since 0fee675 (batch 32, rates 1.2e-3, decay over the last third):
# "d32-" + what it adds or changes.
DEMO_B32 = LEVERS["b64-r1-adam0-b32-lr1.2e-3-lrd"]
LEVERS |= {
    "d32-lrd0.5": [*DEMO_B32, "--lr-decay", "3744"],  # the last half of 7,488 steps
    "d32-lrd0.25": [*DEMO_B32, "--lr-decay", "1872"],  # the last quarter
    "d32-ms0.2": [*DEMO_B32, "--mode-seeking", "0.2"],
    "d32-lr-g1.5e-3": [*DEMO_B32, "--lr-g", "1.5e-3"],
    "d32-lr-d1.5e-3": [*DEMO_B32, "--lr-d", "1.5e-3"],
    "d32-cbn": [*DEMO_B32, "--class-norm"],
    # --preset quality's step before the deep G, and now
    "d32-quality": [*DEMO_B32, "--class-norm", "--g-width", "256", "--mode-seeking", "0.15"],
    "d32-deep": [*DEMO_B32, "--class-norm", "--arch", "deep", "--g-width", "128"],
    "d32-arch-deep": [*DEMO_B32, "--arch", "deep", "--g-width", "128"],  # the demo with the deeper G
    "d32-arch-deeper": [*DEMO_B32, "--arch", "deeper"],  # the deep G and a D with a 3x3 conv at each resolution
    "d32-quality-deeper": [*DEMO_B32, "--class-norm", "--arch", "deeper"],
    "d32-quality-deepest": [*DEMO_B32, "--class-norm", "--arch", "deepest"],  # two 3x3 convs after each D downsampling
    "d32-g256": [*DEMO_B32, "--g-width", "256"],
    "d32-ms0.1": [*DEMO_B32, "--mode-seeking", "0.1"],
}
# Levers that keep the demo's 4 EPOCHS rather than its steps: the step count is multiplied by this factor.
EPOCH_LEVERS = {"batch64": 2, "q-b64": 2, "q-b256": 0.5}
EPOCH_LEVERS |= {lever: 2 for lever in LEVERS if lever.startswith(("q64-", "b64-"))}
EPOCH_LEVERS |= {lever: 4 for lever in LEVERS if lever == "q64-b32" or lever.startswith(("b64-r1-adam0-b32", "d32-"))}


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def one(lever: str, seed: int, extra: list[str], out_root: Path, reuse: bool, steps: int) -> dict:
    steps = round(steps * EPOCH_LEVERS.get(lever, 1))
    out = out_root / f"{lever}-s{seed}-{steps}"
    done = out / "metrics-variety.json"
    if reuse and done.is_file():
        return json.loads(done.read_text())
    ganimate = [sys.executable, "-m", "ganimate"]
    run([*ganimate, "train", *DEMO, *LEVERS[lever], *extra, "--max-steps", str(steps), "--seed", str(seed),
         "--out", str(out), "--overwrite", "--no-progress", "--no-report", "--sample-every", "0", "--log-every", "200"])
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    result = json.loads(run([*ganimate, "evaluate", str(out), "--metrics", "fd,pr,class_acc", "--json"]))
    result["img_s"] = statistics.mean(r["samples_per_s"] for r in stats[1:])
    done.write_text(json.dumps(result))
    return result


def time_lever(lever: str, steps: int, out_root: Path) -> float:
    """Images per second of a short run of `lever` (the first log interval, the warm-up, left out): measure every
    lever this way in one invocation with nothing else running, since the long runs' speeds follow the load."""
    out = out_root / f"speed-{lever}"
    every = max(steps // 4, 1)
    run([sys.executable, "-m", "ganimate", "train", *DEMO, *LEVERS[lever], "--max-steps", str(steps), "--out",
         str(out), "--overwrite", "--no-progress", "--no-report", "--sample-every", "0", "--log-every", str(every)])
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    return statistics.mean(r["samples_per_s"] for r in stats[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="options added to every run")
    parser.add_argument("--out", default="runs/variety")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps of every run (default: the demo's)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs' scores")
    parser.add_argument("--speed", type=int, default=0, metavar="STEPS",
                        help="only time each lever over this many steps (no evaluation) and print its speed against "
                             "the first lever's")
    args = parser.parse_args()
    if args.speed:
        rates = {lever: time_lever(lever, args.speed, Path(args.out)) for lever in args.levers}
        first = rates[args.levers[0]]
        for lever, rate in rates.items():
            print(f"{lever}: {rate:.0f} img/s, {rate / first:.2f}x {args.levers[0]}", flush=True)
        return

    rows = {}
    for lever in args.levers:
        rows[lever] = [one(lever, s, args.extra, Path(args.out), args.reuse, args.steps) for s in args.seeds]
        r = rows[lever][-1]
        print(f"{lever} seed {args.seeds[-1]}: " + json.dumps({k: r.get(k) for k in
                                                               ("fd", "precision", "recall", "class_acc", "img_s")}),
              flush=True)

    def cell(values: list[float], digits: int) -> str:
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    base_speed = statistics.mean(r["img_s"] for r in next(iter(rows.values())))
    print("\n| lever | options | FD | precision | recall | lowest class recall | class acc | speed | seeds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for lever, results in rows.items():
        speed = statistics.mean(r["img_s"] for r in results) / base_speed
        lowest = [min(r["recall_per_class"]) for r in results if "recall_per_class" in r]
        print(f"| {lever} | `{' '.join(LEVERS[lever]) or '(demo)'}` | {cell([r['fd'] for r in results], 3)} | "
              f"{cell([r['precision'] for r in results], 3)} | {cell([r['recall'] for r in results], 3)} | "
              f"{cell(lowest, 3) if len(lowest) == len(results) else '–'} | "
              f"{cell([r['class_acc'] for r in results], 4)} | {speed:.2f}x | {len(results)} |")


if __name__ == "__main__":
    main()
