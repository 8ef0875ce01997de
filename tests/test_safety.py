"""Nothing lost (issue 14, the training side): --overwrite only clears ganimate's run folders, no run inside
a data folder, the divergence guard, torn JSONL lines, resuming a run without a checkpoint, checkpoints of
another run or data, and the run lock."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.config import TrainConfig
from ganimate.errors import GanimateError
from ganimate.runs import LOCK, MARKER, read_marker, resume_config
from ganimate.train import fit


@pytest.fixture(autouse=True)
def no_env_data(monkeypatch):
    monkeypatch.delenv("GANIMATE_DATA", raising=False)


def image_folder(root, n=120):
    """A folder dataset of two classes of 16x16 grey images."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n // 2):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_refuses_a_folder_that_only_holds_a_config_json(tiny, tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "important.txt").write_text("keep")
    (proj / "config.json").write_text('{"name": "app"}')
    before = tree(proj)
    with pytest.raises(GanimateError, match="not a ganimate run folder"):
        fit(tiny(out=str(proj), max_steps=2), overwrite=True)
    assert tree(proj) == before


def test_overwrite_clears_a_run_folder_and_an_old_one_without_marker(tiny, tmp_path):
    run = fit(tiny(max_steps=2))
    assert read_marker(run)["format"] == "ganimate-run" and not (run / LOCK).exists()
    first_id = read_marker(run)["run_id"]
    fit(tiny(max_steps=2), overwrite=True)
    assert read_marker(run)["run_id"] != first_id
    (run / MARKER).unlink()  # a run folder written before the marker existed
    fit(tiny(max_steps=2), overwrite=True)
    assert read_marker(run) is not None


def test_no_run_inside_or_around_a_data_folder(tiny, tmp_path):
    data = image_folder(tmp_path / "data")
    before = tree(data)
    with pytest.raises(GanimateError, match="inside the data folder"):
        fit(tiny(dataset=f"folder:{data}", image_size=16, out=str(data), max_steps=2), overwrite=True)
    with pytest.raises(GanimateError, match="inside the data folder"):
        fit(tiny(dataset=f"folder:{data}", image_size=16, out=str(data / "a" / "run"), max_steps=2))
    with pytest.raises(GanimateError, match="holds the data folder"):
        fit(tiny(dataset=f"folder:{data}", image_size=16, out=str(tmp_path), max_steps=2), overwrite=True)
    assert tree(data) == before


def test_divergence_stops_with_one_line_and_no_nonfinite_checkpoint(tmp_path):
    args = ["train", "--dataset", "synthetic", "--z-dim", "8", "--g-width", "16", "--d-width", "8",
            "--batch-size", "50", "--max-steps", "60", "--checkpoint-every", "1", "--device", "cpu",
            "--lr-g", "1e20", "--lr-d", "1e20", "--out", tmp_path / "run"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "training diverged at step" in result.stderr
    for path in list_checkpoints(tmp_path / "run"):
        state = load_checkpoint(path)
        for key in ("G", "D", "G_ema"):
            assert all(torch.isfinite(t).all() for t in state[key].values() if t.is_floating_point()), path
    assert not (tmp_path / "run" / LOCK).exists()

    result = run_cli("train", "--dataset", "synthetic", "--lr-g", "inf", "--out", tmp_path / "x")
    assert result.returncode == 2 and "--lr-g must be a finite number, got inf" in result.stderr


def test_a_torn_last_line_is_dropped_on_resume(tiny):
    run = fit(tiny(max_steps=4, checkpoint_every=2))
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 5, "loss_d": 0.')  # a write cut short
    fit(resume_config(run, {"max_steps": 6}, TrainConfig), resume=True)
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    assert "ignoring a torn last line" in (run / "log.txt").read_text()


def test_a_run_without_a_checkpoint_starts_over_on_resume(tiny):
    run = fit(tiny(max_steps=2))
    for path in list_checkpoints(run):
        path.unlink()
    fit(resume_config(run, {"max_steps": 3}, TrainConfig), resume=True)
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 3
    assert "no checkpoint yet, so training starts over" in (run / "log.txt").read_text()
    assert [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()] == [2, 3]


def test_resume_refuses_another_runs_checkpoint_and_other_data(tiny, tmp_path):
    a = fit(tiny(out=str(tmp_path / "a"), max_steps=2))
    b = fit(tiny(out=str(tmp_path / "b"), max_steps=2, seed=1))
    stray = list_checkpoints(a)[-1]
    (b / "checkpoints" / "step_000009.pt").write_bytes(stray.read_bytes())
    with pytest.raises(GanimateError, match="belongs to another run"):
        fit(resume_config(b, {"max_steps": 12}, TrainConfig), resume=True)

    data = image_folder(tmp_path / "data")
    run = fit(tiny(dataset=f"folder:{data}", image_size=16, out=str(tmp_path / "f"), max_steps=2, epochs=5))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "a" / "0.png")  # the data changed since
    with pytest.raises(GanimateError, match="training data differs"):
        fit(resume_config(run, {"max_steps": 3}, TrainConfig), resume=True)


