"""Run folders: creating and reopening them, the log, JSONL records, saved configs and generator loading.

A run folder holds config.json, log.txt, stats.jsonl (interval training statistics), metrics.jsonl
(evaluations), samples/ (listed in samples/index.jsonl) and checkpoints/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm import tqdm

from ganimate.checkpoint import list_checkpoints, load_checkpoint, resolve_checkpoint
from ganimate.config import print_config
from ganimate.errors import GanimateError
from ganimate.images import atomic_write

RECORDS = ("stats.jsonl", "metrics.jsonl", "samples/index.jsonl")


class RunLog:
    """Prints a line and appends it to RUN/log.txt (once `path` is set)."""

    def __init__(self, path: Path | None = None, bar_active=lambda: False):
        self.path, self.bar_active = path, bar_active

    def __call__(self, line: str) -> None:
        if self.bar_active():
            tqdm.write(line)
        else:
            print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record as a JSON line (stats, metrics and sample indexes all go through here)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSONL file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def trim_jsonl(path: Path, max_step: int) -> None:
    """Drop records past `max_step` (written after the checkpoint a resume starts from)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= max_step]
    text = "".join(ln + "\n" for ln in keep)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing folder unless asked; --overwrite only clears run folders."""
    if resume:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise GanimateError(f"{run_dir} exists and is not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise GanimateError(f"{run_dir} already exists: use --resume to continue it or --overwrite to start over")
        if not (run_dir / "config.json").is_file():
            raise GanimateError(f"refusing to overwrite {run_dir}: it is not a ganimate run folder (no config.json)")
        shutil.rmtree(run_dir)


def open_run(run_dir: Path, cfg, log: RunLog, *, resume: bool, overwrite: bool, step: int = 0,
             ckpt_path: Path | None = None) -> None:
    """Create (or reopen) a run folder: config.json, log.txt, samples/; a resume drops the record lines
    written after its checkpoint. The config is printed to the log."""
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    log.path = run_dir / "log.txt"
    config_text = json.dumps(cfg.to_dict(), indent=2) + "\n"
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(config_text))
    if resume:
        for name in RECORDS:
            trim_jsonl(run_dir / name, step)
        log(f"resuming {run_dir} from {ckpt_path.name} (step {step:,})")
    print_config(cfg, log)


def read_saved_config(run_dir: str | Path) -> dict:
    """RUN/config.json as a dict; one-line errors for a missing or broken file."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise GanimateError(f"{run_dir} is not a run folder: no config.json there")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GanimateError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(saved, dict):
        raise GanimateError(f"{path} is not a ganimate config")
    return saved


def resume_config(run_dir: str | Path, overrides: dict, cls):
    """The saved config of a run (a `cls`: TrainConfig, RestoreTrainConfig, ClipTrainConfig), with only the
    settings a resume may change (`cls.RESUMABLE`) taken from `overrides`."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise GanimateError(f"cannot resume {run_dir}: no config.json there")
    if not list_checkpoints(run_dir):
        raise GanimateError(f"cannot resume {run_dir}: it has no checkpoint")
    try:
        saved = read_saved_config(run_dir)
    except GanimateError as e:
        raise GanimateError(f"cannot resume {run_dir}: {e}") from None
    for key, value in overrides.items():
        if key == "out" or key in cls.RESUMABLE or value is None:
            continue
        if key not in saved:
            raise GanimateError(f"cannot resume {run_dir}: unknown setting {key}")
        if saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise GanimateError(
                f"{flag} {value} conflicts with the run's saved {key}={saved[key]}: "
                f"a resumed run keeps its settings (start a new run to change it)"
            )
    merged = {**saved, **{k: v for k, v in overrides.items() if k in cls.RESUMABLE}, "out": str(run_dir)}
    return cls.from_dict(merged)


def load_run_generator(run_dir: str | Path, cls, build, checkpoint: str | None = None, device="cpu",
                       ema: bool = True):
    """(G in eval mode, config, checkpoint state) of a run, rebuilt from a checkpoint alone.

    `cls` reads the checkpoint's config (its from_dict refuses a run of another kind with one line);
    `build(cfg)` returns (G, D).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    state = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    cfg = cls.from_dict(state.get("config", {}))
    G, _ = build(cfg)
    weights = state["G_ema"] if ema and state.get("G_ema") is not None else state.get("G")
    try:
        G.load_state_dict(weights)
    except (RuntimeError, TypeError, KeyError, AttributeError) as e:
        reason = str(e).splitlines()[0][:100]
        raise GanimateError(f"checkpoint of {run_dir} does not fit its config ({reason})") from None
    return G.to(device).eval(), cfg, state


def load_generator(run_dir: str | Path, checkpoint: str | None = None, device: str = "cpu", ema: bool = True):
    """Rebuild an image run's generator (`ganimate train`) from a checkpoint alone: (G in eval mode, TrainConfig)."""
    from ganimate.config import TrainConfig
    from ganimate.models import build_models

    G, cfg, _ = load_run_generator(run_dir, TrainConfig, build_models, checkpoint, device, ema)
    return G, cfg
