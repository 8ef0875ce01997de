"""The clip commands: `ganimate clip train|evaluate`, `ganimate animate` and `ganimate inbetween`."""

from __future__ import annotations

from ganimate.cliargs import Parser, add_config_args, add_train_command, run_command
from ganimate.clips.apply import AnimateConfig, InbetweenConfig, animate, inbetween
from ganimate.clips.config import ClipTrainConfig
from ganimate.clips.evaluate import ClipEvaluateConfig, run_clip_evaluate
from ganimate.clips.train import fit_clips
from ganimate.models.clip import build_clip_models


def add_clip_commands(sub) -> None:
    """Add `clip` (train, evaluate), `animate` and `inbetween` to the `ganimate` subparsers `sub`."""
    clip = sub.add_parser("clip", help="video from images on Moving MNIST: train and evaluate clip runs")
    clip_sub = clip.add_subparsers(dest="clip_command", metavar="COMMAND", parser_class=Parser)
    clip.set_defaults(func=lambda ns: clip.print_help() or 2)

    add_train_command(clip_sub, "train", "train a predict or inbetween clip GAN or a forecast model; leaves a "
                      "resumable run folder", ClipTrainConfig, fit_clips, build_clip_models)

    p = clip_sub.add_parser("evaluate", help="PSNR/SSIM, digit identity and FD of a clip run and its baselines")
    add_config_args(p, ClipEvaluateConfig, positional=("run",))
    p.set_defaults(func=run_command(ClipEvaluateConfig, lambda cfg: run_clip_evaluate(cfg) and None))

    p = sub.add_parser("animate", help="clips from one still with a predict run (grid of --samples clips)")
    add_config_args(p, AnimateConfig, positional=("run",))
    p.set_defaults(func=run_command(AnimateConfig, animate))

    p = sub.add_parser("inbetween", help="the frames between a first and a last image with an inbetween run")
    add_config_args(p, InbetweenConfig, positional=("run", "first", "last"))
    p.set_defaults(func=run_command(InbetweenConfig, inbetween))
