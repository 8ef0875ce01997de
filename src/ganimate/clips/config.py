"""`ClipTrainConfig`: the settings of `ganimate clip train`, saved with every clip run."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

from ganimate.config import TrainBase, option, preset_help
from ganimate.data.moving_mnist import SIZES, clip_dataset_names, is_clip_dataset
from ganimate.errors import GanimateError
from ganimate.models.clip import BASES, SYNTHESES, TASKS, VIEWS, spatial_plan

# `ganimate clip train --preset NAME`: the settings of the runs in reports/video_from_images.md
CLIP_PRESETS: dict[str, dict] = {
    # in-betweening where the digit travels (2 px a frame): the warp generator keeps it legible
    "inbetween-48": {"task": "inbetween", "synthesis": "warp", "size": 48, "digits": 1, "frames": 10,
                     "g_width": 32, "adv_weight": 0.1, "max_steps": 1500},
    # Srivastava et al.'s canvas: two digits on 64x64, 3.6 px a frame, 10-frame clips; two motion layers
    # (one per digit, flows on a 16x16 grid) learn ~4x faster per step than one flow field; the squared error
    # trains toward the mean PSNR rewards (+0.3 dB over L1 early on; softer digits than L1, still ahead of
    # optical flow's); G's own frames are the output (2 views: +0.2 dB, crop FD past optical flow's); the rates
    # decay to zero over the last 900 steps
    "inbetween-64": {"task": "inbetween", "synthesis": "warp", "size": 64, "digits": 2, "frames": 10,
                     "g_width": 16, "adv_weight": 0.1, "layers": 2, "flow_grid": 4, "recon_loss": "l2",
                     "max_steps": 5600, "lr_decay": 900},
    # the standard benchmark: 10 frames -> the next 10 on 64x64 clips of two digits, 30 minutes of CPU
    "forecast-mmnist": {"task": "forecast", "size": 64, "digits": 2, "frames": 20, "context": 10, "g_width": 8,
                        "lr_g": 0.001, "beta1": 0.9, "ema_decay": 0.995, "max_steps": 100000,
                        "max_minutes": 30.0, "eval_every": 200, "sample_every": 1000, "eval_clips": 256},
}


@dataclass
class ClipTrainConfig(TrainBase):
    """Everything `ganimate clip train` needs; saved as RUN/config.json and inside every checkpoint."""

    PRESETS: typing.ClassVar[dict[str, dict]] = CLIP_PRESETS
    RESUMABLE = (*TrainBase.RESUMABLE, "views")  # an inference setting: the weights do not depend on it
    preset: str | None = option(preset_help("a clip preset", CLIP_PRESETS), choices=tuple(CLIP_PRESETS),
                                default=None)
    dataset: str = option("moving-mnist | moving-synthetic (bars, for tests) | npy:PATH (mnist_test_seq.npy)",
                          default="moving-mnist")
    out: str | None = option("run folder (default runs/clip-<preset or task>)", default=None)
    data_dir: str | None = option("folder holding the MNIST files (searched first)", default=None)
    max_steps: int | None = option("optimiser steps in total", positive=True, default=3000)
    batch_size: int = option("clips per step", positive=True, default=16)
    log_every: int = option("log line every N steps", positive=True, default=50)
    eval_every: int = option("validation PSNR on fixed test clips every N steps and at the end (0: never)",
                             nonneg=True, default=250)
    sample_every: int = option("side-by-side sample video every N steps (0: only at the end)", nonneg=True,
                               default=500)
    checkpoint_every: int = option("checkpoint every N steps (and at the end)", nonneg=True, default=500)
    task: str = option("predict (a clip from its first frame) | inbetween (frames between first and last) | "
                       "forecast (the frames after the first --context ones, deterministic: the standard "
                       "Moving MNIST benchmark)", choices=TASKS, default="inbetween")
    context: int | None = option("forecast: frames given (default half of --frames: 10 of the standard 20); the "
                                 "model predicts the other ones", positive=True, default=None)
    digits: int = option("digits per clip: 1 or 2", default=1)
    size: int = option("canvas side: 32 or 48 (CPU presets) or 64 (standard)", default=32)
    frames: int = option("frames per clip T (20 is the standard)", default=10)
    base: str = option("inbetween: the clip G corrects: flow (optical-flow interpolation of the key frames) | "
                       "crossfade", choices=BASES, default="flow")
    synthesis: str = option("inbetween: how G makes the frames: paint (it corrects --base pixel by pixel) | warp (it "
                            "moves the key frames' pixels: a flow into each key frame and a blend mask per frame, "
                            "so digits stay as legible as in the key frames)", choices=SYNTHESES, default="paint")
    flow_grid: int = option("inbetween --synthesis warp: predict the flows and masks on a grid of 1/N of the side "
                            "(1, 2, 4, ...) and upsample them, so that a digit moves as one piece", positive=True,
                            default=1)
    cost_volume: bool = option("inbetween --synthesis warp: also give the U-Net the correlation of the two key "
                               "frames' features over displacements up to half the side, so that it can tell which "
                               "digit went where", default=False)
    layers: int = option("inbetween --synthesis warp: motion layers: each key frame is split into N layers that "
                         "move on their own and are summed (2 for two digits that cross; 1: one flow field)",
                         positive=True, default=1)
    views: int = option("inbetween: the frames of validation, samples, `clip evaluate` and `inbetween` are the mean "
                        "of G's over N symmetric views of the key frames (1; 2: also swapped, the clip reversed in "
                        "time; 4: also mirrored; 8: also upside down; 16: also transposed): N passes of G, training "
                        "unchanged", default=1)
    z_dim: int = option("noise size of the predict generator", positive=True, default=32)
    g_width: int = option("channels of G's full-resolution layers", positive=True, default=16)
    d_width: int = option("channels of D's first layer", positive=True, default=16)
    adv_weight: float | None = option("weight of the adversarial loss in G's loss (default 1, forecast: 0)",
                                      nonneg=True, default=None)
    recon_loss: str | None = option("the reconstruction loss: l1 (the absolute error: sharp, the median of what the "
                                    "given frames leave open) | l2 (the squared error: their mean, which PSNR "
                                    "rewards); default l1, forecast l2", choices=("l1", "l2"), default=None)
    recon_weight: float = option("weight of the reconstruction loss in G's loss", nonneg=True,
                                 default=100.0)
    recon_samples: int = option("predict: noise draws per still; the best one's error is the loss", positive=True,
                                default=3)
    eval_clips: int = option("test clips of the validation PSNR", positive=True, default=64)

    def __post_init__(self):
        if not is_clip_dataset(self.dataset):
            raise GanimateError(f"unknown clip dataset {self.dataset!r}: choose from {', '.join(clip_dataset_names())}")
        super().__post_init__()
        if self.max_steps is None:
            raise GanimateError("--max-steps is needed: clip training has no epochs")
        if self.digits not in (1, 2):
            raise GanimateError(f"--digits must be 1 or 2, got {self.digits}")
        if self.size < 28:
            raise GanimateError(f"--size must hold a 28x28 digit ({', '.join(map(str, SIZES))}), got {self.size}")
        try:
            spatial_plan(self.size)
        except ValueError as e:
            raise GanimateError(str(e)) from None
        if self.flow_grid & (self.flow_grid - 1) or self.flow_grid > 2 ** spatial_plan(self.size):
            raise GanimateError(f"--flow-grid must be a power of 2 up to {2 ** spatial_plan(self.size)} for --size "
                                f"{self.size}, got {self.flow_grid}")
        if self.views not in VIEWS:
            raise GanimateError(f"--views must be {', '.join(map(str, VIEWS[:-1]))} or {VIEWS[-1]}, got {self.views}")
        if self.views > 1 and self.task != "inbetween":
            raise GanimateError(f"--views is for --task inbetween, not {self.task}")
        if self.frames < 3:
            raise GanimateError(f"--frames must be at least 3, got {self.frames}")
        if self.task == "forecast":
            self.context = self.frames // 2 if self.context is None else self.context
            if not 0 < self.context < self.frames:
                raise GanimateError(f"--context must be less than --frames ({self.frames}), got {self.context}")
            if self.size % 8:
                raise GanimateError(f"--task forecast needs a --size that is a multiple of 8, got {self.size}")
        if self.adv_weight is None:
            self.adv_weight = 0.0 if self.task == "forecast" else 1.0
        if self.recon_loss is None:
            self.recon_loss = "l2" if self.task == "forecast" else "l1"
        if self.out is None:
            self.out = str(Path("runs") / f"clip-{self.preset or self.task}")

    @classmethod
    def from_dict(cls, d: dict) -> ClipTrainConfig:
        """Unknown settings are an error; runs saved before --base existed corrected the cross-fade."""
        if "task" not in d:
            raise GanimateError("not a clip run: its config.json has no task (train one with `ganimate clip train`)")
        return super().from_dict.__func__(cls, {"base": "crossfade", **d})
