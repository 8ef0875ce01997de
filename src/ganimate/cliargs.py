"""Argparse helpers the command modules share: one option per config field, one-line errors, and the
training subcommand every trainer gets (`--resume`, `--overwrite`, `--dry-run`).

This sits below the command modules (cli.py and each subpackage's cli.py import it at their top), so
the command table is built top-down with no import going back up.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable

from ganimate.config import print_config, with_preset
from ganimate.errors import GanimateError
from ganimate.models import count_params
from ganimate.runs import resume_config


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose own errors are GanimateErrors: one line on stderr, exit code 2."""

    def error(self, message: str):
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
        nargs = None
        if typing.get_origin(tp) is list:  # list[str]: one or more values
            tp, nargs = typing.get_args(tp)[0], "+"
        help_ = f.metadata.get("help", "")
        if f.name in positional:
            optional = f.default is None
            parser.add_argument(f.name, type=tp, help=help_, nargs=nargs or ("?" if optional else None),
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
                                nargs=nargs, help=help_)


def _given(ns: argparse.Namespace, cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(ns).items() if k in names}


def training_config(ns: argparse.Namespace, cls):
    """A training command's config: new from the given options, or the run's saved one with --resume."""
    given = _given(ns, cls)
    if ns.resume and ns.overwrite:
        raise GanimateError("--resume and --overwrite exclude each other")
    if ns.resume:
        if "out" not in given:
            raise GanimateError("--resume needs --out RUN, the run folder to continue")
        return resume_config(given["out"], given, cls)
    return cls(**with_preset(given, getattr(cls, "PRESETS", {})))


def run_command(cls, function):
    """A subcommand that builds `cls` from the given options and prints the paths `function` returns."""

    def command(ns: argparse.Namespace) -> int:
        for path in function(cls(**_given(ns, cls))) or []:
            print(path)
        return 0

    return command


def add_train_command(sub, name: str, help_: str, cls, fit: Callable, models: Callable,
                      skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A training subcommand with the options of config class `cls` and the flags every trainer shares.

    `fit(cfg, resume=, overwrite=)` trains. `--dry-run` calls `models(cfg)` instead, which completes the
    config from the dataset's description and returns (G, D), or a sentence saying why the sizes are not
    known before the data is read; the config and the sizes are printed and nothing is written.
    """
    p = sub.add_parser(name, help=help_)
    add_config_args(p, cls, skip=skip)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder at --out and start over")
    p.add_argument("--dry-run", action="store_true", help="print the config and the model sizes, write nothing")

    def command(ns: argparse.Namespace) -> int:
        cfg = training_config(ns, cls)
        if not ns.dry_run:
            fit(cfg, resume=ns.resume, overwrite=ns.overwrite)
            return 0
        built = models(cfg)
        print_config(cfg)
        if isinstance(built, str):
            print(f"{built}; dry run: nothing written")
        else:
            G, D = built
            print(f"G {count_params(G):,} params, D {count_params(D):,} params; dry run: nothing written")
        return 0

    p.set_defaults(func=command)
    return p
