"""A user's own image folders (issue 15): the native size by default, --crop center | pad, and decoding once
(a uint8 cache outside every data folder, keyed by the files and the transform settings)."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.cli import train_models
from ganimate.config import TrainConfig
from ganimate.data import cifar, folder, load_dataset
from ganimate.data import download as dl
from ganimate.errors import DataError
from ganimate.models.dcgan import upsampling_plan
from ganimate.runs import resume_config
from ganimate.train import fit, load_training_data


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv("GANIMATE_DATA", raising=False)
    monkeypatch.setenv("GANIMATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "SYSTEM_DIRS", [])
    return tmp_path / "cache" / "decoded"


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def digits(root: Path, n: int = 6, side: int = 28, classes: tuple[str, ...] = ()) -> Path:
    """`n` grey side x side images with a bright square, in `classes` sub-folders (or the root)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        a = np.zeros((side, side), np.uint8)
        a[side // 4: side // 2, side // 4: 3 * side // 4] = rng.integers(100, 256)
        sub = root / classes[i % len(classes)] if classes else root
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(sub / f"{i:03d}.png")
    return root


def counting(monkeypatch) -> list[Path]:
    """Every file the folder loader decodes from now on."""
    calls: list[Path] = []
    real = folder.load_image

    def spy(path, *args, **kw):
        calls.append(path)
        return real(path, *args, **kw)

    monkeypatch.setattr(folder, "load_image", spy)
    return calls


def load(root: Path, **kw):
    logged: list[str] = []
    ds = load_dataset(f"folder:{root}", log=logged.append, **kw)
    return ds, logged


# ---------------------------------------------------------------- native size


def test_native_sizes_are_the_sizes_the_models_take():
    accepted = []
    for s in range(1, 65):
        try:
            upsampling_plan(s)
            accepted.append(s)
        except ValueError:
            pass
    assert folder.NATIVE_SIZES == tuple(accepted)


def test_a_folder_trains_at_its_own_size(tmp_path, tiny):
    ds, logged = load(digits(tmp_path / "d28"))
    assert ds.images.shape == (6, 1, 28, 28)
    assert logged[0] == ("image size 28: the median shorter side of the 6 images is 28 px (--crop center); "
                         "--image-size overrides")
    cfg = tiny(dataset=f"folder:{tmp_path / 'd28'}", batch_size=4)
    assert cfg.image_size is None
    load_training_data(cfg, log=lambda _: None)
    assert cfg.image_size == 28

    ds, logged = load(digits(tmp_path / "d30", side=30))
    assert ds.image_size == 32 and "is 30 px (--crop center), rounded to 32, the nearest size" in logged[0]
    assert load(tmp_path / "d30", image_size=16)[0].image_size == 16  # --image-size overrides


def test_native_size_uses_the_side_the_crop_keeps(tmp_path):
    for i, (w, h) in enumerate([(90, 30), (90, 30), (60, 40)]):
        Image.new("RGB", (w, h), (9, 9, 9)).save(tmp_path / f"{i}.jpg")
    assert load(tmp_path)[0].image_size == 32  # shorter sides 30, 30, 40: median 30
    ds, logged = load(tmp_path, crop="pad")  # longer sides 90, 90, 60: median 90, capped
    assert ds.image_size == 64 and "median longer side of the 3 images is 90 px (--crop pad), capped at 64" in logged[0]


def test_the_native_size_is_read_from_headers_once_per_listing(tmp_path, monkeypatch, cache):
    root = digits(tmp_path / "d", n=5, side=20)
    opened: list[Path] = []
    real = folder._header_size
    monkeypatch.setattr(folder, "_header_size", lambda p: opened.append(p) or real(p))
    first = load(root)[1][0]
    assert len(opened) == 5 and first.startswith("image size 20: the median shorter side of the 5 images is 20 px")
    assert load(root)[1][0] == first and len(opened) == 5  # the note answers: no header read again
    cfg = TrainConfig(dataset=f"folder:{root}", conditional=True)
    train_models(cfg)  # --dry-run finds the same size in the note
    assert cfg.image_size == 20 and len(opened) == 5
    assert load(root, crop="pad")[1][0].startswith("image size 20: the median longer side") and len(opened) == 10

    Image.fromarray(np.zeros((36, 36), np.uint8)).save(root / "001.png")  # a changed file: a new listing
    os.utime(root / "001.png", ns=(1, 1))
    assert "of the 5 images is 20 px" in load(root)[1][0] and len(opened) == 15  # read again (median still 20)
    notes = list(cache.glob("*.note.json"))
    assert len(notes) == 2  # one per crop: the first listing's center note was replaced, not kept beside

    for note in notes:  # a damaged note is ignored and rewritten
        note.write_text("{not json")
    assert load(root)[1][0].startswith("image size 20") and len(opened) == 20
    load(root, cache=False)  # --no-cache: headers read, nothing kept
    assert len(opened) == 25


# ---------------------------------------------------------------- crop


def test_pad_keeps_the_whole_picture_and_pads_with_its_border_colour(tmp_path):
    grey = np.zeros((16, 32), np.uint8)  # (H, W): a wide black picture with white first and last columns
    grey[:, 0] = grey[:, -1] = 255
    Image.fromarray(grey).save(tmp_path / "wide.png")
    ds, _ = load(tmp_path, image_size=32, crop="pad")
    x = ds.images[0, 0].numpy()
    assert (x[8:24, 0] == 255).all() and (x[8:24, -1] == 255).all()  # both marked columns survive
    assert (x[:8] == 0).all() and (x[24:] == 0).all()  # padded with the border's colour, black
    centre = load(tmp_path, image_size=32)[0].images[0, 0].numpy()
    assert centre[:, 0].max() < 128 and centre[:, -1].max() < 128  # center crops them away

    rgb = np.full((40, 20, 3), 255, np.uint8)  # (H, W, 3): a tall white picture with blue top and bottom rows
    rgb[0] = rgb[-1] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "tall.png")
    ds, _ = load(tmp_path, image_size=40, crop="pad")
    x = ds.images[0].numpy()  # (3, 40, 40), tall.png sorts first
    assert x[:, 0, 10:30].T.tolist() == [[0, 0, 255]] * 20 and x[:, -1, 10:30].T.tolist() == [[0, 0, 255]] * 20
    assert (x[:, :, :10] == 255).all() and (x[:, :, 30:] == 255).all()  # padded white, its border's majority

    with pytest.raises(DataError, match="crop must be center or pad"):
        load(tmp_path, crop="stretch")


