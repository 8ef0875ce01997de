"""The run report: one self-contained HTML page of a run folder, with its plots also as PNG files.

`write_report(RUN)` reads what training and evaluation left in a run folder (config.json, stats.jsonl,
metrics.jsonl, samples/, reals.png, videos/, log.txt) and writes RUN/report.html: a header (dataset,
architecture, steps, wall time, device, precision), matplotlib plots (losses, D(x) and D(G(z)), throughput,
every metric over steps beside its real-vs-real floor), the latest grid beside the real images, a strip of
grids over training, the videos, the latest evaluation, the config and the commands that reproduce the run.
Images and plots are embedded as base64 PNG, so the page opens anywhere with no server; videos are
referenced beside it by a relative path, or embedded as data: URIs with `embed_videos`. Every string read
from the run folder is HTML-escaped. Image, restoration and clip runs alike: config.json says which kind.

The run-folder layout is stylegan2-ada-pytorch's (stats.jsonl, metric records, fixed-latent grids); the
engine calls `report_hook` to refresh the page during training (`--report-every`) and at the end, and
`--tensorboard` mirrors the same records into TensorBoard (ganimate.tensorboard).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import math
import os
import re
import shlex
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ganimate import __version__
from ganimate.config import TrainConfig, option, run_data_folders
from ganimate.errors import GanimateError
from ganimate.images import atomic_write, check_output_file, open_image
from ganimate.metrics import inception
from ganimate.metrics.evaluate import TASK as IMAGE_TASK
from ganimate.metrics.registry import Row, metric_rows
from ganimate.runs import read_jsonl, read_marker, read_saved_config
from ganimate.tensorboard import check_tensorboard, export_tensorboard
from ganimate.video import grid_frames


@dataclass
class ReportConfig:
    """`ganimate report RUN`: an HTML page of a run (plots, grids, videos, evaluation, config, commands)."""

    run: str = option("run folder (of `ganimate train`, `restore train` or `clip train`)", default="")
    out: str | None = option("HTML file to write (default RUN/report.html); its plots go to a <name>_plots/ "
                             "folder beside it (RUN/plots/ for the default)", default=None)
    embed_videos: bool = option("embed the videos in the page as data: URIs (a larger file that travels alone) "
                                "instead of linking them beside it", default=False)
    tensorboard: bool = option("also write the stats, metrics and grids as TensorBoard event files in "
                               "RUN/tensorboard/ (pip install 'ganimate[tensorboard]')", default=False)

    def __post_init__(self):
        if not self.run:
            raise GanimateError("report needs a run folder")


def run_report(cfg: ReportConfig) -> list[Path]:
    """The `ganimate report` command: the page (and TensorBoard files); returns the paths written."""
    if cfg.tensorboard:
        check_tensorboard()
    written = [write_report(cfg.run, cfg.out, cfg.embed_videos)]
    if cfg.tensorboard:
        written.append(export_tensorboard(cfg.run))
    return written


# --------------------------------------------------------------------------- the engine's hook


def check_reporting(cfg) -> None:
    """Before a run trains: `--tensorboard` without its package is a one-line error now, not at the end."""
    if getattr(cfg, "tensorboard", False):
        check_tensorboard()


def report_hook(run_dir: str | Path, cfg, step: int, *, final: bool, log=print) -> Path | None:
    """Called by the engine after each step's outputs: writes RUN/report.html (and RUN/tensorboard/ with
    `--tensorboard`) every `cfg.report_every` steps and at the end of the session (`final`). A report that
    cannot be written is a warning in the log; training goes on. Returns the page when one was written."""
    every = getattr(cfg, "report_every", 0)
    if not getattr(cfg, "report", True) or not (final or (every and step % every == 0)):
        return None
    t = time.perf_counter()
    try:
        path = write_report(run_dir, log=log)
        if getattr(cfg, "tensorboard", False):
            export_tensorboard(run_dir, log=log)
    except (GanimateError, OSError) as e:
        log(f"warning: the run report was not written: {e}")
        return None
    if final:
        log(f"report: {path} ({time.perf_counter() - t:.1f} s)")
    return path


# --------------------------------------------------------------------------- reading a run folder


def run_kind(saved: dict) -> str:
    """The kind of a run from its config.json: "clip" (a task and a frame count), "restore" (a task) or "image"
    (`ganimate train`: neither)."""
    if "task" in saved:
        return "clip" if "frames" in saved else "restore"
    return "image"


TRAIN_COMMAND = {"image": "ganimate train", "restore": "ganimate restore train", "clip": "ganimate clip train"}
NOT_FLAGS = {"image": {"num_classes"}, "restore": {"image_size", "channels"}, "clip": set()}  # set from the data
KIND_NAME = {"image": "image GAN", "restore": "image restoration", "clip": "video from images"}


@dataclass
class Run:
    """What a run folder holds, read once."""

    path: Path
    saved: dict
    kind: str
    stats: list[dict]
    metrics: list[dict]
    samples: list[tuple[Path, str, int | None]]  # (file, caption, step) in training order
    videos: list[Path]
    log_lines: list[str]


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _step(record: dict) -> int | None:
    s = record.get("step")
    return s if isinstance(s, int) and not isinstance(s, bool) else None


_GRID = re.compile(r"^(epoch|step)_(\d+)\.(png|mp4)$")


def _samples(run_dir: Path, log) -> list[tuple[Path, str, int | None]]:
    """The run's sample grids (or clip videos) in training order, from samples/index.jsonl (else their names);
    a file named in the index must lie directly in samples/ and exist."""
    folder = run_dir / "samples"
    items: dict[str, tuple[Path, str, int | None]] = {}
    last = None
    for rec in read_jsonl(folder / "index.jsonl", log):
        name, step = rec.get("file"), _step(rec)
        if not isinstance(name, str) or (folder / name).parent != folder or not (folder / name).is_file():
            continue
        epoch = rec.get("epoch")
        caption = f"epoch {epoch:,}" if rec.get("kind") == "epoch" and _is_num(epoch) else \
            f"step {step:,}" if step is not None else name
        items.pop(name, None)
        if last is not None and step is not None and last[1] == step:
            items.pop(last[0], None)  # the epoch grid and the step grid of one step: keep one
        items[name] = (folder / name, caption, step)
        last = (name, step)
    if not items and folder.is_dir():  # no index (a run from before it): the order `ganimate video` finds
        try:
            grids = [path for path, _ in grid_frames(run_dir, "all")]
        except GanimateError:
            grids = []
        clips = sorted((p for p in folder.glob("step_*.mp4") if _GRID.match(p.name)), key=lambda p: p.name)
        for path in grids + clips:
            kind, number = _GRID.match(path.name).group(1, 2)
            items[path.name] = (path, f"{kind} {int(number):,}", int(number) if kind == "step" else None)
    return list(items.values())


def _videos(run_dir: Path) -> list[Path]:
    """RUN/videos/: MP4 and WebM files, and GIFs that have no MP4 / WebM twin; the training time-lapse first."""
    folder = run_dir / "videos"
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".mp4", ".webm", ".gif"))
    moving = {p.stem for p in files if p.suffix.lower() != ".gif"}
    files = [p for p in files if p.suffix.lower() != ".gif" or p.stem not in moving]
    return sorted(files, key=lambda p: (p.stem != "training", p.name))


def read_run(run_dir: str | Path, log=print) -> Run:
    """A run folder's config, records, samples, videos and log; one-line errors for a folder that is not a run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise GanimateError(f"run folder {path} does not exist" if not path.exists() else f"{path} is not a folder")
    saved = read_saved_config(path)
    if not {"dataset", "seed"} <= set(saved):
        raise GanimateError(f"{path / 'config.json'} is not a ganimate run config (no dataset and seed)")
    try:
        log_lines = (path / "log.txt").read_text(errors="replace").splitlines()
    except OSError:
        log_lines = []
    return Run(path, saved, run_kind(saved), read_jsonl(path / "stats.jsonl", log),
               read_jsonl(path / "metrics.jsonl", log), _samples(path, log), _videos(path), log_lines)


