"""The `ganimate` command: each subcommand parses into its config dataclass and calls a plain function.

Bad input of any kind ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing

from ganimate import __version__
from ganimate.errors import GanimateError

EXAMPLES = """examples:
  ganimate train --dataset mnist --epochs 5 --out runs/mnist
  ganimate train --dataset folder:~/pictures/cats --image-size 64 --out runs/cats
  ganimate train --out runs/mnist --resume --epochs 10
  ganimate sample runs/mnist --n 100 --seed 7 --out grid.png
  ganimate video runs/mnist
  ganimate interpolate runs/mnist --morph-classes all
  ganimate evaluate runs/mnist
  ganimate restore train --task denoise --dataset mnist --out runs/denoise
  ganimate clip train --task predict --out runs/clip-predict
  ganimate animate runs/clip-predict --image still.png --out clip.mp4 --samples 4
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise GanimateError(f"{self.prog}: {message}")


def _base_type(tp):
    """int | None -> (int, True)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def add_config_args(parser: argparse.ArgumentParser, cls, positional: tuple[str, ...] = (),
                    skip: tuple[str, ...] = ()) -> None:
    """One option per dataclass field (`--batch-size`, `--no-ema` ...); only given options are set."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, _ = _base_type(hints[f.name])
        help_ = f.metadata.get("help", "")
        if f.name in positional:
            optional = f.default is None
            parser.add_argument(f.name, type=tp, help=help_, nargs="?" if optional else None,
                                default=argparse.SUPPRESS if optional else None)
            continue
        flag = "--" + f.name.rstrip("_").replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None:
            help_ = f"{help_} (default: {default})"
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_)
        else:
            parser.add_argument(flag, dest=f.name, type=tp, default=argparse.SUPPRESS, metavar=tp.__name__.upper(),
                                help=help_)


def _given(ns: argparse.Namespace, cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(ns).items() if k in names}


def training_config(ns: argparse.Namespace, cls):
    """A training command's config: new from the given options, or the run's saved one with --resume."""
    from ganimate.runs import resume_config

    given = _given(ns, cls)
    if ns.resume and ns.overwrite:
        raise GanimateError("--resume and --overwrite exclude each other")
    if ns.resume:
        if "out" not in given:
            raise GanimateError("--resume needs --out RUN, the run folder to continue")
        return resume_config(given["out"], given, cls)
    return cls(**given)


def cmd_train(ns: argparse.Namespace) -> int:
    from ganimate.config import TrainConfig, print_config
    from ganimate.train import fit

    cfg = training_config(ns, TrainConfig)
    if ns.dry_run:
        from ganimate.data import dataset_info
        from ganimate.models import build_models, count_params

        info = dataset_info(cfg.dataset)
        for key in ("image_size", "channels"):
            if getattr(cfg, key) is None:
                setattr(cfg, key, info.get(key) or (64 if key == "image_size" else 3))
        if not cfg.num_classes:
            cfg.num_classes = info.get("num_classes") or 0
        if cfg.conditional is None:
            cfg.conditional = cfg.num_classes > 0
        print_config(cfg)
        G, D = build_models(cfg)
        print(f"G {count_params(G):,} params, D {count_params(D):,} params; dry run: nothing written")
        return 0
    fit(cfg, resume=ns.resume, overwrite=ns.overwrite)
    return 0


def run_command(cls, function):
    """A subcommand that builds `cls` from the given options and prints the paths `function` returns."""

    def command(ns: argparse.Namespace) -> int:
        for path in function(cls(**_given(ns, cls))) or []:
            print(path)
        return 0

    return command


def build_parser() -> argparse.ArgumentParser:
    from ganimate.config import SampleConfig, TrainConfig
    from ganimate.metrics.evaluate import EvaluateConfig
    from ganimate.video import VideoConfig
    from ganimate.walks import InterpolateConfig

    parser = _Parser(prog="ganimate", description="Train DCGANs on images and turn what they learn into video.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ganimate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a DCGAN; leaves a resumable run folder")
    add_config_args(p, TrainConfig, skip=("num_classes",))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder at --out and start over")
    p.add_argument("--dry-run", action="store_true", help="print the config and model sizes, write nothing")
    p.set_defaults(func=cmd_train)

    from ganimate.metrics.evaluate import run_evaluate
    from ganimate.sample import run_sample
    from ganimate.video import make_timelapse
    from ganimate.walks import run_interpolate

    for name, help_, cls, function in (
        ("sample", "draw images from a run's generator", SampleConfig, run_sample),
        ("video", "timelapse video of a run's sample grids (MP4 / GIF)", VideoConfig, make_timelapse),
        ("interpolate", "latent walks and class morphs as video", InterpolateConfig, run_interpolate),
        ("evaluate", "quality metrics of a run: FD, precision/recall, class accuracy, CAS, 1-NN", EvaluateConfig,
         lambda cfg: run_evaluate(cfg) and None),
    ):
        p = sub.add_parser(name, help=help_)
        add_config_args(p, cls, positional=("run",))
        p.set_defaults(func=run_command(cls, function))

    # Command groups that live beside their code (image restoration, video from images).
    from ganimate.restore.cli import add_restore_commands
    add_restore_commands(sub)
    from ganimate.clips.cli import add_clip_commands
    add_clip_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        ns = parser.parse_args(argv)
        if ns.command is None:
            parser.print_help()
            return 2
        return ns.func(ns)
    except GanimateError as e:
        print(f"ganimate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganimate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
