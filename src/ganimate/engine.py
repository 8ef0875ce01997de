"""The training loop every trainer runs: the schedule, the progress bar, interval stats, Ctrl-C, resume,
sample / evaluate / checkpoint, `--max-steps` / `--epochs` / `--max-minutes`.

A trainer is a task object (in the spirit of stylegan2-ada-pytorch's training_loop.py, whose loop walks
phases and leaves the losses to `loss.accumulate_gradients`): it loads its data, builds its networks,
takes one optimisation step on a batch, writes a sample and evaluates. Everything else lives here, once:

- data order: `epoch_indices` (a permutation per epoch, a function of seed and epoch) for datasets
  with epochs; tasks that draw an endless stream (clips) have no epochs;
- every `log_every` steps: one line in log.txt and one record in stats.jsonl (means since the last line,
  `samples_per_s` of training alone, `time_s` over all sessions);
- every `eval_every` steps and at the end: the task's evaluation, one record in metrics.jsonl;
- every `sample_every` steps (step_XXXXXX), at each epoch's end (epoch_XXXX) and at the end: a sample
  (grid or video) in samples/, listed in samples/index.jsonl;
- every `report_every` steps and at the end (unless --no-report): RUN/report.html, and RUN/tensorboard/ with
  --tensorboard (report.py);
- every `checkpoint_every` steps, at each epoch's end and at the end (also on Ctrl-C and at
  `--max-minutes`): a checkpoint that resumes bit for bit on CPU. A task with training state of its own
  (the image task's ADA probability) defines `state_dict()` / `load_state_dict(state)`, kept under "task".

Under torchrun (distributed.py) every process runs this loop on its share of each global batch; the ranks
agree on stopping, skipping and the logged means, and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from ganimate.checkpoint import list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint
from ganimate.distributed import World, first_line, init_world, is_collective_failure
from ganimate.errors import GanimateError
from ganimate.gan import GanState
from ganimate.report import check_reporting, report_hook
from ganimate.runs import RunLock, RunLog, append_jsonl, open_run, read_marker
from ganimate.runtime import resolve_device, resolve_precision


class Task(Protocol):
    """What a trainer gives the engine. `cfg` is a `config.TrainBase`; the engine sets `gan` and `world` before
    `start`. Batches and noise are drawn for the global batch (cfg.batch_size) from the same generators on every
    process; a train_step keeps its process's rows (`world.rows`) before the networks see them."""

    unit: str  # what one training sample is called in the log: "img", "clip"
    steps_per_epoch: int | None  # None: an endless stream, the run's length is --max-steps alone
    gan: GanState
    world: World

    def build_models(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(G, D), built from the config (the engine seeds torch first)."""

    def describe(self) -> list[str]:
        """Log lines on the data and the networks, written after the config."""

    def start(self, run_dir: Path) -> None:
        """Move data to the device, draw fixed sample inputs, write what a run shows once (reals.png)."""

    def batches(self, step: int) -> Iterator[Any]:
        """Training batches from `step` on, the same ones whether or not the run was resumed."""

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        """One optimisation step; detached scalar tensors for the interval means, and `skipped` (a float,
        1.0 when a non-finite loss left the step out: gan.d_update / g_update)."""

    def format_stats(self, means: dict[str, float]) -> str:
        """The losses part of a log line."""

    def prepare_outputs(self) -> None:
        """Called before a step's evaluation, sample or checkpoint (e.g. re-estimate the EMA's batch norm)."""

    def write_sample(self, run_dir: Path, stem: str) -> str:
        """Write a sample file samples/<stem>.<ext>; return its file name."""

    def evaluate(self) -> dict:
        """Metrics of the current generator (numbers only), or {} when there is nothing to score."""

    def fingerprint(self) -> str | None:
        """A digest of the training data, checked on resume (None: not checked); see `data_fingerprint`."""

    # Optional: `state_dict() -> dict` and `load_state_dict(state: dict)` for training state of the task's own
    # (tensors, numbers), saved in every checkpoint under "task" and restored on resume.


def data_fingerprint(*tensors: torch.Tensor | None) -> str:
    """sha256 of the shapes and bytes of the training data (uint8 images, labels): resume refuses other data."""
    h = hashlib.sha256()
    for t in tensors:
        if t is not None:
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


MAX_SKIPPED = 20  # consecutive steps with non-finite losses after which a run stops as diverged


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch, a function of (seed, epoch) alone so resume can rebuild it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def epoch_indices(n: int, batch_size: int, seed: int, step: int, device) -> Iterator[torch.Tensor]:
    """Index batches (B,) into a dataset of n items from optimiser step `step` on, epoch after epoch;
    a partial last batch is dropped."""
    spe = n // batch_size
    while True:
        perm = epoch_permutation(seed, step // spe, n).to(device)
        for b in range(step % spe, spe):
            yield perm[b * batch_size : (b + 1) * batch_size]
            step += 1


class _Interval:
    """Running sums of a task's step stats between two log lines, and the training time they took."""

    def __init__(self):
        self.steps, self.skipped, self.sums, self.seconds, self.t0 = 0, 0, {}, 0.0, time.perf_counter()

    def add(self, stats: dict, skipped: float = 0.0) -> None:
        self.steps += 1
        self.skipped += int(skipped)
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()

    def pause(self) -> None:
        """Stop the clock (outputs are not training); `resume` starts it again."""
        self.seconds += time.perf_counter() - self.t0

    def resume(self) -> None:
        self.t0 = time.perf_counter()

    def means(self) -> dict[str, float]:
        return {k: float(v) / self.steps for k, v in self.sums.items()}


