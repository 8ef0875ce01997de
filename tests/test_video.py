"""Tests for ganimate.video: streaming MP4/GIF writing, captions, grid ordering and time-lapses."""

from __future__ import annotations

import json
import os
import tracemalloc
import weakref
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from ganimate.errors import GanimateError
from ganimate.video import (
    VideoConfig,
    caption,
    caption_height,
    default_scale,
    folder_frames,
    frames_from_files,
    grid_frames,
    make_timelapse,
    output_paths,
    upscale,
    write_video,
    write_videos,
)


def pattern(i: int, h: int = 33, w: int = 31, channels: int = 1) -> np.ndarray:
    """A smooth, frame-dependent uint8 image (friendly to lossy codecs)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = (128 + 100 * np.sin(xx / 5 + i) * np.cos(yy / 7 - i)).astype(np.uint8)
    if channels == 3:
        return np.stack([img, 255 - img, np.full_like(img, 40 * (i % 6))], axis=2)
    return img[:, :, None]


def decode(path):
    return np.asarray(iio.imread(path, index=None))


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------- helpers


def test_upscale_nearest_and_default_scale():
    frame = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    up = upscale(frame, 3)
    assert up.shape == (6, 9, 1)
    assert np.array_equal(up[::3, ::3], frame)
    assert np.array_equal(up[2, 8], frame[0, 2])
    assert upscale(frame, 1) is frame
    with pytest.raises(GanimateError):
        upscale(frame, 0)
    assert default_scale(32, 32) == 16
    assert default_scale(242, 100) == 3
    assert default_scale(600, 20) == 1
    assert default_scale(28, 28, target=56) == 2


def test_caption_adds_dark_bar_with_white_text():
    frame = pattern(0, 40, 120)
    out = caption(frame, "epoch 12")
    bar = caption_height(40)
    assert bar == 16
    assert out.shape == (40 + bar, 120, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:40, :, 0], frame[:, :, 0])
    strip = out[40:]
    assert strip.max() > 200
    assert np.median(strip) == 0
    assert caption_height(512) == 41


def test_caption_long_text_fits():
    out = caption(np.zeros((20, 30, 3), np.uint8), "a rather long caption for a tiny frame")
    assert out.shape == (36, 30, 3)


# --------------------------------------------------------------------------- write_video


def test_mp4_roundtrip_even_size_and_hold(tmp_path):
    frames = [pattern(i) for i in range(5)]
    path = tmp_path / "clip.mp4"
    n = write_video(iter(frames), path, fps=10, hold=3)
    assert n == 8
    video = decode(path)
    assert video.shape == (8, 34, 32, 3)
    assert mad(video[0, :33, :31, 0], frames[0][:, :, 0]) < 8
    assert mad(video[4, :33, :31, 0], frames[4][:, :, 0]) < 8
    assert mad(video[-1, :33, :31, 0], frames[4][:, :, 0]) < 8
    meta = iio.immeta(path, plugin="FFMPEG")
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 10
    head = path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    assert leftovers(tmp_path) == []


def test_gif_grey_exact_and_loops(tmp_path):
    frames = [pattern(i)[:, :, 0] for i in range(4)]
    path = tmp_path / "clip.gif"
    assert write_video(frames, path, fps=5, hold=2) == 6
    video = decode(path)
    assert video.shape[:3] == (6, 33, 31)
    video = video if video.ndim == 3 else video[..., 0]
    for i in range(6):
        assert np.array_equal(video[i], frames[min(i, 3)])
    meta = iio.immeta(path)
    assert meta["loop"] == 0
    assert meta["duration"] == 200


def test_gif_rgb_near(tmp_path):
    frames = [pattern(i, channels=3) for i in range(3)]
    path = tmp_path / "rgb.gif"
    write_video(iter(frames), path, fps=8)
    video = decode(path)
    assert video.shape == (3, 33, 31, 3)
    for i in range(3):
        assert mad(video[i], frames[i]) < 4


def test_write_videos_single_pass_both_formats(tmp_path):
    consumed = []

    def gen():
        for i in range(4):
            consumed.append(i)
            yield pattern(i)

    paths = [tmp_path / "a.mp4", tmp_path / "a.gif"]
    assert write_videos(gen(), paths, fps=4, hold=1) == 5
    assert consumed == [0, 1, 2, 3]
    assert decode(paths[0]).shape[0] == 5
    assert decode(paths[1]).shape[0] == 5


def test_output_is_readable_by_others(tmp_path):
    path = tmp_path / "perm.gif"
    write_video([pattern(0)], path, fps=1)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf")])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(GanimateError) as e:
        write_video([pattern(0)], tmp_path / "x.mp4", fps=fps)
    assert "fps" in one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_empty_frames(tmp_path):
    with pytest.raises(GanimateError) as e:
        write_video(iter([]), tmp_path / "x.gif", fps=8)
    assert "no frames" in one_line(e)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_size_change_midstream_leaves_nothing(tmp_path, ext):
    def gen():
        yield pattern(0)
        yield pattern(1)
        yield pattern(2, h=40)

    path = tmp_path / f"x{ext}"
    with pytest.raises(GanimateError) as e:
        write_video(gen(), path, fps=8)
    assert "frame 2" in one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_error_in_frame_source_keeps_previous_file(tmp_path):
    path = tmp_path / "x.gif"
    write_video([pattern(0)], path, fps=8)
    before = path.read_bytes()

    def gen():
        yield pattern(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_video(gen(), path, fps=8)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_bad_outputs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in [tmp_path / "missing" / "x.mp4", blocker / "x.mp4", tmp_path / "x.avi", tmp_path / "noext"]:
        with pytest.raises(GanimateError) as e:
            write_video([pattern(0)], bad, fps=8)
        assert str(bad) in one_line(e)
    (tmp_path / "dir.gif").mkdir()
    with pytest.raises(GanimateError):
        write_video([pattern(0)], tmp_path / "dir.gif", fps=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gif", "file"]


def test_bad_frame_dtype(tmp_path):
    with pytest.raises(GanimateError) as e:
        write_video([np.zeros((8, 8, 3), np.float32)], tmp_path / "x.gif", fps=8)
    assert "uint8" in one_line(e)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_streaming_memory_is_flat(tmp_path, ext):
    n = 3000
    alive = {"now": 0, "max": 0}

    def released():
        alive["now"] -= 1

    def gen():
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        for i in range(n):
            frame = np.roll(base, i, axis=1)
            weakref.finalize(frame, released)
            alive["now"] += 1
            alive["max"] = max(alive["max"], alive["now"])
            yield frame

    tracemalloc.start()
    try:
        written = write_video(gen(), tmp_path / f"long{ext}", fps=30, hold=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == n + 5
    assert alive["max"] <= 3
    all_frames = n * 64 * 64 * 3
    assert peak < 3_000_000 < all_frames / 10
    if ext == ".gif":
        assert len(iio.immeta(tmp_path / "long.gif")) > 0
    assert sum(1 for _ in iio.imiter(tmp_path / f"long{ext}")) == n + 5


# --------------------------------------------------------------------------- run folders


def grid_image(i: int, size=(36, 40), mode="L") -> Image.Image:
    h, w = size
    img = pattern(i, h, w, channels=3 if mode == "RGB" else 1)
    return Image.fromarray(img if mode == "RGB" else img[:, :, 0])


def make_run(root, epochs=3, step_every=None, steps_per_epoch=200, index=True, size=(36, 40), mode="L"):
    """A fake training run: RUN/config.json and RUN/samples/ grids (+ index.jsonl) in training order."""
    run = root / "run"
    samples = run / "samples"
    samples.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    records, k = [], 0
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            if step_every and step % step_every == 0:
                records.append({"file": f"step_{step:06d}.png", "step": step, "epoch": epoch, "kind": "step"})
        records.append({"file": f"epoch_{epoch:04d}.png", "step": step, "epoch": epoch, "kind": "epoch"})
    for rec in records:
        path = samples / rec["file"]
        grid_image(k, size, mode).save(path)
        os.utime(path, ns=(1_000_000_000 * (k + 1), 1_000_000_000 * (k + 1)))
        rec["k"] = k
        k += 1
    if index:
        with open(samples / "index.jsonl", "w") as f:
            for rec in records:
                f.write(json.dumps({key: rec[key] for key in ("file", "step", "epoch", "kind")}) + "\n")
    return run, records


def test_grid_frames_from_index(tmp_path):
    run, records = make_run(tmp_path, epochs=2, step_every=500, steps_per_epoch=600)
    items = grid_frames(run, "all")
    assert [p.name for p, _ in items] == [r["file"] for r in records]
    assert [c for _, c in items] == ["step 500", "epoch 1", "step 1,000", "epoch 2"]
    assert [c for _, c in grid_frames(run, "epochs")] == ["epoch 1", "epoch 2"]
    assert [c for _, c in grid_frames(run, "steps")] == ["step 500", "step 1,000"]


def test_grid_frames_index_duplicates_keep_last_position(tmp_path):
    run, _ = make_run(tmp_path, epochs=3)
    index = run / "samples" / "index.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([lines[0], lines[1], lines[0], lines[2]]) + "\n")
    assert [c for _, c in grid_frames(run)] == ["epoch 2", "epoch 1", "epoch 3"]


def test_grid_frames_without_index(tmp_path):
    run, records = make_run(tmp_path, epochs=11, step_every=150, steps_per_epoch=100, index=False)
    epochs = grid_frames(run, "epochs")
    assert [c for _, c in epochs] == [f"epoch {e}" for e in range(1, 12)]
    steps = grid_frames(run, "steps")
    assert [c for _, c in steps][:3] == ["step 150", "step 300", "step 450"]
    assert [p.name for p, _ in grid_frames(run, "all")] == [r["file"] for r in records]


def test_grid_frames_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "samples").mkdir(parents=True)
    with pytest.raises(GanimateError) as e:
        grid_frames(empty)
    assert "no saved" in one_line(e) and "train first" in str(e.value)
    run, _ = make_run(tmp_path, epochs=3)
    with pytest.raises(GanimateError) as e:
        grid_frames(run, "steps")
    one_line(e)
    grid_image(9, size=(30, 40)).save(run / "samples" / "epoch_0002.png")
    with pytest.raises(GanimateError) as e:
        grid_frames(run)
    assert "epoch_0002.png" in one_line(e)
    with pytest.raises(GanimateError):
        grid_frames(run, "bogus")
    with pytest.raises(GanimateError):
        grid_frames(tmp_path / "nope")


def test_grid_frames_bad_index_line(tmp_path):
    run, _ = make_run(tmp_path, epochs=2)
    with open(run / "samples" / "index.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(GanimateError) as e:
        grid_frames(run)
    assert "line 3" in one_line(e)


def test_folder_frames_natural_order(tmp_path):
    for i, name in enumerate(["f10.png", "f2.png", "f1.png"]):
        grid_image(i).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    assert [c for _, c in folder_frames(tmp_path)] == ["f1", "f2", "f10"]
    frames = list(frames_from_files(folder_frames(tmp_path), scale=2, caption=False))
    assert frames[0].shape == (72, 80, 3)


def check_video(path, grids, scale, hold, even):
    h, w = grids[0].shape[:2]
    H, W = h * scale + caption_height(h * scale), w * scale
    if even:
        H, W = H + H % 2, W + W % 2
    video = decode(path)
    if video.ndim == 3:
        video = np.repeat(video[..., None], 3, axis=3)
    assert video.shape == (len(grids) + hold, H, W, 3)
    tol = 8 if even else 1
    hs, ws = h * scale, w * scale
    first, last = upscale(grids[0], scale), upscale(grids[-1], scale)
    assert mad(video[0, :hs, :ws], first) < tol
    assert mad(video[len(grids) - 1, :hs, :ws], last) < tol
    assert mad(video[-1, :hs, :ws], last) < tol
    return video


def test_make_timelapse_both_formats(tmp_path):
    run, records = make_run(tmp_path, epochs=4, step_every=100, steps_per_epoch=150)
    cfg = VideoConfig(run=str(run), source="epochs", fps=6, hold=2, scale=3)
    paths = make_timelapse(cfg)
    assert paths == [run / "videos" / "training.mp4", run / "videos" / "training.gif"]
    grids = [
        np.asarray(Image.open(run / "samples" / f"epoch_{e:04d}.png").convert("RGB")) for e in range(1, 5)
    ]
    check_video(paths[0], grids, 3, 2, even=True)
    gif = check_video(paths[1], grids, 3, 2, even=False)
    assert gif[0, 108:].max() > 200
    assert iio.immeta(paths[1])["loop"] == 0
    assert leftovers(run / "videos") == []


def test_make_timelapse_all_rgb_default_scale_no_caption(tmp_path):
    run, records = make_run(tmp_path, epochs=2, step_every=100, steps_per_epoch=100, mode="RGB")
    out = tmp_path / "tl.mp4"
    paths = make_timelapse(VideoConfig(run=str(run), source="all", out=str(out), hold=0, caption=False))
    assert paths == [out]
    video = decode(out)
    scale = default_scale(36, 40)
    steps = [r["step"] for r in records]  # a step grid and the epoch grid of the same step: one frame
    assert video.shape == (len(set(steps)), 36 * scale, 40 * scale, 3)


def test_make_timelapse_frames_folder(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        grid_image(i, size=(20, 20)).save(folder / f"frame{i + 1}.png")
    paths = make_timelapse(VideoConfig(frames=str(folder), format="gif", scale=2, hold=0))
    assert paths == [folder / "videos" / "timelapse.gif"]
    assert decode(paths[0]).shape[:3] == (3, 40 + 16, 40)


def test_make_timelapse_errors(tmp_path):
    run, _ = make_run(tmp_path, epochs=2)
    with pytest.raises(GanimateError):
        make_timelapse(VideoConfig(run=str(run), out=str(tmp_path / "missing" / "x.mp4")))
    with pytest.raises(GanimateError) as e:
        make_timelapse(VideoConfig(run=str(tmp_path / "nothing")))
    one_line(e)
    assert not (run / "videos").exists() or leftovers(run / "videos") == []


def test_output_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("o").mkdir()
    default = Path("r/videos/training")
    assert [p.name for p in output_paths(None, "both", default)] == ["training.mp4", "training.gif"]
    assert [p.name for p in output_paths(None, None, default, "mp4")] == ["training.mp4"]
    assert [p.name for p in output_paths("o/clip", "gif", default)] == ["clip.gif"]
    assert [p.name for p in output_paths("o/clip.GIF", None, default)] == ["clip.GIF"]  # the extension decides
    assert [p.name for p in output_paths("o/clip.gif", "gif", default)] == ["clip.gif"]
    for fmt in ("mp4", "both"):  # a --format that says otherwise than the extension
        with pytest.raises(GanimateError, match="contradicts"):
            output_paths("o/clip.gif", fmt, default)
    with pytest.raises(GanimateError):
        output_paths("o/clip.webm", None, default)
    with pytest.raises(GanimateError):
        output_paths(None, "avi", default)
    with pytest.raises(GanimateError, match="does not exist"):
        output_paths("missing/clip.gif", None, default)
    with pytest.raises(GanimateError, match="inside the data folder"):
        output_paths("o/clip.gif", None, default, data_folders=[Path("o")])
    assert not any(Path().rglob("*.*"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"run": "a", "frames": "b"},
        {"run": "a", "fps": 0},
        {"run": "a", "fps": -2.5},
        {"run": "a", "hold": -1},
        {"run": "a", "scale": 0},
        {"run": "a", "source": "weeks"},
        {"run": "a", "format": "avi"},
    ],
)
def test_video_config_validation(kwargs):
    with pytest.raises(GanimateError) as e:
        VideoConfig(**kwargs)
    one_line(e)