# ---------------------------------------------------------------- decode once


def mixed_folder(root: Path) -> Path:
    digits(root, n=6, side=20, classes=("cats", "dogs"))
    (root / "dogs" / "broken.png").write_bytes(b"not a png")
    return root


def test_a_second_load_reads_the_cache_with_the_same_labels_and_log(tmp_path, monkeypatch, cache):
    root = mixed_folder(tmp_path / "pets")
    first, logged = load(root)
    assert first.classes == ["cats", "dogs"] and len(first) == 6
    assert logged[1].startswith(f"skipped 1 unreadable image file(s) in {root} (first: dogs/broken.png: ")
    assert logged[2] == "labelled by top-level sub-folder, 2 classes: cats (3), dogs (3)"
    assert len(list(cache.glob("*.npy"))) == 1

    decoded = counting(monkeypatch)
    again, logged_again = load(root)
    assert decoded == []
    assert logged_again == logged
    assert np.array_equal(again.images.numpy(), first.images.numpy())
    assert again.labels.tolist() == first.labels.tolist() and again.classes == first.classes
    again.images[0] += 1  # copy-on-write: the array is writable and the cache file is untouched
    assert np.array_equal(load(root)[0].images.numpy(), first.images.numpy()) and decoded == []
    grey = load(root, channels=1)[0]  # what the data's own channels gave: the same array, no new entry
    assert np.array_equal(grey.images.numpy(), first.images.numpy()) and decoded == []
    assert load(root, channels=3)[0].channels == 3 and len(decoded) == 7

    with pytest.raises(DataError, match="1 unreadable image file"):  # strict is part of the key
        load(root, strict=True)
    load(root, labels="none")  # so are the labels mode, the crop, the size and the channels
    load(root, crop="pad")
    assert len(decoded) == 4 * 7


def test_a_changed_added_or_removed_file_decodes_again(tmp_path, monkeypatch, cache):
    root = digits(tmp_path / "d", n=4, side=16)
    first = load(root)[0]
    decoded = counting(monkeypatch)
    Image.new("L", (16, 16), 7).save(root / "001.png")
    os.utime(root / "001.png", ns=(1, 1))  # a new time even where the clock is coarse
    changed = load(root)[0]
    assert len(decoded) == 4 and int(changed.images[1].max()) == 7
    assert np.array_equal(changed.images[0].numpy(), first.images[0].numpy())
    Image.new("L", (16, 16), 9).save(root / "new.png")
    assert len(load(root)[0]) == 5 and len(decoded) == 9
    (root / "new.png").unlink()
    assert len(load(root)[0]) == 4 and len(decoded) == 13
    assert len(list(cache.glob("*.npy"))) == 1  # older listings of the folder are removed