class _StopOnSigint:
    """Ctrl-C asks the loop to stop after the current step (with a checkpoint) instead of killing it."""

    def __init__(self):
        self.requested, self.previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, *_):
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def lr_factor(step: int, total: int, decay: int) -> float:
    """The learning rates' factor for the step after `step` steps of `total`: 1, then with `decay` > 0 falling
    linearly over the last `decay` steps (1 at the first of them, 1/decay at the last)."""
    return 1.0 if decay <= 0 else min(1.0, (total - step) / decay)


def decay_steps(decay: float, total: int) -> int:
    """`--lr-decay` as a number of steps of a run of `total`: the share N of them when N is at most 1 (1: the whole
    run), N steps above 1."""
    if 0 < decay <= 1:
        return max(1, round(decay * total))
    if decay != int(decay):
        raise GanimateError(f"--lr-decay must be a share of the run up to 1 or a whole number of steps, got {decay}")
    return int(decay)


def _every(step: int, n: int) -> bool:
    return bool(n) and step % n == 0


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"


def run(cfg, make_task, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train `make_task(cfg, device, log)` into the run folder cfg.out (or continue it with resume=True);
    returns the run folder. Ctrl-C saves a checkpoint and raises KeyboardInterrupt. Under torchrun this runs
    in every process (see distributed.py)."""
    check_reporting(cfg)  # --tensorboard without its package: one line now, not after training
    world, device = init_world(cfg.device, cfg.dist_timeout)
    finished = False
    try:
        run_dir = _run(cfg, make_task, world, device or resolve_device(cfg.device), resume, overwrite)
        finished = True
        return run_dir
    except Exception as e:
        if world.active and is_collective_failure(e):
            raise GanimateError(f"process {world.rank} of {world.size} stopped: another process died or did not "
                                f"answer within --dist-timeout {cfg.dist_timeout:g} min ({first_line(e)}); the last "
                                f"checkpoint is whole: continue with --resume") from None
        raise
    finally:
        world.close(together=finished)


def _latest_checkpoint(run_dir: Path, resume: bool) -> tuple[dict | None, Path | None]:
    found = list_checkpoints(run_dir) if resume else []
    ckpt_path = found[-1] if found else None  # a run without a checkpoint yet starts over
    return (load_checkpoint(ckpt_path) if ckpt_path else None), ckpt_path


def _run(cfg, make_task, world: World, device: torch.device, resume: bool, overwrite: bool) -> Path:
    run_dir = Path(cfg.out)
    state, ckpt_path = world.from_main(lambda: _latest_checkpoint(run_dir, resume))  # rank 0 reads, all get it
    log = RunLog(None, muted=not world.main)

    task = make_task(cfg, device, log)  # loads the data; fills the config's data-derived fields
    task.world = world
    cfg.precision = resolve_precision(cfg.precision, device, getattr(task, "cpu_bf16", True))
    world.local_batch(cfg.batch_size)
    spe = task.steps_per_epoch
    if spe is None:
        total, more = cfg.max_steps, "--max-steps"
    else:
        total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.epochs * spe, cfg.max_steps)
        more = "--epochs or --max-steps"

    torch.manual_seed(cfg.seed)
    gan = task.gan = GanState.create(*task.build_models(), lr_g=cfg.lr_g, lr_d=cfg.lr_d,
                                     betas=(cfg.beta1, cfg.beta2), seed=cfg.seed, ema=getattr(cfg, "ema", True),
                                     precision=cfg.precision, device=device, loss=getattr(cfg, "loss", "bce"),
                                     r1=getattr(cfg, "r1", 0.0))
    decay = decay_steps(cfg.lr_decay, total)
    if decay > total:
        by_preset = getattr(cfg, "PRESETS", {}).get(getattr(cfg, "preset", None), {}).get("lr_decay") == cfg.lr_decay
        hint = f" (--preset {cfg.preset} sets it; give --lr-decay 0 or fewer steps)" if by_preset else ""
        raise GanimateError(f"--lr-decay {decay:,} is more than the run's {total:,} steps{hint}")
    step, elapsed = gan.resume(state, ckpt_path, device, total, more)
    if state is None and getattr(cfg, "init_from", None):
        source = resolve_checkpoint(cfg.init_from) if Path(cfg.init_from).is_dir() else Path(cfg.init_from)
        gan.load_weights(world.from_main(lambda: load_checkpoint(source)), source)
        log(f"weights from {source} (--init-from); optimisers and step start afresh")
    if state is not None and hasattr(task, "load_state_dict"):
        task.load_state_dict(state.get("task") or {})
    fingerprint = task.fingerprint()
    world.same_everywhere(fingerprint, "the training data")
    if world.active:  # dropout draws its masks from the global generator: a stream of each process's own
        torch.manual_seed(cfg.seed * 1_000_003 + step * 1009 + world.rank)

    lock = RunLock(run_dir)

    def open_folder() -> dict:
        if state is not None:
            _check_resume(state, ckpt_path, run_dir, fingerprint)
        return open_run(run_dir, cfg, log, resume=resume, overwrite=overwrite, step=step, ckpt_path=ckpt_path,
                        lock=lock)

    marker = world.from_main(open_folder)
    try:
        gan.distribute(world, cfg.sync_bn)
        return _train(cfg, task, gan, log, run_dir, device, step, total, elapsed,
                      {"run_id": marker["run_id"], "data": fingerprint}, ckpt_path, world)
    finally:
        if world.main:
            lock.release()


def _check_resume(state: dict, ckpt_path: Path, run_dir: Path, fingerprint: str | None) -> None:
    """A resumed checkpoint must be its run's own, and the data the run was trained on."""
    marker = read_marker(run_dir)
    if marker and state.get("run_id") and state["run_id"] != marker["run_id"]:
        raise GanimateError(f"{ckpt_path} belongs to another run (run id {state['run_id'][:8]}, this run's is "
                            f"{marker['run_id'][:8]}): copy whole run folders, not checkpoints")
    if fingerprint and state.get("data") and state["data"] != fingerprint:
        raise GanimateError(f"--resume: the training data differs from the data {run_dir} was trained on "
                            f"(fingerprint {fingerprint[:12]}, the run's {state['data'][:12]}): check --data-dir")


def _train(cfg, task, gan: GanState, log, run_dir: Path, device, step: int, total: int, elapsed: float,
           identity: dict, last_saved: Path | None, world: World) -> Path:
    """The loop itself, from `step` to `total` (run's set-up done and the run locked). Every process runs it;
    rank 0 alone writes."""
    spe = task.steps_per_epoch
    main = world.main
    decay = decay_steps(cfg.lr_decay, total)
    for line in task.describe():
        log(line)
    if world.active:
        log(f"distributed: {world.size} processes ({world.backend}), {world.local_batch(cfg.batch_size)} of the "
            f"global batch of {cfg.batch_size} each, batch norm "
            f"{'synchronised over the global batch' if cfg.sync_bn else 'per process (--no-sync-bn)'}")
    log((f"{spe:,} steps per epoch, " if spe else "") + f"training to step {total:,}" +
        (f", learning rates decaying linearly to zero from step {total - decay:,}" if decay else ""))
    task.start(run_dir)

    t_start = time.perf_counter()

    def wall_s() -> float:
        return elapsed + time.perf_counter() - t_start

    def epoch_of(s: int) -> dict:
        return {"epoch": -(-s // spe)} if spe else {}

    def sample(stem: str, kind: str) -> None:
        name = task.write_sample(run_dir, stem)
        append_jsonl(run_dir / "samples" / "index.jsonl", {"file": name, "step": step, **epoch_of(step), "kind": kind})

    def evaluate() -> None:
        t = time.perf_counter()
        result = task.evaluate()
        record = {"step": step, "time_s": round(wall_s(), 2), "kind": "train", **result,
                  "eval_s": round(time.perf_counter() - t, 2)}
        append_jsonl(run_dir / "metrics.jsonl", record)
        shown = " ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float | int))
        log(f"eval at step {step:,}: {shown or 'n/a'} ({time.perf_counter() - t:.1f} s)")

    def diverged(why: str) -> GanimateError:
        kept = f"the last checkpoint, {last_saved}, is finite: resume from it" if last_saved else "no checkpoint"
        return GanimateError(f"training diverged at step {step:,}: {why}; {kept} with a lower --lr-g / --lr-d")

    def checkpoint() -> Path | None:
        if not gan.finite():
            raise diverged("the weights are no longer finite, so no checkpoint was written")
        if not main:
            return None
        own = {"task": task.state_dict()} if hasattr(task, "state_dict") else {}
        return save_checkpoint({"config": cfg.to_dict(), "step": step, **({"epoch": step // spe} if spe else {}),
                                "elapsed_s": wall_s(), **identity, **gan.state_dict(device), **own},
                               run_dir, step, keep=cfg.keep_checkpoints)

    def world_means(means: dict[str, float]) -> dict[str, float]:
        """The interval's means over all processes (each process's losses are of its own rows)."""
        if not world.active:
            return means
        t = world.sum(torch.tensor(list(means.values()), dtype=torch.float64, device=device)) / world.size
        return dict(zip(means, t.tolist(), strict=True))

    show_bar = main and (cfg.progress if cfg.progress is not None else sys.stderr.isatty())
    interval = _Interval()
    stopped = out_of_time = False
    skipped_in_a_row = 0
    gan.G.train(), gan.D.train()
    with _StopOnSigint() as sigint:
        bar = tqdm(total=total, initial=step, disable=not show_bar, leave=False, dynamic_ncols=True)
        log.bar_active = lambda: not bar.disable  # print through the bar while it shows
        try:
            for batch in task.batches(step):
                gan.scale_lr(lr_factor(step, total, decay))
                stats = task.train_step(batch)
                step += 1
                skipped = stats.pop("skipped", 0.0)
                skipped_in_a_row = skipped_in_a_row + 1 if skipped else 0
                if skipped_in_a_row >= MAX_SKIPPED:
                    raise diverged(f"the last {MAX_SKIPPED} steps had non-finite losses and were skipped")
                gan.update_ema(step, cfg.ema_decay)
                interval.add(stats, skipped)
                bar.update(1)

                out_of_time = cfg.max_minutes is not None and wall_s() / 60 >= cfg.max_minutes
                stopped = sigint.requested
                if world.active:  # every process stops at the same step
                    out_of_time, stopped = world.any([out_of_time, stopped], device)
                last = step >= total or out_of_time or stopped
                epoch_end = bool(spe) and step % spe == 0
                evaluating = bool(cfg.eval_every) and (step % cfg.eval_every == 0 or (last and not stopped))
                samples = [(f"step_{step:06d}", "step")] if _every(step, cfg.sample_every) else []
                if epoch_end:
                    samples.append((f"epoch_{step // spe:04d}", "epoch"))
                elif last and not samples:
                    samples.append((f"step_{step:06d}", "step"))
                saving = _every(step, cfg.checkpoint_every) or epoch_end or last

                interval.pause()
                if step % cfg.log_every == 0 or last:
                    means, seconds = world_means(interval.means()), max(interval.seconds, 1e-9)
                    rate = interval.steps * cfg.batch_size / seconds
                    if main:
                        append_jsonl(run_dir / "stats.jsonl", {
                            "step": step, **epoch_of(step), **{k: round(v, 5) for k, v in means.items()},
                            "skipped": interval.skipped, "samples_per_s": round(rate, 2),
                            "time_s": round(wall_s(), 2)})
                    where = f"epoch {-(-step // spe)} " if spe else ""
                    log(f"{where}step {step:,}/{total:,} | {task.format_stats(means)} | "
                        f"{_fmt_rate(rate)} {task.unit}/s | {wall_s() / 60:.1f} min")
                    bar.set_postfix_str(f"{task.format_stats(means)} {_fmt_rate(rate)} {task.unit}/s")
                    interval = _Interval()
                if evaluating or samples or saving:
                    task.prepare_outputs()
                if evaluating and main:
                    evaluate()
                for stem, kind in samples if main else []:
                    sample(stem, kind)
                if saving:
                    saved = last_saved = checkpoint()
                    if epoch_end and main:
                        log(f"epoch {step // spe} done at step {step:,} ({wall_s() / 60:.1f} min): "
                            f"samples/ and checkpoints/{saved.name}")
                if main:
                    report_hook(run_dir, cfg, step, final=last, log=log)  # RUN/report.html (+ tensorboard/) when due
                interval.resume()
                if last:
                    break
        finally:
            bar.close()
            log.bar_active = lambda: False

    if stopped:
        log(f"interrupted at step {step:,}; checkpoint saved, continue with --resume")
        raise KeyboardInterrupt
    if out_of_time:
        log(f"--max-minutes {cfg.max_minutes} reached at step {step:,}; continue with --resume")
    log(f"done: step {step:,} in {(time.perf_counter() - t_start) / 60:.1f} min this session "
        f"({wall_s() / 60:.1f} min in all); samples and checkpoints in {run_dir}")
    return run_dir
