"""Image restoration (issue 6): degradations, metrics against scikit-image, baselines, training and
resume, `restore apply`, `restore evaluate` and one-line errors for bad input."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.errors import GanimateError
from ganimate.metrics.pixel import psnr
from ganimate.restore.baselines import BASELINES, baselines_for, run_baseline, tune
from ganimate.restore.config import RestoreTrainConfig
from ganimate.restore.degrade import Degradation, degrade, degraded_split, gaussian_kernel, to_full
from ganimate.restore.inference import load_restorer, restore
from ganimate.restore.train import fit_restore

TINY = dict(dataset="synthetic", g_width=8, d_width=8, batch_size=50, val_size=1500, log_every=2, device="cpu",
            precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(tmp_path, name="run", **kw):
    return RestoreTrainConfig(**{**TINY, "out": str(tmp_path / name), "max_steps": 4, **kw})


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# degradations


def test_noise_is_seeded_with_the_intended_sigma():
    x = torch.full((64, 1, 28, 28), 0.5)
    deg = Degradation("denoise", sigma=0.2)
    a, b, c = degrade(x, deg, gen(1)), degrade(x, deg, gen(1)), degrade(x, deg, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float((a - x).std()) - 0.2) < 0.004 and abs(float(a.mean()) - 0.5) < 0.003
    clipped = degrade(torch.ones(8, 1, 28, 28), deg, gen(0))
    assert clipped.max() == 1 and clipped.min() >= 0 and (clipped == 1).float().mean() > 0.45


def test_downscale_is_an_area_average():
    x = torch.rand(3, 1, 28, 28, generator=gen(0))
    small = degrade(x, Degradation("sr", factor=4), gen(0))
    assert small.shape == (3, 1, 7, 7)
    assert torch.allclose(small[1, 0, 2, 5], x[1, 0, 8:12, 20:24].mean())
    assert degrade(x, Degradation("sr", factor=2), gen(0)).shape == (3, 1, 14, 14)
    full = to_full(small, 28)
    assert full.shape == (3, 1, 28, 28) and torch.equal(full[:, :, ::4, ::4], small)


def test_blur_kernel_and_noise():
    k = gaussian_kernel(1.5)
    assert k.shape == (11, 11) and abs(float(k.sum()) - 1) < 1e-12
    t = torch.arange(-5, 6, dtype=torch.float64)
    assert abs(float((k.sum(0) * t**2).sum()) - 1.5**2) < 0.05  # variance of the truncated Gaussian
    delta = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    delta[0, 0, 14, 14] = 1
    blurred = degrade(delta, Degradation("deblur", blur_noise=0.0), gen(0))
    assert torch.allclose(blurred[0, 0, 9:20, 9:20], k)
    grey = torch.full((64, 1, 28, 28), 0.5)
    noisy = degrade(grey, Degradation("deblur"), gen(0))
    inner = noisy[:, :, 6:-6, 6:-6] - 0.5  # away from the zero-padded border
    assert abs(float(inner.std()) - 0.01) < 0.001


def test_test_split_is_fixed():
    images = (torch.rand(20, 1, 28, 28, generator=gen(3)) * 255).to(torch.uint8)
    deg = Degradation("denoise")
    assert torch.equal(degraded_split(images, deg), degraded_split(images, deg))


@pytest.mark.parametrize("kw,pattern", [
    (dict(task="inpaint"), "unknown task"), (dict(task="sr", factor=3), "factor"), (dict(task="denoise", sigma=0),
                                                                                    "sigma")])
def test_bad_degradations(kw, pattern):
    with pytest.raises(GanimateError, match=pattern):
        Degradation(**kw)


# metrics


def test_score_uses_the_shared_pixel_metrics():
    from ganimate.metrics.pixel import ssim
    from ganimate.restore.metrics import score

    clean = torch.rand(6, 1, 28, 28, generator=gen(0))
    restored = (clean + 0.05 * torch.randn(clean.shape, generator=gen(1))).clamp(0, 1)
    out = score(restored, clean, torch.arange(6), "synthetic")  # no reference classifier: no class_acc, fd
    assert list(out) == ["psnr", "ssim", "sharpness"]
    assert out["psnr"] == float(psnr(restored, clean).mean()) and out["ssim"] == float(ssim(restored, clean).mean())
    assert out["sharpness"] > 1  # noise adds edges
    same = score(clean, clean, None, "mnist")  # no labels: no classifier scores either
    assert same == {"psnr": 60.0, "ssim": pytest.approx(1.0), "sharpness": 1.0}


# baselines


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.name)
def test_every_baseline_runs_and_tuning_picks_the_best(baseline):
    from ganimate.data import load_dataset

    clean_u8 = load_dataset("synthetic", "test").images[:4]
    deg = Degradation(baseline.task)
    obs, clean = degraded_split(clean_u8, deg), clean_u8.float() / 255
    params, best = tune(baseline, obs, clean, deg)
    out = run_baseline(baseline, obs, deg, params)
    assert out.shape == (4, 1, 28, 28) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert best == pytest.approx(float(psnr(out, clean).mean()))
    for p in baseline.grid:
        assert float(psnr(run_baseline(baseline, obs, deg, p), clean).mean()) <= best + 1e-9
    assert {b.task for b in BASELINES} == {"sr", "denoise", "deblur"} and len(baselines_for("denoise")) == 4


# training


def test_tiny_training_writes_run_folder(tmp_path):
    run = fit_restore(tiny_cfg(tmp_path, task="sr", max_steps=None, epochs=1, sample_every=5))  # 10 steps/epoch
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "log.txt", "stats.jsonl", "samples", "checkpoints"} <= names
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["epoch_0001.png", "step_000005.png",
                                                                       "step_000010.png"]
    assert Image.open(run / "samples" / "epoch_0001.png").size == (10 * 30 + 2, 3 * 30 + 2)  # degraded|restored|clean
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    train_stats = [s for s in stats if "l1" in s]
    assert [s["step"] for s in train_stats] == list(range(2, 11, 2))
    assert all(s["loss_d"] > 0 and s["samples_per_s"] > 0 for s in train_stats)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kind"]) for r in evals] == [(10, "train")] and 0 < evals[0]["val_ssim"] <= 1
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"] == "sr" and saved["image_size"] == 28 and saved["channels"] == 1
    state = load_checkpoint(list_checkpoints(run)[-1])
    assert state["step"] == 10 and {"G", "D", "G_ema", "opt_G", "opt_D", "rng", "config"} <= set(state)
    G, cfg, step, _ = load_restorer(run)
    assert step == 10 and cfg.method == "GAN" and G(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_l1_only_trains_g_alone(tmp_path):
    run = fit_restore(tiny_cfg(tmp_path, task="denoise", adv_weight=0.0))
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert all("loss_d" not in s for s in stats) and any("l1" in s for s in stats)
    state = load_checkpoint(list_checkpoints(run)[-1])
    fresh = RestoreTrainConfig(**{**TINY, "out": str(tmp_path / "x")})
    from ganimate.restore.model import build_restore_models

    fresh.image_size, fresh.channels = 28, 1
    torch.manual_seed(0)
    _, D0 = build_restore_models(fresh)
    assert all(torch.equal(v, state["D"][k]) for k, v in D0.state_dict().items())  # D never stepped


def test_resume_matches_an_uninterrupted_run(tmp_path):
    straight = fit_restore(tiny_cfg(tmp_path, "a", task="deblur", max_steps=6))
    fit_restore(tiny_cfg(tmp_path, "b", task="deblur", max_steps=3))
    from ganimate.restore.config import RestoreTrainConfig
    from ganimate.runs import resume_config

    resumed = fit_restore(resume_config(tmp_path / "b", {"max_steps": 6}, RestoreTrainConfig), resume=True)
    a, b = load_checkpoint(list_checkpoints(straight)[-1]), load_checkpoint(list_checkpoints(resumed)[-1])
    assert a["step"] == b["step"] == 6
    for key in ("G", "D", "G_ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    with pytest.raises(GanimateError, match="conflicts"):
        resume_config(tmp_path / "b", {"task": "sr"}, RestoreTrainConfig)
    with pytest.raises(GanimateError, match="already exists"):
        fit_restore(tiny_cfg(tmp_path, "b", task="deblur"))


# apply


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("restore_runs")
    return {task: fit_restore(tiny_cfg(root, task, task=task, max_steps=3)) for task in ("sr", "denoise")}


def write_pngs(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"img{i}.png")


def test_apply_round_trips_pngs(runs, tmp_path):
    from ganimate.restore.apply import RestoreApplyConfig, apply_restore

    small = (np.random.default_rng(0).random((3, 7, 7)) * 255).astype(np.uint8)
    write_pngs(tmp_path / "in", small)
    written = apply_restore(RestoreApplyConfig(run=str(runs["sr"]), input=str(tmp_path / "in"),
                                               out=str(tmp_path / "out"), task="sr"))
    assert [p.name for p in written] == ["img0.png", "img1.png", "img2.png"]
    G, cfg, _, _ = load_restorer(runs["sr"])
    expected = restore(G, torch.from_numpy(small[:, None]).float() / 255, 28)
    for i, p in enumerate(written):
        img = Image.open(p)
        assert img.mode == "L" and img.size == (28, 28)
        ref = (expected[i, 0] * 255).round().numpy().astype(np.uint8)
        assert np.abs(np.asarray(img).astype(int) - ref).max() <= 1
    single = apply_restore(RestoreApplyConfig(run=str(runs["sr"]), input=str(tmp_path / "in" / "img1.png"),
                                              out=str(tmp_path / "one")))
    assert np.array_equal(np.asarray(Image.open(single[0])), np.asarray(Image.open(written[1])))


def assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganimate: error:") and pattern in lines[0], result.stderr


def main_error(capsys, *args) -> str:
    """Run the CLI in this process; assert exit code 2 and one stderr line, which is returned."""
    from ganimate.cli import main

    assert main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganimate: error:"), lines
    return lines[0]


def test_apply_refuses_bad_input_and_overwrites_nothing(runs, tmp_path, capsys):
    write_pngs(tmp_path / "big", np.zeros((1, 28, 28), np.uint8))
    write_pngs(tmp_path / "rgb", np.zeros((1, 7, 7, 3), np.uint8))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    out.mkdir()
    (out / "img0.png").write_bytes(b"keep")
    sr, denoise = str(runs["sr"]), str(runs["denoise"])
    cases = [
        ((sr, tmp_path / "big"), "is 28x28; this run restores 7x7"),
        ((sr, tmp_path / "rgb"), "is a RGB image"),
        ((sr, tmp_path / "bad"), "cannot read image"),
        ((denoise, tmp_path / "big", "--task", "sr"), "trained for denoise, not sr"),
        ((denoise, tmp_path / "big"), "already exists"),
        ((tmp_path / "big", tmp_path / "big"), "no config.json"),
    ]
    assert_one_line_error(run_cli("restore", "apply", *cases[0][0], "--out", out), cases[0][1])
    for args, pattern in cases[1:]:
        assert pattern in main_error(capsys, "restore", "apply", *args, "--out", out)
    assert (out / "img0.png").read_bytes() == b"keep" and len(list(out.iterdir())) == 1


def test_apply_refuses_a_run_of_ganimate_train(tmp_path, tiny, capsys):
    from ganimate.train import fit

    gan = fit(tiny(max_steps=1))
    write_pngs(tmp_path / "in", np.zeros((1, 28, 28), np.uint8))
    assert "not a restoration run" in main_error(capsys, "restore", "apply", gan, tmp_path / "in", "--out",
                                                 tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_train_cli_bad_input(tmp_path, capsys):
    assert_one_line_error(run_cli("restore", "train", "--task", "inpaint", "--out", tmp_path / "r"), "unknown task")
    assert "--factor must be 2 or 4" in main_error(capsys, "restore", "train", "--task", "sr", "--factor", "3",
                                                   "--out", tmp_path / "r")
    assert "--resume and --overwrite" in main_error(capsys, "restore", "train", "--resume", "--overwrite")
    assert not (tmp_path / "r").exists()


# evaluate


def test_evaluate_table_holds_baselines_and_models(runs, tmp_path):
    from ganimate.restore.evaluate import evaluate_restoration, restore_table

    l1 = fit_restore(tiny_cfg(tmp_path, "l1", task="denoise", adv_weight=0.0, max_steps=3))
    record, previews = evaluate_restoration([runs["denoise"], l1], n=20, tune_n=4, log=lambda _: None)
    methods = [r["method"] for r in record["rows"]]
    assert methods == ["degraded input", "gaussian", "median", "nl_means", "tv", "GAN", "L1-only"]
    assert all(np.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 for r in record["rows"])
    assert record["rows"][5]["steps"] == 3 and previews["GAN"].shape == (10, 1, 28, 28)
    table = restore_table(record)
    assert table.count("\n") == 8 and "| nl_means | h=" in table
    head, rule, *lines = table.splitlines()
    columns = "method | tuned parameters | PSNR dB | SSIM | sharpness | class acc | FD | training | wall time s"
    assert head == f"| {columns} |"
    assert rule == "|---" * 9 + "|" and all(line.count(" | ") == 8 for line in lines)
    gan = record["rows"][5]
    assert lines[5] == (f"| GAN | adv_weight={gan['params']['adv_weight']:g}, g_width=8 | {gan['psnr']:.2f} | "
                        f"{gan['ssim']:.3f} | {gan['sharpness']:.2f} | — | — | 3 steps | {gan['wall_s']:.0f} |")
    with pytest.raises(GanimateError, match="compare runs of one task"):
        evaluate_restoration([runs["denoise"], runs["sr"]], n=20, tune_n=4, log=lambda _: None)


def test_evaluate_cli_saves_the_table(runs):
    result = run_cli("restore", "evaluate", runs["sr"], "--n", "20", "--tune-n", "4")
    assert result.returncode == 0, result.stderr
    assert "| bicubic |" in result.stdout and "| lanczos |" in result.stdout and "| GAN |" in result.stdout
    assert "| bicubic |" in (runs["sr"] / "restore_eval.md").read_text()
    record = json.loads((runs["sr"] / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["kind"] == "restore" and record["n"] == 20


def test_real_data_scores_with_the_reference_classifier(real_data, tmp_path):
    from ganimate.restore.evaluate import evaluate_restoration

    run = fit_restore(tiny_cfg(tmp_path, task="denoise", dataset="mnist", max_steps=2))
    record, _ = evaluate_restoration([run], n=200, tune_n=4, baselines=False, log=lambda _: None)
    rows = {r["method"]: r for r in record["rows"]}
    assert rows["clean (reference)"]["class_acc"] > 0.97 and rows["clean (reference)"]["fd"] < 1e-6
    assert rows["GAN"]["fd"] > 0 and 0 <= rows["GAN"]["class_acc"] <= 1
