"""Write reports/small_data.md: the ADA-style small-data study of issue 15 (Karras et al. 2020, Fig. 1;
Zhao et al. 2020): train on the first 1,000, 2,000 and 5,000 Fashion-MNIST training images and on all
60,000, with and without augmentation of what D sees, the same number of steps each, then score FD, KID,
precision and recall of 10,000 samples of the EMA generator against the full Fashion-MNIST test set, in the
features of the shipped Fashion-MNIST reference classifier.

A subset is a dataset registered for this script (`register_dataset`) whose loader returns the first N
training images (the test split is the full test set); every run is a normal `ganimate train` run folder
under --runs, trained by `fit` in a subprocess of its own (one thread each, --jobs at a time). A run's
scores go to RUNS/results/<name>.json as soon as it is done; finished runs are reused, and the report is
rewritten from whatever results exist, so a partial study still leaves a readable report.

    GANIMATE_DATA=/work/shared/datasets nice -n 10 python bench/small_data.py --steps 600 --jobs 2
    # longer: copy the runs, raise the step limit (each run resumes), keep the shorter study's FD as a column
    GANIMATE_DATA=... python bench/small_data.py --steps 3000 --modes none,ada --runs runs/small_data_3k \
        --earlier runs/small_data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

DATASET = "fashion-mnist"
FULL = 60_000
N_EVAL = 10_000  # generated images scored, and real test images they are scored against
REPO = Path(__file__).resolve().parents[1]


def subset_name(n: int) -> str:
    return DATASET if n >= FULL else f"{DATASET}-first{n}"


def register_subset(n: int) -> str:
    """Register `fashion-mnist-first<n>` (the first n training images, the full test set); returns its name."""
    from ganimate.data import DATASETS, DatasetSpec, get_dataset, register_dataset

    name = subset_name(n)
    if name in DATASETS:
        return name
    full = get_dataset(DATASET)

    def load(spec, split, **kw):
        images, labels, classes = full.load(full, split, **kw)
        return (images[:n], labels[:n], classes) if split == "train" else (images, labels, classes)

    register_dataset(DatasetSpec(name, load, image_size=full.image_size, channels=full.channels,
                                 num_classes=full.num_classes, classes=full.classes))
    return name


def run_name(n: int, mode: str) -> str:
    return f"n{n}_{mode}"


def split_mode(mode: str) -> tuple[str, dict]:
    """A --modes entry as (augment, further TrainConfig settings): "ada0.3" is ADA with target 0.3, a "-crW" suffix
    adds bCR of weight W ("ada-cr10")."""
    mode, _, weight = mode.partition("-cr")
    settings = {"consistency": float(weight)} if weight else {}
    if mode.startswith("ada") and mode != "ada":
        return "ada", {"ada_target": float(mode[3:]), **settings}
    return mode, settings


def mode_label(mode: str) -> str:
    augment, settings = split_mode(mode)
    extra = ([f"target {settings['ada_target']:g}"] if "ada_target" in settings else []) + \
        ([f"bCR {settings['consistency']:g}"] if "consistency" in settings else [])
    return ", ".join([augment, *extra])


def modes_of(results: dict) -> list[str]:
    """The modes present in `results`, none first, then ada, diffaug and the variants."""
    found = {name.split("_", 1)[1] for name in results}
    order = ["none", "ada", "diffaug"]
    return [m for m in order if m in found] + sorted(found - set(order))


def test_images() -> torch.Tensor:
    from ganimate.data import load_dataset

    return load_dataset(DATASET, "test", download=False, log=lambda _: None).images[:N_EVAL]  # (N, 1, 28, 28)


def scores(fake: torch.Tensor, real: torch.Tensor) -> dict:
    """FD, KID, precision and recall of uint8 images fake vs real (N, 1, 28, 28) in the reference features."""
    from ganimate.metrics.classifier import embed, load_reference
    from ganimate.metrics.fd import feature_stats, frechet_distance
    from ganimate.metrics.kid import kid
    from ganimate.metrics.pr import precision_recall

    model = load_reference(DATASET)
    f_fake, _ = embed(model, fake)
    f_real, _ = embed(model, real)
    return {"fd": frechet_distance(*feature_stats(f_fake), *feature_stats(f_real)), **kid(f_real, f_fake),
            **precision_recall(f_real, f_fake, k=3)}


@torch.no_grad()
def d_outputs(run: Path, n: int) -> dict:
    """D's overfitting, as in ADA's Fig. 1b: the mean sigmoid and sign of the final D's logits on (up to 5,000 of)
    its training images and on 5,000 test images, un-augmented, in batches of 64 in training mode as it trained."""
    from ganimate.checkpoint import list_checkpoints, load_checkpoint
    from ganimate.config import TrainConfig
    from ganimate.data import load_dataset
    from ganimate.models import build_models

    state = load_checkpoint(list_checkpoints(run)[-1])
    cfg = TrainConfig.from_dict(state["config"])
    _, D = build_models(cfg)
    D.load_state_dict(state["D"])
    D.train()
    out = {}
    for split, count in (("train", min(n, 5000)), ("test", 5000)):
        ds = load_dataset(DATASET, split, download=False, log=lambda _: None)
        x = ds.images[:count].float().div(127.5).sub(1)  # (N, 1, 28, 28) in [-1, 1]
        y = ds.labels[:count] if cfg.conditional else None
        logits = torch.cat([D(x[i : i + 64], None if y is None else y[i : i + 64]).float().flatten()
                            for i in range(0, count - count % 64, 64)])
        out[f"d_{split}"] = float(torch.sigmoid(logits).mean())
        out[f"sign_{split}"] = float(torch.sign(logits).mean())
    return out


def train_one(args, n: int, mode: str) -> None:
    """Train one run (or reuse it when finished), score it and write RUNS/results/<name>.json."""
    torch.set_num_threads(args.threads)
    from ganimate.checkpoint import list_checkpoints, load_checkpoint
    from ganimate.config import TrainConfig
    from ganimate.runs import load_generator, read_jsonl, resume_config
    from ganimate.sample import generate, sample_labels
    from ganimate.train import fit

    name, runs = run_name(n, mode), Path(args.runs)
    run = runs / name
    augment, settings = split_mode(mode)
    cfg = TrainConfig(dataset=register_subset(n), arch=args.arch, batch_size=args.batch_size, max_steps=args.steps,
                      epochs=10**6, augment=augment, out=str(run), seed=args.seed, progress=False, log_every=100,
                      precision=args.precision, **settings)
    found = list_checkpoints(run)
    t0 = time.time()
    done = load_checkpoint(found[-1])["step"] if found else 0
    if done and done < args.steps:  # an interrupted run: continue it (bit-exact with an uninterrupted one)
        fit(resume_config(run, {"max_steps": args.steps}, TrainConfig), resume=True)
    elif not done:
        fit(cfg, overwrite=True)
    train_s = time.time() - t0

    G, saved = load_generator(run)
    y = sample_labels(N_EVAL, G.num_classes)
    fake = torch.from_numpy(generate(G, N_EVAL, args.seed + 1000, y)).permute(0, 3, 1, 2).contiguous()
    t1 = time.time()
    result = {**scores(fake, test_images()), **d_outputs(run, n)}
    stats = read_jsonl(run / "stats.jsonl")
    last = stats[-1]
    grid = read_jsonl(run / "samples" / "index.jsonl")[-1]["file"]
    result.update({"name": name, "n": n, "augment": saved.augment, "steps": last["step"], "batch_size": cfg.batch_size,
                   "arch": cfg.arch, "train_precision": saved.precision, "d_real_end": last["d_real"],
                   "d_fake_end": last["d_fake"], "aug_p_end": last.get("aug_p"),
                   "aug_p_max": max((r.get("aug_p", 0.0) for r in stats), default=None),
                   "train_s": round(train_s, 1), "eval_s": round(time.time() - t1, 1),
                   "train_time_s": last["time_s"], "grid": str(run / "samples" / grid)})
    (runs / "results").mkdir(parents=True, exist_ok=True)
    (runs / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def floor(args) -> dict:
    """The same scores for the first N_EVAL real training images: what a perfect generator would get."""
    path = Path(args.runs) / "results" / "floor.json"
    if path.exists():
        return json.loads(path.read_text())
    from ganimate.data import load_dataset

    train = load_dataset(DATASET, "train", download=False, log=lambda _: None).images[:N_EVAL]
    result = scores(train, test_images())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _pair(r: dict, key: str) -> str:
    return f"{r[key + '_train']:.2f} / {r[key + '_test']:.2f}" if key + "_train" in r else "–"


def _earlier(folders: list[str]) -> dict[int, dict[str, dict]]:
    """{steps: {run name: result}} of the results folders of shorter studies (`--earlier`)."""
    out: dict[int, dict[str, dict]] = {}
    for folder in folders:
        for path in sorted((Path(folder) / "results").glob("n*.json")):
            r = json.loads(path.read_text())
            out.setdefault(int(r["steps"]), {})[r["name"]] = r
    return dict(sorted(out.items()))


def write_report(args, command: str) -> None:
    results = {p.stem: json.loads(p.read_text()) for p in (Path(args.runs) / "results").glob("n*.json")}
    for name, r in results.items():  # results scored before d_outputs existed
        if "d_train" not in r and (Path(args.runs) / name).is_dir():
            register_subset(r["n"])
            r.update(d_outputs(Path(args.runs) / name, r["n"]))
            (Path(args.runs) / "results" / f"{name}.json").write_text(json.dumps(r, indent=2) + "\n")
    base = floor(args)
    out = Path(args.report)
    figs = out.parent / out.stem
    figs.mkdir(parents=True, exist_ok=True)
    sizes = sorted({r["n"] for r in results.values()})
    modes = modes_of(results)
    some = next(iter(results.values()), {})
    lines = [
        "# Augmentation for small data: Fashion-MNIST subsets",
        "",
        "The ADA-style study of issue 15: the first N Fashion-MNIST training images, with and without augmentation "
        "of what D sees (`--augment none | ada | diffaug`), the same number of steps for every run; then 10,000 "
        "samples of each run's EMA generator (balanced classes) scored against the 10,000 test images in the "
        "features of the shipped Fashion-MNIST reference classifier: FD, KID (unbiased, 100 subsets of 1,000), "
        "precision and recall (k = 3).",
        "",
        f"Setting: arch `{some.get('arch')}`, conditional, batch {some.get('batch_size')}, "
        f"{some.get('steps')} steps ({(some.get('steps') or 0) * (some.get('batch_size') or 0):,} real images "
        f"shown to D), seed {args.seed}, precision {some.get('train_precision')}, one thread per run, {args.jobs} "
        f"runs at a time, on {platform.machine()} with {os.cpu_count()} cores "
        f"(torch {torch.__version__}). ADA: target 0.6, p adjusted every 4 steps, 0 → 1 in at most 20k images "
        "(`augment.ADA_SPEED_IMAGES`).",
        "",
        f"Real-vs-real floor (first 10,000 training images vs the test set): FD {base['fd']:.3f}, KID "
        f"{base['kid']:.4f}, precision {base['precision']:.3f}, recall {base['recall']:.3f}.",
        "",
    ]
    earlier = _earlier(args.earlier)
    lines += [
        "| images | augment | FD | KID (± std) | precision | recall | FD vs none | "
        + "".join(f"FD at {steps} steps | " for steps in earlier)
        + "D train / test | r_t train / test | p at end (max) | train min |",
        "|---|---|---|---|---|---|---|" + "---|" * len(earlier) + "---|---|---|---|",
    ]
    for n in sizes:
        none = results.get(run_name(n, "none"))
        for mode in modes:
            r = results.get(run_name(n, mode))
            if r is None:
                continue
            change = f"{100 * (r['fd'] / none['fd'] - 1):+.1f}%" if none and mode != "none" else "–"
            p = f"{r['aug_p_end']:.3f} ({r['aug_p_max']:.3f})" if r.get("aug_p_end") is not None else (
                "1 (fixed)" if mode == "diffaug" else "–")
            lines.append(f"| {n:,} | {mode_label(mode)} | {r['fd']:.3f} | {r['kid']:.4f} ± {r['kid_std']:.4f} | "
                         f"{r['precision']:.3f} | {r['recall']:.3f} | {change} | "
                         + "".join(f"{e[r['name']]['fd']:.3f} | " if r["name"] in e else "– | "
                                   for e in earlier.values())
                         + f"{_pair(r, 'd')} | "
                         f"{_pair(r, 'sign')} | {p} | "
                         f"{r['train_time_s'] / 60:.1f} |")
    lines += ["", "## Against the targets", ""]
    best = args.augment
    for n, goal in ((1000, "≥30% lower"), (2000, "≥30% lower"), (FULL, "no more than 5% higher")):
        none, aug = results.get(run_name(n, "none")), results.get(run_name(n, best))
        if none and aug:
            change = 100 * (aug["fd"] / none["fd"] - 1)
            ok = change <= -30 if n < FULL else change <= 5
            lines.append(f"- {n:,} images, {best} vs none: FD {aug['fd']:.3f} vs {none['fd']:.3f} ({change:+.1f}%); "
                         f"target {goal}: **{'met' if ok else 'missed'}**")
        else:
            lines.append(f"- {n:,} images: open (run missing)")
    gaps = [f"{n:,}: " + ", ".join(f"{mode_label(m)} {r['sign_train'] - r['sign_test']:+.2f}" for m in modes
                                   if (r := results.get(run_name(n, m))) and "sign_train" in r) for n in sizes]
    lines += ["", "## Notes", "",
              "- One seed per cell; the spread over seeds was not measured, so differences of a few per cent in FD "
              "are not established.",
              "- D's overfitting (ADA's Fig. 1b): r_t = E[sign(D(x))] of the final D on (up to 5,000 of) its own "
              "training images minus the same on 5,000 test images, un-augmented, in training mode (batch-norm "
              "statistics of batches of 64, as D trains); 0 means D tells its training images no better than "
              "unseen ones. By size: " + "; ".join(gaps) + ".",
              "- An ADA-trained D is scored here on un-augmented images, which it sees in only part of its "
              "training batches, so its absolute D(x) and r_t are not comparable with the unaugmented runs; "
              "the train − test gap is.",
              f"- Every FD here is {min(r['fd'] for r in results.values()) / base['fd']:.0f}x to "
              f"{max(r['fd'] for r in results.values()) / base['fd']:.0f}x the real-vs-real floor: these are short "
              f"runs of a small network ({some.get('steps')} steps), compared with each other at equal steps.",
              "- \"train min\" is wall time, two runs sharing the machine's cores, and follows its load, not the "
              "method's cost."]
    if earlier:
        lines.append("- \"FD at N steps\": the same runs scored the same way when they had trained N steps ("
                     + "; ".join(args.earlier) + "); the runs here continued from those checkpoints.")
    resumed = [name for name in sorted(results) if "resuming" in _read(Path(args.runs) / name / "log.txt")]
    if resumed:
        lines.append(f"- Continued with --resume from an earlier checkpoint (the same run as an uninterrupted one, "
                     f"bit-exact on CPU; only the step limit was raised): {', '.join(resumed)}.")
    lines += ["", "## Samples", "",
              "The last grid of each run (EMA generator, fixed latents, one class per row).", ""]
    for n in sizes:
        cells = []
        for mode in modes:
            r = results.get(run_name(n, mode))
            if r is None:
                continue
            target = figs / f"{r['name']}.png"
            if Path(r["grid"]).exists():
                shutil.copyfile(r["grid"], target)
            cells.append(f"**{mode_label(mode)}**<br>![{r['name']}]({figs.name}/{target.name})")
        lines += [f"### {n:,} images", "", "| " + " | ".join(["  "] * len(cells)) + " |",
                  "|" + "---|" * len(cells), "| " + " | ".join(cells) + " |", ""]
    lines += ["## Command", "", "```sh", command, "```", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,2000,5000,60000")
    ap.add_argument("--modes", default="none,ada,diffaug",
                    help="augment modes to train at every size; adaT is ada with target T (ada0.3), a -crW suffix adds "
                         "bCR of weight W (ada-cr10)")
    ap.add_argument("--augment", default="ada", help="the mode the targets are judged with")
    ap.add_argument("--order", default=None, help="run names in the order to train them (default: by size)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--arch", default="fast")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="runs/small_data")
    ap.add_argument("--report", default="reports/small_data.md")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--earlier", nargs="*", default=[], metavar="RUNS",
                    help="--runs folders of shorter studies whose runs these continue: their FD becomes a column")
    ap.add_argument("--one", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        train_one(args, int(args.one[0]), args.one[1])
        return
    command = "GANIMATE_DATA=... nice -n 10 python bench/small_data.py " + " ".join(
        a for a in sys.argv[1:] if a != "--report-only")
    if not args.report_only:
        jobs = [(int(n), m) for n in args.sizes.split(",") for m in args.modes.split(",")]
        if args.order:
            rank = {name: i for i, name in enumerate(args.order.split(","))}
            jobs.sort(key=lambda j: rank.get(run_name(*j), len(rank)))
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k in ("steps", "batch_size", "arch", "precision", "seed", "threads", "runs")]
        running: list[tuple[subprocess.Popen, str]] = []
        while jobs or running:
            while jobs and len(running) < args.jobs:
                n, mode = jobs.pop(0)
                if (Path(args.runs) / "results" / f"{run_name(n, mode)}.json").exists():
                    continue
                log = Path(args.runs) / "logs" / f"{run_name(n, mode)}.txt"
                log.parent.mkdir(parents=True, exist_ok=True)
                proc = subprocess.Popen([sys.executable, __file__, "--one", str(n), mode, *flags], env=env,
                                        stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=REPO)
                running.append((proc, run_name(n, mode)))
                print(f"started {run_name(n, mode)}", flush=True)
            time.sleep(5)
            for proc, name in list(running):
                if proc.poll() is not None:
                    running.remove((proc, name))
                    print(f"{name} finished (exit {proc.returncode})", flush=True)
                    if proc.returncode == 0:
                        write_report(args, command)
    write_report(args, command)


if __name__ == "__main__":
    main()