# --------------------------------------------------------------------------- facts of the header


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _steps_per_epoch(run: Run) -> int | None:
    """From the log's "N steps per epoch" line (None for endless streams such as clips)."""
    for line in reversed(run.log_lines):
        m = re.match(r"^([\d,]+) steps per epoch", line)
        if m:
            return int(m.group(1).replace(",", "")) or None
    return None


def _device(run: Run) -> tuple[str, str]:
    """(device, precision) the run last trained on: the log's data line, else the config."""
    for line in reversed(run.log_lines):
        m = re.search(r"\| device (\S+), (\w+)", line)
        if m:
            return m.group(1), m.group(2)
    return str(run.saved.get("device", "?")), str(run.saved.get("precision", "?"))


def _last_step(run: Run) -> int | None:
    steps = [s for s in map(_step, run.stats + run.metrics) if s is not None]
    steps += [s for _, _, s in run.samples if s is not None]
    return max(steps) if steps else None


def _wall_s(run: Run) -> float | None:
    times = [r["time_s"] for r in run.stats + run.metrics if _is_num(r.get("time_s"))]
    return max(times) if times else None


def _architecture(run: Run) -> str:
    c = run.saved
    widths = f"G width {c.get('g_width')}, D width {c.get('d_width')}"
    if run.kind == "image":
        return f"{c.get('arch', '?')} DCGAN, {widths}, z {c.get('z_dim')}"
    if run.kind == "restore":
        adv = c.get("adv_weight")
        return f"encoder–decoder G, {widths}, " + ("L1 only" if adv == 0 else f"L1 + {adv} × adversarial")
    how = ""
    if c.get("task") == "inbetween":
        how = " warping the key frames" if c.get("synthesis") == "warp" else f" on {c.get('base')}"
        if c.get("synthesis") == "warp" and c.get("layers", 1) > 1:
            how += f" in {c['layers']} motion layers"
    return f"{c.get('task')} clip GAN{how}, {widths}"


