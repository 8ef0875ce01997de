"""`RestoreTrainConfig`: the settings of `ganimate restore train`, saved with every restoration run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganimate.config import TrainBase, check_image_dataset, default_out, option
from ganimate.errors import GanimateError
from ganimate.restore.degrade import Degradation
from ganimate.runs import read_saved_config


@dataclass
class RestoreTrainConfig(TrainBase):
    """Everything `ganimate restore train` needs; saved as RUN/config.json and inside every checkpoint."""

    dataset: str = option("mnist | fashion-mnist | cifar10 | synthetic | folder:PATH", default="mnist")
    out: str | None = option("run folder (default runs/restore-<dataset>-<task>)", default=None)
    eval_every: int = option("validation PSNR/SSIM into RUN/metrics.jsonl every N steps and at the end (0: never)",
                             nonneg=True, default=1000)
    task: str = option("sr | denoise | deblur", default="sr")
    factor: int = option("sr: downscaling factor, 2 or 4", default=4)
    sigma: float = option("denoise: noise standard deviation as a share of the pixel range", default=0.2)
    blur_sigma: float = option("deblur: Gaussian blur sigma in pixels", default=1.5)
    blur_noise: float = option("deblur: noise added after the blur (share of the pixel range)", default=0.01)
    image_size: int = option("set from the dataset", default=0)
    channels: int = option("set from the dataset", default=0)
    g_width: int = option("channels of G's first feature map", positive=True, default=32)
    d_width: int = option("channels of D's first convolution", positive=True, default=32)
    bn_affine: bool = option("batch norm with scale and bias", default=True)
    adv_weight: float = option("weight of the adversarial loss; 0 trains the L1-only ablation (no D)", nonneg=True,
                               default=0.01)
    l1_weight: float = option("weight of the L1 reconstruction loss (images in [-1, 1])", nonneg=True, default=1.0)
    epochs: int = option("training epochs", positive=True, default=1)
    val_size: int = option("last training images held out for validation and baseline tuning", positive=True,
                           default=5000)

    RESUMABLE = (*TrainBase.RESUMABLE, "epochs")

    def __post_init__(self):
        Degradation.of(self)  # validates task, factor, sigma and the blur settings
        check_image_dataset(self.dataset)
        super().__post_init__()
        if self.adv_weight == 0 and self.l1_weight == 0:
            raise GanimateError("--adv-weight and --l1-weight cannot both be 0")
        if self.out is None:
            self.out = default_out("restore-", self.dataset) + f"-{self.task}"

    @property
    def degradation(self) -> Degradation:
        return Degradation.of(self)

    @property
    def method(self) -> str:
        return "GAN" if self.adv_weight > 0 else "L1-only"

    @classmethod
    def from_dict(cls, d: dict) -> RestoreTrainConfig:
        if "task" not in d:
            raise GanimateError("not a restoration run: its config.json has no task (a `ganimate train` run?)")
        return super().from_dict.__func__(cls, d)


def read_run_config(run_dir: str | Path) -> RestoreTrainConfig:
    """The saved config of a restoration run; one-line errors for anything else."""
    return RestoreTrainConfig.from_dict(read_saved_config(run_dir))
