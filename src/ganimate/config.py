"""One dataclass per command: defaults, validation with one-line messages, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ganimate.errors import GanimateError

DATASETS = ("mnist", "fashion-mnist", "cifar10", "synthetic", "folder:PATH")


# What each architecture starts from when --g-width / --d-width / --lr-g / --lr-d are not given. The fast
# preset's learning rate is measured in bench/RESULTS.md; paper and tutorial keep DCGAN's 2e-4.
ARCH_DEFAULTS = {
    "fast": {"g_width": 192, "d_width": 32, "lr_g": 6e-4, "lr_d": 6e-4},
    "paper": {"g_width": 256, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4},
    "tutorial": {"g_width": 256, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4},
}


def option(text: str, **kw):
    """A dataclass field with its --help text."""
    return field(metadata={"help": text}, **kw)


@dataclass
class TrainConfig:
    """Everything `ganimate train` needs; saved as RUN/config.json and inside every checkpoint."""

    dataset: str = option("mnist | fashion-mnist | cifar10 | synthetic | folder:PATH", default="mnist")
    out: str | None = option("run folder (default runs/<dataset>)", default=None)
    data_dir: str | None = option("folder holding the dataset files (searched first)", default=None)
    arch: str = option("fast (the CPU preset: 4x4 up/down-sampling, fewer channels) | paper (the seed paper's "
                       "DCGAN) | tutorial (TF DCGAN tutorial)", default="fast")
    conditional: bool | None = option("class-conditional G and D (default: when the data has labels)", default=None)
    image_size: int | None = option("image side in pixels (default: the dataset's; folders 64)", default=None)
    channels: int | None = option("1 (grey) or 3 (RGB) (default: the dataset's)", default=None)
    num_classes: int = option("set from the dataset", default=0)
    z_dim: int = option("latent size", default=100)
    g_width: int | None = option("channels of G's first feature map (default: fast 192, paper/tutorial 256)",
                                 default=None)
    d_width: int | None = option("channels of D's first convolution (default: fast 32, paper/tutorial 64)",
                                 default=None)
    bn_affine: bool = option("batch norm with scale and bias (the paper found without better)", default=False)
    epochs: int = option("training epochs", default=5)
    max_steps: int | None = option("stop after this many optimiser steps in total", default=None)
    batch_size: int = option("images per step", default=128)
    lr_g: float | None = option("Adam learning rate of G (default: fast 6e-4, paper/tutorial 2e-4)", default=None)
    lr_d: float | None = option("Adam learning rate of D (default: fast 6e-4, paper/tutorial 2e-4)", default=None)
    beta1: float = option("Adam beta1", default=0.5)
    beta2: float = option("Adam beta2", default=0.999)
    ema: bool = option("keep an exponential moving average of G for samples", default=True)
    ema_decay: float = option("EMA decay per step", default=0.999)
    seed: int = option("seed for weights, data order, noise and sample grids", default=0)
    log_every: int = option("log line every N batches (the paper's 400)", default=400)
    sample_every: int = option("also save a grid every N steps (0: only per epoch)", default=0)
    checkpoint_every: int = option("also checkpoint every N steps (0: only per epoch)", default=0)
    eval_every: int = option("append fd and class_acc to RUN/metrics.jsonl every N steps (0: never)", default=0)
    eval_n: int = option("generated images per --eval-every evaluation", default=2000)
    keep_checkpoints: int = option("how many recent checkpoints to keep", default=3)
    device: str = option("auto | cpu | cuda | cuda:N | mps", default="auto")
    precision: str = option("auto | fp32 | bf16 (bfloat16 autocast; weights stay fp32). auto: bf16 where the "
                            "CPU or GPU computes it natively, else fp32", default="auto")
    strict: bool = option("error on unreadable image files instead of skipping them", default=False)
    progress: bool | None = option("progress bar (default: when the terminal shows it)", default=None)

    # Settings a resumed run may change; everything else must match the saved config.
    RESUMABLE = ("epochs", "max_steps", "log_every", "sample_every", "checkpoint_every", "eval_every", "eval_n",
                 "keep_checkpoints", "device", "data_dir", "strict", "progress")

    def __post_init__(self):
        from ganimate.models.dcgan import ARCHS, upsampling_plan

        if self.arch in ARCHS:
            for name, value in ARCH_DEFAULTS[self.arch].items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        if not (self.dataset in DATASETS or self.dataset.startswith("folder:")):
            raise GanimateError(f"unknown dataset {self.dataset!r}: choose from {', '.join(DATASETS)}")
        if self.arch not in ARCHS:
            raise GanimateError(f"unknown arch {self.arch!r}: choose from {', '.join(ARCHS)}")
        for name in ("epochs", "batch_size", "z_dim", "g_width", "d_width", "log_every", "keep_checkpoints", "eval_n"):
            if getattr(self, name) <= 0:
                raise GanimateError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("sample_every", "checkpoint_every", "eval_every", "num_classes"):
            if getattr(self, name) < 0:
                raise GanimateError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise GanimateError(f"--max-steps must be positive, got {self.max_steps}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise GanimateError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and 0 <= self.ema_decay < 1):
            raise GanimateError("--beta1, --beta2 and --ema-decay must lie in [0, 1)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise GanimateError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.channels not in (None, 1, 3):
            raise GanimateError(f"--channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None:
            try:
                upsampling_plan(self.image_size)
            except ValueError as e:
                raise GanimateError(str(e)) from None
        if self.out is None:
            name = self.dataset.split(":", 1)[-1].rstrip("/").split("/")[-1] or "folder"
            self.out = str(Path("runs") / name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GanimateError(f"config has unknown settings {unknown}: written by a newer ganimate?")
        return cls(**d)


@dataclass
class SampleConfig:
    """`ganimate sample RUN`: draw images from a run's EMA generator."""

    run: str = option("run folder", default="")
    n: int = option("number of images", default=64)
    class_: int | None = option("class to draw (conditional runs; default: balanced over classes)", default=None)
    seed: int = option("seed of the latents; the same seed gives the same images", default=0)
    out: str | None = option("grid PNG to write (default RUN/generated/seed<S>.png unless --npz)", default=None)
    npz: str | None = option("write x (uint8) and y (labels) to this .npz", default=None)
    nrow: int | None = option("images per grid row (default: 10 when conditional, else ~sqrt(n))", default=None)
    checkpoint: str | None = option("checkpoint file or step (default: latest)", default=None)
    no_ema: bool = option("use the raw generator instead of its moving average", default=False)
    device: str = option("auto | cpu | cuda | mps", default="auto")

    def __post_init__(self):
        if self.n <= 0:
            raise GanimateError(f"--n must be positive, got {self.n}")
        if self.nrow is not None and self.nrow <= 0:
            raise GanimateError(f"--nrow must be positive, got {self.nrow}")


def print_config(cfg, log=print) -> None:
    """Print a config as the JSON that is saved with the run."""
    log(f"{type(cfg).__name__} " + json.dumps(dataclasses.asdict(cfg), indent=2))
