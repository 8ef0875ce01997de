"""Evaluation metrics: the registry and its table formatter, PSNR / SSIM against scikit-image, exact unit checks on
synthetic tensors, sanity checks on real MNIST, `evaluate` end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganimate.errors import GanimateError
from ganimate.metrics import cache, classifier, fd, pixel, registry
from ganimate.metrics import evaluate as image_eval
from ganimate.metrics.class_acc import class_acc
from ganimate.metrics.classifier import NetSpec, SmallCNN, load_reference, random_noise
from ganimate.metrics.evaluate import METRICS, Context, EvaluateConfig, image_table, quick_eval, run_evaluate
from ganimate.metrics.fd import feature_stats, frechet_distance
from ganimate.metrics.nn1 import nearest, nn1, nn1_error, nn1_predict
from ganimate.metrics.pixel import psnr, ssim
from ganimate.metrics.pr import knn_radii, per_class, precision_recall
from ganimate.metrics.registry import Row, compute_metrics, format_table, metric_rows, metrics_for, register_metric


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANIMATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------- Fréchet distance


def random_cov(d, seed, rank=None):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return (a @ a.T / d).numpy()


def test_fd_of_identical_gaussians_is_zero():
    mu, s = np.arange(16.0), random_cov(16, 0)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0, abs=1e-8)
    low_rank = random_cov(16, 1, rank=3)  # singular covariance: no complex parts, still 0
    assert frechet_distance(mu, low_rank, mu, low_rank) == pytest.approx(0, abs=1e-6)


def test_fd_of_shifted_gaussians_is_squared_shift():
    s = random_cov(32, 2)
    delta = np.linspace(-1, 1, 32)
    assert frechet_distance(np.zeros(32), s, delta, s) == pytest.approx((delta**2).sum(), rel=1e-9)


def test_fd_matches_scipy_sqrtm_formula():
    from scipy import linalg

    s1, s2 = random_cov(10, 3), random_cov(10, 4)
    mu1, mu2 = np.zeros(10), np.ones(10)
    expected = 10 + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fd_of_samples_from_one_gaussian_is_small():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(20000, 8, generator=g), torch.randn(20000, 8, generator=g)
    assert frechet_distance(*feature_stats(x), *feature_stats(y)) < 0.01
    assert frechet_distance(*feature_stats(x), *feature_stats(y + 2)) == pytest.approx(32, rel=0.01)


# ---------------------------------------------------------------- precision / recall


def test_knn_radii_on_a_line():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert knn_radii(x, k=1).tolist() == [1, 1, 1, 1, 7]
    assert knn_radii(x, k=2, chunk=2).tolist() == [2, 1, 1, 2, 8]


def test_precision_recall_on_point_clouds():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 2, generator=g)
    same = precision_recall(real, torch.randn(2000, 2, generator=g), chunk=300)
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    far = precision_recall(real, torch.randn(2000, 2, generator=g) + 100)
    assert far == {"precision": 0.0, "recall": 0.0}
    collapsed = precision_recall(real, 0.05 * torch.randn(2000, 2, generator=g))  # one mode of the real cloud
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.1
    radii = knn_radii(real, 3)  # the real radii computed before (evaluate caches them) give the same numbers
    assert precision_recall(real, 0.05 * real, real_radii=radii) == precision_recall(real, 0.05 * real)
    assert precision_recall(real, 0.05 * real, real_radii=radii * 0) != precision_recall(real, 0.05 * real)


def test_per_class_recall_finds_the_collapsed_class():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    real_y, fake_y = torch.arange(3).repeat(600), torch.arange(3).repeat(600)
    real = centres[real_y] + torch.randn(1800, 2, generator=g)
    fake = centres[fake_y] + torch.randn(1800, 2, generator=g)
    fake[fake_y == 1] = centres[1] + 0.05 * torch.randn(600, 2, generator=g)  # class 1 collapsed to one point
    out = per_class(real, real_y, fake, fake_y, 4)
    assert out["recall_per_class"][0] > 0.9 and out["recall_per_class"][2] > 0.9
    assert out["recall_per_class"][1] < 0.1 and out["precision_per_class"][1] > 0.95
    assert math.isnan(out["recall_per_class"][3])  # no images of class 3
    overall = precision_recall(real, fake)["recall"]
    assert overall > 0.6  # the average over classes hides what per class shows


# ---------------------------------------------------------------- 1-NN


def test_nn1_on_a_hand_made_set():
    train = torch.tensor([[0, 0, 0, 0], [255, 255, 0, 0], [0, 0, 255, 255], [255, 255, 0, 0]], dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    test = torch.tensor([[1, 0, 0, 2], [200, 255, 10, 0], [0, 10, 250, 250], [128, 128, 0, 0]], dtype=torch.uint8)
    # the last query is nearer to rows 1 and 3 (a tie) than to row 0: the lower index wins
    assert nn1_predict(train, labels, test).tolist() == [0, 1, 2, 1]
    assert nn1_error(train, labels, test, torch.tensor([0, 1, 2, 3])) == 0.25


def test_nn1_is_exact_where_float32_distances_tie():
    # |a - b|^2 is 783 * 255^2 + 1 and 783 * 255^2: float32 (spacing 4 there) cannot tell them apart
    a = torch.full((1, 28 * 28), 255, dtype=torch.uint8)
    b = torch.zeros(2, 28 * 28, dtype=torch.uint8)
    b[0, 0], b[1, 0] = 254, 255
    assert nn1_predict(b, torch.tensor([7, 9]), a).tolist() == [9]


def test_nn1_matches_brute_force_on_large_images():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (300, 3, 32, 32), generator=g, dtype=torch.uint8)  # 3072 pixels: 3 blocks
    test = torch.randint(0, 256, (50, 3, 32, 32), generator=g, dtype=torch.uint8)
    test[:10] = train[100:110]
    labels = torch.arange(300)
    d = torch.cdist(test.flatten(1).double(), train.flatten(1).double())
    assert torch.equal(nn1_predict(train, labels, test, chunk=7), labels[d.argmin(1)])


def _cpu_int_mm() -> bool:
    """Whether this PyTorch has integer matrix products on the CPU at all (2.4 and later), fast or not."""
    try:
        torch._int_mm(torch.ones(8, 32, dtype=torch.int8), torch.ones(32, 8, dtype=torch.int8))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def test_int8_products_are_used_only_where_they_exist_and_win(monkeypatch):
    import ganimate.metrics.nn1 as nn1_mod

    probe = nn1_mod.int8_matmul.__wrapped__  # uncached
    if not _cpu_int_mm():
        assert probe() is False
        return

    def timed(int8_seconds):  # the probe's timer, told which of its two products is the integer one
        return lambda f: int8_seconds if "_int_mm" in f.__code__.co_names else 1.0

    monkeypatch.setattr(nn1_mod, "_seconds", timed(2.0))
    assert probe() is False  # exact but slower than float32 (an AVX2 CPU without VNNI)
    monkeypatch.setattr(nn1_mod, "_seconds", timed(0.5))
    assert probe() is True

    def missing(*args):
        raise RuntimeError("_int_mm: not implemented for CPU")

    monkeypatch.setattr(torch, "_int_mm", missing)
    assert probe() is False  # PyTorch before 2.4


# the integer matrix products wherever this PyTorch has them on the CPU (even where float32 is faster and nn1 would
# not pick them), and the float32 ones everywhere
PRODUCTS = [False, *([True] if _cpu_int_mm() else [])]


@pytest.mark.parametrize("int8", PRODUCTS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 3), (3, 32, 32)])  # one pixel: odd strides on size-1 dims
def test_both_products_find_the_brute_force_nearest(int8, shape):
    g = torch.Generator().manual_seed(2)
    train = torch.randint(0, 256, (23, *shape), generator=g, dtype=torch.uint8)
    test = torch.randint(0, 256, (9, *shape), generator=g, dtype=torch.uint8)
    test[:2] = train[[4, 17]]
    d = torch.cdist(test.flatten(1).double(), train.flatten(1).double())
    for chunk, cols in ((1, 1), (4, 5), (512, 4096)):
        assert torch.equal(nearest(train, test, chunk=chunk, cols=cols, int8=int8)[23], d.argmin(1)), (chunk, cols)


def test_nearest_serves_every_size_in_one_pass_with_lowest_index_ties():
    g = torch.Generator().manual_seed(1)
    train = torch.randint(0, 256, (40, 1, 6, 6), generator=g, dtype=torch.uint8)
    train[25], train[33] = train[3], train[12]  # duplicates across tiles and sizes: the lower index must win
    test = torch.randint(0, 256, (11, 1, 6, 6), generator=g, dtype=torch.uint8)
    test[:3] = train[[3, 12, 30]]
    d = torch.cdist(test.flatten(1).double(), train.flatten(1).double())  # argmin: the first of equals
    found = nearest(train, test, [17, 5, 40, 99], chunk=4, cols=3)  # tiles of 3 columns straddle every size
    assert sorted(found) == [5, 17, 40]
    for n in (5, 17, 40):
        assert torch.equal(found[n], d[:, :n].argmin(1)), n
    assert found[40][:3].tolist() == [3, 12, 30]
    labels, test_y = torch.arange(40) % 4, torch.arange(11) % 4
    out = nn1(train, labels, test, test_y, [5, 40])
    assert out == {f"nn1_error_{n}": nn1_error(train[:n], labels[:n], test, test_y) for n in (5, 40)}


def test_generate_images_matches_plain_sampling_and_leaves_g_alone():
    from ganimate.images import to_uint8
    from ganimate.models.dcgan import FastGenerator
    from ganimate.sample import generate, generate_images, latents

    torch.manual_seed(0)
    G = FastGenerator(z_dim=16, image_size=16, channels=1, num_classes=3, width=32).train()
    y = torch.arange(70) % 3
    x = generate_images(G, 70, 5, y, batch_size=32)  # (N, C, H, W) uint8, batches of 32 from a channels_last copy
    assert x.dtype == torch.uint8 and x.shape == (70, 1, 16, 16) and not x.is_inference()
    assert G.training and G.fc.weight.requires_grad and G.net[0].weight.is_contiguous()  # G itself untouched
    with torch.no_grad():
        plain = torch.from_numpy(to_uint8(G.eval()(latents(70, 16, 5), y))).permute(0, 3, 1, 2)
    assert (x.int() - plain.int()).abs().max() <= 1 and (x != plain).float().mean() < 1e-3  # float rounding only
    assert torch.equal(generate_images(G, 20, 5, y[:20], batch_size=7), x[:20])  # the first k don't depend on n
    rest = generate_images(G, 70, 5, y, batch_size=32, start=32)  # evaluate's second part, beside CAS
    assert rest.shape == (38, 1, 16, 16) and torch.equal(rest, x[32:])
    assert np.array_equal(generate(G, 70, 5, y), x.permute(0, 2, 3, 1).numpy())
    half = generate_images(G, 70, 5, y, precision="bf16")  # bf16 autocast: close, not equal
    assert (half.int() - x.int()).abs().float().mean() < 2 and G.fc.weight.dtype == torch.float32


# ---------------------------------------------------------------- class accuracy, classifier


def test_class_acc_overall_and_per_class():
    out = class_acc(torch.tensor([0, 1, 1, 2, 0, 2]), torch.tensor([0, 1, 2, 2, 0, 0]), 4)
    assert out["class_acc"] == pytest.approx(4 / 6)
    per_class = out["class_acc_per_class"]
    assert per_class[:3] == pytest.approx([2 / 3, 1, 1 / 2]) and np.isnan(per_class[3])


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shipped_reference_classifiers(name):
    weights, info_path = classifier.reference_paths(name)
    info = json.loads(info_path.read_text())
    assert weights.stat().st_size < 2_000_000 and classifier.sha256_file(weights) == info["sha256"]
    assert info["test_accuracy"] >= info["target_accuracy"]
    for key in ("seed", "epochs", "command", "train_seconds", "torch"):
        assert key in info
    model = load_reference(name)
    assert not model.training and load_reference(name) is model
    feats, logits = classifier.embed(model, torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    assert feats.shape == (3, 128) and logits.shape == (3, 10) and (feats >= 0).all()


@pytest.mark.parametrize("name", ["cifar10", "synthetic", "folder:/tmp/pics"])
def test_no_reference_classifier(name):
    with pytest.raises(GanimateError, match=f"^no reference classifier for {name};"):
        load_reference(name)


def test_classifier_refuses_float_images():
    with pytest.raises(TypeError, match="uint8"):
        SmallCNN(NetSpec())(torch.rand(2, 1, 28, 28))


def test_random_noise_keeps_uint8_and_spares_a_share():
    x = torch.full((400, 1, 8, 8), 100, dtype=torch.uint8)
    y = random_noise(x, 40, 0.5, torch.Generator().manual_seed(0))
    changed = (y != x).flatten(1).any(1).float().mean()
    assert y.dtype == torch.uint8 and 0.35 < changed < 0.65


# ---------------------------------------------------------------- stats cache


def test_stats_cache_hit_and_key(monkeypatch, private_cache):
    calls = []
    real_embed = fd.embed

    def counting_embed(model, images, *a, **kw):
        calls.append(len(images))
        return real_embed(model, images, *a, **kw)

    images = torch.randint(0, 256, (300, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    monkeypatch.setattr(fd, "embed", counting_embed)
    monkeypatch.setattr(fd, "real_images", lambda dataset, split, n, data_dir=None: (images[:n], None))
    first = fd.real_features("mnist", "test", 200)
    again = fd.real_features("mnist", "test", 200)
    assert calls == [200] and np.array_equal(first["sigma"], again["sigma"]) and first["features"].shape == (200, 128)
    fd.real_features("mnist", "test", 100)
    assert calls == [200, 100]
    files = sorted(p.name for p in (private_cache / "stats").iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") and not f.startswith(".") for f in files)
    sha = classifier.reference_info("mnist")["sha256"]
    key = dict(kind="features", dataset="mnist", split="test", classifier=sha)
    assert cache.cache_key(n=200, **key) != cache.cache_key(n=100, **key)
    assert cache.cache_key(n=200, **key) != cache.cache_key(n=200, **{**key, "classifier": "0" * 64})


# ---------------------------------------------------------------- PSNR and SSIM (metrics.pixel)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_and_ssim_match_scikit_image(channels):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    clean = torch.rand(4, channels, 28, 28, generator=gen(0), dtype=torch.float64)
    clean[1] = 0.2  # a flat image
    restored = (clean + 0.1 * torch.randn(clean.shape, generator=gen(1), dtype=torch.float64)).clamp(0, 1)
    restored[2] = torch.nn.functional.avg_pool2d(clean[2:3], 3, 1, 1)[0]  # a blurred one
    ours_p, ours_s = psnr(restored, clean), ssim(restored, clean)
    assert ours_p.shape == ours_s.shape == (4,) and ours_p.dtype == ours_s.dtype == torch.float64
    for i in range(4):
        a, b = clean[i].permute(1, 2, 0).numpy(), restored[i].permute(1, 2, 0).numpy()
        ref_s = structural_similarity(a, b, data_range=1, channel_axis=2)
        assert float(ours_p[i]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-9)
        assert float(ours_s[i]) == pytest.approx(ref_s, abs=1e-9)
    assert float(ssim(clean, clean).min()) == pytest.approx(1.0)


def test_uint8_frames_match_scikit_image_with_data_range_255():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    true = torch.randint(0, 256, (5, 1, 32, 32), generator=gen(2), dtype=torch.uint8)
    noise = torch.randint(-40, 41, true.shape, generator=gen(3))
    pred = (true.int() + noise).clamp(0, 255).to(torch.uint8)
    pred[4, :, :16] = true[4, :, :16]  # half a frame exact
    ours_p, ours_s = psnr(pred, true, data_range=255), ssim(pred, true, data_range=255)
    for i in range(5):
        a, b = true[i, 0].numpy(), pred[i, 0].numpy()
        assert float(ours_p[i]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
        assert float(ours_s[i]) == pytest.approx(structural_similarity(a, b, data_range=255), abs=1e-9)
    # the same images in [0, 1] score the same
    assert torch.allclose(psnr(pred / 255, true / 255), ours_p, atol=1e-9)
    assert torch.allclose(ssim(pred / 255, true / 255), ours_s, atol=1e-9)


def test_psnr_is_capped_at_60_db_and_broadcasts():
    frames = torch.randint(0, 256, (3, 2, 4, 1, 16, 16), generator=gen(4), dtype=torch.uint8)  # (K, N, T, C, H, W)
    assert torch.equal(psnr(frames, frames, 255), torch.full((3, 2, 4), 60.0, dtype=torch.float64))
    x = torch.rand(2, 3, 8, 8, generator=gen(5))
    assert torch.equal(psnr(x, x), torch.full((2,), pixel.PSNR_CAP_DB, dtype=torch.float64))
    near = x.double() + 1e-4  # MSE 1e-8: 80 dB uncapped
    assert torch.equal(psnr(near, x), torch.full((2,), 60.0, dtype=torch.float64))
    off = x.double() + 0.01  # MSE 1e-4: 40 dB, under the cap
    assert torch.allclose(psnr(off, x), torch.full((2,), 40.0, dtype=torch.float64), atol=1e-9)
    truth = frames[0]  # (N, T, C, H, W) against K samples
    p = psnr(frames, truth[None], 255)
    assert p.shape == (3, 2, 4) and torch.equal(p[0], torch.full((2, 4), 60.0, dtype=torch.float64))
    assert torch.equal(p[1], psnr(frames[1], truth, 255))


def test_chunks_do_not_change_the_values(monkeypatch):
    pred, true = torch.rand(2, 10, 1, 12, 12, generator=gen(6)), torch.rand(2, 10, 1, 12, 12, generator=gen(7))
    whole_p, whole_s = psnr(pred, true), ssim(pred[0], true[0])
    monkeypatch.setattr(pixel, "_CHUNK_VALUES", 3 * 144)  # three images a chunk
    assert torch.equal(psnr(pred, true), whole_p) and torch.equal(ssim(pred[0], true[0]), whole_s)


def test_ssim_refuses_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(torch.rand(2, 1, 6, 8), torch.rand(2, 1, 6, 8))


# ---------------------------------------------------------------- the registry and its one table formatter


@pytest.fixture
def empty_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})


def test_register_metric_computes_in_order_with_reasons(empty_registry):
    @register_metric("double", task="t", rows=lambda r: [Row("double", f"{r['double']}")] if "double" in r else [])
    def double(ctx):
        return {"double": 2 * ctx}

    @register_metric("odd", task="t", rows=lambda r: [], requires=(lambda ctx: None if ctx % 2 else "needs odd",))
    def odd(ctx):
        return {"odd": True}

    assert list(metrics_for("t")) == ["double", "odd"] and metrics_for("t")["odd"].fn is odd and metrics_for("u") == {}
    results, na, seconds = compute_metrics("t", 4, ["double", "odd"])
    assert results == {"double": 8} and na == {"odd": "needs odd"} and set(seconds) == {"double"}
    assert compute_metrics("t", 3, ["odd", "double"])[0] == {"odd": True, "double": 6}
    with pytest.raises(GanimateError, match="^odd needs odd$"):
        compute_metrics("t", 4, ["odd"], strict=True)
    assert metric_rows("t", {"double": 8}) == [Row("double", "8")] and metric_rows("t", {}) == []


def test_a_metric_name_belongs_to_one_module_per_task(empty_registry):
    register_metric("m", task="t", rows=lambda r: [])(len)  # builtins
    with pytest.raises(ValueError, match="already registered"):
        register_metric("m", task="t", rows=lambda r: [])(lambda ctx: {})
    register_metric("m", task="other", rows=lambda r: [])(lambda ctx: {})  # another task: its own names


def test_format_table_list_and_grid():
    rows = [Row("fd", "1.500", "floor 0.2"), Row("long label here", "0.12"), Row("per class", "0:1 1:0", detail=True)]
    assert format_table(rows, title="run step 3", footer=["seconds  total 1"]) == "\n".join([
        "run step 3",
        "  fd                  1.500  floor 0.2",
        "  long label here      0.12",
        "  per class  0:1 1:0",
        "  seconds  total 1",
    ])
    grid = {"a": [Row("x", "1", "note"), Row("y", "2")],
            "b": [Row("y", "3"), Row("z", "4"), Row("d", "5", detail=True)]}
    assert format_table(grid, corner="method") == "\n".join([
        "| method | x | y | z |",
        "|---|---|---|---|",
        "| a | 1 | 2 | — |",
        "| b | — | 3 | 4 |",
    ])


def test_image_metrics_are_registered_in_table_order():
    assert list(METRICS) == ["fd", "kid", "pr", "class_acc", "cas", "nn1"] and METRICS is metrics_for("image")
    assert all(callable(m.fn) and m.about for m in METRICS.values())


def test_image_table_of_a_record():
    record = {"step": 7, "checkpoint": "runs/x/checkpoints/step_000007.pt", "n": 300, "seed": 0, "dataset": "mnist",
              "fd": 12.3456, "fd_floor": 1.2, "fd_real_n": 300, "precision": 0.5, "recall": 0.25,
              "class_acc": 0.9, "class_acc_per_class": [1.0, 0.8], "class_acc_reference": 0.9934, "cas": 0.81,
              "cas_real": 0.95, "nn1_error_300": 0.2, "nn1_real_error_300": 0.1, "n/a": {"x": "needs y"},
              "seconds": {"generate": 0.5, "total": 3}}
    assert image_table(record, "runs/x") == "\n".join([
        "runs/x step 7 (step_000007.pt), mnist, n=300, seed 0",
        "  fd                12.346  real-vs-real floor 1.200 (N=300)",
        "  precision          0.500  k=3 manifolds in classifier features",
        "  recall             0.250",
        "  class_acc         0.9000  reference classifier on real test images 0.9934",
        "  cas               0.8100  same training on 300 real images 0.9500",
        "  nn1 error @300    0.2000  fitted on 300 real training images 0.1000",
        "  x                    n/a  needs y",
        "  class_acc per class  0:1.000 1:0.800",
        "  seconds  generate 0.5 total 3",
    ])


def test_applicability_asks_the_dataset_registry(monkeypatch):
    ctx = Context(dataset="mnist", data_dir=None, num_classes=10, image_size=28, channels=1, n=10)
    assert METRICS["fd"].problem(ctx) is None and METRICS["cas"].problem(ctx) is None
    monkeypatch.setattr(image_eval, "has_reference_classifier", lambda spec: False)
    monkeypatch.setattr(image_eval, "has_labelled_test", lambda spec: False)
    assert METRICS["fd"].problem(ctx) == "no reference classifier for mnist"
    assert METRICS["nn1"].problem(ctx) == "mnist has no labelled test split"


def test_evaluation_modules_import_no_scipy_skimage_or_opencv():
    code = ("import sys, ganimate.metrics.evaluate, ganimate.metrics.pixel, ganimate.restore.evaluate, "
            "ganimate.clips.evaluate\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'skimage', 'cv2'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- evaluate on a tiny synthetic run


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from conftest import tiny_config

    from ganimate.train import fit

    root = tmp_path_factory.mktemp("evaluate")
    fit(tiny_config(root, out=str(root / "cond"), max_steps=3))
    fit(tiny_config(root, out=str(root / "uncond"), max_steps=3, conditional=False))
    return root


def test_evaluate_config_validation():
    for kw, message in [
        (dict(run=""), "evaluate needs a run folder"),
        (dict(run="r", metrics="fd,bleu"), "unknown metric bleu"),
        (dict(run="r", n=1), "--n must be at least 2"),
        (dict(run="r", nn1_sizes="10,x"), "--nn1-sizes must be a comma list"),
        (dict(run="r", nn1_sizes="0"), "--nn1-sizes must be a comma list"),
        (dict(run="r", precision="fp16"), "--precision must be auto, fp32 or bf16"),
    ]:
        with pytest.raises(GanimateError, match=message):
            EvaluateConfig(**kw)
    assert EvaluateConfig(run="r", metrics="all").metric_names == list(METRICS)
    assert EvaluateConfig(run="r", nn1_sizes="5, 7").sizes == (5, 7)


@pytest.fixture
def quick_cas(monkeypatch):
    from ganimate.metrics import cas

    monkeypatch.setattr(cas, "CAS_BUDGET", classifier.TrainBudget(steps=40))


def test_evaluate_synthetic_conditional_run(tiny_runs, quick_cas, capsys):
    run = tiny_runs / "cond"
    record = run_evaluate(EvaluateConfig(run=str(run), n=200, nn1_sizes="100,200", json=True))
    assert set(record["n/a"]) == {"fd", "kid", "pr", "class_acc"}
    assert record["n/a"]["fd"] == "no reference classifier for synthetic"
    for key in ("cas", "cas_real", "nn1_error_100", "nn1_error_200", "nn1_real_error_100", "nn1_real_error_200"):
        assert 0 <= record[key] <= 1
    assert record["cas_real"] > 0.5 and record["nn1_real_error_200"] < 0.5  # bars at 10 angles: easy
    assert record["step"] == 3 and record["checkpoint"].endswith("step_000003.pt")
    from ganimate.runtime import native_bf16

    assert record["generate_precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")  # auto
    assert json.loads(capsys.readouterr().out) == record
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == record
    table = image_table(record, run)
    assert "nn1 error @200" in table and "class_acc" in table and "n/a" in table


def test_nn1_draws_average_the_errors_of_evaluations_at_successive_seeds(tiny_runs, capsys):
    """--nn1-draws K: the 1-NN error of each draw is that of `evaluate --seed S + d`, the record holds their mean,
    spread and list, and the table says over how many draws."""
    run = str(tiny_runs / "cond")
    one = [run_evaluate(EvaluateConfig(run=run, metrics="nn1", nn1_sizes="60,150", seed=s, json=True))
           for s in (3, 4, 5)]
    three = run_evaluate(EvaluateConfig(run=run, metrics="nn1", nn1_sizes="60,150", seed=3, nn1_draws=3, json=True))
    for n in (60, 150):
        errors = [r[f"nn1_error_{n}"] for r in one]
        assert three[f"nn1_draws_{n}"] == pytest.approx(errors)
        assert three[f"nn1_error_{n}"] == pytest.approx(sum(errors) / 3)
        assert three[f"nn1_spread_{n}"] == pytest.approx(float(torch.tensor(errors, dtype=torch.float64).std()))
        assert three[f"nn1_real_error_{n}"] == one[0][f"nn1_real_error_{n}"]
    assert three["nn1_draws"] == 3 and "nn1_draws" not in one[0]
    assert "over 3 draws of latents" in image_table(three)
    with pytest.raises(GanimateError, match="--nn1-draws must be at least 1"):
        EvaluateConfig(run=run, nn1_draws=0)


def test_evaluate_trains_cas_beside_the_other_metrics(tiny_runs, quick_cas, monkeypatch):
    """With two threads or more, CAS trains on a thread of its own with half of them while the main thread makes
    the rest of the samples and the other metrics; the numbers are those of a one-thread evaluation in turn."""
    import threading

    from ganimate.metrics import cas as cas_mod

    seen, real_cas = [], cas_mod.cas

    def spy(*args, **kwargs):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real_cas(*args, **kwargs)

    monkeypatch.setattr(cas_mod, "cas", spy)
    cfg = EvaluateConfig(run=str(tiny_runs / "cond"), metrics="cas,nn1", n=100, nn1_sizes="100,300", json=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        in_turn = run_evaluate(cfg)
        assert seen[0] == (threading.main_thread().name, 1) and "cas_threads" not in in_turn
        torch.set_num_threads(2)
        beside = run_evaluate(cfg)
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    name, threads = seen[-1]
    assert name.startswith("ganimate-cas") and threads == 1 and beside["cas_threads"] == [1, 2]
    for key in ("cas", "cas_real", "nn1_error_100", "nn1_error_300", "nn1_real_error_300"):
        assert beside[key] == in_turn[key], key
    assert "cas trained on 1 of 2 threads beside the other work" in image_table(beside)


def test_evaluate_beside_cas_draws_the_samples_of_one_call(tiny_runs, quick_cas, monkeypatch):
    """The first part ends at a whole batch after n (not at n), so both parts together are one call's batches."""
    from ganimate import sample

    calls, real_generate = [], sample.generate_images

    def spy(G, n, seed, y, *args, start=0, **kwargs):
        calls.append((start, n))
        return real_generate(G, n, seed, y, *args, start=start, **kwargs)

    monkeypatch.setattr(sample, "generate_images", spy)
    monkeypatch.setattr(sample, "GENERATE_BATCH", 40)
    cfg = EvaluateConfig(run=str(tiny_runs / "cond"), metrics="cas,nn1", n=50, nn1_sizes="130", json=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_evaluate(cfg)
    finally:
        torch.set_num_threads(before)
    assert calls == [(0, 80), (80, 130)]


def test_an_error_beside_cas_stops_its_training(tiny_runs, monkeypatch):
    """An error (or Ctrl-C) in the main thread while CAS trains beside it stops CAS at its next step: evaluate fails
    at once, not after a training of a million steps."""
    import threading

    from ganimate.metrics import cas as cas_mod

    monkeypatch.setattr(cas_mod, "CAS_BUDGET", classifier.TrainBudget(steps=10**6))
    started, real_train, stops = threading.Event(), cas_mod.train_classifier, []

    def train(*args, **kwargs):
        stops.append(kwargs["stop"])
        started.set()
        return real_train(*args, **kwargs)

    def broken_nn1(*args, **kwargs):
        assert started.wait(60)
        raise RuntimeError("nn1 broke")

    monkeypatch.setattr(cas_mod, "train_classifier", train)
    monkeypatch.setattr(image_eval, "nn1", broken_nn1)
    outcome = []

    def evaluate():  # in a thread of its own, so that a CAS that does not stop fails the test instead of hanging it
        try:
            run_evaluate(EvaluateConfig(run=str(tiny_runs / "cond"), metrics="cas,nn1", n=100, nn1_sizes="300"))
        except BaseException as e:
            outcome.append(e)

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the evaluating thread takes two threads: CAS beside the rest
    try:
        caller = threading.Thread(target=evaluate, daemon=True)
        caller.start()
        caller.join(120)
    finally:
        torch.set_num_threads(before)
        alive = caller.is_alive()
        for stop in stops:  # if evaluate did not stop it, stop it here so the test session can end
            stop.set()
    assert not alive, "CAS went on training after the main thread failed"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError) and str(outcome[0]) == "nn1 broke"
    assert not any(t.name.startswith("ganimate-cas") for t in threading.enumerate())


