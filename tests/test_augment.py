"""Augmentation for small data (augment.py): DiffAugment's operations, ADA's adaptive p, `--augment auto`,
ADA's state across a resume, `--mirror` and bCR (`--consistency`)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from ganimate import augment as aug_module
from ganimate.augment import (
    ADA_INTERVAL,
    Augmenter,
    augment,
    brightness,
    contrast,
    cutout,
    random_shift,
    resolve_augment,
    resolve_consistency,
    saturation,
    translate,
)
from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.data import DATASETS, DatasetSpec, register_dataset
from ganimate.errors import GanimateError
from ganimate.runs import read_jsonl, resume_config
from ganimate.train import ImageTask, fit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _unregister():
    """The datasets a test registers leave the table with it (other modules list the table's names)."""
    yield
    for name in [n for n in DATASETS if n.startswith("augtest-")]:
        del DATASETS[name]


def _register(name: str, images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """A dataset of the given uint8 (N, 1, H, H) images, for these tests only."""
    if name not in DATASETS:
        classes = None if labels is None else [str(k) for k in range(int(labels.max()) + 1)]
        register_dataset(DatasetSpec(name, lambda *_, **__: (images, labels, classes), image_size=images.shape[2],
                                     channels=1, num_classes=len(classes or []), labelled_test=False))
    return name


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_operations_keep_shapes_and_ranges_and_pass_gradients(channels):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(16, channels, 28, 28, generator=gen) * 2 - 1).requires_grad_(True)  # (B, C, H, W)
    r = torch.rand(16, generator=gen)
    values = set(x.detach().flatten().tolist()) | {0.0}
    for y in (translate(x, torch.randint(-4, 5, (16,)), torch.randint(-4, 5, (16,)), 4),
              cutout(x, torch.randint(0, 28, (16,)), torch.randint(0, 28, (16,)), 14)):
        assert y.shape == x.shape and set(y.detach().flatten().tolist()) <= values  # moves or zeros pixels
    assert (brightness(x, r) - x).abs().max() <= 0.5
    assert contrast(x, r).abs().max() <= 1.5 + 1e-6 and saturation(x, r).abs().max() <= 3 + 1e-6
    if channels == 1:
        assert torch.equal(saturation(x, r), x)  # no colour to saturate in grey images
    y = augment(x, 1.0, gen)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_translate_and_cutout_move_and_clear_the_right_pixels():
    x = torch.arange(2 * 36, dtype=torch.float32).view(2, 1, 6, 6) + 1
    y = translate(x, torch.tensor([1, 0]), torch.tensor([-2, 0]), 2)
    assert torch.equal(y[0, 0, 1:, :4], x[0, 0, :5, 2:]) and (y[0, 0, 0] == 0).all() and (y[0, 0, :, 4:] == 0).all()
    assert torch.equal(y[1], x[1])
    z = cutout(x, torch.tensor([3, 0]), torch.tensor([3, 0]), 3)
    assert (z[0, 0, 2:5, 2:5] == 0).all() and (z[0] == 0).sum() == 9
    assert (z[1, 0, :2, :2] == 0).all() and (z[1] == 0).sum() == 4  # clipped at the corner


def test_p_zero_is_the_identity_and_the_draws_do_not_depend_on_p():
    x = torch.rand(32, 3, 16, 16) * 2 - 1
    gens = [torch.Generator().manual_seed(5) for _ in range(3)]
    assert torch.equal(augment(x, 0.0, gens[0]), x)
    augment(x, 0.7, gens[1])
    assert torch.equal(gens[0].get_state(), gens[1].get_state())
    # DiffAugment (p = 1) changes every image; p = 0.5 leaves 0.5^4 (0.5 + 0.5 / 9) = 3.5% untouched (each op
    # skipped, or a shift drawn as (0, 0) of 3 x 3 on 8 x 8 images)
    assert not (augment(x, 1.0, gens[2]) == x).flatten(1).all(1).any()
    x = torch.rand(4000, 3, 8, 8) * 2 - 1
    untouched = (augment(x, 0.5, torch.Generator().manual_seed(1)) == x).flatten(1).all(1).float().mean()
    assert 0.025 < untouched < 0.045, untouched


def test_ada_p_rises_while_d_is_overconfident_on_reals_and_falls_otherwise():
    ada = Augmenter("ada", target=0.6, batch_size=64)
    step_size = 64 * ADA_INTERVAL / aug_module.ADA_SPEED_IMAGES
    for _ in range(10 * ADA_INTERVAL):  # D calls every real real: r_t = 1 > 0.6
        ada.observe(torch.full((64, 1), 3.0))
        ada.step()
    assert ada.p == pytest.approx(10 * step_size)
    for _ in range(4 * ADA_INTERVAL):  # 3 of 4 reals called real: r_t = 0.5, below the target
        ada.observe(torch.tensor([2.0, 1.0, 0.5, -1.0] * 16))
        ada.step()
    assert ada.p == pytest.approx(6 * step_size)
    for _ in range(100 * ADA_INTERVAL):  # never below 0
        ada.observe(torch.full((64, 1), -1.0))
        ada.step()
    assert ada.p == 0.0
    fixed = Augmenter("diffaug")
    fixed.observe(torch.ones(64))
    fixed.step()
    assert fixed.p == 1.0 and not Augmenter("none").active


def test_auto_resolves_by_dataset_size_into_the_saved_config_and_ada_logs_p(tiny):
    assert [resolve_augment("auto", n) for n in (1000, 9999, 10_000, 60_000)] == ["ada", "ada", "none", "none"]
    assert resolve_augment("diffaug", 60_000) == "diffaug" and resolve_augment("none", 10) == "none"
    # bCR comes with auto's ada only; a weight the user gives is kept, 0 included
    assert [resolve_consistency(None, "auto", n) for n in (9999, 10_000)] == [aug_module.AUTO_CONSISTENCY, 0.0]
    assert [resolve_consistency(None, a, 100) for a in ("ada", "diffaug", "none")] == [0.0, 0.0, 0.0]
    assert resolve_consistency(0.0, "auto", 100) == 0.0 and resolve_consistency(3.0, "none", 10**6) == 3.0

    small = fit(tiny(max_steps=4, log_every=2, out=str(tiny().out) + "-small"))  # synthetic: 2,000 images
    saved = json.loads((small / "config.json").read_text())
    assert saved["augment"] == "ada" and saved["consistency"] == aug_module.AUTO_CONSISTENCY == 0.5
    log = (small / "log.txt").read_text()
    assert "--augment auto: ada with bCR weight 0.5 (2,000 images, under 10,000)" in log and '"augment": "ada"' in log
    assert "aug p 0.000" in log
    stats = read_jsonl(small / "stats.jsonl")
    assert [r["aug_p"] for r in stats] == [0.0, 0.0] and all(r["consistency"] > 0 for r in stats)
    plain = fit(tiny(max_steps=2, consistency=0.0, out=str(tiny().out) + "-ada-only"))  # --consistency 0: ADA alone
    assert json.loads((plain / "config.json").read_text())["consistency"] == 0.0
    assert "consistency" not in read_jsonl(plain / "stats.jsonl")[-1]
    p_saved = load_checkpoint(list_checkpoints(small)[-1])["task"]["augment"]["p"]  # after the adjustment at step 4
    assert p_saved in (0.0, pytest.approx(50 * 4 / aug_module.ADA_SPEED_IMAGES))

    big = _register("augtest-10k", _images(10_000, 0))
    run = fit(tiny(dataset=big, max_steps=1, out=str(tiny().out) + "-big"))
    saved = json.loads((run / "config.json").read_text())
    assert saved["augment"] == "none" and saved["consistency"] == 0.0
    assert "--augment auto: none (10,000 images, at least 10,000)" in (run / "log.txt").read_text()
    assert "aug_p" not in read_jsonl(run / "stats.jsonl")[-1]


def test_resume_with_ada_continues_p_bit_exactly(tiny, monkeypatch):
    monkeypatch.setattr(aug_module, "ADA_SPEED_IMAGES", 1000)  # p moves by 0.2 per adjustment
    settings = dict(augment="ada", ada_target=0.0, max_steps=10, log_every=1, checkpoint_every=5)
    full = fit(tiny(**settings, out=str(tiny().out) + "-full"))
    part = fit(tiny(**{**settings, "max_steps": 5}, out=str(tiny().out) + "-part"))  # stops between adjustments
    fit(resume_config(part, {"max_steps": 10}, type(tiny())), resume=True)
    a, b = (load_checkpoint(list_checkpoints(run)[-1]) for run in (full, part))
    assert a["step"] == b["step"] == 10
    for key in ("G", "D"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    sa, sb = a["task"]["augment"], b["task"]["augment"]
    assert sa["p"] == sb["p"] > 0 and torch.equal(sa["rng"], sb["rng"])
    ps = [r["aug_p"] for r in read_jsonl(full / "stats.jsonl")]
    assert ps == [r["aug_p"] for r in read_jsonl(part / "stats.jsonl")]
    assert ps[:4] == [0.0] * 4 and ps[4] > 0  # the first adjustment after step 4


def test_mirror_adds_each_image_flipped_once_per_epoch(tmp_path, tiny):
    images = _images(100, 1)
    name = _register("augtest-mirror", images, np.arange(100) % 10)
    cfg = tiny(dataset=name, batch_size=10, mirror=True, augment="none")
    task = ImageTask(cfg, torch.device("cpu"), lambda _: None)
    assert task.steps_per_epoch == 20
    task.start(tmp_path)
    seen, labels = Counter(), Counter()
    for _, (x, y) in zip(range(task.steps_per_epoch), task.batches(0), strict=False):
        u8 = ((x + 1) * 127.5).round().to(torch.uint8)  # (B, 1, H, W)
        seen.update(img.numpy().tobytes() for img in u8)
        labels.update(zip((img.numpy().tobytes() for img in u8), y.tolist(), strict=True))
    flipped = images[..., ::-1]
    assert seen == Counter(img.tobytes() for img in [*images, *flipped])
    assert all(labels[(img.tobytes(), k % 10)] == 1 for k, img in enumerate(flipped))


def test_a_run_from_before_augment_resumes_without_it(tiny):
    run = fit(tiny(augment="none", max_steps=2))
    saved = json.loads((run / "config.json").read_text())
    for key in ("augment", "ada_target", "mirror", "consistency"):  # a config.json written before --augment existed
        del saved[key]
    (run / "config.json").write_text(json.dumps(saved))
    cfg = resume_config(run, {"max_steps": 3}, type(tiny()))
    assert cfg.augment == "auto" and cfg.consistency is None
    fit(cfg, resume=True)
    saved = json.loads((run / "config.json").read_text())
    assert saved["augment"] == "none" and saved["consistency"] == 0.0
    assert "--augment ada -> none: the checkpoint was trained without augmentation" in (run / "log.txt").read_text()
    assert not {"aug_p", "consistency"} & set(read_jsonl(run / "stats.jsonl")[-1])


def test_an_ada_run_from_before_bcr_resumes_without_it(tiny):
    run = fit(tiny(augment="ada", max_steps=2))
    saved = json.loads((run / "config.json").read_text())
    assert saved["consistency"] == 0.0  # an ada the user chose brings no bCR
    del saved["consistency"]  # a config.json written before --consistency existed
    (run / "config.json").write_text(json.dumps(saved))
    fit(resume_config(run, {"max_steps": 4}, type(tiny())), resume=True)
    assert json.loads((run / "config.json").read_text())["consistency"] == 0.0
    assert "consistency" not in read_jsonl(run / "stats.jsonl")[-1]


def test_dry_run_shows_what_auto_will_choose_and_resume_takes_auto_as_the_runs_choice(tiny, cli):
    small, big = (cli("train", "--dataset", d, "--dry-run").stdout for d in ("synthetic", "mnist"))
    assert '"augment": "ada"' in small and '"consistency": 0.5' in small  # 2,000 images
    assert '"augment": "none"' in big and '"consistency": 0.0' in big  # 60,000
    run = fit(tiny(max_steps=2))
    assert resume_config(run, {"augment": "auto", "max_steps": 3}, type(tiny())).augment == "ada"
    with pytest.raises(GanimateError, match="--augment diffaug conflicts with the run's saved augment=ada"):
        resume_config(run, {"augment": "diffaug"}, type(tiny()))


def test_bcr_shifts_by_whole_pixels_charges_d_and_resumes_bit_exactly(tiny):
    x = torch.rand(64, 1, 16, 16)
    gen = torch.Generator().manual_seed(3)
    moved = random_shift(x, gen)
    shifts = [torch.tensor([[dy], [dx]]) for dy in range(-2, 3) for dx in range(-2, 3)]  # up to 16 / 8 pixels
    found = [next(tuple(s.flatten().tolist()) for s in shifts
                  if torch.equal(translate(x[i : i + 1], s[0], s[1], 2), moved[i : i + 1])) for i in range(64)]
    assert len(set(found)) > 10  # drawn per image, from the generator
    assert not torch.equal(random_shift(x, gen), moved)

    settings = dict(augment="none", consistency=10.0, max_steps=6, log_every=1, checkpoint_every=3)
    full = fit(tiny(**settings, out=str(tiny().out) + "-full"))
    part = fit(tiny(**{**settings, "max_steps": 3}, out=str(tiny().out) + "-part"))
    fit(resume_config(part, {"max_steps": 6}, type(tiny())), resume=True)
    plain = fit(tiny(**{**settings, "consistency": 0.0}, out=str(tiny().out) + "-plain"))
    a, b, c = (load_checkpoint(list_checkpoints(run)[-1]) for run in (full, part, plain))
    assert all(torch.equal(t, b["D"][name]) for name, t in a["D"].items())  # shifts drawn from the saved state
    assert not all(torch.equal(t, c["D"][name]) for name, t in a["D"].items())  # the term changes D's updates
    stats = read_jsonl(full / "stats.jsonl")
    assert all(r["consistency"] > 0 for r in stats) and "consistency" not in read_jsonl(plain / "stats.jsonl")[0]
    assert [r["consistency"] for r in stats] == [r["consistency"] for r in read_jsonl(part / "stats.jsonl")]
    assert "bCR weight 10" in (full / "log.txt").read_text()
