"""The CLI: exit codes, one-line errors, nothing overwritten. Commands run in-process through main() (the `cli`
fixture); the module's runs are trained, and `python -m ganimate` is run, in real subprocesses."""

import gzip
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import run_cli

TINY = ["--z-dim", "16", "--g-width", "32", "--d-width", "8", "--batch-size", "50", "--device", "cpu"]


def assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ganimate: error:") and pattern in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny conditional run and a tiny unconditional one, trained once for this module."""
    root = tmp_path_factory.mktemp("cli")
    for name, extra in (("cond", []), ("uncond", ["--no-conditional"])):
        result = run_cli("train", "--dataset", "synthetic", *TINY, "--max-steps", "3", *extra, "--out", root / name)
        assert result.returncode == 0, result.stderr
    return root


def test_train_writes_run_folder(trained):
    run = trained / "cond"
    assert (run / "reals.png").is_file() and (run / "samples" / "step_000003.png").is_file()
    assert json.loads((run / "config.json").read_text())["conditional"] is True
    assert json.loads((trained / "uncond" / "config.json").read_text())["conditional"] is False


def test_existing_run_refused_and_untouched(trained, cli):
    run = trained / "cond"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    result = cli("train", "--dataset", "synthetic", *TINY, "--max-steps", "3", "--out", run)
    assert_one_line_error(result, "already exists")
    assert before == {p: p.stat().st_mtime_ns for p in run.rglob("*")}


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--arch", "stylegan"], "unknown arch"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--batch-size", "-1"], "--batch-size must be positive"),
        (["--batch-size", "lots"], "invalid int value"),
        (["--image-size", "30"], "multiple of 4"),
        (["--dataset", "folder:/nonexistent/folder"], "/nonexistent/folder"),
        (["--dataset", "mnist", "--data-dir", "{empty}"], "mnist"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_train_input(tmp_path, args, pattern, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{empty}", str(empty)) for a in args]
    env = {"GANIMATE_DATA": str(empty), "GANIMATE_CACHE": str(tmp_path / "cache")}
    # no network here: point every mirror at a closed local port
    result = cli("train", *TINY, *args, "--out", tmp_path / "run", env={**env, "GANIMATE_OFFLINE": "1"})
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "run").exists()


def test_mnist_missing_offline_names_where_to_put_files(tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"GANIMATE_DATA": str(empty), "GANIMATE_CACHE": str(tmp_path / "cache"), "GANIMATE_OFFLINE": "1"}
    result = cli("train", "--dataset", "mnist", "--out", tmp_path / "run", env=env)
    assert_one_line_error(result, "mnist")
    assert str(tmp_path / "cache") in result.stderr or str(empty) in result.stderr


def test_corrupt_gz_is_one_line_error(tmp_path, cli):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(gzip.compress(struct.pack(">II", 2051, 60000))[:-7])
    env = {"GANIMATE_DATA": str(tmp_path / "none"), "GANIMATE_CACHE": str(tmp_path / "cache"), "GANIMATE_OFFLINE": "1"}
    result = cli("train", "--dataset", "mnist", "--data-dir", folder, "--out", tmp_path / "run", env=env)
    assert_one_line_error(result, "train-")


def test_resume_errors(trained, tmp_path, cli):
    assert_one_line_error(cli("train", "--out", tmp_path / "nothing", "--resume"), "no config.json")
    assert_one_line_error(cli("train", "--out", trained / "cond", "--resume", "--lr-g", "0.1"), "conflicts")
    assert_one_line_error(cli("train", "--resume"), "--resume needs --out")


def test_resume_continues_step_count(trained, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "cond", run)
    result = cli("train", "--out", run, "--resume", "--max-steps", "5")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "step 5/5" in result.stdout
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 5


def test_init_from_fine_tunes_a_trained_run_and_refuses_other_shapes(trained, tmp_path, cli):
    result = cli("train", "--dataset", "synthetic", *TINY, "--max-steps", "2", "--init-from", trained / "cond",
                 "--out", tmp_path / "fine")
    assert result.returncode == 0, result.stderr
    assert "weights from" in result.stdout and "step 2/2" in result.stdout
    # the unconditional run's networks have no class inputs: one line, and no run folder is made
    result = cli("train", "--dataset", "synthetic", *TINY, "--max-steps", "2", "--init-from", trained / "uncond",
                 "--out", tmp_path / "other")
    assert_one_line_error(result, "do not fit")
    assert not (tmp_path / "other").exists()
    result = cli("train", "--dataset", "synthetic", *TINY, "--init-from", tmp_path / "none", "--out", tmp_path / "x")
    assert_one_line_error(result, "none")


def test_dry_run_writes_nothing(tmp_path, cli):
    result = cli("train", "--dataset", "mnist", "--out", tmp_path / "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"arch": "fast"' in result.stdout and '"g_width": 192' in result.stdout and "params" in result.stdout
    assert not (tmp_path / "run").exists()


def test_presets_fill_in_under_the_given_options(trained, tmp_path, cli):
    from ganimate.config import PRESETS

    result = cli("train", "--preset", "quality", "--dataset", "fashion-mnist", "--epochs", "2", "--out",
                 tmp_path / "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout[result.stdout.index("{"): result.stdout.rindex("}") + 1])
    assert saved["preset"] == "quality" and saved["dataset"] == "fashion-mnist" and saved["epochs"] == 2
    assert all(saved[k] == v for k, v in PRESETS["quality"].items() if k not in ("dataset", "epochs"))
    demo = cli("train", "--preset", "demo", "--out", tmp_path / "run", "--dry-run")
    saved = json.loads(demo.stdout[demo.stdout.index("{"): demo.stdout.rindex("}") + 1])
    assert all(saved[k] == v for k, v in PRESETS["demo"].items()) and saved["batch_size"] == 32
    assert_one_line_error(cli("train", "--preset", "best", "--dry-run"), "--preset must be demo or quality")
    assert_one_line_error(cli("train", "--out", trained / "cond", "--resume", "--preset", "quality"), "conflicts")
    assert not (tmp_path / "run").exists()


def test_sample_grid_and_npz(trained, tmp_path, cli):
    result = cli("sample", trained / "cond", "--n", "20", "--seed", "5", "--out", tmp_path / "g.png",
                     "--npz", tmp_path / "s.npz")
    assert result.returncode == 0, result.stderr
    data = np.load(tmp_path / "s.npz")
    assert data["x"].shape == (20, 28, 28) and data["x"].dtype == np.uint8
    assert sorted(np.bincount(data["y"], minlength=10).tolist()) == [2] * 10
    again = cli("sample", trained / "cond", "--n", "20", "--seed", "5", "--npz", tmp_path / "t.npz")
    assert again.returncode == 0
    assert np.array_equal(np.load(tmp_path / "t.npz")["x"], data["x"])
    one = cli("sample", trained / "cond", "--n", "4", "--class", "7", "--npz", tmp_path / "c.npz")
    assert one.returncode == 0 and np.load(tmp_path / "c.npz")["y"].tolist() == [7] * 4


def test_sample_bad_input(trained, tmp_path, cli):
    assert_one_line_error(cli("sample", trained / "cond", "--class", "10"), "out of range")
    assert_one_line_error(cli("sample", trained / "uncond", "--class", "1"), "unconditional")
    assert_one_line_error(cli("sample", tmp_path / "missing"), "does not exist")
    assert_one_line_error(cli("sample", trained / "cond", "--n", "0"), "--n must be positive")
    assert_one_line_error(cli("sample", trained / "cond", "--out", tmp_path / "no" / "g.png"), "does not exist")


def test_checkpoint_that_is_not_ours(trained, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained / "cond", run)
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    torch.save({"model": torch.zeros(3)}, ckpt)
    assert_one_line_error(cli("sample", run), "not a ganimate checkpoint")
    ckpt.write_bytes(b"garbage" * 100)
    assert_one_line_error(cli("sample", run), "not a ganimate checkpoint")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt.write_bytes(pickle.dumps({"format": Evil()}))
    assert_one_line_error(cli("sample", run), "not a ganimate checkpoint")
    assert not marker.exists()
    assert_one_line_error(cli("train", "--out", run, "--resume"), "not a ganimate checkpoint")


def test_videos_from_a_real_run(trained, tmp_path, cli):
    import imageio.v3 as iio

    run = trained / "cond"
    result = cli("video", run, "--source", "all", "--hold", "2")
    assert result.returncode == 0, result.stderr
    grids = (run / "samples" / "index.jsonl").read_text().splitlines()
    mp4 = iio.imread(run / "videos" / "training.mp4", index=None)
    gif = iio.imread(run / "videos" / "training.gif", index=None)
    assert len(mp4) == len(gif) == len(grids) + 2
    assert mp4.shape[1] % 2 == 0 and mp4.shape[2] % 2 == 0 and mp4.shape[2] >= 512

    result = cli("interpolate", run, "--morph-classes", "0,1,2", "--grid", "1x2",
                     "--frames-per-transition", "3", "--out", tmp_path / "morph.mp4")
    assert result.returncode == 0, result.stderr
    assert len(iio.imread(tmp_path / "morph.mp4", index=None)) == 9
    result = cli("interpolate", run, "--keyframes", "2", "--frames-per-transition", "2",
                     "--out", tmp_path / "walk.gif")
    assert result.returncode == 0, result.stderr
    assert len(iio.imread(tmp_path / "walk.gif", index=None)) == 4


def test_video_bad_input(trained, tmp_path, cli):
    assert_one_line_error(cli("interpolate", trained / "uncond", "--morph-classes", "all"), "unconditional")
    assert_one_line_error(cli("video", trained / "cond", "--fps", "0"), "fps")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert_one_line_error(cli("video", empty), "has no saved grids")
    assert_one_line_error(cli("video", trained / "cond", "--out", tmp_path / "no" / "x.mp4"), "does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [["train"], ["restore", "train"], ["clip", "train"]])
def test_every_trainer_has_the_same_run_flags(command, cli):
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--resume", "--overwrite", "--dry-run", "--max-minutes", "--eval-every", "--checkpoint-every",
                 "--max-steps", "--seed", "--device", "--precision"):
        assert flag in result.stdout, (command, flag)


@pytest.mark.parametrize("command", [["restore", "train"], ["clip", "train"]])
def test_trainer_flags_refuse_resume_with_overwrite(tmp_path, command, cli):
    result = cli(*command, "--out", tmp_path / "run", "--resume", "--overwrite")
    assert_one_line_error(result, "--resume and --overwrite exclude each other")
    assert_one_line_error(cli(*command, "--resume"), "--resume needs --out")


def test_restore_dry_run_writes_nothing(tmp_path, cli):
    result = cli("restore", "train", "--dataset", "mnist", "--task", "sr", "--out", tmp_path / "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"image_size": 28' in result.stdout and '"channels": 1' in result.stdout
    assert "G " in result.stdout and "params" in result.stdout and "nothing written" in result.stdout
    assert not (tmp_path / "run").exists()

    folder = tmp_path / "pictures"
    folder.mkdir()
    result = cli("restore", "train", "--dataset", f"folder:{folder}", "--out", tmp_path / "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "folder" in result.stdout and "once training reads the images" in result.stdout
    assert not (tmp_path / "run").exists()

    result = cli("restore", "train", "--dataset", "mnist", "--task", "sr", "--factor", "3", "--dry-run")
    assert_one_line_error(result, "factor")


def test_clip_dry_run_writes_nothing(tmp_path, cli):
    result = cli("clip", "train", "--task", "predict", "--out", tmp_path / "run", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"task": "predict"' in result.stdout and "params" in result.stdout and "nothing written" in result.stdout
    assert not (tmp_path / "run").exists()


def test_python_dash_m_ganimate(tmp_path):
    import subprocess
    import sys

    from ganimate import __version__

    def run(*args):
        return subprocess.run([sys.executable, "-m", "ganimate", *args], capture_output=True, text=True, timeout=300)

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ganimate {__version__}"
    assert_one_line_error(run("train", "--epochs", "0", "--out", str(tmp_path / "run")), "--epochs must be positive")
    assert_one_line_error(run("restore", "train", "--no-such-flag"), "unrecognized arguments")
    assert not (tmp_path / "run").exists()
