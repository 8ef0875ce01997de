"""Configs: one dataclass per command, declared bounds checked once, JSON round trip.

`option` declares a field with its --help text and its bounds (`positive`, `nonneg`, `unit` for [0, 1),
`choices`); `check_options` enforces them for any config. `TrainBase` holds what every trainer shares
(schedule, optimiser, device, run folder); `TrainConfig` adds the image GAN's own settings, and
`restore.train.RestoreTrainConfig` and `clips.train.ClipTrainConfig` theirs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ganimate.errors import GanimateError


def option(text: str, *, positive: bool = False, nonneg: bool = False, unit: bool = False,
           choices: tuple[str, ...] | None = None, **kw):
    """A dataclass field with its --help text and its bounds: positive (> 0), nonneg (>= 0), unit ([0, 1))
    or one of `choices`. None always passes (it means "the default")."""
    bound = "positive" if positive else "nonneg" if nonneg else "unit" if unit else None
    return field(metadata={"help": text, "bound": bound, "choices": choices}, **kw)


def flag(name: str) -> str:
    return "--" + name.rstrip("_").replace("_", "-")


def check_options(cfg) -> None:
    """Check every field of `cfg` against its declared bounds; the first failure is a one-line error."""
    for f in dataclasses.fields(cfg):
        value, bound, choices = getattr(cfg, f.name), f.metadata.get("bound"), f.metadata.get("choices")
        if value is None or isinstance(value, bool):
            continue
        if choices is not None and value not in choices:
            raise GanimateError(f"{flag(f.name)} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")
        if bound is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise GanimateError(f"{flag(f.name)} must be a finite number, got {value}")
        if bound == "positive" and not value > 0:
            raise GanimateError(f"{flag(f.name)} must be positive, got {value}")
        if bound == "nonneg" and not value >= 0:
            raise GanimateError(f"{flag(f.name)} must be 0 or more, got {value}")
        if bound == "unit" and not 0 <= value < 1:
            raise GanimateError(f"{flag(f.name)} must lie in [0, 1), got {value}")


def _fits(value, tp) -> bool:
    if tp is type(None):
        return value is None
    if isinstance(value, bool):
        return tp is bool
    return isinstance(value, int | float) if tp is float else isinstance(value, tp)


def check_types(cls, d: dict) -> None:
    """Values of a hand-edited config.json against the field types of `cls` (an int passes for a float)."""
    hints = typing.get_type_hints(cls)
    for name, value in d.items():
        tp = hints[name]
        allowed = typing.get_args(tp) if typing.get_origin(tp) in (types.UnionType, typing.Union) else (tp,)
        if not any(_fits(value, t) for t in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise GanimateError(f"config setting {name} must be {names}, got {value!r}")


def check_image_dataset(spec: str) -> None:
    """A one-line error unless `spec` names an image dataset ganimate can load."""
    from ganimate.data import dataset_names, is_image_dataset

    if not is_image_dataset(spec):
        raise GanimateError(f"unknown dataset {spec!r}: choose from {', '.join(dataset_names())}")


def default_out(prefix: str, dataset: str) -> str:
    """runs/<prefix><name>, the name being the dataset's or its folder's last component."""
    name = dataset.split(":", 1)[-1].rstrip("/").split("/")[-1] or "folder"
    return str(Path("runs") / f"{prefix}{name}")


def data_folders_of(dataset, data_dir) -> list[Path]:
    """The folders a run reads data from, which nothing may write into: --data-dir, $GANIMATE_DATA and a folder
    dataset's PATH (values from a hand-edited config that are not strings are ignored)."""
    folders = [data_dir, os.environ.get("GANIMATE_DATA")]
    if isinstance(dataset, str) and dataset.startswith("folder:"):
        folders.append(dataset[len("folder:"):])
    return [Path(f).expanduser() for f in folders if isinstance(f, str) and f]


def run_data_folders(run_dir: str | Path) -> list[Path]:
    """`data_folders_of` the run in `run_dir`, from its config.json (only $GANIMATE_DATA without one)."""
    try:
        saved = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        saved = {}
    saved = saved if isinstance(saved, dict) else {}
    return data_folders_of(saved.get("dataset"), saved.get("data_dir"))


