"""Tests for ganimate.walks: slerp, seeded latents, latent walks, class morphs and run_interpolate."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganimate.errors import GanimateError
from ganimate.images import make_grid, to_uint8
from ganimate.video import default_scale
from ganimate.walks import (
    InterpolateConfig,
    class_morph_frames,
    latent_walk_frames,
    latents_from_seed,
    parse_grid,
    run_interpolate,
    slerp,
)


class StubG(nn.Module):
    """Tiny deterministic generator: (B, z_dim) [+ labels or class weights] -> (B, 1, 6, 6) in [-1, 1]."""

    def __init__(self, z_dim=8, num_classes=0, size=6):
        super().__init__()
        self.z_dim, self.num_classes, self.size = z_dim, num_classes, size
        self.image_size, self.channels = size, 1  # as ganimate's generators describe themselves
        torch.manual_seed(123)
        self.fc = nn.Linear(z_dim + num_classes, size * size)
        self.calls = 0
        self.eval()

    def forward(self, z, y=None):
        self.calls += 1
        assert z.shape[1] == self.z_dim and not torch.is_grad_enabled()
        if self.num_classes:
            assert y is not None
            if y.dtype == torch.int64:
                y = F.one_hot(y, self.num_classes).float()
            assert y.shape == (z.shape[0], self.num_classes)
            z = torch.cat([z, y * 3], dim=1)
        else:
            assert y is None
        return torch.tanh(self.fc(z)).view(-1, 1, self.size, self.size)


def render(G, z, y=None, nrow=1):
    with torch.no_grad():
        return make_grid(to_uint8(G(z) if y is None else G(z, y)), nrow)


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------- math


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(5, 16), torch.randn(5, 16)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    mid = slerp(an, bn, 0.5)
    assert torch.allclose(mid.norm(dim=1), torch.ones(5), atol=1e-5)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    per_row = slerp(a, b, t)
    for i in range(5):
        assert torch.allclose(per_row[i], slerp(a[i : i + 1], b[i : i + 1], float(t[i]))[0], atol=1e-6)


def test_slerp_parallel_falls_back_to_lerp():
    a = torch.ones(2, 4)
    out = slerp(a, 2 * a, 0.5)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, 1.5 * a)


def test_latents_from_seed_identity():
    z = latents_from_seed(7, 32)
    assert z.shape == (32,)
    assert torch.equal(z, latents_from_seed(7, 32))
    assert torch.equal(z, torch.randn(32, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(z, latents_from_seed(8, 32))


# --------------------------------------------------------------------------- walks


def test_latent_walk_keyframes_exact_and_count():
    G = StubG()
    seeds = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    fpt = 5
    frames = list(latent_walk_frames(G, seeds, fpt, nrow=2))
    assert len(frames) == 3 * fpt
    assert frames[0].shape == (2 * 8 + 2, 2 * 8 + 2, 1) and frames[0].dtype == np.uint8
    assert G.calls == 3 * fpt
    for k in range(3):
        z = torch.stack([latents_from_seed(cell[k], G.z_dim) for cell in seeds])
        assert np.array_equal(frames[k * fpt], render(G, z, nrow=2))
    assert not np.array_equal(frames[1], frames[0])
    assert not np.array_equal(frames[-1], frames[0])


def test_latent_walk_deterministic_and_lazy():
    G = StubG()
    gen = latent_walk_frames(G, [[3, 4]], 4, nrow=1)
    assert G.calls == 0
    next(gen)
    assert G.calls == 1
    assert torch.is_grad_enabled()
    again = list(latent_walk_frames(StubG(), [[3, 4]], 4, nrow=1))
    first = [next(gen)] + list(gen)
    assert all(np.array_equal(x, y) for x, y in zip(first, again[1:], strict=True))


def test_latent_walk_conditional_fixed_class_per_cell():
    G = StubG(num_classes=3)
    seeds = [[c * 2, c * 2 + 1] for c in range(4)]
    frames = list(latent_walk_frames(G, seeds, 3, nrow=4))
    assert len(frames) == 6
    z = torch.stack([latents_from_seed(cell[1], G.z_dim) for cell in seeds])
    labels = torch.tensor([0, 1, 2, 0])
    assert np.array_equal(frames[3], render(G, z, labels, nrow=4))


def test_latent_walk_bad_input():
    G = StubG()
    for seeds, fpt in [([[1]], 4), ([[1, 2], [3]], 4), ([], 4), ([[1, 2]], 0)]:
        with pytest.raises(GanimateError) as e:
            latent_walk_frames(G, seeds, fpt, nrow=1)
        one_line(e)


# --------------------------------------------------------------------------- morphs


def test_class_morph_endpoints_exact():
    G = StubG(num_classes=4)
    seeds, classes, fpt = [5, 6, 7], [2, 0, 3], 4
    frames = list(class_morph_frames(G, classes, seeds, fpt, nrow=3))
    assert len(frames) == len(classes) * fpt
    z = torch.stack([latents_from_seed(s, G.z_dim) for s in seeds])
    for k, c in enumerate(classes):
        assert np.array_equal(frames[k * fpt], render(G, z, torch.full((3,), c), nrow=3))
    mid = frames[fpt // 2]
    assert not np.array_equal(mid, frames[0]) and not np.array_equal(mid, frames[fpt])
    again = list(class_morph_frames(G, classes, seeds, fpt, nrow=3))
    assert all(np.array_equal(x, y) for x, y in zip(frames, again, strict=True))


def test_class_morph_errors():
    with pytest.raises(GanimateError) as e:
        class_morph_frames(StubG(), [0, 1], [0], 4, nrow=1)
    assert "unconditional" in one_line(e)
    G = StubG(num_classes=3)
    with pytest.raises(GanimateError) as e:
        class_morph_frames(G, [0, 3], [0], 4, nrow=1)
    assert "out of range" in one_line(e)
    with pytest.raises(GanimateError):
        class_morph_frames(G, [1], [0], 4, nrow=1)
    with pytest.raises(GanimateError):
        class_morph_frames(G, [0, 1], [], 4, nrow=1)


# --------------------------------------------------------------------------- config + entry point


def test_parse_grid():
    assert parse_grid("3x4") == (3, 4)
    assert parse_grid("3×4") == (3, 4)
    assert parse_grid(" 2 X 5 ") == (2, 5)
    for bad in ["3", "0x2", "axb", "3x4x5"]:
        with pytest.raises(GanimateError):
            parse_grid(bad)


def test_interpolate_config_seeds():
    cfg = InterpolateConfig(run="r", grid="2x2", keyframes=3, seed=10)
    cells = cfg.walk_seeds()
    assert cells == [[10, 11, 12], [13, 14, 15], [16, 17, 18], [19, 20, 21]]
    assert len({s for cell in cells for s in cell}) == 12
    assert InterpolateConfig(run="r", grid="1x2", seeds="1,2,3,4").walk_seeds() == [[1, 2], [3, 4]]
    morph = InterpolateConfig(run="r", grid="2x3", morph_classes="all", seed=4)
    assert morph.morph_seeds() == [4, 5, 6, 7, 8, 9]
    assert morph.classes(10) == list(range(10))
    assert InterpolateConfig(run="r", morph_classes="3, 1", seeds="9").classes(10) == [3, 1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grid": "3"},
        {"keyframes": 1},
        {"seeds": "1"},
        {"seeds": "1,2,3", "grid": "1x2"},
        {"seeds": "a,b"},
        {"seeds": "-1,2"},
        {"frames_per_transition": 0},
        {"fps": 0},
        {"format": "webm"},
        {"scale": 0},
        {"seed": -1},
        {"morph_classes": "1"},
        {"morph_classes": "1,x"},
        {"morph_classes": "0,1", "seeds": "1,2", "grid": "1x1"},
    ],
)
def test_interpolate_config_validation(kwargs):
    with pytest.raises(GanimateError) as e:
        InterpolateConfig(run="r", **kwargs)
    one_line(e)


@pytest.fixture
def fake_loader(monkeypatch):
    loaded = {}

    def load_generator(run_dir, checkpoint=None, device="cpu"):
        loaded.update(run=run_dir, checkpoint=checkpoint, device=device)
        return loaded["G"], {}

    monkeypatch.setattr("ganimate.runs.load_generator", load_generator)
    return loaded


def test_run_interpolate_walk(tmp_path, fake_loader):
    fake_loader["G"] = StubG()
    cfg = InterpolateConfig(run=str(tmp_path), grid="2x3", keyframes=2, frames_per_transition=3, fps=12)
    paths = run_interpolate(cfg)
    assert paths == [tmp_path / "videos" / "walk.mp4"]
    assert fake_loader["device"] == "cpu" and fake_loader["checkpoint"] is None
    video = np.asarray(iio.imread(paths[0], index=None))
    h, w = 2 * 8 + 2, 3 * 8 + 2
    s = default_scale(h, w)
    assert video.shape == (6, h * s, w * s, 3)
    first = render(StubG(), torch.stack([latents_from_seed(c * 2, 8) for c in range(6)]), nrow=3)
    assert np.abs(video[0, ::s, ::s, 0].astype(int) - first[:, :, 0]).mean() < 8


def test_run_interpolate_morph_gif_both(tmp_path, fake_loader):
    fake_loader["G"] = StubG(num_classes=3)
    out = tmp_path / "m"
    cfg = InterpolateConfig(
        run=str(tmp_path), morph_classes="all", frames_per_transition=2, format="both", scale=2, out=str(out)
    )
    paths = run_interpolate(cfg)
    assert paths == [tmp_path / "m.mp4", tmp_path / "m.gif"]
    gif = np.asarray(iio.imread(paths[1], index=None))
    assert gif.shape[:3] == (6, 20, 20)
    gif = gif if gif.ndim == 4 else gif[..., None]
    expected = render(StubG(num_classes=3), latents_from_seed(0, 8)[None], torch.tensor([1]))
    assert np.array_equal(gif[2, ::2, ::2, :1], expected)


def test_run_interpolate_morph_errors(tmp_path, fake_loader):
    fake_loader["G"] = StubG()
    with pytest.raises(GanimateError) as e:
        run_interpolate(InterpolateConfig(run=str(tmp_path), morph_classes="0,1"))
    assert "unconditional" in one_line(e)
    fake_loader["G"] = StubG(num_classes=3)
    with pytest.raises(GanimateError) as e:
        run_interpolate(InterpolateConfig(run=str(tmp_path), morph_classes="0,7"))
    assert "out of range" in one_line(e)
    assert not (tmp_path / "videos").exists()
