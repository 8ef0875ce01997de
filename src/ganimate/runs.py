"""Run folders: creating and reopening them, the log, JSONL records, saved configs and generator loading.

A run folder holds config.json, log.txt, stats.jsonl (interval training statistics), metrics.jsonl
(evaluations), samples/ (listed in samples/index.jsonl) and checkpoints/.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import uuid
from pathlib import Path

from tqdm import tqdm

from ganimate.checkpoint import load_checkpoint, resolve_checkpoint
from ganimate.config import print_config
from ganimate.errors import GanimateError
from ganimate.images import atomic_write, inside

RECORDS = ("stats.jsonl", "metrics.jsonl", "samples/index.jsonl")
MARKER = ".ganimate-run"  # what makes a folder ganimate's: format, version, run id
LOCK = ".lock"  # the pid of the process training the run


class RunLog:
    """Prints a line and appends it to RUN/log.txt; lines logged before the run folder exists (loading the
    data) are kept and written when `attach` names the file. A muted log (the processes other than rank 0
    under torchrun) says nothing."""

    def __init__(self, path: Path | None = None, bar_active=lambda: False, muted: bool = False):
        self.path, self.bar_active, self.pending, self.muted = path, bar_active, [], muted

    def attach(self, path: Path) -> None:
        self.path = path
        with open(path, "a") as f:
            f.writelines(line + "\n" for line in self.pending)
        self.pending = []

    def __call__(self, line: str) -> None:
        if self.muted:
            return
        if self.bar_active():
            tqdm.write(line)
        else:
            print(line, flush=True)
        if self.path is None:
            self.pending.append(line)
            return
        with open(self.path, "a") as f:
            f.write(line + "\n")


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record as a JSON line (stats, metrics and sample indexes all go through here)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _parse_lines(path: Path, warn=print) -> list[tuple[str, dict]]:
    """(line, record) pairs of a JSONL file; a torn last line (a write cut short) is dropped with a warning."""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]  # damage is not UTF-8
    out = []
    for k, ln in enumerate(lines):
        try:
            record = json.loads(ln)
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                warn(f"warning: ignoring a torn last line in {path}")
                break
            raise GanimateError(f"{path} line {k + 1} is not JSON: the file is damaged") from None
        if not isinstance(record, dict):
            raise GanimateError(f"{path} line {k + 1} is not a JSON object: the file is damaged")
        out.append((ln, record))
    return out


def read_jsonl(path: str | Path, warn=print) -> list[dict]:
    """The records of a JSONL file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [record for _, record in _parse_lines(path, warn)]


def trim_jsonl(path: Path, max_step: int, warn=print) -> None:
    """Drop records past `max_step` (written after the checkpoint a resume starts from) and a torn last line."""
    if not path.exists():
        return
    keep = [ln for ln, record in _parse_lines(path, warn) if record.get("step", 0) <= max_step]
    text = "".join(ln + "\n" for ln in keep)
    atomic_write(path, lambda tmp: tmp.write_text(text))


# What a run folder may hold besides ganimate's marker: an older run folder (no marker) is recognised by them.
RUN_ENTRIES = frozenset({"config.json", "log.txt", "stats.jsonl", "metrics.jsonl", "reals.png", "samples",
                         "checkpoints", "videos", "generated", "restore_eval.md", "report.html", "plots", "tensorboard",
                         MARKER, LOCK})


def read_marker(run_dir: Path) -> dict | None:
    """RUN/.ganimate-run, the file that makes a folder ganimate's run folder (None where there is none)."""
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not even UTF-8
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == "ganimate-run" else None