@dataclass
class TrainBase:
    """What every training command shares: the run folder, the schedule, the optimisers and the device.

    Subclasses redeclare a field to change its default; `RESUMABLE` lists what a resumed run may change.
    """

    dataset: str = option("the training data", default="")
    out: str | None = option("run folder", default=None)
    data_dir: str | None = option("folder holding the dataset files (searched first)", default=None)
    max_steps: int | None = option("stop after this many optimiser steps in total", positive=True, default=None)
    max_minutes: float | None = option("also stop (with a checkpoint) after this many minutes of training",
                                       positive=True, default=None)
    batch_size: int = option("samples per step", positive=True, default=64)
    lr_g: float | None = option("Adam learning rate of G", positive=True, default=2e-4)
    lr_d: float | None = option("Adam learning rate of D", positive=True, default=2e-4)
    lr_decay: float = option("decay both learning rates linearly to zero over the last N steps of the run, or over "
                             "that share of its steps when N is at most 1 (0.33: the last third; 1: the whole run; "
                             "0: constant rates); a resumed run may add or change it", nonneg=True, default=0)
    beta1: float = option("Adam beta1", unit=True, default=0.5)
    beta2: float = option("Adam beta2", unit=True, default=0.999)
    ema_decay: float = option("decay per step of the moving average of G used for samples and evaluation",
                              unit=True, default=0.999)
    seed: int = option("seed for weights, data order, noise and samples", default=0)
    log_every: int = option("log line and stats.jsonl record every N steps", positive=True, default=100)
    sample_every: int = option("also save a sample every N steps (0: only per epoch and at the end)", nonneg=True,
                               default=0)
    checkpoint_every: int = option("also checkpoint every N steps (0: only per epoch and at the end)", nonneg=True,
                                   default=0)
    eval_every: int = option("evaluate into RUN/metrics.jsonl every N steps and at the end (0: never)", nonneg=True,
                             default=0)
    keep_checkpoints: int = option("how many recent checkpoints to keep", positive=True, default=3)
    device: str = option("auto | cpu | cuda | cuda:N | mps", default="auto")
    precision: str = option("auto | fp32 | bf16 | fp16: autocast to bfloat16 or float16 (weights stay fp32; fp16 with "
                            "a loss scaler for each of G and D). auto: bf16 where the CPU or GPU computes it natively, "
                            "else fp16 on a CUDA GPU, else fp32", choices=("auto", "fp32", "bf16", "fp16"),
                            default="auto")
    sync_bn: bool = option("under torchrun, batch norm takes its statistics over the global batch of all processes, "
                           "as one process would", default=True)
    dist_timeout: float = option("under torchrun, minutes a process waits for the others before it stops with an "
                                 "error", positive=True, default=30.0)
    progress: bool | None = option("progress bar (default: when the terminal shows it)", default=None)
    report: bool = option("write RUN/report.html (`ganimate report`) at the end of training", default=True)
    report_every: int = option("also refresh RUN/report.html every N steps (0: only at the end)", nonneg=True,
                               default=0)
    tensorboard: bool = option("also write the stats, metrics and sample grids as TensorBoard event files in "
                               "RUN/tensorboard/ with each report (pip install 'ganimate[tensorboard]')", default=False)
    init_from: str | None = option("start a new run from another run's weights: G, D and G's moving average from "
                                   "RUN's latest checkpoint (or a checkpoint file); the step, the optimisers and "
                                   "the data start afresh, so a model trained on one setting is fine-tuned on "
                                   "another. The networks must have the same shapes", default=None)

    RESUMABLE = ("max_steps", "max_minutes", "lr_decay", "log_every", "sample_every", "checkpoint_every", "eval_every",
                 "keep_checkpoints", "device", "data_dir", "progress", "report", "report_every", "tensorboard",
                 "precision", "sync_bn", "dist_timeout")

    def __post_init__(self):
        check_options(self)

    def data_folders(self) -> list[Path]:
        """The folders this run reads data from, which it must never write into: --data-dir, $GANIMATE_DATA and
        a folder dataset's PATH."""
        return data_folders_of(self.dataset, self.data_dir)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """A config from its saved JSON: unknown settings and values of the wrong type are one-line errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GanimateError(f"config has unknown settings {unknown}: written by a newer ganimate?")
        check_types(cls, d)
        return cls(**d)


# `ganimate train --preset NAME`: settings a preset starts from; options given beside it win.
DEMO_RECIPE = {"dataset": "mnist", "conditional": True, "arch": "deeper", "batch_size": 32, "r1": 0.1, "beta1": 0.0,
               "beta2": 0.99, "lr_g": 1.2e-3, "lr_d": 1.2e-3, "lr_decay": 1 / 3}
PRESETS: dict[str, dict] = {
    # `make demo`: conditional MNIST digits that read correctly after a few minutes on two CPU cores. R1 and Adam
    # without momentum since 2026-12-02 (bench/RESULTS.md, "The demo preset"); batch 32 at twice the fast arch's
    # learning rates, decaying to zero over the last third, since later that day ("Twice the learning rates"); the
    # deeper pair instead of the fast one since 2026-12-03 ("A deeper D"): on four seeds FD 0.91 (the fast pair:
    # 1.01), precision 0.795 (0.755), recall 0.763 (0.750), class accuracy 0.991 (0.991), at 0.80x the step's speed
    "demo": {**DEMO_RECIPE, "epochs": 4},
    # quality over speed: the demo's recipe trained 3x as long with class-conditional batch norm in G (bench/RESULTS.md,
    # "A quality preset on the demo's recipe"); a deeper G instead of a wider one with mode seeking ("Depth instead
    # of width"), then a deeper D too ("A deeper D"), all on 2026-12-03; a D deeper still ("Deeper still": two 3x3
    # convolutions after each downsampling) that evening: 1-NN error 3.92% on three seeds (was 4.17%), at 0.7x the step;
    # the rates decaying over the whole run instead of its last third since 2026-12-04 ("The rates decaying over the
    # whole run"): Fashion-MNIST's FD -20% (2.9x its floor, was 3.7x), MNIST's -12%, free per step
    "quality": {**DEMO_RECIPE, "epochs": 12, "class_norm": True, "arch": "deepest", "lr_decay": 1.0},
}


def preset_flags(name: str, presets: dict[str, dict] = PRESETS) -> str:
    """A preset as the command-line options it stands for."""
    def one(key, value):
        if isinstance(value, bool):
            return flag(key) if value else "--no-" + flag(key)[2:]
        return f"{flag(key)} {value:g}" if isinstance(value, float) else f"{flag(key)} {value}"

    return " ".join(one(k, v) for k, v in presets[name].items())


def preset_help(what: str, presets: dict[str, dict]) -> str:
    """The help of a `--preset` option: the names and the options each stands for."""
    return (" | ".join(presets) + f": start from {what}'s settings (the options given beside it win): "
            + "; ".join(f"{k}: {preset_flags(k, presets)}" for k in presets))


def with_preset(given: dict, presets: dict[str, dict] = PRESETS) -> dict:
    """The options of a new training config: `given`'s preset (if any) filled in under the given options. An
    unknown name passes through to the config, whose `--preset` choices refuse it."""
    return {**presets.get(given.get("preset"), {}), **given}


@dataclass
class TrainConfig(TrainBase):
    """Everything `ganimate train` needs; saved as RUN/config.json and inside every checkpoint."""

    PRESETS: typing.ClassVar[dict[str, dict]] = PRESETS
    preset: str | None = option(preset_help("a preset", PRESETS), choices=tuple(PRESETS), default=None)
    dataset: str = option("mnist | fashion-mnist | cifar10 | synthetic | folder:PATH", default="mnist")
    out: str | None = option("run folder (default runs/<dataset>)", default=None)
    arch: str = option("fast (4x4 up/down-sampling, fewer channels) | deep (fast with a 3x3 convolution at each of "
                       "G's resolutions) | deeper (deep, and a 3x3 convolution after each of D's downsamplings: the "
                       "demo preset's) | deepest (deeper with two 3x3 convolutions there: the quality preset's) | "
                       "paper (the seed paper's DCGAN) | tutorial (TF DCGAN tutorial)", default="fast")
    conditional: bool | None = option("class-conditional G and D (default: when the data has labels)", default=None)
    image_size: int | None = option("image side in pixels (default: the dataset's; for folders their median side, "
                                    "rounded to a size the models take, at most 64)", default=None)
    channels: int | None = option("1 (grey) or 3 (RGB) (default: the dataset's)", default=None)
    num_classes: int = option("set from the dataset", nonneg=True, default=0)
    z_dim: int = option("latent size", positive=True, default=100)
    g_width: int | None = option("channels of G's first feature map (default: the arch's)", positive=True,
                                 default=None)
    d_width: int | None = option("channels of D's first convolution (default: the arch's)", positive=True,
                                 default=None)
    bn_affine: bool = option("batch norm with scale and bias (the paper found without better)", default=False)
    class_norm: bool = option("class-conditional batch norm in G (de Vries et al. 2017, as in BigGAN): each batch "
                              "norm's output scaled and shifted by a learned amount per class; conditional runs only",
                              default=False)
    mbstd: int = option("minibatch standard deviation in D over groups of N images (Karras et al. 2018; 0: off)",
                        nonneg=True, default=0)
    loss: str = option("bce (the DCGAN paper's non-saturating loss) | hinge (Lim & Ye 2017)", choices=("bce", "hinge"),
                       default="bce")
    r1: float = option("weight of the R1 penalty on D's gradient at the real images (Mescheder et al. 2018), "
                       "applied every 16 steps (0: off)", nonneg=True, default=0.0)
    mode_seeking: float = option("weight of the mode-seeking term in G's loss (Mao et al. 2019): G pays for mapping "
                                 "two latents of one class to look-alike images (0: off)", nonneg=True, default=0.0)
    epochs: int = option("training epochs", positive=True, default=5)
    batch_size: int = option("images per step", positive=True, default=128)
    lr_g: float | None = option("Adam learning rate of G (default: the arch's)", positive=True, default=None)
    lr_d: float | None = option("Adam learning rate of D (default: the arch's)", positive=True, default=None)
    ema: bool = option("keep an exponential moving average of G for samples", default=True)
    log_every: int = option("log line every N batches (the paper's 400)", positive=True, default=400)
    eval_every: int = option("append fd and class_acc to RUN/metrics.jsonl every N steps and at the end "
                             "(0: never)", nonneg=True, default=0)
    eval_n: int = option("generated images per --eval-every evaluation", positive=True, default=2000)
    strict: bool = option("error on unreadable image files instead of skipping them", default=False)
    labels: str = option("auto | folders | none: how a folder dataset's classes are found (auto: each top-level "
                         "sub-folder is a class unless an image lies in the root; folders: insist on that; none: "
                         "unconditional even with class folders or a labelled built-in dataset)",
                         choices=("auto", "folders", "none"), default="auto")
    augment: str = option("auto | none | diffaug | ada: augmentation D sees on real and generated images alike "
                          "(auto: ada with bCR weight 0.5 for datasets under 10k images, none otherwise)",
                          choices=("auto", "none", "diffaug", "ada"), default="auto")
    ada_target: float = option("ADA's target for r_t = E[sign(D(real))] (0.6: D calls 80 percent of the reals real); "
                               "the augmentation probability p rises while r_t is above it and falls below",
                               unit=True, default=0.6)
    consistency: float | None = option("weight of balanced consistency regularisation (bCR, Zhao et al. 2021): D "
                                       "pays for scoring an image and a copy shifted by up to 1/8 of its size "
                                       "differently, on real and generated images alike (0: off; default: 1 where "
                                       "--augment auto picks ada, else 0)", nonneg=True, default=None)
    mirror: bool = option("also train on left-right mirrored copies of the data (an epoch shows each image "
                          "and its mirror image once)", default=False)
    crop: str = option("center | pad: how non-square images become square (pad keeps the whole picture)",
                       choices=("center", "pad"), default="center")
    cache: bool = option("cache decoded folder and CIFAR-10 images (uint8) outside the data folder",
                         default=True)
    memory_format: str = option("auto | contiguous | channels_last: how G's and D's weights and activations lie in "
                                "memory (auto: channels_last for fp32 on a CPU with AVX-512, where it trains 1.1-1.6x "
                                "faster, and for the bf16 paper pair there, 1.4x; contiguous elsewhere). Changes "
                                "float rounding, not the model",
                                choices=("auto", "contiguous", "channels_last"), default="auto")

    RESUMABLE = (*TrainBase.RESUMABLE, "epochs", "eval_n", "strict", "cache", "memory_format")

    def __post_init__(self):
        from ganimate.models import arch_defaults, check_arch

        check_arch(self.arch)
        for name, value in arch_defaults(self.arch).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_image_dataset(self.dataset)
        super().__post_init__()
        if self.channels not in (None, 1, 3):
            raise GanimateError(f"--channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None:
            from ganimate.models.dcgan import upsampling_plan

            try:
                upsampling_plan(self.image_size)
            except ValueError as e:
                raise GanimateError(str(e)) from None
        if self.out is None:
            self.out = default_out("", self.dataset)


@dataclass
class SampleConfig:
    """`ganimate sample RUN`: draw images from a run's EMA generator."""

    run: str = option("run folder", default="")
    n: int = option("number of images", positive=True, default=64)
    class_: int | None = option("class to draw (conditional runs; default: balanced over classes)", default=None)
    seed: int = option("seed of the latents; the same seed gives the same images", default=0)
    out: str | None = option("grid PNG to write (default RUN/generated/seed<S>.png unless --npz)", default=None)
    npz: str | None = option("write x (uint8) and y (labels) to this .npz", default=None)
    nrow: int | None = option("images per grid row (default: 10 when conditional, else ~sqrt(n))", positive=True,
                              default=None)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    no_ema: bool = option("use the raw generator instead of its moving average", default=False)
    device: str = option("auto | cpu | cuda | mps", default="auto")

    def __post_init__(self):
        check_options(self)


def print_config(cfg, log=print) -> None:
    """Print a config as the JSON that is saved with the run."""
    log(f"{type(cfg).__name__} " + json.dumps(dataclasses.asdict(cfg), indent=2))
