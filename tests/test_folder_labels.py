"""How a folder dataset's classes are found (issue #22): the top-level sub-folder is the class at any depth,
images in the root make it unlabelled, --labels auto | folders | none overrides, and the log says what it did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganimate.config import TrainConfig
from ganimate.data import load_dataset
from ganimate.data.folder import class_report
from ganimate.errors import DataError, GanimateError
from ganimate.train import ImageTask, load_training_data

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def png(path: Path, colour=RED, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def pets(root: Path, per_class: int = 2) -> Path:
    """cats/ and dogs/, with dogs/ holding a nested folder two levels deep: the issue's layout."""
    for i in range(per_class):
        png(root / "cats" / f"c{i}.png", RED)
        png(root / "dogs" / f"d{i}.png", BLUE)
    png(root / "dogs" / "nested" / "n.png", BLUE)
    png(root / "dogs" / "nested" / "deeper" / "m.png", BLUE)
    return root


def load(root: Path, **kw):
    logged = []
    ds = load_dataset(f"folder:{root}", image_size=8, log=logged.append, **kw)
    return ds, logged


def test_nested_images_belong_to_their_top_level_folder(tmp_path):
    ds, logged = load(pets(tmp_path / "pets"))
    assert ds.classes == ["cats", "dogs"] and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1, 1, 1, 1]
    colours = [tuple(ds.images[i, :, 4, 4].tolist()) for i in range(len(ds))]
    assert colours == [RED, RED, BLUE, BLUE, BLUE, BLUE]  # nested dogs are labelled dogs
    assert logged == ["labelled by top-level sub-folder, 2 classes: cats (2), dogs (4)"]


def test_images_in_the_root_make_the_folder_unlabelled(tmp_path):
    root = pets(tmp_path / "pets")
    for name in ("a.png", "b.png", "c.png"):
        png(root / name, GREEN)
    ds, logged = load(root)
    assert ds.labels is None and ds.classes is None and len(ds) == 9
    assert logged == ["unlabelled: 3 images lie in the root folder, e.g. a.png; "
                      "sub-folders are classes only when no image lies in the root"]
    assert not any("0 classes" in line for line in logged)


def test_flat_folder_is_unlabelled_in_words(tmp_path):
    png(tmp_path / "flat" / "only.png")
    ds, logged = load(tmp_path / "flat")
    assert ds.labels is None
    assert logged == ["unlabelled: 1 image lies in the root folder, e.g. only.png"]


def test_labels_folders_insists_on_class_folders(tmp_path):
    root = pets(tmp_path / "pets")
    ds, _ = load(root, labels="folders")
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1, 1, 1]
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        png(root / name, GREEN)
    with pytest.raises(DataError) as e:
        load(root, labels="folders")
    assert str(e.value) == (f"--labels folders needs every image in a class sub-folder, but 5 images lie in the "
                            f"root folder {root}: a.png, b.png, c.png and 2 more")


def test_labels_none_ignores_class_folders(tmp_path):
    ds, logged = load(pets(tmp_path / "pets"), labels="none")
    assert ds.labels is None and ds.classes is None and len(ds) == 6
    assert logged == ["unlabelled (labels none): 6 images; its 2 sub-folder(s) are not used as classes"]


def test_labels_for_built_in_datasets():
    assert load_dataset("synthetic", labels="none").labels is None
    assert load_dataset("synthetic", labels="auto").num_classes == 10
    with pytest.raises(DataError, match="^--labels folders is for folder:PATH datasets; synthetic has its own"):
        load_dataset("synthetic", labels="folders")
    with pytest.raises(DataError, match="^labels must be auto, folders or none, got 'yes'$"):
        load_dataset("synthetic", labels="yes")


def test_unreadable_files_do_not_count_as_a_class_image(tmp_path):
    root = pets(tmp_path / "pets")
    (root / "cats" / "broken.png").write_text("not a png")
    ds, logged = load(root)
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert logged[0].startswith("skipped 1 unreadable image file(s)")
    assert logged[1] == "labelled by top-level sub-folder, 2 classes: cats (2), dogs (4)"
    (root / "Thumbs.png").write_bytes(b"junk")  # an unreadable file in the root is skipped, not a root image
    ds, logged = load(root)
    assert ds.num_classes == 2 and logged[-1] == "labelled by top-level sub-folder, 2 classes: cats (2), dogs (4)"
    with pytest.raises(DataError, match=r"but 1 image lies in the root folder .*: Thumbs.png$"):
        load(root, labels="folders")  # refused before decoding anything


def test_class_report_warns_on_classes_under_one_percent_of_the_median():
    assert class_report({"a": 100, "b": 1}) == ["labelled by top-level sub-folder, 2 classes: a (100), b (1)"]
    lines = class_report({"big": 300, "mid": 200, "rare": 1, "tiny": 1, "norm": 250})
    assert lines == [
        "labelled by top-level sub-folder, 5 classes: big (300), mid (200), rare (1), tiny (1), norm (250)",
        "warning: 2 classes under 1% of the median class size (200 images) will barely train: rare (1), tiny (1)",
    ]
    assert class_report({"one": 5}) == ["labelled by top-level sub-folder, 1 class: one (5)"]


def test_rare_class_warning_end_to_end(tmp_path):
    root = tmp_path / "skewed"
    for cls in ("a", "b"):
        for i in range(101):
            png(root / cls / f"{i:03d}.png", size=4)
    png(root / "c" / "deep" / "lonely.png", size=4)
    _, logged = load(root)
    assert logged == ["labelled by top-level sub-folder, 3 classes: a (101), b (101), c (1)",
                      "warning: 1 class under 1% of the median class size (101 images) will barely train: c (1)"]