def test_training_and_resuming_from_the_cache(tmp_path, monkeypatch, tiny, one_thread):
    root = digits(tmp_path / "d", n=12, side=16, classes=("a", "b"))
    run = fit(tiny(dataset=f"folder:{root}", batch_size=6, max_steps=1, out=str(tmp_path / "run")))
    assert json.loads((run / "config.json").read_text())["image_size"] == 16
    decoded = counting(monkeypatch)
    fit(resume_config(run, {"max_steps": 2}, TrainConfig), resume=True)  # the same data fingerprint, from the cache
    assert decoded == [] and load_checkpoint(list_checkpoints(run)[-1])["step"] == 2


@pytest.mark.parametrize("damage", ["truncated", "flipped", "bad-json", "no-json"])
def test_a_damaged_cache_entry_is_ignored_and_rebuilt(tmp_path, monkeypatch, cache, damage):
    root = digits(tmp_path / "d", n=4, side=16)
    first = load(root)[0]
    (npy,), (meta,) = cache.glob("*.npy"), [p for p in cache.glob("*.json") if not p.name.endswith(".note.json")]
    blob = npy.read_bytes()
    if damage == "truncated":
        npy.write_bytes(blob[: len(blob) - 100])
    elif damage == "flipped":
        npy.write_bytes(blob[:-5] + bytes([blob[-5] ^ 0xFF]) + blob[-4:])
    elif damage == "bad-json":
        meta.write_text(meta.read_text()[:-10])
    else:
        meta.unlink()
    decoded = counting(monkeypatch)
    assert np.array_equal(load(root)[0].images.numpy(), first.images.numpy())
    assert len(decoded) == 4
    assert npy.read_bytes() == blob and json.loads(meta.read_text())["shape"] == [4, 1, 16, 16]  # rebuilt
    load(root)
    assert len(decoded) == 4


def test_the_cache_is_never_written_into_a_data_folder(tmp_path, monkeypatch):
    root = digits(tmp_path / "d", n=4, side=16)
    before = tree(root)
    monkeypatch.setenv("GANIMATE_CACHE", str(root / ".cache"))
    decoded = counting(monkeypatch)
    _, logged = load(root)
    _, logged_again = load(root)
    said = [line for line in logged + logged_again if line.startswith("not caching decoded images")]
    assert said == [f"not caching decoded images: the cache folder {(root / '.cache' / 'decoded').resolve()} lies "
                    f"inside the data folder {root.resolve()} (set GANIMATE_CACHE to a folder outside it)"]
    assert len(decoded) == 8 and tree(root) == before

    elsewhere = tmp_path / "data-dir"
    monkeypatch.setenv("GANIMATE_CACHE", str(elsewhere / "cache"))  # inside --data-dir: also a data folder
    load_dataset(f"folder:{root}", data_dir=elsewhere, log=lambda _: None)
    monkeypatch.setenv("GANIMATE_DATA", str(elsewhere))
    load(root)
    assert not (elsewhere / "cache").exists() and len(decoded) == 16


def test_no_cache_writes_nothing(tmp_path, monkeypatch, cache):
    root = digits(tmp_path / "d", n=4, side=16)
    load(root, cache=False)
    assert not cache.exists()
    load(root)
    decoded = counting(monkeypatch)
    load(root, cache=False)
    assert len(decoded) == 4


def test_a_progress_bar_while_decoding(tmp_path, capsys):
    root = digits(tmp_path / "d", n=4, side=16)
    load(root, progress=True)
    assert "decoding images" in capsys.readouterr().err
    load(root, cache=False, progress=False)
    assert "decoding images" not in capsys.readouterr().err


# ---------------------------------------------------------------- CIFAR-10


def cifar_archive(path: Path) -> Path:
    rng = np.random.default_rng(3)
    blobs = {"batches.meta": pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)}
    for name in [*cifar.BATCHES["train"], *cifar.BATCHES["test"]]:
        data = rng.integers(0, 256, (3, cifar.PIXELS), dtype=np.uint8)
        blobs[name] = pickle.dumps({b"data": data, b"labels": rng.integers(0, 10, 3).tolist()}, protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_cifar_is_decoded_once(tmp_path, monkeypatch, cache):
    archive = cifar_archive(tmp_path / "d" / cifar.ARCHIVE)
    first = load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert len(list(cache.glob("*.npy"))) == 1

    def no_reading(*_):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(cifar, "_read_members", no_reading)
    again = load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert np.array_equal(again.images.numpy(), first.images.numpy()) and len(again) == 15
    assert again.labels.tolist() == first.labels.tolist() and again.classes == [f"c{i}" for i in range(10)]
    os.utime(archive, ns=(1, 1))
    with pytest.raises(AssertionError, match="read again"):
        load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    with pytest.raises(AssertionError, match="read again"):
        load_dataset("cifar10", data_dir=tmp_path / "d", download=False, cache=False)