def _task(run: Run) -> str:
    c = run.saved
    if run.kind == "restore":
        detail = {"sr": f"×{c.get('factor')}", "denoise": f"σ {c.get('sigma')}",
                  "deblur": f"blur σ {c.get('blur_sigma')} px"}.get(c.get("task"), "")
        return f"{c.get('task')} {detail}".strip()
    if run.kind == "clip":
        return f"{c.get('task')}: {c.get('frames')} frames of {c.get('size')}×{c.get('size')}, " \
               f"{c.get('digits')} digit(s)"
    return ""


def _facts(run: Run) -> list[tuple[str, str]]:
    c = run.saved
    step, spe = _last_step(run), _steps_per_epoch(run)
    total = None
    if run.kind == "clip":
        total = c.get("max_steps")
    elif spe and _is_num(c.get("epochs")):
        total = int(c["epochs"]) * spe
        if _is_num(c.get("max_steps")):
            total = min(total, int(c["max_steps"]))
    steps = "none yet" if step is None else f"{step:,}" + (f" of {total:,}" if _is_num(total) and total != step
                                                           else "")
    if step is not None and spe:
        steps += f" (epoch {-(-step // spe)})"
    wall = _wall_s(run)
    device, precision = _device(run)
    if run.kind == "image":
        conditional = c.get("conditional")
        cond = f"yes, {c.get('num_classes')} classes" if conditional else "no" if conditional is False else "?"
    else:
        cond = "on the degraded image" if run.kind == "restore" else "on the given frame(s)"
    skipped = sum(r["skipped"] for r in run.stats if _is_num(r.get("skipped")))
    facts = [("kind", KIND_NAME[run.kind] + (f" ({_task(run)})" if _task(run) else "")),
             ("dataset", str(c.get("dataset"))), ("architecture", _architecture(run)), ("conditional", cond),
             ("steps", steps), ("wall time", _duration(wall) if wall is not None else "?"),
             ("device", device), ("precision", precision),
             ("batch size", str(c.get("batch_size"))), ("seed", str(c.get("seed")))]
    if skipped:
        facts.append(("skipped steps", f"{skipped:,} (non-finite losses)"))
    marker = read_marker(run.path)
    if marker and marker.get("created"):
        facts.append(("created", str(marker["created"])))
    return facts


# --------------------------------------------------------------------------- plots


@dataclass
class Plot:
    name: str  # file stem in the plots folder
    title: str
    png: bytes


STAT_LABELS = {"loss_d": "D loss (real + generated)", "loss_g": "G loss", "loss_g_adv": "G adversarial loss",
               "d_real": "D(x): real", "d_fake": "D(G(z)): generated", "l1": "reconstruction loss",
               "aug_p": "ADA augmentation probability p", "mode_seeking": "mode-seeking term (lower: more varied)",
               "samples_per_s": "training samples per second", "skipped": "steps skipped (non-finite loss)"}
LOSSES = ("loss_d", "loss_g", "loss_g_adv")
METRIC_LABELS = {"fd": "FD in reference-classifier features", "kid": "KID in reference-classifier features",
                 "class_acc": "accuracy of the reference classifier", "cas": "accuracy on real test images",
                 "precision": "precision (k-NN manifold)", "recall": "recall (k-NN manifold)",
                 "val_psnr": "PSNR (dB) on held-out images", "val_ssim": "SSIM on held-out images",
                 "fid_inception": "Inception FID", "kid_inception": "Inception KID"}