def test_a_second_process_on_a_run_is_refused_and_a_stale_lock_taken_over(tiny):
    run = fit(tiny(max_steps=2))
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK).write_text(f"{alive.pid}\n")
        with pytest.raises(GanimateError, match=f"in use by process {alive.pid}"):
            fit(resume_config(run, {"max_steps": 3}, TrainConfig), resume=True)
        with pytest.raises(GanimateError, match="in use by process"):
            fit(tiny(max_steps=2), overwrite=True)
    finally:
        alive.kill()
        alive.wait()
    (run / LOCK).write_text(f"{alive.pid}\n")  # its process has ended: a stale lock
    fit(resume_config(run, {"max_steps": 3}, TrainConfig), resume=True)
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 3 and not (run / LOCK).exists()


def test_diverged_steps_are_skipped_not_applied():
    from ganimate.gan import g_update

    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    assert not g_update(opt, (w * math.inf).sum())
    assert torch.equal(w.detach(), torch.ones(3))
    assert g_update(opt, (w * 2).sum())
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_settings_are_refused(value):
    from ganimate.restore.config import RestoreTrainConfig

    with pytest.raises(GanimateError, match="--adv-weight must be a finite number"):
        RestoreTrainConfig(adv_weight=value)
    with pytest.raises(GanimateError, match="--lr-d must be a finite number"):
        TrainConfig(lr_d=value)


def test_a_fifo_named_like_an_image_is_not_read(tmp_path):
    import os

    from ganimate.data import load_dataset

    data = image_folder(tmp_path / "data", n=4)
    os.mkfifo(data / "a" / "blocking.png")  # reading it would wait forever for a writer
    ds = load_dataset(f"folder:{data}", image_size=16, log=lambda _: None)
    assert len(ds) == 4


def test_a_hand_edited_config_of_the_wrong_type_is_one_line(tiny, tmp_path):
    run = fit(tiny(max_steps=2))
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "batch_size": "50"}))
    result = run_cli("train", "--out", run, "--resume", "--max-steps", "3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "config setting batch_size must be int, got '50'" in result.stderr


def test_sample_checks_every_output_before_writing_any(tiny, tmp_path):
    from ganimate.config import SampleConfig
    from ganimate.sample import run_sample

    run = fit(tiny(max_steps=2))
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep")
    with pytest.raises(GanimateError, match="must end in .npz"):
        run_sample(SampleConfig(run=str(run), n=4, out=str(existing), npz=str(tmp_path / "out.txt"), device="cpu"))
    assert existing.read_bytes() == b"keep"


def test_restore_apply_refuses_a_checkpoint_of_another_task(tmp_path):
    from ganimate.restore.config import RestoreTrainConfig
    from ganimate.restore.inference import load_restorer
    from ganimate.restore.train import fit_restore

    tiny = dict(dataset="synthetic", g_width=8, d_width=8, batch_size=50, val_size=1500, device="cpu",
                precision="fp32", max_steps=2, log_every=1, progress=False)
    sr = fit_restore(RestoreTrainConfig(task="sr", out=str(tmp_path / "sr"), **tiny))
    denoise = fit_restore(RestoreTrainConfig(task="denoise", out=str(tmp_path / "dn"), **tiny))
    assert load_restorer(sr, str(list_checkpoints(sr)[-1]))[1].task == "sr"
    with pytest.raises(GanimateError, match="was trained for Gaussian noise .* but .* is a run for x4 super"):
        load_restorer(sr, str(list_checkpoints(denoise)[-1]))