def write_marker(run_dir: Path) -> dict:
    marker = {"format": "ganimate-run", "version": 1, "run_id": uuid.uuid4().hex,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    text = json.dumps(marker) + "\n"
    atomic_write(run_dir / MARKER, lambda tmp: tmp.write_text(text))
    return marker


def is_run_folder(run_dir: Path) -> bool:
    """Whether ganimate made `run_dir`: its marker, or (runs from before the marker) only run-folder entries
    and a config.json that is a ganimate config."""
    if read_marker(run_dir) is not None:
        return True
    try:
        names = {p.name for p in run_dir.iterdir()}
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return names <= RUN_ENTRIES and isinstance(saved, dict) and {"seed", "out", "dataset"} <= set(saved)


def check_outside_data(run_dir: Path, data_folders) -> None:
    """Refuse a run folder that lies inside a data folder or holds one (ganimate never writes into data)."""
    out = run_dir.expanduser().resolve()
    for folder in data_folders:
        folder = Path(folder).expanduser().resolve()
        if inside(out, folder):
            raise GanimateError(f"refusing to write {run_dir} inside the data folder {folder}: choose another --out")
        if inside(folder, out):
            raise GanimateError(f"refusing to use {run_dir}: it holds the data folder {folder}")


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing folder unless asked; --overwrite only clears ganimate's run folders."""
    if resume:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise GanimateError(f"{run_dir} exists and is not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise GanimateError(f"{run_dir} already exists: use --resume to continue it or --overwrite to start over")
        if not is_run_folder(run_dir):
            raise GanimateError(f"refusing to overwrite {run_dir}: it is not a ganimate run folder (no {MARKER}, "
                                f"and it holds other files)")
        shutil.rmtree(run_dir)


class RunLock:
    """RUN/.lock holds the pid of the process training the run; a second process gets a one-line error.
    A lock left by a dead process (or by this one) is taken over."""

    def __init__(self, run_dir: Path):
        self.path, self.held = run_dir / LOCK, False

    def _owner(self) -> int | None:
        try:
            pid = int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid == os.getpid():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # stale: its process is gone
        except PermissionError:
            return pid
        return pid

    def check(self) -> None:
        """A one-line error when another live process holds the run."""
        pid = self._owner()
        if pid is not None:
            raise GanimateError(f"{self.path.parent} is in use by process {pid} (its {LOCK}); wait for it or "
                                f"stop it first")

    def acquire(self) -> None:
        self.check()
        self.path.write_text(f"{os.getpid()}\n")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def open_run(run_dir: Path, cfg, log: RunLog, *, resume: bool, overwrite: bool, step: int = 0,
             ckpt_path: Path | None = None, lock: RunLock | None = None) -> dict:
    """Create (or reopen) a run folder: its marker, config.json, log.txt, samples/; a resume drops the record
    lines written after its checkpoint. Takes the run's lock; returns the marker. The config is printed."""
    check_outside_data(run_dir, cfg.data_folders())
    lock = lock or RunLock(run_dir)
    if run_dir.is_dir():
        lock.check()
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    lock.acquire()
    marker = read_marker(run_dir) or write_marker(run_dir)
    log.attach(run_dir / "log.txt")
    config_text = json.dumps(cfg.to_dict(), indent=2) + "\n"
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(config_text))
    if resume:
        for name in RECORDS:
            trim_jsonl(run_dir / name, step, log)
        log(f"resuming {run_dir} from {ckpt_path.name} (step {step:,})" if ckpt_path else
            f"resuming {run_dir}: it has no checkpoint yet, so training starts over")
    print_config(cfg, log)
    return marker


def read_saved_config(run_dir: str | Path) -> dict:
    """RUN/config.json as a dict; one-line errors for a missing or broken file."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise GanimateError(f"{run_dir} is not a run folder: no config.json there")
    try:
        saved = json.loads(path.read_text())
    except ValueError as e:  # not JSON, or not even UTF-8
        reason = " ".join(str(e).split())[:100]
        raise GanimateError(f"{path} is not valid JSON ({reason})") from None
    if not isinstance(saved, dict):
        raise GanimateError(f"{path} is not a ganimate config")
    return saved


def resume_config(run_dir: str | Path, overrides: dict, cls):
    """The saved config of a run (a `cls`: TrainConfig, RestoreTrainConfig, ClipTrainConfig), with only the
    settings a resume may change (`cls.RESUMABLE`) taken from `overrides`."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise GanimateError(f"cannot resume {run_dir}: no config.json there")
    try:
        saved = read_saved_config(run_dir)
    except GanimateError as e:
        raise GanimateError(f"cannot resume {run_dir}: {e}") from None
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in overrides.items():
        if key == "out" or key in cls.RESUMABLE or value is None or value == "auto":
            continue  # "auto" (--augment, --labels) is what the run resolved when it started
        if key not in saved:
            if key in defaults and value == defaults[key]:
                continue  # a setting newer than the run, given at its default
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

    G, cfg, _ = load_run_generator(run_dir, TrainConfig, lambda c: build_models(c, training=False), checkpoint,
                                   device, ema)
    return G, cfg