REFERENCES = (("_floor", "real-vs-real floor"), ("_reference", "reference classifier on real images"),
              ("_real", "the same on real images"))
BOOKKEEPING = {"step", "epoch", "time_s", "eval_s", "n", "seed", "val_n", "samples", "frames", "size", "digits",
               "threads", "tune_n"}
MAX_METRIC_PLOTS = 24


def _figure(title: str, ylabel: str, spe: int | None):
    """A figure and its axes (Agg, no pyplot: nothing global is touched). Fixed margins: a constrained layout or
    a secondary epoch axis would triple the drawing time, which training pays at every refresh."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.14, top=0.9)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("step (optimiser steps" + (f", {spe:,} per epoch)" if spe else ")"))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(_step(r), r[key]) for r in records if _step(r) is not None and _is_num(r.get(key))]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]


def _maybe_log(ax, values: list[float]) -> bool:
    if values and min(values) > 0 and max(values) / min(values) > 30:
        ax.set_yscale("log")
        return True
    return False


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]


def stats_plots(run: Run) -> list[Plot]:
    """Losses, D(x) and D(G(z)), throughput and any other statistic of stats.jsonl over steps."""
    stats, spe = run.stats, _steps_per_epoch(run)
    keys = list(dict.fromkeys(k for r in stats for k, v in r.items() if _is_num(v)))
    plots = []

    def lines(name, title, ylabel, group, ylim=None):
        fig, ax = _figure(title, ylabel, spe)
        for key in group:
            xs, ys = _series(stats, key)
            ax.plot(xs, ys, marker="." if len(xs) < 40 else None, label=STAT_LABELS.get(key, key))
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=9, frameon=False)
        plots.append(Plot(name, title, _png(fig)))

    if losses := [k for k in LOSSES if k in keys]:
        lines("losses", "Losses (binary cross-entropy on logits)", "loss (nats)", losses)
    if "l1" in keys:
        lines("reconstruction", "Reconstruction loss", "mean |G(y) − x| or its square (--recon-loss)", ["l1"])
    if probs := [k for k in ("d_real", "d_fake") if k in keys]:
        lines("discriminator", "D(x) and D(G(z))", "mean D output after sigmoid", probs, (0, 1))
    if "samples_per_s" in keys:
        unit = "clips" if run.kind == "clip" else "images"
        lines("throughput", f"Training speed ({unit} per second)", f"{unit} / s (training alone)",
              ["samples_per_s"])
    done = {*LOSSES, "l1", "d_real", "d_fake", "samples_per_s", "step", "epoch", "time_s"}
    for key in keys:
        if key in done or (key == "skipped" and not any(r.get("skipped") for r in stats)):
            continue
        lines(f"stat_{_safe_name(key)}", STAT_LABELS.get(key, key), key, [key])
    return plots


def _reference(record: dict, key: str) -> tuple[str, str] | None:
    """(reference key, what it is) of a metric in a record: its real-vs-real floor or real-data counterpart."""
    for suffix, what in REFERENCES:
        if _is_num(record.get(key + suffix)):
            return key + suffix, what
    real = key.replace("_error_", "_real_error_")
    if real != key and _is_num(record.get(real)):
        return real, "fitted on real training images"
    return None


def _metric_keys(records: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for r in records for k, v in r.items() if _is_num(v)))
    refs = {found[0] for r in records for k in keys if (found := _reference(r, k))}
    return [k for k in keys if k not in BOOKKEEPING and k not in refs and not k.endswith(("_n", "_s", "_std"))]


def _over_steps(run: Run) -> tuple[list[dict], list[dict]]:
    """(evaluations during training, `ganimate evaluate` records) that have a step and flat numbers."""
    during = [r for r in run.metrics if r.get("kind") == "train" and _step(r) is not None]
    after = [r for r in run.metrics if "kind" not in r and "methods" not in r and _step(r) is not None]
    return during, after


def metric_plots(run: Run) -> list[Plot]:
    """Every metric of metrics.jsonl measured at two steps or more: during training (line) and `ganimate evaluate`
    (stars), each beside its real-vs-real floor or real-data reference (dashed) where the record has one."""
    during, after = _over_steps(run)
    spe = _steps_per_epoch(run)
    plots = []
    points = {k: len(_series(during, k)[0]) + len(_series(after, k)[0]) for k in _metric_keys(during + after)}
    for key in [k for k, n in points.items() if n >= 2][:MAX_METRIC_PLOTS]:  # one point is no curve: see the table
        label = METRIC_LABELS.get(key, key.replace("_", " "))
        fig, ax = _figure(label, label, spe)
        values = []
        for records, style, who in ((during, dict(marker="o", ms=3), "during training"),
                                    (after, dict(marker="*", ms=11, ls=""), "ganimate evaluate")):
            xs, ys = _series(records, key)
            if not xs:
                continue
            ns = sorted({v for r in records if _is_num(r.get(key)) and _is_num(v := r.get("n") or r.get("val_n"))})
            n = f" (n={', '.join(f'{v:,}' for v in ns)})" if ns else ""
            (line,) = ax.plot(xs, ys, label=f"{key} {who}{n}", **style)
            values += ys
            ref = next((found for r in records if (found := _reference(r, key))), None)
            if ref:
                rx, ry = _series(records, ref[0])
                ax.plot(rx, ry, ls="--", color=line.get_color(), alpha=0.7, marker="." if len(rx) < 2 else None,
                        label=f"{ref[1]}{n}")
                values += ry
        if not values:
            continue
        if _maybe_log(ax, values):
            ax.set_ylabel(f"{label} (log scale)")
        ax.legend(fontsize=8, frameon=False)
        plots.append(Plot(f"metric_{_safe_name(key)}", label, _png(fig)))
    return plots


def _latest(run: Run, test) -> dict | None:
    found = [r for r in run.metrics if test(r)]
    return found[-1] if found else None


def evaluation_plots(run: Run) -> list[Plot]:
    """The latest clip evaluation's PSNR per frame and the latest restoration evaluation's PSNR per method."""
    plots = []
    clip = _latest(run, lambda r: isinstance(r.get("methods"), dict))
    if clip:
        fig, ax = _figure(f"PSNR per frame, evaluation at step {clip.get('step')}", "PSNR (dB)", None)
        ax.set_xlabel("frame")
        for method, values in clip["methods"].items():
            if not isinstance(values, dict):
                continue
            per = values.get("psnr_best_per_frame") or values.get("psnr_per_frame")
            if isinstance(per, list) and all(_is_num(v) for v in per):
                ax.plot(range(1, len(per) + 1), per, marker="o", ms=3, label=str(method))
        ax.legend(fontsize=8, frameon=False)
        plots.append(Plot("evaluation_psnr_per_frame", "PSNR per frame", _png(fig)))
    restore = _latest(run, lambda r: r.get("kind") == "restore" and isinstance(r.get("rows"), list))
    if restore:
        rows = [r for r in restore["rows"] if isinstance(r, dict) and _is_num(r.get("psnr"))]
        if rows:
            fig, ax = _figure(f"PSNR per method ({restore.get('degradation', '')})", "", None)
            ax.barh([str(r.get("method")) for r in rows], [r["psnr"] for r in rows], color="#4c72b0")
            ax.invert_yaxis()
            ax.set_xlabel("PSNR (dB) on test images")
            plots.append(Plot("evaluation_psnr_per_method", "PSNR per method", _png(fig)))
    return plots


# --------------------------------------------------------------------------- HTML pieces

e = html.escape


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
        ".mp4": "video/mp4", ".webm": "video/webm"}


def _image(path: Path, alt: str, target: int = 360, max_scale: int = 4) -> str:
    """An <img> of a PNG embedded as base64, shown at an integer upscale near `target` pixels wide (or smaller);
    a file that does not decode becomes a note instead."""
    try:
        width = open_image(path).size[0]
    except GanimateError as err:
        return f'<p class="note">{e(str(err))}</p>'
    shown = min(target, width * max(1, min(max_scale, target // max(width, 1))))
    data = _data_uri(path.read_bytes(), MIME.get(path.suffix.lower(), "image/png"))
    return f'<img class="px" src="{data}" alt="{e(alt)}" width="{shown}">'


def _href(path: Path, page_dir: Path) -> str:
    """`path` relative to the page's folder, as a URL path."""
    try:
        rel = os.path.relpath(path.resolve(), page_dir.resolve())
    except ValueError:  # another drive (Windows): an absolute file URL
        return path.resolve().as_uri()
    return urllib.parse.quote(Path(rel).as_posix())


