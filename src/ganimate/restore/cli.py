"""`ganimate restore train|apply|evaluate`: thin commands over `fit_restore`, `apply_restore` and
`run_restore_evaluate`."""

from __future__ import annotations

from ganimate.cliargs import Parser, add_config_args, add_train_command, run_command
from ganimate.data import dataset_info
from ganimate.errors import GanimateError
from ganimate.restore.apply import RestoreApplyConfig, apply_restore
from ganimate.restore.config import RestoreTrainConfig
from ganimate.restore.evaluate import RestoreEvaluateConfig, run_restore_evaluate
from ganimate.restore.model import build_restore_models
from ganimate.restore.train import fit_restore


def restore_models(cfg: RestoreTrainConfig):
    """`ganimate restore train --dry-run`: image size and channels from the dataset's description, and (G, D);
    a folder's are known only once its images are read."""
    info = dataset_info(cfg.dataset)
    if info.get("image_size") is None or info.get("channels") is None:
        return (f"{cfg.dataset} is a folder: its image size and channels, and so the model sizes, are known "
                "only once training reads the images")
    cfg.image_size, cfg.channels = info["image_size"], info["channels"]
    cfg.degradation.check_size(cfg.image_size)
    if cfg.image_size % 4:
        raise GanimateError(f"the restoration model needs an image size divisible by 4, got {cfg.image_size}")
    return build_restore_models(cfg)


def add_restore_commands(sub) -> None:
    """Add `restore` with its train, apply and evaluate subcommands to the `ganimate` subparsers."""
    group = sub.add_parser("restore", help="image restoration (super-resolution, denoising, deblurring) with "
                                           "the DCGAN design, against tuned classical baselines")
    rsub = group.add_subparsers(dest="restore_command", metavar="COMMAND", parser_class=Parser)
    group.set_defaults(func=lambda ns: group.print_help() or 2)

    add_train_command(rsub, "train", "train a restoration GAN (--adv-weight 0: the L1-only ablation)",
                      RestoreTrainConfig, fit_restore, restore_models, skip=("image_size", "channels"))

    p = rsub.add_parser("apply", help="restore your own degraded PNG images with a run")
    add_config_args(p, RestoreApplyConfig, positional=("run", "input"))
    p.set_defaults(func=run_command(RestoreApplyConfig, apply_restore))

    p = rsub.add_parser("evaluate", help="PSNR, SSIM, class accuracy and FD of runs and tuned baselines")
    add_config_args(p, RestoreEvaluateConfig, positional=("run",))
    p.set_defaults(func=run_command(RestoreEvaluateConfig, run_restore_evaluate))
