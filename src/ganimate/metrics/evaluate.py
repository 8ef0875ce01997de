"""`ganimate evaluate RUN`: sample a run's EMA generator and score it against its dataset.

The image metrics of the registry (metrics/registry.py, task "image"), one family module each: fd (Heusel
et al. 2017, reference-classifier features), pr (Kynkäänniemi et al. 2019), class_acc (reference
classifier on conditional samples), cas (Ravuri & Vinyals 2019) and nn1 (Radford et al. 2015, §8.1).
Every result is appended as one JSON line to RUN/metrics.jsonl.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganimate.config import option
from ganimate.data import has_labelled_test, has_reference_classifier
from ganimate.errors import GanimateError
from ganimate.metrics import cas as cas_mod
from ganimate.metrics import classifier as clf
from ganimate.metrics.cache import native_format, real_images
from ganimate.metrics.class_acc import class_acc
from ganimate.metrics.fd import fd, real_features
from ganimate.metrics.nn1 import nn1, nn1_real_error
from ganimate.metrics.pr import precision_recall
from ganimate.metrics.registry import Row, compute_metrics, format_table, metric_rows, metrics_for, register_metric

TASK = "image"


@dataclass
class Context:
    """What the metrics of one evaluation share: samples, their labels and lazily computed features."""

    dataset: str
    data_dir: str | None
    num_classes: int  # 0: unconditional generator
    image_size: int
    channels: int
    n: int
    images: torch.Tensor | None = None  # uint8 (M, C, H, W); the first n feed fd, pr, class_acc and cas
    labels: torch.Tensor | None = None
    seed: int = 0
    nn1_sizes: tuple[int, ...] = ()
    device: str = "cpu"
    _embedded: tuple[torch.Tensor, torch.Tensor] | None = None

    def embedded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the first n samples under the reference classifier."""
        if self._embedded is None:
            self._embedded = clf.embed(clf.load_reference(self.dataset, self.device), self.images[: self.n])
        return self._embedded

    def data_format(self) -> dict:
        """image_size / channels to load real data in the generator's format (None where native)."""
        return native_format(self.dataset, self.image_size, self.channels)

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return real_images(self.dataset, "test", data_dir=self.data_dir, **self.data_format())


def _reference_problem(ctx: Context) -> str | None:
    if not has_reference_classifier(ctx.dataset):
        return f"no reference classifier for {ctx.dataset}"
    if not clf.has_reference(ctx.dataset):
        return f"the {ctx.dataset} reference classifier is not installed"
    spec = clf.NetSpec.from_dict(clf.reference_info(ctx.dataset)["spec"])
    if (ctx.image_size, ctx.channels) != (spec.image_size, spec.channels):
        return (f"the run makes {ctx.image_size}x{ctx.image_size}x{ctx.channels} images; the {ctx.dataset} "
                f"reference classifier takes {spec.image_size}x{spec.image_size}x{spec.channels}")
    return None


def _conditional_problem(ctx: Context) -> str | None:
    return None if ctx.num_classes else "needs a conditional run"


def _test_problem(ctx: Context) -> str | None:
    return None if has_labelled_test(ctx.dataset) else f"{ctx.dataset} has no labelled test split"


# ---------------------------------------------------------------- the image metrics, in table order


def _fd_rows(r: dict) -> list[Row]:
    if "fd" not in r:
        return []
    return [Row("fd", f"{r['fd']:.3f}", f"real-vs-real floor {r['fd_floor']:.3f} (N={r['fd_real_n']})")]


@register_metric("fd", task=TASK, rows=_fd_rows, requires=(_reference_problem,),
                 about="Fréchet distance in reference-classifier features")
def fd_metric(ctx: Context) -> dict:
    """{"fd", "fd_floor", "fd_real_n"}: FD of the samples' features against the test set's, and the floor."""
    return fd(ctx.embedded()[0], ctx.dataset, ctx.data_dir)


def _pr_rows(r: dict) -> list[Row]:
    if "precision" not in r:
        return []
    return [Row("precision", f"{r['precision']:.3f}", "k=3 manifolds in classifier features"),
            Row("recall", f"{r['recall']:.3f}")]


@register_metric("pr", task=TASK, rows=_pr_rows, requires=(_reference_problem,),
                 about="k-NN precision and recall (k=3)")
def pr_metric(ctx: Context) -> dict:
    """{"precision", "recall"} against as many real test images as samples (at most the test set)."""
    n_test = len(real_images(ctx.dataset, "test", data_dir=ctx.data_dir)[0])
    real = real_features(ctx.dataset, "test", min(ctx.n, n_test), ctx.data_dir)["features"]
    return precision_recall(torch.from_numpy(real), ctx.embedded()[0])


