"""The `ganimate` command: each subcommand parses into its config dataclass and calls a plain function.

Bad input of any kind ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ganimate import __version__, runtime
from ganimate.augment import resolve_augment, resolve_consistency
from ganimate.cliargs import Parser, add_config_args, add_train_command, run_command
from ganimate.clips.cli import add_clip_commands
from ganimate.config import SampleConfig, TrainConfig
from ganimate.data import cache as cachefiles
from ganimate.data import dataset_info, folder
from ganimate.errors import GanimateError, os_error_message
from ganimate.metrics.evaluate import EvaluateConfig, run_evaluate
from ganimate.models import build_models
from ganimate.project import ProjectConfig, run_project
from ganimate.report import ReportConfig, run_report
from ganimate.restore.cli import add_restore_commands
from ganimate.sample import run_sample
from ganimate.train import fit
from ganimate.video import VideoConfig, make_timelapse
from ganimate.walks import InterpolateConfig, run_interpolate

EXAMPLES = """examples:
  ganimate train --dataset mnist --epochs 5 --out runs/mnist
  ganimate train --dataset folder:~/pictures/cats --image-size 64 --out runs/cats
  ganimate train --out runs/mnist --resume --epochs 10
  ganimate sample runs/mnist --n 100 --seed 7 --out grid.png
  ganimate video runs/mnist
  ganimate interpolate runs/mnist --morph-classes all
  ganimate project runs/mnist my_digits/ --out projected/ && ganimate interpolate runs/mnist --images a.png b.png
  ganimate evaluate runs/mnist
  ganimate report runs/mnist                   # runs/mnist/report.html: plots, grids, videos, evaluation
  ganimate restore train --task denoise --dataset mnist --out runs/denoise
  ganimate restore train --task sr --dry-run
  ganimate clip train --task predict --out runs/clip-predict
  ganimate animate runs/clip-predict --image still.png --out clip.mp4 --samples 4
"""


def train_models(cfg: TrainConfig):
    """`ganimate train --dry-run`: the config completed from the dataset's description, and (G, D)."""
    info = dataset_info(cfg.dataset)
    root = Path(cfg.dataset[len("folder:"):]).expanduser() if cfg.dataset.startswith("folder:") else None
    n_images = info.get("train_images")
    if root is not None and root.is_dir():
        scanned = folder.scan(root)
        files = [rel for rel, _, _ in scanned]
        n_images = len(files)
        if cfg.image_size is None:  # the size training would choose (from the note a run left, if any)
            where = cachefiles.usable_dir(cfg.data_folders(), lambda _: None) if cfg.cache else None
            cfg.image_size = folder.native_size(root, files, cfg.crop, print, where=where,
                                                listing=cachefiles.listing_key(scanned))
    if n_images is not None:  # what --augment auto (and --consistency's default with it) will choose
        cfg.consistency = resolve_consistency(cfg.consistency, cfg.augment, n_images)
        cfg.augment = resolve_augment(cfg.augment, n_images)
    for key in ("image_size", "channels"):
        if getattr(cfg, key) is None:
            setattr(cfg, key, info.get(key) or (64 if key == "image_size" else 3))
    if not cfg.num_classes:
        cfg.num_classes = info.get("num_classes") or 0
    if cfg.conditional is None:
        cfg.conditional = cfg.num_classes > 0
    return build_models(cfg)


def build_parser() -> argparse.ArgumentParser:
    """The command table: the image GAN's commands here, then each subpackage's."""
    parser = Parser(prog="ganimate", description="Train DCGANs on images and turn what they learn into video.",
                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ganimate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    add_train_command(sub, "train", "train a DCGAN; leaves a resumable run folder", TrainConfig, fit, train_models,
                      skip=("num_classes",))
    for name, help_, cls, function in (
        ("sample", "draw images from a run's generator", SampleConfig, run_sample),
        ("video", "timelapse video of a run's sample grids (MP4 / GIF)", VideoConfig, make_timelapse),
        ("interpolate", "latent walks and class morphs as video", InterpolateConfig, run_interpolate),
        ("evaluate", "quality metrics of a run: FD, KID, precision/recall, class accuracy, CAS, 1-NN", EvaluateConfig,
         lambda cfg: run_evaluate(cfg) and None),
        ("report", "an HTML page of a run: plots, grids, videos, evaluation, config, commands", ReportConfig,
         run_report),
        ("project", "find the latent (and class) of your own images in a run's generator", ProjectConfig, run_project),
    ):
        p = sub.add_parser(name, help=help_)
        add_config_args(p, cls, positional=("run", "images") if name == "project" else ("run",))
        p.set_defaults(func=run_command(cls, function))

    add_restore_commands(sub)  # image restoration
    add_clip_commands(sub)  # video from images
    return parser


def main(argv: list[str] | None = None) -> int:
    runtime.keep_freed_memory()
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
    except OSError as e:  # disk full, permissions, read-only disks, folders where files are expected
        print(f"ganimate: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # what the estimates (ganimate.memory) did not foresee
        if isinstance(e, RuntimeError) and not (isinstance(e, torch.OutOfMemoryError)
                                                or "can't allocate memory" in str(e)):
            raise
        print("ganimate: error: out of memory: use smaller sizes (--n, --batch-size, --grid, --scale, --samples, "
              "--g-width ...)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganimate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
