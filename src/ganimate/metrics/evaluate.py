"""`ganimate evaluate RUN`: sample a run's EMA generator and score it against its dataset.

The image metrics of the registry (metrics/registry.py, task "image"), one family module each: fd (Heusel
et al. 2017) and kid (Bińkowski et al. 2018) in the features of the dataset's reference network (shipped for
MNIST / Fashion-MNIST, trained on first use and cached for the others: metrics/reference.py), pr (Kynkäänniemi
et al. 2019), class_acc (reference classifier on conditional samples), cas (Ravuri & Vinyals 2019) and nn1
(Radford et al. 2015, §8.1). A folder's scores are measured against its held-out half (metrics/cache.py).
`--fid inception` adds the standard Inception FID / KID through torch-fidelity (metrics/inception.py).
Every result is appended as one JSON line to RUN/metrics.jsonl.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganimate.config import option
from ganimate.data import has_labelled_test, has_reference_classifier
from ganimate.errors import GanimateError
from ganimate.metrics import cas as cas_mod
from ganimate.metrics import classifier as clf
from ganimate.metrics import inception
from ganimate.metrics import reference as ref_mod
from ganimate.metrics.cache import cached_arrays, is_folder, native_format, real_images
from ganimate.metrics.class_acc import class_acc
from ganimate.metrics.fd import fd, features_key, real_features
from ganimate.metrics.kid import kid_vs_real
from ganimate.metrics.nn1 import nn1, nn1_real_error
from ganimate.metrics.pr import knn_radii, per_class, precision_recall
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
    nn1_draws: int = 1  # the 1-NN test on this many draws of latents (seeds seed, seed + 1, ...): their mean
    fd_draws: int = 1  # FD on this many draws of n latents, the same way
    draw: Callable[[int, int], torch.Tensor] | None = None  # (seed, count) -> that seed's first count samples
    device: str = "cpu"
    labels_mode: str = "auto"  # the run's --labels and --crop: how its folder was read
    crop: str = "center"
    trained_reference: bool = True  # False: only shipped reference classifiers (training's quick evaluation)
    log: Callable[[str], object] | None = None
    stop: threading.Event | None = None  # set: CAS's classifier training stops at its next step
    _reference: ref_mod.Reference | None = None
    _embedded: tuple[torch.Tensor, torch.Tensor] | None = None

    def reference(self) -> ref_mod.Reference:
        """The dataset's reference network: the shipped classifier, or the one trained (once) for this data."""
        if self._reference is None:
            if has_reference_classifier(self.dataset):
                self._reference = ref_mod.shipped(self.dataset, self.device)
            else:
                log = self.log or (lambda line: print(line, file=sys.stderr, flush=True))
                self._reference = ref_mod.trained(self.dataset, data_dir=self.data_dir, device=self.device,
                                                  log=log, **self.real())
        return self._reference

    def embedded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the first n samples under the reference network."""
        if self._embedded is None:
            self._embedded = clf.embed(self.reference().model, self.images[: self.n])
        return self._embedded

    def data_format(self) -> dict:
        """image_size / channels to load real data in the generator's format (None where native)."""
        return native_format(self.dataset, self.image_size, self.channels)

    def real(self) -> dict:
        """`real_images` keywords for the run's format: data_format, and a folder's labels / crop settings."""
        folder = {"labels": self.labels_mode, "crop": self.crop} if is_folder(self.dataset) else {}
        return {**self.data_format(), **folder}

    def feature_args(self) -> dict:
        """Keywords of fd / kid_vs_real / real_features: the shipped classifier's as before, else the trained one."""
        if self.reference().kind == "shipped":
            return {}
        return {"reference": self.reference(), "real": self.real()}

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return real_images(self.dataset, "test", data_dir=self.data_dir, **self.real())


def _reference_problem(ctx: Context) -> str | None:
    if not has_reference_classifier(ctx.dataset):
        if ctx.trained_reference and ref_mod.trainable(ctx.dataset):
            return None
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


def _classifier_problem(ctx: Context) -> str | None:
    if has_reference_classifier(ctx.dataset) or ctx.reference().classifies:
        return None
    return f"{ctx.dataset} has no labels, so its reference network is no classifier"