def _class_acc_rows(r: dict) -> list[Row]:
    if "class_acc" not in r:
        return []
    rows = [Row("class_acc", f"{r['class_acc']:.4f}",
                f"reference classifier on real test images {r['class_acc_reference']:.4f}")]
    if "class_acc_per_class" in r:
        per = " ".join(f"{k}:{v:.3f}" for k, v in enumerate(r["class_acc_per_class"]))
        rows.append(Row("class_acc per class", per, detail=True))
    return rows


@register_metric("class_acc", task=TASK, rows=_class_acc_rows, requires=(_conditional_problem, _reference_problem),
                 about="reference-classifier accuracy on conditional samples")
def class_acc_metric(ctx: Context) -> dict:
    """{"class_acc", "class_acc_per_class", "class_acc_reference"} (the last on real test images)."""
    out = class_acc(ctx.embedded()[1].argmax(1), ctx.labels[: ctx.n], ctx.num_classes)
    out["class_acc_reference"] = clf.reference_info(ctx.dataset)["test_accuracy"]
    return out


def _cas_rows(r: dict) -> list[Row]:
    if "cas" not in r:
        return []
    return [Row("cas", f"{r['cas']:.4f}", f"same training on {r['n']} real images {r['cas_real']:.4f}")]


@register_metric("cas", task=TASK, rows=_cas_rows, requires=(_conditional_problem, _test_problem),
                 about="classifier trained on samples, real-test accuracy")
def cas_metric(ctx: Context) -> dict:
    """{"cas", "cas_real"}: CAS of the first n samples, and of n real training images."""
    test_x, test_y = ctx.test_set()
    n = ctx.n
    kw = dict(seed=ctx.seed, data_dir=ctx.data_dir, **ctx.data_format())
    return {
        "cas": cas_mod.cas(ctx.images[:n], ctx.labels[:n], test_x, test_y, ctx.num_classes, ctx.seed),
        "cas_real": cas_mod.cas_real(ctx.dataset, n, ctx.num_classes, **kw),
    }


def _nn1_rows(r: dict) -> list[Row]:
    rows = []
    for key in r:
        if key.startswith("nn1_error_"):
            n = key.rsplit("_", 1)[1]
            real = r.get(f"nn1_real_error_{n}")
            ref = "" if real is None else f"fitted on {n} real training images {real:.4f}"
            rows.append(Row(f"nn1 error @{n}", f"{r[key]:.4f}", ref))
    return rows


@register_metric("nn1", task=TASK, rows=_nn1_rows, requires=(_conditional_problem, _test_problem),
                 about="1-NN on raw pixels fitted on samples")
def nn1_metric(ctx: Context) -> dict:
    """{"nn1_error_N", "nn1_real_error_N"} for each N of ctx.nn1_sizes."""
    test_x, test_y = ctx.test_set()

    def real_error(n: int) -> float:
        return nn1_real_error(ctx.dataset, n, data_dir=ctx.data_dir, **ctx.data_format())

    return nn1(ctx.images, ctx.labels, test_x, test_y, list(ctx.nn1_sizes), real_error)