def test_classifier_training_stops_when_asked():
    import threading

    stop = threading.Event()
    stop.set()
    x, y = torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.arange(8) % 2
    spec, budget = classifier.NetSpec(image_size=8, num_classes=2), classifier.TrainBudget(steps=5)
    with pytest.raises(classifier.Stopped, match="stopped at step 0 of 5"):
        classifier.train_classifier(x, y, spec, budget, stop=stop)
    assert not classifier.train_classifier(x, y, spec, budget, stop=threading.Event()).training  # never set: trains


def test_evaluate_unconditional_run(tiny_runs, capsys):
    run = tiny_runs / "uncond"
    record = run_evaluate(EvaluateConfig(run=str(run), n=50))
    assert set(record["n/a"]) == set(METRICS)
    assert record["n/a"]["class_acc"] == "needs a conditional run"
    assert "class_acc" in capsys.readouterr().out
    with pytest.raises(GanimateError, match="^class_acc needs a conditional run$"):
        run_evaluate(EvaluateConfig(run=str(run), metrics="class_acc", n=50))
    with pytest.raises(GanimateError, match="^fd: no reference classifier for synthetic$"):
        run_evaluate(EvaluateConfig(run=str(tiny_runs / "cond"), metrics="fd,nn1", n=50))


def test_evaluate_needs_a_checkpoint(tmp_path):
    with pytest.raises(GanimateError, match="does not exist"):
        run_evaluate(EvaluateConfig(run=str(tmp_path / "nothing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanimateError, match="has no checkpoint"):
        run_evaluate(EvaluateConfig(run=str(tmp_path / "empty")))


# ---------------------------------------------------------------- real data


N = 2000


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_reference_accuracy_on_real_test_set(real_data, name):
    x, y = cache.real_images(name, "test")
    acc = classifier.accuracy(load_reference(name), x, y)
    assert acc >= {"mnist": 0.993, "fashion-mnist": 0.92}[name]
    assert acc == pytest.approx(classifier.reference_info(name)["test_accuracy"], abs=1e-4)


@pytest.mark.realdata
def test_real_fd_small_and_growing_with_noise(real_data):
    """FD rises steadily with visible noise; faint noise (sigma <= 16 grey levels) is deliberately ignored,
    as the reference classifier is trained not to read the faint speckle of GAN samples as ink."""
    model = load_reference("mnist")
    train = fd.real_features("mnist", "train", N)
    test_x, _ = cache.real_images("mnist", "test", N)

    def fd_with_noise(sigma):
        g = torch.Generator().manual_seed(0)
        noisy = (test_x.float() + sigma * torch.randn(test_x.shape, generator=g)).round().clamp(0, 255).byte()
        return frechet_distance(train["mu"], train["sigma"], *feature_stats(classifier.embed(model, noisy)[0]))

    floor = fd_with_noise(0)
    values = [floor] + [fd_with_noise(s) for s in (48, 64, 96, 128)]
    assert floor < 5, values
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] > 50 * floor, values
    assert fd_with_noise(16) == pytest.approx(floor, rel=0.25)


@pytest.mark.realdata
def test_real_precision_recall_high(real_data):
    test = fd.real_features("mnist", "test", N)["features"]
    train = fd.real_features("mnist", "train", N)["features"]
    out = precision_recall(torch.from_numpy(train), torch.from_numpy(test))
    assert out["precision"] > 0.6 and out["recall"] > 0.6, out


@pytest.mark.realdata
def test_real_nn1_error_band(real_data):
    train_x, train_y = cache.real_images("mnist", "train", 10000)
    test_x, test_y = cache.real_images("mnist", "test")
    assert 0.02 < nn1_error(train_x, train_y, test_x, test_y) < 0.06


def save_untrained_run(root: Path, **overrides) -> Path:
    from ganimate.checkpoint import save_checkpoint
    from ganimate.config import TrainConfig
    from ganimate.models import build_models

    cfg = TrainConfig(dataset="mnist", out=str(root), conditional=True, num_classes=10, image_size=28, channels=1,
                      z_dim=16, g_width=32, device="cpu", **overrides)
    torch.manual_seed(0)
    G, _ = build_models(cfg)
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_checkpoint({"step": 5, "config": cfg.to_dict(), "G": G.state_dict(), "G_ema": None}, root, 5)
    return root


@pytest.mark.realdata
def test_fd_draws_average_the_fd_of_evaluations_at_successive_seeds(real_data, tmp_path):
    """--fd-draws K: the FD of each draw is that of `evaluate --seed S + d` (whatever else is evaluated beside
    it), the record holds their mean, spread and list, and the table says over how many draws."""
    run = str(save_untrained_run(tmp_path / "run"))
    one = [run_evaluate(EvaluateConfig(run=run, metrics="fd", n=120, seed=s, json=True))["fd"] for s in (3, 4, 5)]
    assert len(set(one)) == 3  # the draws differ
    three = run_evaluate(EvaluateConfig(run=run, metrics="fd,nn1", n=120, nn1_sizes="60,150", seed=3, fd_draws=3,
                                        json=True))
    assert three["fd_draw_values"] == pytest.approx(one, rel=1e-4)
    assert three["fd"] == pytest.approx(sum(three["fd_draw_values"]) / 3)
    assert three["fd_spread"] == pytest.approx(float(torch.tensor(three["fd_draw_values"], dtype=torch.float64).std()))
    assert three["fd_draws"] == 3 and "nn1_draws" not in three
    assert "over 3 draws of latents" in image_table(three)
    with pytest.raises(GanimateError, match="--fd-draws must be at least 1"):
        EvaluateConfig(run=run, fd_draws=0)


@pytest.mark.realdata
def test_evaluate_and_quick_eval_on_mnist(real_data, quick_cas, tmp_path, capsys):
    run = save_untrained_run(tmp_path / "run")
    # fp32 samples, as quick_eval draws them (auto would draw bf16 on a CPU that computes it natively)
    record = run_evaluate(EvaluateConfig(run=str(run), n=300, nn1_sizes="300", precision="fp32"))
    assert record["n/a"] == {}
    assert record["fd"] > 10 * record["fd_floor"] and record["fd_real_n"] == 300
    assert record["class_acc_reference"] >= 0.993 and len(record["class_acc_per_class"]) == 10
    assert 0 <= record["precision"] <= 1 and 0 <= record["recall"] <= 1
    assert len(record["recall_per_class"]) == len(record["recall_per_class_real"]) == 10
    assert min(record["recall_per_class_real"]) > 0.5
    assert record["cas_real"] > record["cas"] and record["nn1_real_error_300"] < record["nn1_error_300"]
    out = capsys.readouterr().out
    assert "real-vs-real floor" in out and "nn1 error @300" in out and "lowest class recall" in out

    from ganimate.runs import load_generator

    G, _ = load_generator(run)
    G.train()
    before = torch.get_rng_state()
    quick = quick_eval(G, "mnist", n=300)
    assert G.training and torch.equal(before, torch.get_rng_state())
    assert set(quick) == {"fd", "fd_floor", "fd_real_n", "class_acc", "class_acc_per_class", "class_acc_reference"}
    assert quick["fd"] == pytest.approx(record["fd"]) and quick["class_acc"] == record["class_acc"]
