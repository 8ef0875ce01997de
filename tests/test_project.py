"""Tests for ganimate.project (projecting images into a run's generator) and morphs between real images."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from ganimate.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ganimate.cli import main
from ganimate.gan import recompute_bn_stats
from ganimate.images import make_grid, save_png, to_uint8
from ganimate.metrics.pixel import psnr
from ganimate.project import Projector, Search, load_projector, project, train_encoder
from ganimate.runs import load_generator
from ganimate.train import fit
from ganimate.walks import image_morph_frames

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_run(root, **overrides):
    """A run trained for 6 steps, then given a trained generator's variety: 6 steps leave G's batch-norm
    statistics and class embedding near their initial values, so its images barely depend on z or the class.
    Statistics re-estimated on G's own batches (`gan.recompute_bn_stats`) and a 10x class embedding fix that
    without minutes of training."""
    cfg = tiny_config(root, max_steps=6, augment="none", **overrides)
    fit(cfg)
    path = list_checkpoints(cfg.out)[-1]
    state = load_checkpoint(path)
    G, _ = load_generator(cfg.out)
    if G.num_classes:
        G.embed.weight.data.mul_(10)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(256) % G.num_classes if G.num_classes else None
    recompute_bn_stats(G, [(torch.randn(256, G.z_dim, generator=g), y)])
    state["G_ema"] = G.state_dict()
    path.unlink()
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version", "ganimate_version")},
                    cfg.out, int(path.stem.split("_")[1]))
    return Path(cfg.out)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("cond"), conditional=True)


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("rgb"), conditional=False, channels=3, image_size=16)


@pytest.fixture(scope="module")
def projector(run):
    proj, _ = load_projector(run, encoder=False)
    proj.encoder = train_encoder(proj.G, steps=100, batch_size=32)
    return proj


def own_samples(G, n, seed, classes=True):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    y = torch.randint(0, G.num_classes, (n,), generator=g) if G.num_classes and classes else None
    with torch.no_grad():
        return z, y, G(z, y)


def score(a, b):
    return psnr(torch.from_numpy(to_uint8(a)), torch.from_numpy(to_uint8(b)), 255.0)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganimate: error: "), err
    return err[0]


# --------------------------------------------------------------------------- the search


def test_projection_recovers_the_generators_own_images(projector):
    G = projector.G
    z, y, x = own_samples(G, 8, seed=1)
    _, _, other = own_samples(G, 8, seed=2)
    with torch.no_grad():
        random_latents = G(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(3)), y)
    chance = max(float(score(other, x).max()), float(score(random_latents, x).max()))
    result = project(projector, x, y, Search(steps=60, starts=2))
    assert result.z.shape == (8, G.z_dim) and torch.equal(result.y, y)
    assert torch.allclose(result.psnr, score(result.images, x))
    assert chance < 30 and float(result.psnr.mean()) > chance + 10, (chance, result.psnr)  # ~26 and ~46 dB
    guess = project(projector, x, y, Search(steps=0, starts=1))  # the encoder alone
    assert float(result.psnr.mean()) > float(guess.psnr.mean())


def test_conditional_class_is_inferred_on_own_samples(projector):
    _, y, x = own_samples(projector.G, 10, seed=4)
    result = project(projector, x, None, Search(steps=40, starts=1, classes_tried=0))
    assert (result.y == y).float().mean() >= 0.9, (result.y, y)


def test_unconditional_rgb_run_of_another_size(rgb_run):
    proj, _ = load_projector(rgb_run, encoder=False)
    G = proj.G
    assert (G.num_classes, G.channels, G.image_size) == (0, 3, 16)
    _, _, x = own_samples(G, 4, seed=5)
    _, _, other = own_samples(G, 4, seed=6)
    result = project(Projector(G), x, None, Search(steps=60, starts=2, use_encoder=False))
    assert result.y is None and result.images.shape == x.shape
    assert float(result.psnr.mean()) > float(score(other, x).mean()) + 5


# --------------------------------------------------------------------------- the commands


def test_project_command_writes_latents_reconstructions_and_video(run, tmp_path, capsys):
    G, _ = load_generator(run)
    _, _, x = own_samples(G, 3, seed=7)
    images = to_uint8(x)
    save_png(images[0], tmp_path / "a.png")
    folder = tmp_path / "more"
    folder.mkdir()
    save_png(images[1], folder / "b.png")
    big = np.repeat(np.repeat(images[2], 2, 0), 2, 1)  # 56x56 RGB: converted with a warning
    Image.fromarray(np.repeat(big, 3, 2)).save(folder / "c.png")
    out = tmp_path / "out"
    code = main(["project", str(run), str(tmp_path / "a.png"), str(folder), "--out", str(out), "--steps", "12",
                 "--encoder-steps", "20", "--seed", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "c.png converted" in err and "56x56 -> 28x28" in err and "colour -> grey" in err
    for name in "abc":
        with np.load(out / f"{name}.npz") as f:
            assert f["z"].shape == (G.z_dim,) and 0 <= int(f["class"]) < G.num_classes
            assert f["target"].shape == (28, 28, 1)
        assert np.asarray(Image.open(out / f"{name}.png")).shape == (28, 28)
    video = np.asarray(iio.imread(out / "projection.mp4", index=None))
    assert video.ndim == 4 and len(video) > 12 and video.shape[-1] == 3
    assert (run / "projector").is_dir()  # the encoder is kept for the next call
    assert main(["project", str(run), str(tmp_path / "a.png"), "--out", str(out), "--steps", "2",
                 "--encoder-steps", "20", "--class", "3", "--no-video"]) == 0
    with np.load(out / "a.npz") as f:
        assert int(f["class"]) == 3


def test_image_morph_starts_and_ends_on_the_projections(run, tmp_path):
    G, _ = load_generator(run)
    _, _, x = own_samples(G, 2, seed=8)
    save_png(to_uint8(x)[0], tmp_path / "a.png")
    save_png(to_uint8(x)[1], tmp_path / "b.png")
    proj = tmp_path / "proj"
    assert main(["project", str(run), str(tmp_path / "b.png"), "--out", str(proj), "--steps", "10",
                 "--encoder-steps", "20", "--no-video"]) == 0
    out = tmp_path / "morph.gif"  # grey GIF frames are exact
    assert main(["interpolate", str(run), "--images", str(tmp_path / "a.png"), str(proj / "b.npz"),
                 "--frames-per-transition", "5", "--steps", "10", "--scale", "2", "--out", str(out)]) == 0
    video = np.asarray(iio.imread(out, index=None))
    video = video[..., None] if video.ndim == 3 else video  # (T, H, W, C)
    assert len(video) == 5 + 1
    with np.load(proj / "b.npz") as f:
        z_b, y_b = torch.from_numpy(f["z"])[None], torch.tensor([int(f["class"])])
    with torch.no_grad():
        last = make_grid(to_uint8(G(z_b, y_b)), 1)
    assert np.array_equal(video[-1][::2, ::2, 0], last[:, :, 0])
    first = video[0][::2, ::2, 0].astype(int)
    target = make_grid(to_uint8(x[:1]), 1)[:, :, 0].astype(int)
    assert np.abs(first - target).mean() < 12  # the projection of a.png, close to a.png itself


def test_image_morph_frames_loop_and_real_ends(run):
    G, _ = load_generator(run)
    z, y, x = own_samples(G, 3, seed=9)
    real = to_uint8(x)
    frames = list(image_morph_frames(G, z, y, 4, loop=False, real=real, real_frames=3))
    assert len(frames) == 3 + 2 * 4 + 1 + 3
    assert np.array_equal(frames[0], make_grid(real[:1], 1))
    assert np.array_equal(frames[-1], make_grid(real[2:], 1))
    with torch.no_grad():
        keys = [make_grid(to_uint8(G(z[i : i + 1], y[i : i + 1])), 1) for i in range(3)]
    assert np.array_equal(frames[3], keys[0]) and np.array_equal(frames[3 + 4], keys[1])
    looped = list(image_morph_frames(G, z, y, 4, loop=True))
    assert len(looped) == 3 * 4 and np.array_equal(looped[0], keys[0]) and np.array_equal(looped[8], keys[2])
    assert not np.array_equal(looped[-1], keys[0])


def test_bad_input_is_one_line_exit_2(run, tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.png"
    save_png(np.zeros((28, 28, 1), np.uint8), good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GANIMATE_DATA", str(data))
    fast = ["--steps", "1", "--no-encoder", "--no-video"]
    cases = [
        (["project", str(run), str(broken), "--out", str(tmp_path / "o"), *fast], "cannot read image"),
        (["project", str(run), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"), *fast], "does not exist"),
        (["project", str(tmp_path), str(good), "--out", str(tmp_path / "o"), *fast], "no checkpoint"),
        (["project", str(tmp_path / "nowhere"), str(good), *fast], "does not exist"),
        (["project", str(run), str(good), "--class", "10", "--out", str(tmp_path / "o"), *fast], "out of range"),
        (["project", str(run), str(good), "--out", str(data / "x"), *fast], "data folder"),
        (["project", str(run), str(good), "--out", str(tmp_path), *fast], "overwrite the input"),
        (["interpolate", str(run), "--images", str(good), "--steps", "1"], "at least 2"),
        (["interpolate", str(run), "--images", str(good), str(broken), "--steps", "1"], "cannot read image"),
        (["interpolate", str(run), "--images", str(good), str(good), "--morph-classes", "all"], "--images"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        assert words in one_error_line(capsys), argv
    assert not (data / "x").exists()