# ---------------------------------------------------------------- the training config and the trainer


def config(tmp_path, root: Path, **kw) -> TrainConfig:
    settings = dict(dataset=f"folder:{root}", out=str(tmp_path / "run"), image_size=16, z_dim=8, batch_size=2,
                    device="cpu", progress=False)
    return TrainConfig(**{**settings, **kw})


def test_config_option_and_old_configs(tmp_path):
    cfg = config(tmp_path, tmp_path)
    assert cfg.labels == "auto" and "labels" not in TrainConfig.RESUMABLE
    with pytest.raises(GanimateError, match=r"^--labels must be auto, folders or none, got 'yes'$"):
        config(tmp_path, tmp_path, labels="yes")
    old = cfg.to_dict()
    del old["labels"]
    assert TrainConfig.from_dict(json.loads(json.dumps(old))).labels == "auto"


def test_training_data_follows_the_labels_option(tmp_path):
    root = pets(tmp_path / "pets")
    cfg = config(tmp_path, root)
    ds = load_training_data(cfg, log=lambda _: None)
    assert (cfg.conditional, cfg.num_classes, ds.classes) == (True, 2, ["cats", "dogs"])
    cfg = config(tmp_path, root, labels="none")
    load_training_data(cfg, log=lambda _: None)
    assert (cfg.conditional, cfg.num_classes) == (False, 0)
    with pytest.raises(GanimateError, match=r"^--conditional needs class labels, and --labels none drops them$"):
        load_training_data(config(tmp_path, root, labels="none", conditional=True), log=lambda _: None)
    png(root / "stray.png")
    with pytest.raises(DataError, match="1 image lies in the root folder"):
        load_training_data(config(tmp_path, root, labels="folders"), log=lambda _: None)


def test_reals_png_of_a_conditional_folder_has_one_class_per_row(tmp_path):
    root = tmp_path / "pets"
    colours = {"cats": RED, "dogs": BLUE, "owls": GREEN}
    for cls, colour in colours.items():
        for i in range(12):  # more than a row, some of them nested
            png(root / cls / ("nested" if i % 3 == 0 else "") / f"{i:02d}.png", colour, size=16)
    cfg = config(tmp_path, root)
    task = ImageTask(cfg, torch.device("cpu"), log=lambda _: None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    task.start(run_dir)
    grid = np.asarray(Image.open(run_dir / "reals.png").convert("RGB"))
    assert grid.shape == (3 * 18 + 2, 10 * 18 + 2, 3)  # 3 classes x 10 columns of 16 px + 2 px padding
    for row, colour in enumerate(colours.values()):
        centres = [tuple(grid[2 + row * 18 + 8, 2 + col * 18 + 8]) for col in range(10)]
        assert centres == [colour] * 10, f"row {row}"


@pytest.mark.parametrize("counts", [(3, 4), (12, 1)])
def test_reals_png_keeps_one_class_per_row_for_small_classes(tmp_path, counts):
    root = tmp_path / "pets"
    colours = {"cats": RED, "dogs": BLUE}
    for (cls, colour), n in zip(colours.items(), counts, strict=True):
        for i in range(n):
            png(root / cls / f"{i:02d}.png", colour, size=16)
    task = ImageTask(config(tmp_path, root, batch_size=1), torch.device("cpu"), log=lambda _: None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    task.start(run_dir)
    grid = np.asarray(Image.open(run_dir / "reals.png").convert("RGB"))
    assert grid.shape == (2 * 18 + 2, 10 * 18 + 2, 3)  # a row per class, padded to 10 columns
    for row, (colour, n) in enumerate(zip(colours.values(), counts, strict=True)):
        centres = [tuple(grid[2 + row * 18 + 8, 2 + col * 18 + 8]) for col in range(10)]
        assert centres == [colour] * min(n, 10) + [(0, 0, 0)] * (10 - min(n, 10)), f"row {row}"


def test_an_old_unconditional_run_on_a_nested_folder_resumes(tmp_path):
    """A run saved before --labels existed (no `labels` key; the old rule left nested folders unlabelled)
    resumes under the new rule: it stays unconditional and its data fingerprint still matches."""
    from ganimate.checkpoint import list_checkpoints, load_checkpoint
    from ganimate.runs import resume_config
    from ganimate.train import fit

    root = pets(tmp_path / "pets", per_class=3)
    run = fit(config(tmp_path, root, labels="none", max_steps=2, batch_size=4, log_every=1))
    saved = json.loads((run / "config.json").read_text())
    del saved["labels"]
    (run / "config.json").write_text(json.dumps(saved))
    cfg = resume_config(run, {"max_steps": 3}, TrainConfig)
    assert cfg.labels == "auto" and cfg.conditional is False
    fit(cfg, resume=True)
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 3
    assert (cfg.conditional, cfg.num_classes) == (False, 2)
    assert json.loads((run / "config.json").read_text())["conditional"] is False


def test_the_labelling_lines_reach_the_run_log(tmp_path):
    from ganimate.train import fit

    run = fit(config(tmp_path, pets(tmp_path / "pets", per_class=3), max_steps=1, batch_size=4))
    log = (run / "log.txt").read_text()
    assert "labelled by top-level sub-folder, 2 classes" in log and "2 classes | G" in log