def _test_problem(ctx: Context) -> str | None:
    if has_labelled_test(ctx.dataset) or (is_folder(ctx.dataset) and ctx.num_classes):
        return None  # a labelled folder: its held-out half
    return f"{ctx.dataset} has no labelled test split"


# ---------------------------------------------------------------- the image metrics, in table order


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """The mean and (sample) standard deviation of a metric over draws of latents."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std())


def _fd_rows(r: dict) -> list[Row]:
    if "fd" not in r:
        return []
    spread = f"± {r['fd_spread']:.3f} over {r['fd_draws']} draws of latents; " if "fd_spread" in r else ""
    return [Row("fd", f"{r['fd']:.3f}", f"{spread}real-vs-real floor {r['fd_floor']:.3f} (N={r['fd_real_n']})")]


@register_metric("fd", task=TASK, rows=_fd_rows, requires=(_reference_problem,),
                 about="Fréchet distance in reference-network features")
def fd_metric(ctx: Context) -> dict:
    """{"fd", "fd_floor", "fd_real_n"}: FD of the samples' features against the test set's, and the floor. With
    ctx.fd_draws > 1, fd is the mean over that many draws of n latents (seeds seed, seed + 1, ...), fd_spread their
    standard deviation and fd_draw_values the draws: draws of 10,000 Fashion-MNIST samples spread by 3-6% of their
    FD (bench/RESULTS.md)."""
    out = fd(ctx.embedded()[0], ctx.dataset, ctx.data_dir, **ctx.feature_args())
    if ctx.fd_draws > 1:
        values = [out["fd"]] + [
            fd(clf.embed(ctx.reference().model, ctx.draw(ctx.seed + d, ctx.n))[0], ctx.dataset, ctx.data_dir,
               **ctx.feature_args())["fd"] for d in range(1, ctx.fd_draws)]
        mean, std = mean_and_std(values)
        out.update(fd=mean, fd_spread=std, fd_draws=ctx.fd_draws, fd_draw_values=values)
    return out


def _kid_rows(r: dict) -> list[Row]:
    if "kid" not in r:
        return []
    return [Row("kid", f"{r['kid']:.5f}",
                f"± {r['kid_std']:.5f}, real-vs-real floor {r['kid_floor']:.5f} (N={r['kid_real_n']})")]


KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


@register_metric("kid", task=TASK, rows=_kid_rows, requires=(_reference_problem,),
                 about="kernel distance (unbiased MMD²) in reference-network features")
def kid_metric(ctx: Context) -> dict:
    """{"kid", "kid_std", "kid_floor", "kid_real_n"}: KID against the same real images as fd, and its floor."""
    return kid_vs_real(ctx.embedded()[0], ctx.dataset, ctx.data_dir, seed=ctx.seed, subsets=KID_SUBSETS,
                       subset_size=KID_SUBSET_SIZE, **ctx.feature_args())


def _pr_rows(r: dict) -> list[Row]:
    if "precision" not in r:
        return []
    space = "encoder" if "encoder" in r.get("reference", "") else "classifier"
    rows = [Row("precision", f"{r['precision']:.3f}", f"k=3 manifolds in {space} features"),
            Row("recall", f"{r['recall']:.3f}")]
    if "recall_per_class" in r:
        per, real = r["recall_per_class"], r["recall_per_class_real"]
        low = min(range(len(per)), key=lambda c: math.inf if math.isnan(per[c]) else per[c])
        rows.append(Row("recall per class", " ".join(f"{c}:{v:.2f}" for c, v in enumerate(per)), detail=True))
        rows.append(Row("recall per class, real vs real", " ".join(f"{c}:{v:.2f}" for c, v in enumerate(real)),
                        detail=True))
        rows.append(Row("lowest class recall", f"{per[low]:.3f}",
                        f"class {low}; real training vs test images of that class {real[low]:.3f}"))
    return rows


PR_K = 3


@register_metric("pr", task=TASK, rows=_pr_rows, requires=(_reference_problem,),
                 about="k-NN precision and recall (k=3)")
def pr_metric(ctx: Context) -> dict:
    """{"precision", "recall"} of as many samples as real test images: min(n, the test set's size)."""
    args = ctx.feature_args()
    n_test = len(real_images(ctx.dataset, "test", data_dir=ctx.data_dir, **args.get("real", {}))[0])
    n = min(ctx.n, n_test)
    real = torch.from_numpy(real_features(ctx.dataset, "test", n, ctx.data_dir, **args)["features"])

    def radii() -> dict:
        return {"radii": knn_radii(real, PR_K).numpy()}

    key = {"kind": "knn_radii", "k": PR_K, "dataset": ctx.dataset, "split": "test", "n": n,
           **features_key(ctx.dataset, args.get("reference"), args.get("real"))}
    real_radii = torch.from_numpy(cached_arrays(key, radii)["radii"])
    out = precision_recall(real, ctx.embedded()[0][:n], PR_K, real_radii=real_radii)
    test_labels = real_images(ctx.dataset, "test", n, data_dir=ctx.data_dir, **args.get("real", {}))[1]
    if ctx.num_classes and ctx.labels is not None and test_labels is not None:
        out.update(per_class(real, test_labels, ctx.embedded()[0][:n], ctx.labels[:n], ctx.num_classes, PR_K))
        # the same measure between real training and real test images: how high each class can score
        train = torch.from_numpy(real_features(ctx.dataset, "train", n, ctx.data_dir, **args)["features"])
        train_labels = real_images(ctx.dataset, "train", n, data_dir=ctx.data_dir, **args.get("real", {}))[1]
        out["recall_per_class_real"] = per_class(real, test_labels, train, train_labels, ctx.num_classes,
                                                 PR_K)["recall_per_class"]
    return out


def _class_acc_rows(r: dict) -> list[Row]:
    if "class_acc" not in r:
        return []
    real = "real held-out images" if r.get("dataset", "").startswith("folder:") else "real test images"
    rows = [Row("class_acc", f"{r['class_acc']:.4f}",
                f"reference classifier on {real} {r['class_acc_reference']:.4f}")]
    if "class_acc_per_class" in r:
        per = " ".join(f"{k}:{v:.3f}" for k, v in enumerate(r["class_acc_per_class"]))
        rows.append(Row("class_acc per class", per, detail=True))
    return rows


@register_metric("class_acc", task=TASK, rows=_class_acc_rows,
                 requires=(_conditional_problem, _reference_problem, _classifier_problem),
                 about="reference-classifier accuracy on conditional samples")
def class_acc_metric(ctx: Context) -> dict:
    """{"class_acc", "class_acc_per_class", "class_acc_reference"} (the last on real test / held-out images)."""
    out = class_acc(ctx.embedded()[1].argmax(1), ctx.labels[: ctx.n], ctx.num_classes)
    out["class_acc_reference"] = ctx.reference().info["test_accuracy"]
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
    kw = dict(seed=ctx.seed, data_dir=ctx.data_dir, **ctx.real())
    return {
        "cas": cas_mod.cas(ctx.images[:n], ctx.labels[:n], test_x, test_y, ctx.num_classes, ctx.seed, stop=ctx.stop),
        "cas_real": cas_mod.cas_real(ctx.dataset, n, ctx.num_classes, stop=ctx.stop, **kw),
    }


def _nn1_rows(r: dict) -> list[Row]:
    rows = []
    for key in r:
        if key.startswith("nn1_error_"):
            n = key.rsplit("_", 1)[1]
            real = r.get(f"nn1_real_error_{n}")
            notes = [] if real is None else [f"fitted on {n} real training images {real:.4f}"]
            if f"nn1_spread_{n}" in r:
                notes.insert(0, f"± {r[f'nn1_spread_{n}']:.4f} over {r['nn1_draws']} draws of latents")
            rows.append(Row(f"nn1 error @{n}", f"{r[key]:.4f}", "; ".join(notes)))
    return rows


@register_metric("nn1", task=TASK, rows=_nn1_rows, requires=(_conditional_problem, _test_problem),
                 about="1-NN on raw pixels fitted on samples")
def nn1_metric(ctx: Context) -> dict:
    """{"nn1_error_N", "nn1_real_error_N"} for each N of ctx.nn1_sizes. With ctx.nn1_draws > 1, nn1_error_N is
    the mean over that many draws of latents, nn1_spread_N their standard deviation and nn1_draws_N the draws:
    one draw of 50,000 MNIST samples moves the error by 0.1-0.3 points (bench/RESULTS.md)."""
    test_x, test_y = ctx.test_set()

    def real_error(n: int) -> float:
        return nn1_real_error(ctx.dataset, n, data_dir=ctx.data_dir, **ctx.real())

    sizes = list(ctx.nn1_sizes)
    out = nn1(ctx.images, ctx.labels, test_x, test_y, sizes, real_error)
    if ctx.nn1_draws > 1:
        draws = [dict(out)] + [nn1(ctx.draw(ctx.seed + d, max(sizes)), ctx.labels, test_x, test_y, sizes)
                               for d in range(1, ctx.nn1_draws)]
        out["nn1_draws"] = ctx.nn1_draws
        for n in sizes:
            errors = [d[f"nn1_error_{n}"] for d in draws]
            out[f"nn1_error_{n}"], out[f"nn1_spread_{n}"] = mean_and_std(errors)
            out[f"nn1_draws_{n}"] = errors
    return out


METRICS = metrics_for(TASK)  # name -> Metric, the metrics `ganimate evaluate` knows
FEATURE_METRICS = ("fd", "kid", "pr", "class_acc")  # those that read the samples' reference-network features
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
    n: int = option("generated images for fd, kid, pr, class_acc and cas (real ones: as many, up to the test set "
                    "or a folder's held-out half)", default=10000)
    nn1_sizes: str = option("numbers of generated (and real) training images for the 1-NN test", default="10000,50000")
    nn1_draws: int = option("repeat the 1-NN test on this many draws of latents (seeds --seed, --seed + 1, ...) and "
                            "report their mean and spread: one draw of 50,000 samples varies by 0.1-0.3 points",
                            default=1)
    fd_draws: int = option("compute FD on this many draws of --n latents (seeds --seed, --seed + 1, ...) and report "
                           "their mean and spread: on Fashion-MNIST, draws of 10,000 spread by 3-6%", default=1)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    seed: int = option("seed of the latents and of the CAS classifier", default=0)
    json: bool = option("print the result as one JSON line instead of a table", default=False)
    device: str = option("device for the generator: auto | cpu | cuda | mps", default="cpu")
    data_dir: str | None = option("folder holding the dataset files (default: the run's)", default=None)
    fid: str = option("none | inception: also the standard Inception FID and KID of the n samples against the "
                      "whole training set (needs torch-fidelity, pip install 'ganimate[inception]', and its "
                      "Inception weights; without them one line says why and the rest is evaluated)",
                      choices=("none", "inception"), default="none")
    precision: str = option("auto | fp32 | bf16: the generator's forward pass in bf16 autocast or fp32; auto is bf16 "
                            "where the device computes it natively (AVX-512 BF16 / AMX CPUs, recent GPUs), else fp32. "
                            "The metrics' own networks always run in fp32", choices=("auto", "fp32", "bf16"),
                            default="auto")

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
        if self.fid not in ("none", "inception"):
            raise GanimateError(f"--fid must be none or inception, got {self.fid!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise GanimateError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        _parse_sizes(self.nn1_sizes)
        if self.nn1_draws < 1:
            raise GanimateError(f"--nn1-draws must be at least 1, got {self.nn1_draws}")
        if self.fd_draws < 1:
            raise GanimateError(f"--fd-draws must be at least 1, got {self.fd_draws}")

    @property
    def metric_names(self) -> list[str]:
        names = [m.strip() for m in self.metrics.split(",") if m.strip()]
        return list(METRICS) if names == ["all"] else list(dict.fromkeys(names))

    @property
    def sizes(self) -> tuple[int, ...]:
        return _parse_sizes(self.nn1_sizes)


def run_evaluate(cfg: EvaluateConfig, log=None) -> dict:
    """Evaluate the run's checkpoint, append the record to RUN/metrics.jsonl, print it; returns the record."""
    from ganimate.checkpoint import load_checkpoint, resolve_checkpoint
    from ganimate.runs import append_jsonl, load_generator
    from ganimate.runtime import native_bf16, resolve_device
    from ganimate.sample import GENERATE_BATCH, generate_images, sample_labels

    run_dir = Path(cfg.run)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    ckpt = resolve_checkpoint(run_dir, cfg.checkpoint)
    step = int(load_checkpoint(ckpt).get("step", 0))
    start = time.perf_counter()
    device = str(resolve_device(cfg.device))
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if native_bf16(torch.device(device)) else "fp32"
    G, train_cfg = load_generator(run_dir, str(ckpt), device, ema=True)
    names = cfg.metric_names
    ctx = Context(
        dataset=train_cfg.dataset, data_dir=cfg.data_dir or train_cfg.data_dir, num_classes=G.num_classes,
        image_size=G.image_size, channels=G.channels, n=cfg.n, seed=cfg.seed, nn1_sizes=cfg.sizes, device=device,
        labels_mode=getattr(train_cfg, "labels", "auto"), crop=getattr(train_cfg, "crop", "center"), log=log,
        nn1_draws=cfg.nn1_draws, fd_draws=cfg.fd_draws,
        draw=lambda seed, count: generate_images(G, count, seed, ctx.labels, precision=precision),
    )
    strict = set(names) != set(METRICS)
    applicable = [m for m in names if not METRICS[m].problem(ctx)]
    if strict and len(applicable) < len(names):
        compute_metrics(TASK, ctx, [m for m in names if m not in applicable], strict=True)
    counts = [cfg.n for m in applicable if m != "nn1"] + [s for s in cfg.sizes if "nn1" in applicable]
    counts += [cfg.n] if cfg.fid == "inception" else []
    total = max(counts, default=0)
    threads = torch.get_num_threads()
    # CAS trains a classifier on the first n samples: on half the cores it runs beside the rest of the work
    background = "cas" in applicable and threads >= 2 and len(applicable) > 1
    # with CAS beside, the first part ends at a whole batch after n: the batches, so the images, are one call's
    head = min(total, -(-cfg.n // GENERATE_BATCH) * GENERATE_BATCH) if background else total
    seconds = {}
    if counts:
        t = time.perf_counter()
        ctx.labels = sample_labels(total, G.num_classes)
        ctx.images = generate_images(G, head, cfg.seed, ctx.labels, precision=precision)
        seconds["generate"] = round(time.perf_counter() - t, 2)
    if any(m in applicable for m in FEATURE_METRICS):
        t = time.perf_counter()
        ctx.embedded()  # the reference network's pass over the samples, shared by fd, kid, pr and class_acc
        seconds["embed"] = round(time.perf_counter() - t, 2)
    if background:
        results, na, metric_seconds = _beside_cas(ctx, cfg.metric_names, G, total, precision, threads, seconds, log)
    else:
        results, na, metric_seconds = compute_metrics(TASK, ctx, names, strict=False, log=log)
    seconds.update(metric_seconds)
    if cfg.fid == "inception":
        t = time.perf_counter()
        why = inception.problem()
        if why:
            na["inception"] = why
        else:
            reals = torch.cat([real_images(ctx.dataset, split, data_dir=ctx.data_dir, **ctx.real())[0]
                               for split in (("train", "test") if is_folder(ctx.dataset) else ("train",))])
            results.update(inception.inception_scores(ctx.images[: cfg.n], reals, device, seed=cfg.seed))
            seconds["inception"] = round(time.perf_counter() - t, 2)
    seconds["total"] = round(time.perf_counter() - start, 2)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {
        "step": step, "checkpoint": str(ckpt), "time": now, "n": cfg.n, "seed": cfg.seed,
        "dataset": train_cfg.dataset, "generate_precision": precision, **results, "n/a": na, "seconds": seconds,
    }
    if background:  # CAS's seconds ran beside the others, on these threads of the process's
        record["cas_threads"] = [max(1, threads // 2), threads]
    if ctx._reference is not None and ctx._reference.kind != "shipped":
        record["reference"] = ctx._reference.describe()
    append_jsonl(run_dir / "metrics.jsonl", record)
    print(json.dumps(record) if cfg.json else image_table(record, run_dir))
    return record


def _beside_cas(ctx: Context, metric_names: list[str], G, total: int, precision: str, threads: int, seconds: dict,
                log) -> tuple[dict, dict, dict]:
    """compute_metrics of `metric_names`, with CAS on a thread of its own, each side on half of the `threads` cores.

    ctx holds the first samples, at least the n CAS reads; the main thread generates the rest up to `total` (adding
    their time to seconds["generate"]) and computes the other metrics meanwhile, on every thread again once CAS is
    done. CAS training scales poorly over cores (1.4x from one to two, bench/RESULTS.md), so two halves working side
    by side finish sooner than one after the other. The reference network is built before the thread starts: both
    train under a seeded global RNG. An error or Ctrl-C in the main thread stops CAS at its next step.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ganimate.sample import generate_images

    half = max(1, threads // 2)
    ctx.stop = threading.Event()
    cas_ctx = dataclasses.replace(ctx)  # its own view (the main thread replaces ctx.images below), the same stop

    def cas_alone() -> tuple[dict, dict, dict]:
        torch.set_num_threads(half)
        return compute_metrics(TASK, cas_ctx, ["cas"], strict=False, log=log)

    results, na, metric_seconds = {}, {}, {}
    try:
        torch.set_num_threads(half)
        pool = ThreadPoolExecutor(1, thread_name_prefix="ganimate-cas")
        try:
            cas = pool.submit(cas_alone)
            t = time.perf_counter()
            if total > len(ctx.images):
                rest = generate_images(G, total, ctx.seed, ctx.labels, precision=precision, start=len(ctx.images))
                ctx.images = torch.cat([ctx.images, rest])
            seconds["generate"] = round(seconds["generate"] + time.perf_counter() - t, 2)
            for name in (m for m in metric_names if m != "cas"):
                if cas.done():
                    torch.set_num_threads(threads)
                done = compute_metrics(TASK, ctx, [name], strict=False, log=log)
                for into, part in zip((results, na, metric_seconds), done, strict=True):
                    into.update(part)
            for into, part in zip((results, na, metric_seconds), cas.result(), strict=True):
                into.update(part)
        except BaseException:
            ctx.stop.set()  # an error or Ctrl-C here: CAS stops within a step instead of finishing its training
            raise
        finally:
            pool.shutdown(wait=True)
    finally:
        torch.set_num_threads(threads)
    return results, na, metric_seconds


def _seconds(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def image_table(record: dict, run_dir: Path | str = "") -> str:
    """The table of one `ganimate evaluate` record: metric, value, and the real-data reference beside it."""
    r = record
    rows = metric_rows(TASK, r) + inception.rows(r)
    rows += [Row(name, "n/a", reason) for name, reason in r.get("n/a", {}).items()]
    if "reference" in r:
        rows.append(Row("reference network", r["reference"], detail=True))
    title = f"{run_dir} step {r['step']} ({Path(r['checkpoint']).name}), {r['dataset']}, n={r['n']}, seed {r['seed']}"
    if r.get("generate_precision") == "bf16":
        title += ", samples in bf16"
    secs = r.get("seconds", {})
    footer = ["seconds  " + " ".join(f"{k} {_seconds(v)}" for k, v in secs.items())] if secs else []
    if "cas_threads" in r and "cas" in secs:
        mine, of = r["cas_threads"]
        footer.append(f"(cas trained on {mine} of {of} threads beside the other work, so total < the sum)")
    return format_table(rows, title=title, footer=footer)


@torch.no_grad()
def quick_eval(G, dataset: str, n: int = 2000, device: str = "cpu", *, data_dir: str | None = None,
               seed: int = 0) -> dict:
    """fd (with its floor) and class_acc of `n` samples from G: a few seconds, for training's --eval-every.

    G is put in eval mode for the call and restored; the global RNG is not touched. Metrics that do
    not apply (no shipped reference classifier, unconditional G) are listed under "n/a": training never
    trains a reference network.
    """
    from ganimate.sample import generate_images, sample_labels

    was_training = G.training
    G.eval()
    try:
        ctx = Context(dataset=dataset, data_dir=data_dir, num_classes=G.num_classes, image_size=G.image_size,
                      channels=G.channels, n=n, seed=seed, device=device, trained_reference=False)
        if _reference_problem(ctx) is None:
            ctx.labels = sample_labels(n, G.num_classes)
            ctx.images = generate_images(G, n, seed, ctx.labels)
        results, na, _ = compute_metrics(TASK, ctx, ["fd", "class_acc"], strict=False)
    finally:
        G.train(was_training)
    return {**results, "n/a": na} if na else results