METRICS = metrics_for(TASK)  # name -> Metric, the metrics `ganimate evaluate` knows
ALL = ",".join(METRICS)


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise GanimateError(f"--nn1-sizes must be a comma list of positive integers, got {text!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise GanimateError(f"--nn1-sizes must be a comma list of positive integers, got {text!r}")
    return sizes


@dataclass
class EvaluateConfig:
    """`ganimate evaluate RUN`: score a run's generator; appends one line to RUN/metrics.jsonl."""

    run: str = option("run folder", default="")
    metrics: str = option(f"comma list of {', '.join(METRICS)}, or all; in the full list, metrics that do "
                          "not apply to the run are reported n/a, a shorter list must only name ones that do",
                          default=ALL)
    n: int = option("generated images for fd, pr, class_acc and cas (real ones: as many, up to the test set)",
                    default=10000)
    nn1_sizes: str = option("numbers of generated (and real) training images for the 1-NN test", default="10000,50000")
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    seed: int = option("seed of the latents and of the CAS classifier", default=0)
    json: bool = option("print the result as one JSON line instead of a table", default=False)
    device: str = option("device for the generator: auto | cpu | cuda | mps", default="cpu")
    data_dir: str | None = option("folder holding the dataset files (default: the run's)", default=None)

    def __post_init__(self):
        if not self.run:
            raise GanimateError("evaluate needs a run folder")
        names = [m.strip() for m in self.metrics.split(",") if m.strip()]
        if names == ["all"]:
            names = list(METRICS)
        unknown = [m for m in names if m not in METRICS]
        if unknown or not names:
            raise GanimateError(f"unknown metric {', '.join(unknown) or repr(self.metrics)}: "
                                f"choose from {', '.join(METRICS)} or all")
        if self.n < 2:
            raise GanimateError(f"--n must be at least 2, got {self.n}")
        _parse_sizes(self.nn1_sizes)

    @property
    def metric_names(self) -> list[str]:
        names = [m.strip() for m in self.metrics.split(",") if m.strip()]
        return list(METRICS) if names == ["all"] else list(dict.fromkeys(names))

    @property
    def sizes(self) -> tuple[int, ...]:
        return _parse_sizes(self.nn1_sizes)


def _to_nchw(x) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def run_evaluate(cfg: EvaluateConfig, log=None) -> dict:
    """Evaluate the run's checkpoint, append the record to RUN/metrics.jsonl, print it; returns the record."""
    from ganimate.checkpoint import load_checkpoint, resolve_checkpoint
    from ganimate.runs import append_jsonl, load_generator
    from ganimate.runtime import resolve_device
    from ganimate.sample import generate, sample_labels

    run_dir = Path(cfg.run)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    ckpt = resolve_checkpoint(run_dir, cfg.checkpoint)
    step = int(load_checkpoint(ckpt).get("step", 0))
    start = time.perf_counter()
    device = str(resolve_device(cfg.device))
    G, train_cfg = load_generator(run_dir, str(ckpt), device, ema=True)
    names = cfg.metric_names
    ctx = Context(
        dataset=train_cfg.dataset, data_dir=cfg.data_dir or train_cfg.data_dir, num_classes=G.num_classes,
        image_size=G.image_size, channels=G.channels, n=cfg.n, seed=cfg.seed, nn1_sizes=cfg.sizes, device=device,
    )
    strict = set(names) != set(METRICS)
    applicable = [m for m in names if not METRICS[m].problem(ctx)]
    if strict and len(applicable) < len(names):
        compute_metrics(TASK, ctx, [m for m in names if m not in applicable], strict=True)
    counts = [cfg.n for m in applicable if m != "nn1"] + [s for s in cfg.sizes if "nn1" in applicable]
    seconds = {}
    if counts:
        t = time.perf_counter()
        ctx.labels = sample_labels(max(counts), G.num_classes)
        ctx.images = _to_nchw(generate(G, max(counts), cfg.seed, ctx.labels))
        seconds["generate"] = round(time.perf_counter() - t, 2)
    results, na, metric_seconds = compute_metrics(TASK, ctx, names, strict=False, log=log)
    seconds.update(metric_seconds)
    seconds["total"] = round(time.perf_counter() - start, 2)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {
        "step": step, "checkpoint": str(ckpt), "time": now, "n": cfg.n, "seed": cfg.seed,
        "dataset": train_cfg.dataset, **results, "n/a": na, "seconds": seconds,
    }
    append_jsonl(run_dir / "metrics.jsonl", record)
    print(json.dumps(record) if cfg.json else image_table(record, run_dir))
    return record


def _seconds(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def image_table(record: dict, run_dir: Path | str = "") -> str:
    """The table of one `ganimate evaluate` record: metric, value, and the real-data reference beside it."""
    r = record
    rows = metric_rows(TASK, r) + [Row(name, "n/a", reason) for name, reason in r.get("n/a", {}).items()]
    title = f"{run_dir} step {r['step']} ({Path(r['checkpoint']).name}), {r['dataset']}, n={r['n']}, seed {r['seed']}"
    secs = r.get("seconds", {})
    footer = ["seconds  " + " ".join(f"{k} {_seconds(v)}" for k, v in secs.items())] if secs else []
    return format_table(rows, title=title, footer=footer)


@torch.no_grad()
def quick_eval(G, dataset: str, n: int = 2000, device: str = "cpu", *, data_dir: str | None = None,
               seed: int = 0) -> dict:
    """fd (with its floor) and class_acc of `n` samples from G: a few seconds, for training's --eval-every.

    G is put in eval mode for the call and restored; the global RNG is not touched. Metrics that do
    not apply (no reference classifier, unconditional G) are listed under "n/a".
    """
    from ganimate.sample import generate, sample_labels

    was_training = G.training
    G.eval()
    try:
        ctx = Context(dataset=dataset, data_dir=data_dir, num_classes=G.num_classes, image_size=G.image_size,
                      channels=G.channels, n=n, seed=seed, device=device)
        if _reference_problem(ctx) is None:
            ctx.labels = sample_labels(n, G.num_classes)
            ctx.images = _to_nchw(generate(G, n, seed, ctx.labels))
        results, na, _ = compute_metrics(TASK, ctx, ["fd", "class_acc"], strict=False)
    finally:
        G.train(was_training)
    return {**results, "n/a": na} if na else results
