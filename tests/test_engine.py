"""The engine's contract, checked once against every trainer (image, restoration, clips): the same files and
stats keys, Ctrl-C and --max-minutes leave a checkpoint that resumes bit-exactly, a finished run is refused."""

import signal

import pytest
import torch

from ganimate import engine
from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.clips.config import ClipTrainConfig
from ganimate.clips.train import ClipTask
from ganimate.config import TrainConfig
from ganimate.errors import GanimateError
from ganimate.restore.config import RestoreTrainConfig
from ganimate.restore.train import RestoreTask
from ganimate.runs import read_jsonl, resume_config
from ganimate.train import ImageTask

COMMON = dict(device="cpu", progress=False, precision="fp32", log_every=2, max_steps=6, eval_every=0)
TRAINERS = {
    "image": (TrainConfig, ImageTask, dict(dataset="synthetic", z_dim=16, g_width=32, d_width=8, batch_size=50,
                                           epochs=1)),
    "restore": (RestoreTrainConfig, RestoreTask, dict(dataset="synthetic", task="denoise", g_width=8, d_width=8,
                                                      batch_size=50, val_size=1500, epochs=1)),
    "clip": (ClipTrainConfig, ClipTask, dict(dataset="moving-synthetic", size=32, frames=4, g_width=4, d_width=4,
                                             z_dim=8, batch_size=4, eval_clips=4, task="predict")),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def config(trainer, tmp_path, name, **kw):
    cls, _, settings = TRAINERS[trainer]
    return cls(**{**settings, **COMMON, "out": str(tmp_path / name), **kw})


def train(trainer, cfg, resume=False, interrupt_at=None):
    """engine.run with the trainer's task; interrupt_at: raise SIGINT (Ctrl-C) inside that step."""
    task_cls = TRAINERS[trainer][1]

    class Task(task_cls):
        def train_step(self, batch):
            stats = super().train_step(batch)
            self.steps_done = getattr(self, "steps_done", 0) + 1
            if interrupt_at is not None and self.steps_done == interrupt_at:
                signal.raise_signal(signal.SIGINT)
            return stats

    return engine.run(cfg, Task, resume=resume)


def assert_same_state(a, b):
    assert a["step"] == b["step"]
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        for i, s in a[key]["state"].items():
            for k, v in s.items():
                assert torch.equal(v, b[key]["state"][i][k]), f"{key} state {i}.{k} differs"


def latest(run):
    return load_checkpoint(list_checkpoints(run)[-1])


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_ctrl_c_then_resume_matches_an_uninterrupted_run(trainer, tmp_path):
    full = train(trainer, config(trainer, tmp_path, "full", eval_every=4))
    with pytest.raises(KeyboardInterrupt):
        train(trainer, config(trainer, tmp_path, "part", eval_every=4), interrupt_at=3)
    part = tmp_path / "part"
    assert latest(part)["step"] == 3
    assert "interrupted at step 3" in (part / "log.txt").read_text()
    train(trainer, resume_config(part, {}, type(config(trainer, tmp_path, "x"))), resume=True)
    assert_same_state(latest(full), latest(part))

    # the same files and the same stats keys for every trainer; records continue after a resume
    for run in (full, part):
        assert {"config.json", "log.txt", "stats.jsonl", "metrics.jsonl", "samples", "checkpoints"} <= {
            p.name for p in run.iterdir()}
        stats = read_jsonl(run / "stats.jsonl")
        assert {"step", "samples_per_s", "time_s", "loss_d"} <= set(stats[-1])
        assert [r["step"] for r in stats] == ([2, 4, 6] if run == full else [2, 3, 4, 6])
        assert [(r["step"], r["kind"]) for r in read_jsonl(run / "metrics.jsonl")] == [(4, "train"), (6, "train")]
        index = read_jsonl(run / "samples" / "index.jsonl")
        assert index[-1]["step"] == 6 and (run / "samples" / index[-1]["file"]).is_file()


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_max_minutes_stops_with_a_checkpoint_and_a_finished_run_is_refused(trainer, tmp_path):
    cls = type(config(trainer, tmp_path, "x"))
    run = train(trainer, config(trainer, tmp_path, "run", max_minutes=1e-9))
    assert latest(run)["step"] == 1
    assert "--max-minutes 1e-09 reached at step 1" in (run / "log.txt").read_text()
    train(trainer, resume_config(run, {"max_minutes": None, "max_steps": 2}, cls), resume=True)
    assert latest(run)["step"] == 2
    with pytest.raises(GanimateError, match="already at step 2"):
        train(trainer, resume_config(run, {}, cls), resume=True)


def test_lr_decay_falls_to_zero_and_a_resume_may_add_it(tmp_path):
    """--lr-decay N: the rates fall linearly over the last N steps; a run resumed with the decay added (before
    the decay starts) ends where a run with it from the start ends, whatever rates its checkpoint saved."""
    assert [engine.lr_factor(s, 6, 4) for s in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert engine.lr_factor(5, 6, 0) == 1.0
    cls = type(config("image", tmp_path, "x"))
    full = train("image", config("image", tmp_path, "full", lr_decay=4))
    lrs = [g["lr"] for g in latest(full)["opt_G"]["param_groups"]]
    assert lrs == [pytest.approx(6e-4 * 0.25)]  # the fast arch's lr_g, at the last step's factor
    assert "decaying linearly to zero from step 2" in (full / "log.txt").read_text()

    part = train("image", config("image", tmp_path, "part", max_steps=2))
    train("image", resume_config(part, {"max_steps": 6, "lr_decay": 4}, cls), resume=True)
    assert_same_state(latest(full), latest(part))
    const = latest(train("image", config("image", tmp_path, "const")))["G"]
    assert any(not torch.equal(t, latest(full)["G"][k]) for k, t in const.items())  # the decay changed the weights

    with pytest.raises(GanimateError, match="--lr-decay 7 is more than the run's 6 steps"):
        train("image", config("image", tmp_path, "long", lr_decay=7))
    assert not (tmp_path / "long").exists()


def test_lr_decay_up_to_one_is_a_share_of_the_run(tmp_path):
    """--lr-decay 0.6 of a 6-step run decays over its last 4 steps (rounded), the same training as --lr-decay 4; 1 is
    the whole run, not one step; a fraction of a step above 1 is a one-line error, with nothing written."""
    assert [engine.decay_steps(d, 7500) for d in (0, 1 / 3, 0.5, 1, 1.0, 2, 2500, 2500.0)] == \
        [0, 2500, 3750, 7500, 7500, 2, 2500, 2500]
    assert engine.decay_steps(1e-9, 6) == 1
    steps = train("image", config("image", tmp_path, "steps", lr_decay=4))
    share = train("image", config("image", tmp_path, "share", lr_decay=0.6))
    assert_same_state(latest(steps), latest(share))
    assert "decaying linearly to zero from step 2" in (share / "log.txt").read_text()
    with pytest.raises(GanimateError, match="a share of the run up to 1 or a whole number of steps, got 2.5"):
        train("image", config("image", tmp_path, "odd", lr_decay=2.5))
    assert not (tmp_path / "odd").exists()
