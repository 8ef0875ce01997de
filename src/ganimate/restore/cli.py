"""`ganimate restore train|apply|evaluate`: thin commands over `fit_restore`, `apply_restore` and
`run_restore_evaluate`."""

from __future__ import annotations

import argparse


def cmd_restore_train(ns: argparse.Namespace) -> int:
    from ganimate.cli import training_config
    from ganimate.restore.train import RestoreTrainConfig, fit_restore

    cfg = training_config(ns, RestoreTrainConfig)
    fit_restore(cfg, resume=ns.resume, overwrite=ns.overwrite)
    return 0


def add_restore_commands(sub) -> None:
    """Add `restore` with its train, apply and evaluate subcommands to the `ganimate` subparsers."""
    from ganimate.cli import _Parser, add_config_args, run_command
    from ganimate.restore.apply import RestoreApplyConfig, apply_restore
    from ganimate.restore.evaluate import RestoreEvaluateConfig, run_restore_evaluate
    from ganimate.restore.train import RestoreTrainConfig

    group = sub.add_parser("restore", help="image restoration (super-resolution, denoising, deblurring) with "
                                           "the DCGAN design, against tuned classical baselines")
    rsub = group.add_subparsers(dest="restore_command", metavar="COMMAND", parser_class=_Parser)
    group.set_defaults(func=lambda ns: group.print_help() or 2)

    p = rsub.add_parser("train", help="train a restoration GAN (--adv-weight 0: the L1-only ablation)")
    add_config_args(p, RestoreTrainConfig, skip=("image_size", "channels"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder at --out and start over")
    p.set_defaults(func=cmd_restore_train)

    p = rsub.add_parser("apply", help="restore your own degraded PNG images with a run")
    add_config_args(p, RestoreApplyConfig, positional=("run", "input"))
    p.set_defaults(func=run_command(RestoreApplyConfig, apply_restore))

    p = rsub.add_parser("evaluate", help="PSNR, SSIM, class accuracy and FD of runs and tuned baselines")
    add_config_args(p, RestoreEvaluateConfig, positional=("run",))
    p.set_defaults(func=run_command(RestoreEvaluateConfig, run_restore_evaluate))
