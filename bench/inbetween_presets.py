"""In-betweening where the digits travel (issue 21): evaluate the `--preset inbetween-48` and `inbetween-64`
runs against cross-fade and optical flow, and write their section of reports/video_from_images.md (between
its `inbetween-presets` markers) with the targets, the tables, the training curve and a strip per run.

    ganimate clip train --preset inbetween-48      # runs/clip-inbetween-48
    ganimate clip train --preset inbetween-64      # runs/clip-inbetween-64
    python bench/inbetween_presets.py --threads 2  # evaluate both (1,000 test clips each) and write the section
    python bench/inbetween_presets.py --keep-others runs/clip-inbetween-64  # redo one run's part, keep the rest

Targets of the issue, per canvas: mean PSNR at least 3 dB above the better of cross-fade and optical flow,
digit identity of the generated frames at least optical flow's, and crop FD no worse than optical flow's.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

import torch
from moving_mnist_benchmark import write_section  # bench/, next to this script
from video_report import strip, train_command, training_summary

from ganimate.clips.config import CLIP_PRESETS, ClipTrainConfig
from ganimate.clips.evaluate import ClipEvaluateConfig, clip_tables, evaluate_clips
from ganimate.data.moving_mnist import default_speed

START, END = "<!-- inbetween-presets: start -->", "<!-- inbetween-presets: end -->"


# what a run may differ in from its preset and still be called by it: where it stops and its bookkeeping
IGNORED = {"out", "preset", *ClipTrainConfig.RESUMABLE} - {"lr_decay", "views"}


def preset_of(cfg: dict) -> str | None:
    """The preset whose settings this run's config has (the step limit aside; a setting the run's config
    predates counts as its default), or None."""
    for name, settings in CLIP_PRESETS.items():
        defaults = ClipTrainConfig(task=settings["task"]).to_dict()
        want, have = {**defaults, **settings}, {**defaults, **cfg}
        if all(have[k] == v for k, v in want.items() if k not in IGNORED):
            return name
    return None


def verdicts(m: dict) -> tuple[list[str], bool]:
    """The three targets as report lines, and whether all are met."""
    flow = m["optical_flow"]
    best = max(m["crossfade"]["psnr"], flow["psnr"])
    gain = m["model"]["psnr"] - best
    checks = [
        (gain >= 3, f"mean PSNR {m['model']['psnr']:.2f} dB, {gain:+.2f} dB from the better baseline "
                    f"({best:.2f} dB; target ≥ +3 dB)"),
        (m["model"]["identity"] >= flow["identity"], f"digit identity {m['model']['identity']:.3f} against optical "
                                                     f"flow's {flow['identity']:.3f} (target: at least as high)"),
        (m["model"]["fd"] <= flow["fd"], f"crop FD {m['model']['fd']:.2f} against optical flow's {flow['fd']:.2f} "
                                         "(target: no worse)"),
    ]
    return [f"- {text}: **{'met' if ok else 'missed'}**" for ok, text in checks], all(ok for ok, _ in checks)


def saved_evaluation(run: Path, n: int) -> dict | None:
    """The run's last `clip evaluate` record of its latest checkpoint on `n` test clips (seed 0) with the run's
    own --views, if any."""
    from ganimate.checkpoint import list_checkpoints
    from ganimate.runs import read_jsonl

    step = int(list_checkpoints(run)[-1].stem.split("_")[-1])
    views = json.loads((run / "config.json").read_text()).get("views", 1)
    found = [r for r in read_jsonl(run / "metrics.jsonl", print)
             if "methods" in r and r.get("step") == step and r.get("n") == n and r.get("seed") == 0
             and r.get("views", 1) == views]
    if found:
        print(f"{run}: the evaluation of step {step:,} from {found[-1].get('date', 'an earlier call')} (--reuse)")
    return found[-1] if found else None


def run_section(run: Path, args, strips: Path) -> tuple[str, dict]:
    r = saved_evaluation(run, args.n) if args.reuse else None
    if r is None:
        r = evaluate_clips(ClipEvaluateConfig(run=str(run), n=args.n, device="cpu"))
    eval_s = r["eval_s"]
    name = run.name.removeprefix("clip-")
    strip(run, strips / f"{name}.png")
    s = training_summary(run)
    c = s["config"]
    preset = preset_of(c)
    lines, ok = verdicts(r["methods"])
    planned = c["max_steps"]
    stopped = (f" It was stopped at step {s['step']:,} of its {planned:,}." if s["step"] < planned else "")
    curve = ", ".join(f"{step}: {p:.2f}" for step, p, _ in s["curve"])
    speed = default_speed(c["size"])[0]
    return "\n".join([
        f"### {c['size']}×{c['size']}, {c['digits']} digit{'s' if c['digits'] > 1 else ''}"
        + (f" (`--preset {preset}`)" if preset else ""),
        "",
        f"Run `{run}`: {c['frames']}-frame clips, each digit moving {speed:.1f} px per frame "
        f"({speed * (c['frames'] - 1):.0f} px between the key frames unless it bounces); G width {c['g_width']} "
        f"({s['config'].get('synthesis', 'paint')} synthesis), D width {c['d_width']}, batch {s['batch_size']}, "
        f"{c.get('recon_loss', 'l1').upper()} weight {c['recon_weight']:g}, adversarial weight {c['adv_weight']:g}, "
        f"{s['precision']}. Trained "
        f"{s['step']:,} steps ({s['step'] * s['batch_size']:,} clips) in {s['minutes']:.1f} min on "
        f"{s['threads']} thread(s); evaluation {eval_s:.0f} s on {r['n']} test clips "
        f"(test digits, seed {r['seed']}).{stopped}",
        "",
        f"Trained with `OMP_NUM_THREADS={s['threads']} {train_command({**c, 'out': str(run)})}`"
        + (f" (the settings of `--preset {preset}`)." if preset else "."),
        "",
        "Targets:",
        *lines,
        "",
        clip_tables(r),
        "",
        f"Validation PSNR during training (64 fixed test clips, EMA G; step: dB): {curve}.",
        "",
        f"![{name}](video_from_images/{name}.png)",
        "",
        "Strip: each test clip's true frames in one row, then the generated clip (key frames given), frames left "
        "to right.",
    ]), {"ok": ok, "record": r}


def kept_sections(out: Path, runs: list[str], new: list[str]) -> list[str]:
    """The run sections of the report's present block, each replaced by the new one of the same run folder, and
    then the new ones it did not have (--keep-others: runs not named keep their earlier text)."""
    old = out.read_text() if out.exists() else ""
    if START not in old or END not in old:
        return new
    block = old[old.index(START) : old.index(END)]
    parts = [p.rstrip("\n") for p in re.split(r"\n(?=### )", block)[1:]]
    fresh = dict(zip(runs, new, strict=True))
    kept = []
    for part in parts:
        m = re.search(r"Run `([^`]+)`", part)
        kept.append(fresh.pop(m.group(1)) if m and m.group(1) in fresh else part)
    return kept + list(fresh.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", default=["runs/clip-inbetween-48", "runs/clip-inbetween-64"])
    ap.add_argument("--n", type=int, default=1000, help="test clips")
    ap.add_argument("--threads", type=int, default=1, help="threads of the evaluation")
    ap.add_argument("--out", default="reports/video_from_images.md")
    ap.add_argument("--reuse", action="store_true", help="take a run's saved `clip evaluate` record of its latest "
                    "checkpoint on --n clips instead of evaluating again")
    ap.add_argument("--keep-others", action="store_true", help="keep the sections of the runs the report has and "
                    "this call does not name (their run folders may be gone)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    strips = out.with_suffix("")
    strips.mkdir(parents=True, exist_ok=True)
    sections = [run_section(Path(run), args, strips)[0] for run in args.runs]
    if args.keep_others:
        sections = kept_sections(out, args.runs, sections)
    text = "\n".join([
        START,
        "## In-betweening where the digits travel: the warp presets (issue 21)",
        "",
        "On the 32×32 canvas a digit moves 0.4 px per frame and in-betweening is a sub-pixel puzzle; that canvas "
        "stays a fast test size. These presets put the target where the digit travels: 48×48 with one digit and "
        "Srivastava et al.'s 64×64 canvas with two. Their generator is `--synthesis warp` "
        "(`WarpInbetweenGenerator`, models/clip.py): a 2D U-Net over the two key frames and the pixel coordinates "
        "predicts, for every middle frame, a flow into each key frame and a blend mask, and the frame is the key "
        "frames' own pixels moved along those flows, so a digit is moved rather than repainted. It learns the "
        "flows from the reconstruction loss of the frames it composes (L1; the squared error for the 64×64 preset), "
        "also from blurred key frames (σ = 2, 4, 8 and, at 64, "
        "16 px), whose wide tails give a gradient to a flow that points at empty canvas. With `--layers 2` (the "
        "64×64 preset) each key frame is first split into two layers by a learned per-pixel softmax, each layer "
        "moves with its own flows and mask, and the frame is their sum: two digits that cross need no flow field "
        "that changes at their edges, and each blurred level blurs one layer, so its pull leads a flow to its own "
        "digit rather than to the middle of both.",
        "",
        f"Command: `OMP_NUM_THREADS={args.threads} python bench/inbetween_presets.py {' '.join(sys.argv[1:])}` on "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, CPU (2 cores)"
        + (" (the sections of runs it does not name are kept from an earlier call)" if args.keep_others else "")
        + ". Metrics as "
        "above; for clips of two digits, digit identity and crop FD use a 28×28 crop at each digit's true position "
        "in each frame (the clip generator's paths), every digit read on its own; the true frames score below 1 "
        "there because crossing digits cover each other.",
        "",
        *[s + "\n" for s in sections],
        END,
        "",
    ])
    write_section(out, text, START, END)
    print(text)


if __name__ == "__main__":
    main()
