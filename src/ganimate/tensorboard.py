"""TensorBoard event files of a run folder: its stats, metrics and sample grids, converted after the fact.

The run folder's JSONL records stay the source of truth (as in stylegan2-ada-pytorch, whose
`stats.jsonl` is mirrored to TensorBoard); `export_tensorboard` rewrites RUN/tensorboard/ from them, so a
run made before `--tensorboard` existed converts as well, and a resumed run never shows steps twice.
Needs the optional `tensorboard` package (`pip install 'ganimate[tensorboard]'`).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ganimate.errors import GanimateError
from ganimate.images import open_image
from ganimate.runs import read_jsonl, read_marker, read_saved_config

INSTALL = "pip install 'ganimate[tensorboard]'"
BOOKKEEPING = {"step", "epoch", "time_s", "eval_s", "kind", "n", "seed", "val_n"}


def check_tensorboard() -> None:
    """A one-line error when the tensorboard package is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise GanimateError(f"--tensorboard needs the tensorboard package: {INSTALL}")


def _writer_class():
    check_tensorboard()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # tensorboard present but unusable (a version torch does not support)
        raise GanimateError(f"--tensorboard: torch cannot use the installed tensorboard ({e}); {INSTALL}") from None
    return SummaryWriter


def _scalars(record: dict) -> dict[str, float]:
    """The finite numbers of a record (bookkeeping left out)."""
    return {k: float(v) for k, v in record.items() if k not in BOOKKEEPING and isinstance(v, int | float)
            and not isinstance(v, bool) and math.isfinite(v)}


def _start_time(run_dir: Path) -> float | None:
    """The run's creation time (its marker) in seconds since the epoch: TensorBoard's wall-clock axis."""
    marker = read_marker(run_dir) or {}
    try:
        return datetime.datetime.fromisoformat(str(marker.get("created"))).timestamp()
    except ValueError:
        return None


def export_tensorboard(run_dir: str | Path, out: str | Path | None = None, log=print) -> Path:
    """Write the run's stats (train/…), training evaluations (eval/…), `ganimate evaluate` results (evaluate/…),
    reals.png and the sample grids (samples) as event files in `out` (default RUN/tensorboard/), replacing what a
    previous export left there. Returns the folder."""
    SummaryWriter = _writer_class()
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "tensorboard"
    start = _start_time(run_dir)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp."))
    try:
        writer = SummaryWriter(log_dir=str(tmp))

        def walltime(record: dict) -> float | None:
            t = record.get("time_s")
            return start + t if start is not None and isinstance(t, int | float) else None

        for record in read_jsonl(run_dir / "stats.jsonl", log):
            for key, value in _scalars(record).items():
                writer.add_scalar(f"train/{key}", value, int(record.get("step", 0)), walltime=walltime(record))
        for record in read_jsonl(run_dir / "metrics.jsonl", log):
            if not isinstance(record.get("step"), int):
                continue  # a restoration evaluation compares methods, not steps
            group = "eval" if record.get("kind") == "train" else "evaluate"
            for key, value in _scalars(record).items():
                writer.add_scalar(f"{group}/{key}", value, record["step"], walltime=walltime(record))
            for method, values in (record.get("methods") or {}).items():  # a clip evaluation
                for key, value in _scalars(values if isinstance(values, dict) else {}).items():
                    writer.add_scalar(f"evaluate/{method}/{key}", value, record["step"])
        if (run_dir / "reals.png").is_file():
            writer.add_image("reals", _rgb(run_dir / "reals.png"), 0, dataformats="HWC")
        for record in read_jsonl(run_dir / "samples" / "index.jsonl", log):
            path = run_dir / "samples" / str(record.get("file", ""))
            if path.suffix == ".png" and path.is_file() and path.parent == run_dir / "samples":
                writer.add_image("samples", _rgb(path), int(record.get("step", 0)), dataformats="HWC")
        if (run_dir / "config.json").is_file():
            text = json.dumps(read_saved_config(run_dir), indent=2)
            writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # markdown code block
        writer.close()
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(open_image(path).convert("RGB"))  # (H, W, 3) uint8
