"""The clip commands: `ganimate clip train|evaluate`, `ganimate animate` and `ganimate inbetween`."""

from __future__ import annotations

import argparse


def cmd_clip_train(ns: argparse.Namespace) -> int:
    from ganimate.cli import training_config
    from ganimate.clips.train import ClipTrainConfig, fit_clips

    cfg = training_config(ns, ClipTrainConfig)
    if ns.dry_run:
        from ganimate.config import print_config
        from ganimate.models import count_params
        from ganimate.models.clip import build_clip_models

        print_config(cfg)
        G, D = build_clip_models(cfg)
        print(f"G {count_params(G):,} params, D {count_params(D):,} params; dry run: nothing written")
        return 0
    fit_clips(cfg, resume=ns.resume, overwrite=ns.overwrite)
    return 0


def add_clip_commands(sub) -> None:
    """Add `clip` (train, evaluate), `animate` and `inbetween` to the `ganimate` subparsers `sub`."""
    from ganimate.cli import add_config_args, run_command
    from ganimate.clips.apply import AnimateConfig, InbetweenConfig, animate, inbetween
    from ganimate.clips.evaluate import ClipEvaluateConfig, run_clip_evaluate
    from ganimate.clips.train import ClipTrainConfig

    clip = sub.add_parser("clip", help="video from images on Moving MNIST: train and evaluate clip runs")
    clip_sub = clip.add_subparsers(dest="clip_command", metavar="COMMAND", parser_class=type(clip))
    clip.set_defaults(func=lambda ns: clip.print_help() or 2)

    p = clip_sub.add_parser("train", help="train a predict or inbetween clip GAN; leaves a resumable run folder")
    add_config_args(p, ClipTrainConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder at --out and start over")
    p.add_argument("--dry-run", action="store_true", help="print the config and model sizes, write nothing")
    p.set_defaults(func=cmd_clip_train)

    p = clip_sub.add_parser("evaluate", help="PSNR/SSIM, digit identity and FD of a clip run and its baselines")
    add_config_args(p, ClipEvaluateConfig, positional=("run",))
    p.set_defaults(func=run_command(ClipEvaluateConfig, lambda cfg: run_clip_evaluate(cfg) and None))

    p = sub.add_parser("animate", help="clips from one still with a predict run (grid of --samples clips)")
    add_config_args(p, AnimateConfig, positional=("run",))
    p.set_defaults(func=run_command(AnimateConfig, animate))

    p = sub.add_parser("inbetween", help="the frames between a first and a last image with an inbetween run")
    add_config_args(p, InbetweenConfig, positional=("run", "first", "last"))
    p.set_defaults(func=run_command(InbetweenConfig, inbetween))
