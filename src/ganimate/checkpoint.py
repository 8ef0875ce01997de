"""Checkpoints: everything needed to resume or sample, written atomically, loaded safely.

A checkpoint is a dict of tensors and plain values saved with ``torch.save`` and read
back with ``torch.load(weights_only=True)``, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from ganimate import __version__
from ganimate.errors import GanimateError
from ganimate.images import atomic_write

FORMAT = "ganimate-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors in a nested state (dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(map(_tensor_bytes, obj.values()))
    if isinstance(obj, list | tuple):
        return sum(map(_tensor_bytes, obj))
    return 0


def save_checkpoint(state: dict, run_dir: str | Path, step: int, keep: int = 3) -> Path:
    """Write `state` as checkpoints/step_XXXXXXX.pt atomically and prune to the `keep` newest."""
    path = checkpoint_path(Path(run_dir), step)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "ganimate_version": __version__, **state}
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, a full disk is an OSError (ENOSPC), not a zip error
            torch.save(state, f)

    atomic_write(path, write, need=_tensor_bytes(state))
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def resolve_checkpoint(run_dir: str | Path, checkpoint: str | None = None) -> Path:
    """A checkpoint path from a file name, a step number, or (None) the latest in the run."""
    run_dir = Path(run_dir)
    if checkpoint is None:
        found = list_checkpoints(run_dir)
        if not found:
            raise GanimateError(f"{run_dir} has no checkpoint in {run_dir / 'checkpoints'}: train first")
        return found[-1]
    if checkpoint.isdigit():
        path = checkpoint_path(run_dir, int(checkpoint))
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise GanimateError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load and check a ganimate checkpoint; anything else is a one-line GanimateError."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        if "Weights only load failed" in str(e):
            reason = "it holds objects other than tensors, which the safe loader refuses"
        else:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise GanimateError(f"{path} is not a ganimate checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanimateError(f"{path} is not a ganimate checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise GanimateError(f"{path} was written by a newer ganimate ({state.get('ganimate_version')})")
    return state
