"""Video from images (issue 7): Moving MNIST clips, clip models, training runs, baselines, apply commands."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from ganimate.cli import main
from ganimate.clips import baselines
from ganimate.clips.apply import AnimateConfig, InbetweenConfig, animate, inbetween
from ganimate.clips.config import ClipTrainConfig
from ganimate.clips.evaluate import (
    ClipEvaluateConfig,
    center_crops,
    clip_tables,
    digit_crops,
    digit_dataset,
    digit_labels,
    evaluate_clips,
    pixel_scores,
    score,
)
from ganimate.clips.train import fit_clips
from ganimate.data.moving_mnist import DIGIT, MovingMNIST, clip_source, read_moving_mnist_npy, trajectories
from ganimate.errors import DataError, GanimateError
from ganimate.metrics.pixel import psnr, ssim
from ganimate.models.clip import (
    ClipDiscriminator,
    InbetweenGenerator,
    PredictGenerator,
    ViewEnsemble,
    WarpInbetweenGenerator,
)
from ganimate.runs import resume_config


def _pool(n=20, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, DIGIT, DIGIT), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(1, 256, (n, 16, 8))
    return images, np.arange(n)  # label = index, so a test can find the digit of a clip


# --------------------------------------------------------------------------- data


def test_clips_stay_inside_canvas_bounce_and_are_deterministic():
    images, labels = _pool()
    mm = MovingMNIST(images, labels, size=32, frames=30, digits=1)
    clips, digit = mm.clips(50, seed=3)
    assert clips.shape == (50, 30, 1, 32, 32) and clips.dtype == np.uint8 and digit.shape == (50, 1)
    # all of the digit is on the canvas in every frame: its ink is never cut off (up to bilinear rounding)
    ink = images[digit[:, 0]].astype(np.int64).sum((1, 2))
    assert np.abs(clips.astype(np.int64).sum((2, 3, 4)) - ink[:, None]).max() <= 0.01 * ink.min()
    assert np.array_equal(clips, mm.clips(50, seed=3)[0])
    assert not np.array_equal(clips, mm.clips(50, seed=4)[0])

    corners = trajectories(200, 30, 32, 1, np.random.default_rng(0), speed=(0.3, 1.0))
    assert corners.min() >= 0 and corners.max() <= 32 - DIGIT
    step = np.diff(corners[:, 0], axis=1)  # (N, T-1, 2)
    flips = (step[:, 1:] * step[:, :-1] < 0).any((1, 2))
    assert flips.mean() > 0.5  # digits bounce off the walls
    two = MovingMNIST(images, labels, size=48, frames=5, digits=2).clips(4, 0)
    assert two[0].shape == (4, 5, 1, 48, 48) and two[1].shape == (4, 2)


def test_batches_resume_where_they_left_off():
    mm = MovingMNIST(*_pool(), size=32, frames=4, digits=1)
    it = mm.batches(3, seed=1)
    seen = [next(it) for _ in range(3)]
    assert np.array_equal(next(mm.batches(3, seed=1, start=2)), seen[2])


def test_train_and_test_digits_are_disjoint(real_data):
    train = MovingMNIST.from_dataset("mnist", "train", size=28, frames=3, digits=1)
    test = MovingMNIST.from_dataset("mnist", "test", size=28, frames=3, digits=1)
    assert len(train.images) == 60000 and len(test.images) == 10000
    train_set = {im.tobytes() for im in train.images}
    clips, _ = test.clips(300, seed=0)  # 28x28 canvas: the frame is the digit itself
    assert not any(frame.tobytes() in train_set for frame in clips[:, 0, 0])
    assert all(frame.tobytes() in train_set for frame in train.clips(50, seed=0)[0][:, 0, 0])


def test_npy_reader(tmp_path):
    path = tmp_path / "seq.npy"
    np.save(path, np.zeros((20, 3, 64, 64), np.uint8))
    assert read_moving_mnist_npy(path).shape == (3, 20, 1, 64, 64)
    np.save(path, np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(DataError, match="mnist_test_seq"):
        read_moving_mnist_npy(path)
    path.write_bytes(b"not an npy file")
    with pytest.raises(DataError, match="not a readable"):
        read_moving_mnist_npy(path)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("size,frames", [(32, 3), (32, 10), (48, 6), (64, 20)])
def test_model_shapes(size, frames):
    b = 2
    first, last = torch.randn(b, 1, size, size), torch.randn(b, 1, size, size)
    pg = PredictGenerator(frames, size, width=4, z_dim=8, z_channels=4)
    assert pg(first, torch.randn(b, 8)).shape == (b, 1, frames - 1, size, size)
    ig = InbetweenGenerator(frames, size, width=4)
    mid = ig(first, last)
    assert mid.shape == (b, 1, frames - 2, size, size)
    d = ClipDiscriminator(frames, size, width=4, cond=2)
    assert d(torch.randn(b, 1, frames, size, size), torch.cat([first, last], 1)).shape == (b,)


def test_predict_noise_changes_the_clip():
    torch.manual_seed(0)
    g = PredictGenerator(6, 32, width=4, z_dim=8).eval()
    first = torch.randn(1, 1, 32, 32)
    assert not torch.allclose(g(first, torch.randn(1, 8)), g(first, torch.randn(1, 8)))


# --------------------------------------------------------------------------- training


def tiny_clip_config(tmp_path, name, **kw):
    settings = dict(dataset="moving-synthetic", out=str(tmp_path / name), size=32, frames=4, g_width=4, d_width=4,
                    z_dim=8, batch_size=4, max_steps=4, log_every=2, eval_every=2, eval_clips=4, sample_every=2,
                    checkpoint_every=2, device="cpu", progress=False)
    settings.update(kw)
    return ClipTrainConfig(**settings)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clipruns")
    return {task: fit_clips(tiny_clip_config(tmp, task, task=task)) for task in ("predict", "inbetween")}


def test_training_writes_the_run_folder_and_resumes(runs):
    run = runs["predict"]
    for name in ("config.json", "log.txt", "stats.jsonl", "samples/index.jsonl", "samples/step_000004.mp4",
                 "checkpoints/step_000004.pt"):
        assert (run / name).is_file(), name
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [2, 4] and all(r["samples_per_s"] > 0 for r in stats)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals] == [2, 4] and "val_psnr_best4" in evals[-1]
    with pytest.raises(GanimateError, match="already exists"):
        fit_clips(ClipTrainConfig(**{**json.loads((run / "config.json").read_text())}))
    with pytest.raises(GanimateError, match="conflicts"):
        resume_config(run, {"size": 48}, ClipTrainConfig)
    cfg = resume_config(run, {"max_steps": 6}, ClipTrainConfig)
    fit_clips(cfg, resume=True)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [2, 4, 6]
    assert "resuming" in (run / "log.txt").read_text()


def test_init_from_starts_a_new_run_from_another_runs_weights(runs, tmp_path):
    source = runs["inbetween"]
    # a learning rate of ~0 keeps the weights where --init-from put them, so they can be compared after training
    cfg = tiny_clip_config(tmp_path, "fine", task="inbetween", init_from=str(source), lr_g=1e-12, lr_d=1e-12,
                           max_steps=2)
    run = fit_clips(cfg)
    assert f"weights from {source / 'checkpoints' / 'step_000004.pt'}" in (run / "log.txt").read_text()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [2]  # the step starts afresh
    before = torch.load(source / "checkpoints" / "step_000004.pt", weights_only=True)
    after = torch.load(run / "checkpoints" / "step_000002.pt", weights_only=True)
    for net in ("G", "D"):
        for name, value in before[net].items():
            if value.is_floating_point() and "running_" not in name:  # batch norm's statistics do move
                assert torch.allclose(after[net][name], value, atol=1e-6), (net, name)
    fresh = fit_clips(tiny_clip_config(tmp_path, "fresh", task="inbetween", lr_g=1e-12, lr_d=1e-12, max_steps=2))
    plain = torch.load(fresh / "checkpoints" / "step_000002.pt", weights_only=True)
    assert not all(torch.equal(plain["G"][k], before["G"][k]) for k in before["G"])
    with pytest.raises(GanimateError, match="do not fit"):
        fit_clips(tiny_clip_config(tmp_path, "wider", task="inbetween", init_from=str(source), g_width=8))
    with pytest.raises(GanimateError, match="no checkpoint|not a ganimate checkpoint"):
        fit_clips(tiny_clip_config(tmp_path, "nowhere", task="inbetween", init_from=str(tmp_path / "nowhere.pt")))


def _mp4_frames(path) -> int:
    import imageio.v2 as iio

    with iio.get_reader(path) as reader:
        return sum(1 for _ in reader)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_animate_and_inbetween_make_videos_of_the_promised_length(runs, tmp_path):
    rng = np.random.default_rng(0)
    still = _png(tmp_path / "still.png", (rng.random((32, 32)) * 80).astype(np.uint8))
    out = animate(AnimateConfig(run=str(runs["predict"]), image=str(still), out=str(tmp_path / "a.mp4"), samples=3))
    assert out == [tmp_path / "a.mp4"] and _mp4_frames(out[0]) == 4
    big = _png(tmp_path / "big.png", (rng.random((64, 64)) * 80).astype(np.uint8))
    out = inbetween(InbetweenConfig(run=str(runs["inbetween"]), first=str(big), last=str(big),
                                    out=str(tmp_path / "b.gif")))
    with Image.open(out[0]) as gif:
        assert gif.n_frames == 4


def test_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    predict, between = str(runs["predict"]), str(runs["inbetween"])
    good = _png(tmp_path / "good.png", np.zeros((32, 32), np.uint8))
    rgba = _png(tmp_path / "rgba.png", np.zeros((32, 32, 4), np.uint8))
    colour = _png(tmp_path / "colour.png", np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    wide = _png(tmp_path / "wide.png", np.zeros((32, 48), np.uint8))
    small = _png(tmp_path / "small.png", np.zeros((28, 28), np.uint8))
    noisy = _png(tmp_path / "noisy.png", np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(noisy.read_bytes()[:400])
    out = tmp_path / "x.mp4"
    cases = [
        (("animate", predict, "--image", rgba, "--out", out), "channels"),
        (("animate", predict, "--image", colour, "--out", out), "colour"),
        (("animate", predict, "--image", corrupt, "--out", out), "cannot read image"),
        (("animate", predict, "--image", wide, "--out", out), "square"),
        (("animate", predict, "--image", small, "--no-resize", "--out", out), "28x28"),
        (("inbetween", between, good, small, "--out", out), "same size"),
        (("inbetween", predict, good, good, "--out", out), "predict run"),
        (("animate", between, "--image", good, "--out", out), "inbetween run"),
        (("inbetween", between, good, good, "--views", "3", "--out", out), "--views must be"),
        (("clip", "evaluate", predict, "--views", "2"), "--views is for --task inbetween"),
    ]
    for args, needle in cases:
        assert main([str(a) for a in args]) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ganimate: error:") and needle in lines[0], (args, lines)
    assert not out.exists() and not list(tmp_path.glob(".x.tmp*"))
    r = run_cli("inbetween", predict, good, good, "--out", out)  # the installed command, in a subprocess
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    r = run_cli("animate", predict, "--image", small, "--out", out, "--samples", "2")
    assert r.returncode == 0 and "warning" in r.stderr and out.is_file()


# --------------------------------------------------------------------------- baselines and metrics


def test_baselines_run_and_keep_the_key_frames():
    clips, _ = MovingMNIST(*_pool(), size=32, frames=6, digits=1).clips(5, 0)
    for name in ("crossfade", "optical_flow", "repeat_still"):
        out = baselines.run_baseline(name, clips)
        assert out.shape == clips.shape and out.dtype == np.uint8
        assert np.array_equal(out[:, 0], clips[:, 0])
    fade = baselines.crossfade(clips[:, :3])
    expect = np.rint((clips[:, 0].astype(float) + clips[:, 2]) / 2)
    assert np.abs(fade[:, 1] - expect).max() <= 1
    assert np.array_equal(baselines.optical_flow(clips)[:, -1], clips[:, -1])


def test_metrics_on_known_inputs():
    a = np.random.default_rng(0).integers(0, 255, (3, 2, 1, 32, 32), dtype=np.uint8)
    p, s = pixel_scores(a[None], a)  # (K, N, T)
    assert p.shape == s.shape == (1, 3, 2) and np.all(p == 60) and np.allclose(s, 1)
    b = np.random.default_rng(1).integers(0, 255, a.shape, dtype=np.uint8)
    p, s = pixel_scores(np.stack([a, b]), a)
    t = torch.from_numpy(a).reshape(-1, 1, 32, 32)
    assert np.array_equal(p[1], psnr(torch.from_numpy(b), torch.from_numpy(a), 255).numpy())
    assert np.array_equal(s[1].reshape(-1), ssim(torch.from_numpy(b).reshape(-1, 1, 32, 32), t, 255).numpy())
    frame = np.zeros((1, 1, 40, 40), np.uint8)
    frame[0, 0, 20:30, 5:9] = 255
    crop = center_crops(frame)[0, 0]
    assert crop.shape == (28, 28) and crop.sum() == frame.sum()
    ys, xs = np.nonzero(crop)
    assert abs(ys.mean() - 13.5) <= 1 and abs(xs.mean() - 13.5) <= 1


def test_score_best_of_k_and_identity_only_where_it_applies():
    true = np.random.default_rng(2).integers(0, 255, (4, 3, 1, 32, 32), dtype=np.uint8)  # (N, T, 1, H, W)
    fake = np.stack([np.zeros_like(true), true])  # sample 1 is perfect on the unknown frames
    r = score("predict", fake, true, None)
    assert set(r) == {"psnr", "psnr_per_frame", "psnr_best", "psnr_best_per_frame", "ssim", "ssim_per_frame",
                      "ssim_best", "ssim_best_per_frame"}
    assert r["psnr_best"] == 60 and r["psnr_best_per_frame"] == [60, 60] and r["ssim_best"] == pytest.approx(1)
    assert r["psnr"] < r["psnr_best"] and len(r["psnr_per_frame"]) == 2
    assert "psnr_best" not in score("predict", fake[1:], true, None)  # one sample: no best-of-K
    assert digit_dataset("moving-mnist", 1) == "mnist"
    assert digit_dataset("moving-mnist", 2) is None and digit_dataset("moving-synthetic", 1) is None


def test_clip_tables_of_a_record():
    model = {"psnr": 20.123, "ssim": 0.5, "psnr_per_frame": [21.0, 19.25], "psnr_best": 22.5, "ssim_best": 0.61,
             "psnr_best_per_frame": [23.0, 22.0], "identity": 0.875, "fd": 3.14159}
    still = {"psnr": 18.0, "ssim": 0.4, "psnr_per_frame": [18.5, 17.5], "identity": 0.9, "fd": 2.0}
    r = {"task": "predict", "samples": 10, "identity_true_frames": 0.99,
         "methods": {"model": model, "repeat_still": still}}
    assert clip_tables(r) == "\n".join([
        "| method | best-of-10 PSNR | mean PSNR | best-of-10 SSIM | mean SSIM | digit identity | FD (crops) |",
        "|---|---|---|---|---|---|---|",
        "| model | 22.50 | 20.12 | 0.610 | 0.500 | 0.875 | 3.14 |",
        "| repeat_still | 18.00 | 18.00 | 0.400 | 0.400 | 0.900 | 2.00 |",
        "| true frames | - | - | - | - | 0.990 | 0 |",
        "",
        "| frame | model (best-of-10) | repeat_still (PSNR) |",
        "|---|---|---|",
        "| 1 | 23.00 | 18.50 |",
        "| 2 | 22.00 | 17.50 |",
    ])
    plain = {k: model[k] for k in ("psnr", "ssim", "psnr_per_frame")}
    r = {"task": "inbetween", "samples": 1, "methods": {"model": plain}}
    assert clip_tables(r).splitlines()[:3] == ["| method | PSNR (dB) | SSIM | digit identity | FD (crops) |",
                                               "|---|---|---|---|---|", "| model | 20.12 | 0.500 | n/a | n/a |"]


def test_evaluate_scores_model_and_baselines(runs):
    r = evaluate_clips(ClipEvaluateConfig(run=str(runs["predict"]), n=6, samples=3, device="cpu"))
    assert set(r["methods"]) == {"model", "repeat_still"}
    m = r["methods"]["model"]
    assert len(m["psnr_best_per_frame"]) == 3 and m["psnr_best"] >= m["psnr"]
    r = evaluate_clips(ClipEvaluateConfig(run=str(runs["inbetween"]), n=6, device="cpu"))
    assert set(r["methods"]) == {"model", "crossfade", "optical_flow"}
    assert len(r["methods"]["crossfade"]["psnr_per_frame"]) == 2
    records = [json.loads(line) for line in (runs["inbetween"] / "metrics.jsonl").read_text().splitlines()]
    assert [x for x in records if "methods" in x] == [records[-1]] and records[-1] == json.loads(json.dumps(r))
    r4 = evaluate_clips(ClipEvaluateConfig(run=str(runs["inbetween"]), n=6, views=4, device="cpu"))
    assert r["views"] == 1 and r4["views"] == 4  # G averaged over 4 views of the same clips: other frames
    assert r4["methods"]["model"]["psnr"] != r["methods"]["model"]["psnr"]
    assert r4["methods"]["crossfade"] == r["methods"]["crossfade"]
    assert "model (4 views)" in clip_tables(r4) and "model (4 views)" not in clip_tables(r)


def test_a_run_with_two_views_validates_and_is_evaluated_with_them(tmp_path):
    run = fit_clips(tiny_clip_config(tmp_path, "views", task="inbetween", synthesis="warp", views=2, max_steps=2))
    assert json.loads((run / "config.json").read_text())["views"] == 2
    assert any("val_psnr" in json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    assert evaluate_clips(ClipEvaluateConfig(run=str(run), n=4, device="cpu"))["views"] == 2  # the run's own
    assert evaluate_clips(ClipEvaluateConfig(run=str(run), n=4, views=1, device="cpu"))["views"] == 1


def test_view_ensemble_answers_each_symmetry_it_averages_exactly():
    torch.manual_seed(0)
    G = WarpInbetweenGenerator(frames=6, size=32, width=8, layers=2).eval()  # PyTorch's init: not symmetric
    a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    swap = lambda f, x, y: f(y, x).flip(2)  # noqa: E731  (the clip backwards)
    mirror = lambda f, x, y: f(x.flip(-1), y.flip(-1)).flip(-1)  # noqa: E731
    upside = lambda f, x, y: f(x.flip(-2), y.flip(-2)).flip(-2)  # noqa: E731
    transpose = lambda f, x, y: f(x.mT, y.mT).mT  # noqa: E731
    with torch.no_grad():
        assert torch.equal(ViewEnsemble(G, 1)(a, b), G(a, b))
        for views, held in [(2, [swap]), (4, [swap, mirror]), (8, [swap, mirror, upside]),
                            (16, [swap, mirror, upside, transpose])]:
            E = ViewEnsemble(G, views)
            y = E(a, b)
            assert y.shape == (2, 1, 4, 32, 32)
            for sym in (swap, mirror, upside, transpose):
                gap = (sym(E, a, b) - y).abs().max().item()
                assert (gap < 1e-5) == (sym in held), (views, sym, gap)  # the views it has, and no others
            assert (sym(G, a, b) - G(a, b)).abs().max() > 0.1  # G alone is not symmetric
    with pytest.raises(ValueError, match="views"):
        ViewEnsemble(G, 3)
    with pytest.raises(GanimateError, match="--views"):
        ClipTrainConfig(views=6)


def test_clip_sources():
    src = clip_source("moving-synthetic", "test", size=32, frames=4, digits=2)
    assert src.clips(2, 0)[0].shape == (2, 4, 1, 32, 32)
    with pytest.raises(DataError, match="unknown clip dataset"):
        clip_source("moving-cifar", "test", size=32, frames=4, digits=1)
    with pytest.raises(GanimateError, match="--size"):
        ClipTrainConfig(size=16)


def test_paths_match_the_clips_and_the_bounce_rule():
    mm = MovingMNIST(*_pool(), size=32, frames=8, digits=1)
    clips, labels, corners = mm.clips_with_paths(6, seed=2)
    assert np.array_equal(clips, mm.clips(6, seed=2)[0]) and corners.shape == (6, 1, 8, 2)
    step = np.linalg.norm(np.diff(corners[:, 0], axis=1), axis=-1)  # (N, T-1)
    assert np.isclose(step, 0.4).mean() > 0.5 and step.max() <= 0.4 + 1e-9  # full speed but at the walls
    # a digit moving right from 3.5 at 0.4 px a frame on a 32 canvas (room 4) turns back at the wall
    from ganimate.data.moving_mnist import bounce
    p = bounce(np.array([[2.0, 3.5]]), np.array([[0.0, 0.4]]), 4, 4.0)[0]
    assert np.allclose(p[:, 1], [3.5, 3.9, 3.7, 3.3]) and np.allclose(p[:, 0], 2.0)


@pytest.mark.parametrize("base,synthesis,grid,layers", [("flow", "paint", 1, 1), ("crossfade", "paint", 1, 1),
                                                        ("flow", "warp", 1, 1), ("flow", "warp", 4, 1),
                                                        ("flow", "warp", 1, 2), ("flow", "warp", 4, 3)])
def test_untrained_inbetween_generator_returns_its_base(tmp_path, base, synthesis, grid, layers):
    from ganimate.clips.inference import generate
    from ganimate.models.clip import build_clip_models

    clips, _ = MovingMNIST(*_pool(), size=32, frames=5, digits=1).clips(4, 1)
    G, _ = build_clip_models(tiny_clip_config(tmp_path, "g", task="inbetween", frames=5, base=base,
                                              synthesis=synthesis, flow_grid=grid, layers=layers))
    expect = baselines.optical_flow(clips) if base == "flow" and synthesis == "paint" else baselines.crossfade(clips)
    diff = np.abs(generate("inbetween", G, clips)[0].astype(int) - expect)
    assert diff.max() <= 1 and diff.mean() < 0.05  # the same frames up to float32 rounding


def test_clip_config_base():
    assert ClipTrainConfig.from_dict({"task": "inbetween"}).base == "crossfade"  # runs saved before --base
    assert ClipTrainConfig(task="inbetween").base == "flow"
    with pytest.raises(GanimateError, match="--base"):
        ClipTrainConfig(base="warp")
    assert ClipTrainConfig.from_dict({"task": "inbetween"}).synthesis == "paint"  # runs saved before --synthesis
    for bad in (3, 16):  # a power of 2, at most 8 for a 64 canvas (64 -> 8)
        with pytest.raises(GanimateError, match="--flow-grid must be a power of 2 up to 8"):
            ClipTrainConfig(size=64, flow_grid=bad)


def test_clip_presets_fill_in_under_the_given_options(tmp_path, capsys):
    from ganimate.clips.config import CLIP_PRESETS

    assert main(["clip", "train", "--preset", "inbetween-64", "--max-steps", "7", "--out", str(tmp_path / "r"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    saved = json.loads(out[out.index("{"): out.rindex("}") + 1])
    assert saved["max_steps"] == 7 and saved["preset"] == "inbetween-64"
    assert all(saved[k] == v for k, v in CLIP_PRESETS["inbetween-64"].items() if k != "max_steps")
    assert ClipTrainConfig(preset="inbetween-48").out.endswith("clip-inbetween-48")
    # the preset's --lr-decay 900 does not fit in 7 steps: the error names the preset and nothing is written
    assert main(["clip", "train", "--preset", "inbetween-64", "--max-steps", "7", "--out", str(tmp_path / "r")]) == 2
    assert "--preset inbetween-64 sets it" in capsys.readouterr().err
    assert main(["clip", "train", "--preset", "inbetween-32", "--dry-run"]) == 2
    assert "--preset must be" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_training_on_a_moving_mnist_npy_file(tmp_path):
    clips, _ = MovingMNIST(*_pool(), size=32, frames=20, digits=2).clips(30, 0)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, clips[:, :, 0].transpose(1, 0, 2, 3))  # the standard layout: (frames, clips, H, W)
    run = fit_clips(tiny_clip_config(tmp_path, "npy", task="inbetween", dataset=f"npy:{path}", max_steps=2))
    r = evaluate_clips(ClipEvaluateConfig(run=str(run), n=3, device="cpu"))  # clips 27..29: the test split
    assert r["methods"]["model"]["psnr"] > 0 and "identity" not in r["methods"]["model"]


# --------------------------------------------------------------------------- forecast: the standard benchmark


def test_openstl_metrics_on_known_arrays():
    from ganimate.clips import openstl

    true = np.zeros((2, 3, 1, 8, 8), np.float32)
    pred = true.copy()
    pred[:, :, :, :2, :2] = 0.5  # 4 pixels off by 0.5 in every frame
    assert np.allclose(openstl.mse_per_frame(pred, true), 1.0)  # summed over the pixels: 4 * 0.25
    assert np.allclose(openstl.mae_per_frame(pred, true), 2.0)
    assert np.allclose(openstl.psnr_per_frame(pred, true), -10 * np.log10(1.0 / 64))
    pred[0, 0, 0, 7, 7] = 3.0  # MSE and MAE take the prediction unclipped, PSNR and SSIM clip it to [0, 1]
    assert np.isclose(openstl.mse_per_frame(pred, true)[0, 0], 1.0 + 9.0)
    assert np.isclose(openstl.psnr_per_frame(pred, true)[0, 0], -10 * np.log10(2.0 / 64))
    assert np.isinf(openstl.psnr_per_frame(true, true)).all() and np.allclose(openstl.ssim_per_frame(true, true), 1)
    r = openstl.openstl_metrics(pred, true)
    assert set(r) >= {"mse", "mae", "ssim", "psnr"} and len(r["mse_per_frame"]) == 3


def test_openstl_ssim_is_scikit_image_as_openstl_calls_it():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    from ganimate.clips import openstl

    rng = np.random.default_rng(0)
    true = rng.random((2, 2, 1, 16, 16)).astype(np.float32)
    pred = np.clip(true + rng.normal(0, 0.2, true.shape), -0.2, 1.2).astype(np.float32)
    ours = openstl.ssim_per_frame(pred, true)
    # OpenSTL: cal_ssim(pred[b, f].swapaxes(0, 2), true[b, f].swapaxes(0, 2), multichannel=True) on clipped float
    # frames, whose data range scikit-image took from the float dtype: 2
    ref = [[structural_similarity(np.clip(pred[b, f], 0, 1).swapaxes(0, 2), true[b, f].swapaxes(0, 2),
                                  channel_axis=2, data_range=2.0) for f in range(2)] for b in range(2)]
    assert np.allclose(ours, ref, atol=1e-6)


def test_forecast_baselines_keep_the_given_frames():
    clips, _ = MovingMNIST(*_pool(), size=32, frames=6, digits=1, speed=(2.0, 2.0)).clips(4, 3)
    last = baselines.run_baseline("copy_last", clips, 3)
    assert last.shape == clips.shape and np.array_equal(last[:, :3], clips[:, :3])
    assert (last[:, 3:] == clips[:, 2:3]).all()
    black = baselines.run_baseline("all_black", clips, 3)
    assert np.array_equal(black[:, :3], clips[:, :3]) and not black[:, 3:].any()
    assert np.array_equal(baselines.run_baseline("flow_extrapolation", clips, 3)[:, :3], clips[:, :3])
    yy, xx = np.mgrid[0:32, 0:32]
    blob = np.stack([255 * np.exp(-((yy - 14) ** 2 + (xx - 8 - 2 * t) ** 2) / 8) for t in range(6)])  # 2 px a frame
    blob = np.rint(blob).astype(np.uint8)[None, :, None]  # (1, 6, 1, 32, 32)
    flow = baselines.run_baseline("flow_extrapolation", blob, 3).astype(float)
    err = ((flow[0, 3:] - blob[0, 3:]) ** 2).sum((1, 2, 3))  # (3,)
    moved = ((blob[0, 3:].astype(float) - blob[0, 2]) ** 2).sum((1, 2, 3))  # copy_last's error
    assert (err < 0.01 * moved).all()  # constant velocity continues the motion


def test_forecast_model_and_config():
    from ganimate.models.clip import ForecastGenerator

    G = ForecastGenerator(context=3, frames=7, size=32, width=4)
    assert G(torch.zeros(2, 1, 3, 32, 32)).shape == (2, 1, 4, 32, 32)
    assert ClipTrainConfig(task="forecast").adv_weight == 0 and ClipTrainConfig(task="predict").adv_weight == 1
    with pytest.raises(GanimateError, match="--context"):
        ClipTrainConfig(task="forecast", frames=10, context=10)
    with pytest.raises(GanimateError, match="multiple of 8"):
        ClipTrainConfig(task="forecast", size=36)


def test_recon_loss_l2_trains_on_the_squared_error(tmp_path):
    assert ClipTrainConfig(task="inbetween").recon_loss == "l1" and ClipTrainConfig(task="forecast").recon_loss == "l2"
    assert ClipTrainConfig.from_dict({"task": "predict"}).recon_loss == "l1"  # runs saved before --recon-loss
    first = {}
    for loss in ("l1", "l2"):  # the same weights and clips: G's first frames are the same, their errors differ
        run = fit_clips(tiny_clip_config(tmp_path, loss, task="inbetween", synthesis="warp", recon_loss=loss,
                                         max_steps=1, log_every=1, eval_every=0, sample_every=0, report=False))
        first[loss] = json.loads((run / "stats.jsonl").read_text().splitlines()[0])["l1"]
    assert 0 < first["l2"] < first["l1"]  # errors in [-1, 1] (and the blurred levels') square to less
    with pytest.raises(GanimateError, match="--recon-loss"):
        ClipTrainConfig(recon_loss="l3")


def test_forecast_training_writes_a_run_that_clip_evaluate_scores(tmp_path, capsys):
    run = fit_clips(tiny_clip_config(tmp_path, "fc", task="forecast", frames=6, context=3, max_steps=2, eval_every=2,
                                     sample_every=2, checkpoint_every=2, report=False))
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals] == [2] and evals[0]["val_mse"] > 0
    assert main(["clip", "evaluate", str(run), "--n", "3", "--device", "cpu"]) in (0, None)
    out = capsys.readouterr().out
    assert "| method | MSE | MAE | SSIM | PSNR (dB) |" in out and "flow_extrapolation" in out
    r = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(r["methods"]) == {"model", "copy_last", "all_black", "flow_extrapolation"}
    assert len(r["methods"]["model"]["mse_per_frame"]) == 3 and r["context"] == 3
    black = r["methods"]["all_black"]
    clips, _ = clip_source("moving-synthetic", "test", size=32, frames=6, digits=1).clips(3, 0)
    expect = (clips[:, 3:].astype(np.float64) / 255) ** 2
    assert np.isclose(black["mse"], expect.sum((2, 3, 4)).mean())  # all black: the true frames' energy


def test_warp_generator_moves_the_key_frames_pixels_and_blur_reaches_far_flows():
    g = WarpInbetweenGenerator(frames=3, size=32, width=4)
    first = -torch.ones(1, 1, 32, 32)
    first[0, 0, 10:18, 4:8] = 1  # a bar; the last frame is empty
    last = -torch.ones(1, 1, 32, 32)
    # the one middle frame samples the first frame 6 px to the left, wholly from the first frame
    motion = torch.zeros(1, 1, 32, 32, 5)
    motion[..., 0] = -6 * 2 / 31  # canvas units: 2 / (W - 1) per pixel
    motion[..., 4] = 50.0
    g.motion = lambda a, b: (motion, None)
    mid = g(first, last)[0, 0, 0]
    assert torch.allclose(mid, torch.roll(first[0, 0], 6, 1), atol=1e-4)  # moved, not repainted
    # a flow that points at empty canvas: no gradient through sharp frames, some through the blurred ones
    flow = torch.zeros(1, 1, 32, 32, 5, requires_grad=True)
    g.motion = lambda a, b: (flow + torch.tensor([0.8, 0, 0, 0, 50.0]), None)  # 12 px right of the bar
    target = torch.roll(first, 6, 3)
    levels = g(first, last, pyramid=True)
    sharp = torch.autograd.grad((levels[0, :, :, 0] - target).abs().mean(), flow, retain_graph=True)[0]
    blurred = torch.autograd.grad((levels[-1, :, :, 0] - target).abs().mean(), flow)[0]
    assert sharp[..., :2].abs().max() == 0 and blurred[..., :2].abs().max() > 0


def test_motion_layers_move_two_digits_their_own_ways():
    g = WarpInbetweenGenerator(frames=3, size=32, width=4, layers=2)
    first = -torch.ones(1, 1, 32, 32)
    first[0, 0, 4:10, 8:12] = 1  # bar A, top
    first[0, 0, 20:26, 8:12] = 0.5  # bar B, bottom
    last = -torch.ones(1, 1, 32, 32)
    seg = torch.full((1, 4, 32, 32), -20.0)  # layer logits: first frame's, then last frame's
    seg[0, 0, :16] = seg[0, 1, 16:] = 20.0  # layer 0 holds the top half of the first frame, layer 1 the bottom
    seg[0, 2:] = 0.0
    motion = torch.zeros(1, 1, 32, 32, 10)  # per layer: flow into first (x, y), flow into last, mask logit
    motion[..., 0] = -5 * 2 / 31  # layer 0 moves right 5 px
    motion[..., 5] = 3 * 2 / 31  # layer 1 moves left 3 px
    motion[..., 4] = motion[..., 9] = 50.0  # both wholly from the first frame
    g.motion = lambda a, b: (motion, seg)
    mid = g(first, last)[0, 0, 0]
    expect = -torch.ones(32, 32)
    expect[4:10, 13:17] = 1
    expect[20:26, 5:9] = 0.5
    assert torch.allclose(mid, expect, atol=1e-4)
    # the blurred levels come with the frames, one per sigma
    assert g(first, last, pyramid=True).shape == (1 + len(g.sigmas), 1, 1, 1, 32, 32)


def test_digit_crops_at_true_positions_of_several_digits():
    images, labels = _pool(4)
    frames = np.zeros((1, 2, 1, 1, 64, 64), np.uint8)  # (K, N, T, 1, H, W)
    corners = np.array([[[[2.2, 5.0]], [[30.0, 33.6]]], [[[10.0, 10.0]], [[36.0, 0.4]]]])  # (N, D, T, 2)
    for n in range(2):
        for d in range(2):
            y, x = np.rint(corners[n, d, 0]).astype(int)
            frames[0, n, 0, 0, y : y + DIGIT, x : x + DIGIT] = images[2 * n + d]
    crops = digit_crops(frames, corners)
    assert crops.shape == (4, 1, DIGIT, DIGIT)
    assert all(np.array_equal(crops[i, 0], images[i]) for i in range(4))
    assert digit_labels(labels[:4].reshape(2, 2), 1, 1, True).tolist() == [0, 1, 2, 3]
    assert digit_labels(labels[:4].reshape(2, 2), 2, 1, False).tolist() == [0, 2, 0, 2]
    assert digit_dataset("moving-mnist", 2, paths=True) == "mnist"


def test_a_warp_run_of_two_digits_is_scored_digit_by_digit(real_data, tmp_path):
    run = fit_clips(tiny_clip_config(tmp_path, "warp2", dataset="moving-mnist", task="inbetween", synthesis="warp",
                                     size=64, digits=2, max_steps=2, layers=2, flow_grid=4))  # the preset's G
    r = evaluate_clips(ClipEvaluateConfig(run=str(run), n=8, device="cpu"))
    assert set(r["methods"]) == {"model", "crossfade", "optical_flow"} and "n/a" not in r
    assert r["identity_true_frames"] > 0.8  # each of the two digits read where it is, crossings included
    assert all(0 <= m["identity"] <= 1 and m["fd"] >= 0 for m in r["methods"].values())
    clip = clip_source("moving-mnist", "test", size=64, frames=4, digits=2).clips(1, 0)[0][0, :, 0]
    first, last = _png(tmp_path / "first.png", clip[0]), _png(tmp_path / "last.png", clip[-1])
    out = inbetween(InbetweenConfig(run=str(run), first=str(first), last=str(last), out=str(tmp_path / "w.mp4")))
    assert out == [tmp_path / "w.mp4"] and _mp4_frames(out[0]) == 4


def test_cost_volume_peaks_at_the_displacement_between_the_key_frames():
    g = WarpInbetweenGenerator(frames=4, size=32, width=4, match=True)
    assert g.reach == 4
    g.match = torch.nn.AvgPool2d(4)  # features: 4x4 cell means, 1 channel
    first = torch.zeros(1, 1, 32, 32)
    first[0, 0, 8:12, 8:12] = 1  # one bright cell at (2, 2)
    last = torch.roll(first, (4, 8), (2, 3))  # the same cell 1 down and 2 right
    cv = g.cost_volume(first, last)  # (1, 81, 8, 8)
    assert cv.shape == (1, 81, 8, 8)
    dy, dx = divmod(int(cv[0, :, 2, 2].argmax()), 9)
    assert (dy - 4, dx - 4) == (1, 2)
    assert g(first, last).shape == (1, 1, 2, 32, 32)  # the cost volume feeds the U-Net
