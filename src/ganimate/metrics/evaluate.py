"""`ganimate evaluate RUN`: sample a run's EMA generator and score it against its dataset.

Metrics (one module each): fd (Heusel et al. 2017, reference-classifier features), pr (Kynkäänniemi et
al. 2019), class_acc (reference classifier on conditional samples), cas (Ravuri & Vinyals 2019) and
nn1 (Radford et al. 2015, §8.1). Every result is appended as one JSON line to RUN/metrics.jsonl.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganimate.config import option
from ganimate.errors import GanimateError
from ganimate.metrics import cas as cas_mod
from ganimate.metrics import classifier as clf
from ganimate.metrics.cache import native_format, real_images
from ganimate.metrics.class_acc import class_acc
from ganimate.metrics.fd import fd, real_features
from ganimate.metrics.nn1 import nn1, nn1_real_error
from ganimate.metrics.pr import precision_recall

LABELLED_TEST = ("mnist", "fashion-mnist", "cifar10", "synthetic")


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
    if ctx.dataset not in clf.REFERENCE_DATASETS:
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
    if ctx.dataset not in LABELLED_TEST:
        return f"{ctx.dataset} has no labelled test split"
    return None


def _run_fd(ctx: Context) -> dict:
    return fd(ctx.embedded()[0], ctx.dataset, ctx.data_dir)


def _run_pr(ctx: Context) -> dict:
    n_test = len(real_images(ctx.dataset, "test", data_dir=ctx.data_dir)[0])
    real = real_features(ctx.dataset, "test", min(ctx.n, n_test), ctx.data_dir)["features"]
    return precision_recall(torch.from_numpy(real), ctx.embedded()[0])


def _run_class_acc(ctx: Context) -> dict:
    out = class_acc(ctx.embedded()[1].argmax(1), ctx.labels[: ctx.n], ctx.num_classes)
    out["class_acc_reference"] = clf.reference_info(ctx.dataset)["test_accuracy"]
    return out


def _run_cas(ctx: Context) -> dict:
    test_x, test_y = ctx.test_set()
    n = ctx.n
    kw = dict(seed=ctx.seed, data_dir=ctx.data_dir, **ctx.data_format())
    return {
        "cas": cas_mod.cas(ctx.images[:n], ctx.labels[:n], test_x, test_y, ctx.num_classes, ctx.seed),
        "cas_real": cas_mod.cas_real(ctx.dataset, n, ctx.num_classes, **kw),
    }


def _run_nn1(ctx: Context) -> dict:
    test_x, test_y = ctx.test_set()

    def real_error(n: int) -> float:
        return nn1_real_error(ctx.dataset, n, data_dir=ctx.data_dir, **ctx.data_format())

    return nn1(ctx.images, ctx.labels, test_x, test_y, list(ctx.nn1_sizes), real_error)


@dataclass(frozen=True)
class Metric:
    """A metric family: its computation and the checks that say why it does not apply to a run."""

    compute: Callable[[Context], dict]
    requires: tuple[Callable[[Context], str | None], ...]
    about: str

    def problem(self, ctx: Context) -> str | None:
        for check in self.requires:
            reason = check(ctx)
            if reason:
                return reason
        return None


METRICS: dict[str, Metric] = {
    "fd": Metric(_run_fd, (_reference_problem,), "Fréchet distance in reference-classifier features"),
    "pr": Metric(_run_pr, (_reference_problem,), "k-NN precision and recall (k=3)"),
    "class_acc": Metric(_run_class_acc, (_conditional_problem, _reference_problem),
                        "reference-classifier accuracy on conditional samples"),
    "cas": Metric(_run_cas, (_conditional_problem, _test_problem), "classifier trained on samples, real-test accuracy"),
    "nn1": Metric(_run_nn1, (_conditional_problem, _test_problem), "1-NN on raw pixels fitted on samples"),
}
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


def compute_metrics(ctx: Context, names: list[str], strict: bool, log=None) -> tuple[dict, dict, dict]:
    """(results, {name: reason it does not apply}, {name: seconds}) for the metric families `names`."""
    results, na, seconds = {}, {}, {}
    for name in names:
        metric = METRICS[name]
        reason = metric.problem(ctx)
        if reason:
            if strict:
                raise GanimateError(f"{name} {reason}" if reason.startswith("needs") else f"{name}: {reason}")
            na[name] = reason
            continue
        start = time.perf_counter()
        results.update(metric.compute(ctx))
        seconds[name] = round(time.perf_counter() - start, 2)
        if log is not None:
            log(f"{name}: {seconds[name]:.1f}s")
    return results, na, seconds


def run_evaluate(cfg: EvaluateConfig, log=None) -> dict:
    """Evaluate the run's checkpoint, append the record to RUN/metrics.jsonl, print it; returns the record."""
    from ganimate.checkpoint import load_checkpoint, load_generator, resolve_checkpoint
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
        compute_metrics(ctx, [m for m in names if m not in applicable], strict=True)
    counts = [cfg.n for m in applicable if m != "nn1"] + [s for s in cfg.sizes if "nn1" in applicable]
    seconds = {}
    if counts:
        t = time.perf_counter()
        ctx.labels = sample_labels(max(counts), G.num_classes)
        ctx.images = _to_nchw(generate(G, max(counts), cfg.seed, ctx.labels))
        seconds["generate"] = round(time.perf_counter() - t, 2)
    results, na, metric_seconds = compute_metrics(ctx, names, strict=False, log=log)
    seconds.update(metric_seconds)
    seconds["total"] = round(time.perf_counter() - start, 2)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {
        "step": step, "checkpoint": str(ckpt), "time": now, "n": cfg.n, "seed": cfg.seed,
        "dataset": train_cfg.dataset, **results, "n/a": na, "seconds": seconds,
    }
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record) if cfg.json else format_table(record, run_dir))
    return record


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_table(record: dict, run_dir: Path | str = "") -> str:
    """A readable table of one metrics record: metric, value, and the real-data reference beside it."""
    rows: list[tuple[str, str, str]] = []
    r = record
    if "fd" in r:
        rows.append(("fd", f"{r['fd']:.3f}", f"real-vs-real floor {r['fd_floor']:.3f} (N={r['fd_real_n']})"))
    if "precision" in r:
        rows.append(("precision", f"{r['precision']:.3f}", "k=3 manifolds in classifier features"))
        rows.append(("recall", f"{r['recall']:.3f}", ""))
    if "class_acc" in r:
        rows.append(("class_acc", f"{r['class_acc']:.4f}",
                     f"reference classifier on real test images {r['class_acc_reference']:.4f}"))
    if "cas" in r:
        rows.append(("cas", f"{r['cas']:.4f}", f"same training on {r['n']} real images {r['cas_real']:.4f}"))
    for key in r:
        if key.startswith("nn1_error_"):
            n = key.rsplit("_", 1)[1]
            real = r.get(f"nn1_real_error_{n}")
            ref = "" if real is None else f"fitted on {n} real training images {real:.4f}"
            rows.append((f"nn1 error @{n}", f"{r[key]:.4f}", ref))
    for name, reason in r.get("n/a", {}).items():
        rows.append((name, "n/a", reason))
    width = max([len(a) for a, _, _ in rows] + [6])
    lines = [f"{run_dir} step {r['step']} ({Path(r['checkpoint']).name}), {r['dataset']}, n={r['n']}, seed {r['seed']}"]
    lines += [f"  {a:<{width}}  {b:>8}  {c}".rstrip() for a, b, c in rows]
    if "class_acc_per_class" in r:
        per = " ".join(f"{k}:{v:.3f}" for k, v in enumerate(r["class_acc_per_class"]))
        lines.append(f"  class_acc per class  {per}")
    secs = r.get("seconds", {})
    if secs:
        lines.append("  seconds  " + " ".join(f"{k} {_fmt(v)}" for k, v in secs.items()))
    return "\n".join(lines)


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
        results, na, _ = compute_metrics(ctx, ["fd", "class_acc"], strict=False)
    finally:
        G.train(was_training)
    return {**results, "n/a": na} if na else results