def _video(path: Path, page_dir: Path, embed: bool, caption: str) -> str:
    mime = MIME.get(path.suffix.lower(), "video/mp4")
    src = _data_uri(path.read_bytes(), mime) if embed else _href(path, page_dir)
    if path.suffix.lower() == ".gif":
        tag = f'<img class="px video" src="{e(src)}" alt="{e(caption)}">'
    else:
        tag = (f'<video class="px" controls muted playsinline loop preload="auto"><source src="{e(src)}" '
               f'type="{mime}"></video>')
    return f"<figure>{tag}<figcaption>{e(caption)}</figcaption></figure>"


def _spread(items: list, k: int) -> list:
    """At most k items, evenly spaced, the first and the last included."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def _num(v) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _rows_table(rows: list[Row]) -> str:
    body = "".join(f'<tr><th>{e(r.label)}</th><td class="num">{e(r.value)}</td><td class="note">{e(r.note)}</td></tr>'
                   for r in rows)
    return f'<table class="rows">{body}</table>'


def _subjects_table(subjects: dict[str, dict], corner: str) -> str:
    """One line per subject (method), one column per number any subject has."""
    columns = list(dict.fromkeys(k for v in subjects.values() for k, x in v.items() if _is_num(x)
                                 and k not in BOOKKEEPING and not k.endswith("_s")))
    head = "".join(f"<th>{e(c)}</th>" for c in [corner, *columns])
    body = "".join("<tr><th>" + e(str(name)) + "</th>" + "".join(
        f'<td class="num">{e(_num(v[c])) if _is_num(v.get(c)) else "—"}</td>' for c in columns) + "</tr>"
        for name, v in subjects.items())
    return f'<table class="grid"><tr>{head}</tr>{body}</table>'


def _values_rows(record: dict) -> list[Row]:
    rows = [Row(k, _num(v)) for k, v in record.items() if _is_num(v) and k not in BOOKKEEPING]
    na = record.get("n/a")
    if isinstance(na, dict):
        rows += [Row(str(k), "n/a", str(v)) for k, v in na.items()]
    return rows


def _image_rows(record: dict) -> list[Row]:
    """The rows `ganimate evaluate` prints for an image record (its registered metrics), or the plain numbers of
    a record they cannot read."""
    try:
        rows = metric_rows(IMAGE_TASK, record) + inception.rows(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # a record written by hand
        return _values_rows(record)
    na = record.get("n/a")
    if isinstance(na, dict):
        rows += [Row(str(k), "n/a", str(v)) for k, v in na.items()]
    return rows or _values_rows(record)


def evaluation_section(run: Run) -> str:
    """The latest evaluation table of each kind the run has."""
    parts = []
    if run.kind == "image":
        during, after = _over_steps(run)
        if after:
            r = after[-1]
            where = Path(str(r.get("checkpoint", ""))).name
            parts.append(f"<h3>ganimate evaluate at step {e(_num(r.get('step')))}"
                         f"{f' ({e(where)})' if where else ''}, n={e(_num(r.get('n')))}, seed {e(_num(r.get('seed')))}"
                         f"{', ' + e(str(r['time'])) if r.get('time') else ''}</h3>" + _rows_table(_image_rows(r)))
        if during:
            r = during[-1]
            parts.append(f"<h3>Evaluation during training, step {e(_num(r.get('step')))}, n={e(_num(r.get('n')))}"
                         f"</h3>" + _rows_table(_image_rows(r)))
    else:
        restore = _latest(run, lambda r: r.get("kind") == "restore" and isinstance(r.get("rows"), list))
        if restore:
            subjects = {str(r.get("method")): r for r in restore["rows"] if isinstance(r, dict)}
            parts.append(f"<h3>restore evaluate: {e(str(restore.get('dataset')))} {e(str(restore.get('task')))}, "
                         f"{e(str(restore.get('degradation')))}, n={e(_num(restore.get('n')))}</h3>"
                         + _subjects_table(subjects, "method"))
        clip = _latest(run, lambda r: isinstance(r.get("methods"), dict))
        if clip:
            subjects = {str(k): v for k, v in clip["methods"].items() if isinstance(v, dict)}
            parts.append(f"<h3>clip evaluate at step {e(_num(clip.get('step')))}: {e(_num(clip.get('n')))} test "
                         f"clips, seed {e(_num(clip.get('seed')))}</h3>" + _subjects_table(subjects, "method"))
        during = _latest(run, lambda r: r.get("kind") == "train")
        if during:
            parts.append(f"<h3>Validation during training, step {e(_num(during.get('step')))}</h3>"
                         + _rows_table(_values_rows(during)))
    return "".join(parts) or '<p class="note">No evaluation yet: metrics.jsonl is empty.</p>'


def _flag(key: str, value) -> str:
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else "--no-" + key.replace("_", "-")
    return f"{name} {shlex.quote(str(value))}"


def commands(run: Run) -> list[str]:
    """Shell commands that reproduce the run: its training command with the saved settings (an image run's
    defaults left out), then its evaluation and this report."""
    c, kind = run.saved, run.kind
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)} if kind == "image" else {}
    out = shlex.quote(str(c.get("out") or run.path))
    flags = [_flag("dataset", c.get("dataset"))]
    for key, value in c.items():
        if key in ("dataset", "out", "progress") or key in NOT_FLAGS[kind] or value is None:
            continue
        if not isinstance(value, str | int | float | bool) or re.fullmatch(r"[a-z_0-9]+", key) is None:
            continue
        if key in defaults and defaults[key] == value:
            continue
        flags.append(_flag(key, value))
    train = TRAIN_COMMAND[kind] + " \\\n    " + " \\\n    ".join([*flags, f"--out {out}"])
    cmds = [train]
    if (run.path / "videos" / "training.mp4").is_file():
        cmds.append(f"ganimate video {out}")
    _, after = _over_steps(run)
    if kind == "image" and after:
        r = after[-1]
        sizes = sorted(int(k.rsplit("_", 1)[1]) for k in r if re.fullmatch(r"nn1_error_\d+", k))
        extra = f" --nn1-sizes {','.join(map(str, sizes))}" if sizes else ""
        cmds.append(f"ganimate evaluate {out} --n {_num(r.get('n')).replace(',', '')} --seed {r.get('seed')}{extra}")
    clip = _latest(run, lambda r: isinstance(r.get("methods"), dict))
    if clip:
        samples = f" --samples {clip.get('samples')}" if clip.get("task") == "predict" else ""
        cmds.append(f"ganimate clip evaluate {out} --n {clip.get('n')} --seed {clip.get('seed')}{samples}")
    restore = _latest(run, lambda r: r.get("kind") == "restore")
    if restore:
        runs = restore.get("runs")
        others = [str(p) for p in runs[1:]] if isinstance(runs, list) else []
        compare = f" --compare {shlex.quote(','.join(others))}" if others else ""
        cmds.append(f"ganimate restore evaluate {out} --n {restore.get('n')}{compare}")
    cmds.append(f"ganimate report {out}")
    return cmds


CSS = """
:root{--ink:#1c2230;--mute:#5d6678;--line:#e3e6ec;--bg:#f5f6f8}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#1c2230;color:#fff;padding:22px 32px 18px}
header h1{margin:0 0 4px;font-size:24px;font-weight:600;word-break:break-all}
header .sub{color:#aeb6c6;font-size:13px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px 22px;margin-top:16px}
.facts div b{display:block;font-size:11px;font-weight:600;color:#8e98ab;text-transform:uppercase;letter-spacing:.05em}
main{max-width:1320px;margin:0 auto;padding:6px 24px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:18px;margin:0 0 12px}
h3{font-size:14px;margin:14px 0 6px;color:var(--mute);font-weight:600}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.plots img{width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.strip{display:flex;gap:10px;overflow-x:auto;padding-bottom:6px}
.strip img{width:150px;height:auto;image-rendering:auto}
figure{margin:0}
figcaption{font-size:12px;color:var(--mute);margin-top:3px}
img.px,video.px{image-rendering:pixelated;background:#000}
video.px{width:min(100%,512px);height:auto}
table{border-collapse:collapse;font-size:14px}
th,td{padding:4px 12px 4px 0;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;padding-left:12px}
td.note,p.note{color:var(--mute)}
table.grid th,table.grid td{padding:4px 10px}
.config{columns:3 300px;column-gap:28px;font-size:13px}
.config div{break-inside:avoid;border-bottom:1px solid #f0f1f4;padding:2px 0;display:flex;
  justify-content:space-between;gap:10px}
.config code{color:var(--mute);word-break:break-all;text-align:right}
pre{background:#f3f4f7;border-radius:6px;padding:10px 12px;overflow-x:auto;font-size:13px;margin:6px 0}
footer{color:var(--mute);font-size:12px;text-align:center;padding:10px}
"""


def _samples_section(run: Run, page_dir: Path, embed: bool) -> str:
    reals = run.path / "reals.png"
    grids = [s for s in run.samples if s[0].suffix.lower() == ".png"]
    clips = [s for s in run.samples if s[0].suffix.lower() == ".mp4"]
    parts = []
    top = []
    if grids:
        path, cap, _ = grids[-1]
        what = {"image": "latest grid of the moving-average G: fixed latents" + (
            ", one class per row" if run.saved.get("conditional") else ""),
            "restore": "latest grid, rows: degraded, restored, clean"}.get(run.kind, "latest sample")
        top.append(f"<figure>{_image(path, 'latest sample grid', target=440)}<figcaption>{e(what)}, {e(cap)}"
                   f"</figcaption></figure>")
    if reals.is_file():
        top.append(f"<figure>{_image(reals, 'real training images', target=440)}"
                   f"<figcaption>real training images (reals.png)</figcaption></figure>")
    if clips:
        path, cap, _ = clips[-1]
        top.append(_video(path, page_dir, embed, f"latest sample, {cap}: truth | generated"))
    if top:
        parts.append(f'<div class="row">{"".join(top)}</div>')
    if len(grids) > 1:
        strip = "".join(f"<figure>{_image(p, c, target=150, max_scale=1)}<figcaption>{e(c)}</figcaption></figure>"
                        for p, c, _ in _spread(grids, 10))
        parts.append(f"<h3>Over training ({len(grids)} grids in samples/, {min(len(grids), 10)} shown)</h3>"
                     f'<div class="strip">{strip}</div>')
    if len(clips) > 1:
        row = "".join(_video(p, page_dir, embed, c) for p, c, _ in _spread(clips[:-1], 4))
        parts.append(f'<h3>Earlier samples ({len(clips)} in samples/)</h3><div class="row">{row}</div>')
    return "".join(parts) or '<p class="note">No samples yet.</p>'


def render(run: Run, plots: list[Plot], page_dir: Path, embed_videos: bool) -> str:
    """The whole page as one HTML string; every string from the run folder goes through html.escape."""
    name = run.path.resolve().name
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = "".join(f"<div><b>{e(k)}</b>{e(v)}</div>" for k, v in _facts(run))
    plot_html = "".join(f'<figure><img src="{_data_uri(p.png, "image/png")}" alt="{e(p.title)}">'
                        f"<figcaption>plots/{e(p.name)}.png</figcaption></figure>" for p in plots)
    videos = "".join(_video(p, page_dir, embed_videos, f"videos/{p.name}") for p in run.videos)
    config = "".join(f"<div><span>{e(str(k))}</span><code>{e(json.dumps(v))}</code></div>"
                     for k, v in run.saved.items())
    cmds = "".join(f"<pre>{e(c)}</pre>" for c in commands(run))
    log_tail = "\n".join(run.log_lines[-40:])
    sections = [
        ("Plots", f'<div class="plots">{plot_html}</div>' if plots else '<p class="note">No records yet.</p>'),
        ("Samples", _samples_section(run, page_dir, embed_videos)),
    ]
    if videos:
        sections.append(("Videos", f'<div class="row">{videos}</div>'))
    sections += [("Latest evaluation", evaluation_section(run)),
                 ("Reproduce", cmds),
                 ("Config", f'<div class="config">{config}</div>'),
                 ("Log", f"<details><summary>last {min(40, len(run.log_lines))} lines of log.txt</summary>"
                         f"<pre>{e(log_tail)}</pre></details>")]
    body = "".join(f'<section id="{e(title.lower().split()[0])}"><h2>{e(title)}</h2>{content}</section>'
                   for title, content in sections)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{e(name)}: ganimate run report</title><style>{CSS}</style></head><body>"
            f"<header><h1>{e(name)}</h1><div class=\"sub\">{e(str(run.path.resolve()))} · ganimate run report, "
            f"written {e(now)}</div><div class=\"facts\">{facts}</div></header><main>{body}</main>"
            f"<footer>ganimate {e(__version__)} · <code>ganimate report</code> rewrites this page from the run folder"
            f"</footer></body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, embed_videos: bool = False,
                 log=print) -> Path:
    """Write the run report (default RUN/report.html) and its plots as PNG files (RUN/plots/, or
    <out stem>_plots/ beside `out`); returns the page's path."""
    run = read_run(run_dir, log)
    page = Path(out).expanduser() if out is not None else run.path / "report.html"
    check_output_file(page, run_data_folders(run.path), create_parent=True)
    page.parent.mkdir(parents=True, exist_ok=True)
    plots_dir = run.path / "plots" if out is None else page.with_name(f"{page.stem}_plots")
    plots = stats_plots(run) + metric_plots(run) + evaluation_plots(run)
    plots_dir.mkdir(exist_ok=True)
    for p in plots:
        atomic_write(plots_dir / f"{p.name}.png", lambda tmp, data=p.png: tmp.write_bytes(data))
    text = render(run, plots, page.parent, embed_videos)
    return atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
