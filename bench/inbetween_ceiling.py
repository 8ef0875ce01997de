"""How high can in-betweening go on Moving MNIST? PSNR of the baselines against estimators that know more.

On the test clips that `ganimate clip evaluate` scores (test digits, seed 0), one digit, T frames:

- crossfade, optical_flow: the baselines of clips/baselines.py.
- straight path: each key frame warped along the straight line between the digit's *true* key-frame
  positions and blended (the best any method that ignores bounces can do).
- physics solver: an estimator that knows the clip generator exactly (constant speed, a tenth of the
  free space per frame, mirror bounces off the walls) and sees only the two key frames. It measures each
  key frame's ink centre of mass, which gives the digit's position up to MNIST's own centring error
  (the digits were centred on whole pixels, so +-0.5 px), and takes the posterior mean over every start
  position and direction consistent with both frames of the warped key frames. A learned model that
  beats it has to locate the digit better than its ink's centre of mass does.
- true path: the key frames warped along the true positions (the cap of warping the key frames).

    python bench/inbetween_ceiling.py                 # 32x32 (the CPU preset) and 48x48, 300 clips each
    python bench/inbetween_ceiling.py --sizes 32 --n 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.ndimage import center_of_mass

from ganimate.clips.baselines import crossfade, optical_flow
from ganimate.data.moving_mnist import DIGIT, MovingMNIST, bounce, default_speed
from ganimate.flow import warp
from ganimate.metrics.pixel import psnr


def warp_blend(first: np.ndarray, last: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Frames (T-2, H, W) float: first and last moved along path (T, 2) to each middle frame, blended linearly."""
    frames = path.shape[0]
    out = []
    for t in range(1, frames - 1):
        s = t / (frames - 1)
        to_first, to_last = path[0] - path[t], path[-1] - path[t]  # where the pixel was, (dy, dx)
        fa = warp(first, np.broadcast_to(to_first[::-1].astype(np.float32), (*first.shape, 2)))
        fb = warp(last, np.broadcast_to(to_last[::-1].astype(np.float32), (*last.shape, 2)))
        out.append((1 - s) * fa + s * fb)
    return np.stack(out)


def resample(img: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """img moved by a fraction (fy, fx) of a pixel with the generator's bilinear weights."""
    out = np.zeros_like(img)
    for dy, wy in ((0, 1 - frac[0]), (1, frac[0])):
        for dx, wx in ((0, 1 - frac[1]), (1, frac[1])):
            out += wy * wx * np.roll(img, (dy, dx), (0, 1))
    return out


def blur_loglik(first: np.ndarray, last: np.ndarray, corner0: np.ndarray, corner1: np.ndarray) -> np.ndarray:
    """Log-likelihood of candidate true corners (E, 2) of the first and last frame from the resampling blur.

    Both key frames are the same digit D resampled at different sub-pixel offsets a and b, so the first
    frame resampled by b equals the last frame resampled by a (moved by the whole-pixel difference). The
    residual is uint8 rounding noise unless the candidate offsets are wrong.
    """
    out = np.empty(len(corner0))
    for i, (c0, c1) in enumerate(zip(corner0, corner1, strict=True)):
        n0, n1 = np.floor(c0), np.floor(c1)
        lhs = np.roll(resample(first, c1 - n1), tuple((n1 - n0).astype(int)), (0, 1))
        out[i] = -((lhs - resample(last, c0 - n0)) ** 2).sum() / (2 * 2 / 12)  # rounding noise 1/12 per frame
    return out


def physics_solver(clip: np.ndarray, room: float, speed: float, centre: float, read_blur: bool = False,
                   angles: int = 720, offsets: int = 21, top: int = 64) -> np.ndarray:
    """Posterior-mean middle frames (T-2, H, W) of one clip (T, 1, H, W) given only its key frames; with
    read_blur, the resampling blur (blur_loglik) also weighs the candidate positions."""
    frames = clip.shape[0]
    first, last = clip[0, 0].astype(np.float32), clip[-1, 0].astype(np.float32)
    # the ink's centre of mass: corner + the digit's own centring error
    seen0, seen1 = (np.array(center_of_mass(f.astype(np.float64))) - centre for f in (first, last))
    grid = np.linspace(-0.5, 0.5, offsets)
    err = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2)  # candidate centring errors
    theta = np.linspace(0, 2 * np.pi, angles, endpoint=False)
    v = speed * np.stack([np.sin(theta), np.cos(theta)], -1)[None]  # (1, A, 2)
    starts = np.broadcast_to(seen0 - err, (len(err), angles, 2)).reshape(-1, 2)
    paths = bounce(starts, np.broadcast_to(v, (len(err), angles, 2)).reshape(-1, 2), frames, room)
    ends = np.broadcast_to(seen1 - err, (len(err), angles, 2)).reshape(-1, 2)
    sigma = max(0.03, speed * (frames - 1) * 2 * np.pi / angles)  # no finer than the grid can resolve
    loglik = -((paths[:, -1] - ends) ** 2).sum(-1) / (2 * sigma**2)
    if read_blur:
        loglik += np.repeat(blur_loglik(first.astype(np.float64), last.astype(np.float64), seen0 - err[:, 0],
                                        seen1 - err[:, 0]), angles)
    best = np.argsort(-loglik)[:top]
    w = np.exp(loglik[best] - loglik[best].max())
    w /= w.sum()
    return sum(wi * warp_blend(first, last, paths[i]) for wi, i in zip(w, best, strict=True))


def ceiling(size: int, frames: int = 10, n: int = 300, seed: int = 0) -> dict[str, float]:
    """Mean PSNR (dB) of every method above on `n` single-digit test clips of `size` (the clips of
    `ganimate clip evaluate --n n --seed seed`)."""
    src = MovingMNIST.from_dataset("mnist", "test", size=size, frames=frames, digits=1)
    clips, _, corners = src.clips_with_paths(n, seed)
    true_path = corners[:, 0]  # (N, T, 2)
    room, speed = size - DIGIT, default_speed(size)[0]
    centre = np.mean([center_of_mass(im.astype(np.float64)) for im in src.images])  # mean, inside the 28x28 box
    straight = true_path[:, :1] + (true_path[:, -1:] - true_path[:, :1]) * np.linspace(0, 1, frames)[:, None]
    out = {"crossfade": crossfade(clips), "optical_flow": optical_flow(clips)}
    for name in ("straight_path", "physics_solver", "physics_blur_solver", "true_path"):
        out[name] = clips.copy()
    for i, clip in enumerate(clips):
        first, last = clip[0, 0].astype(np.float32), clip[-1, 0].astype(np.float32)
        middle = {"straight_path": warp_blend(first, last, straight[i]),
                  "true_path": warp_blend(first, last, true_path[i]),
                  "physics_solver": physics_solver(clip, room, speed, centre),
                  "physics_blur_solver": physics_solver(clip, room, speed, centre, read_blur=True)}
        for name, frames_ in middle.items():
            out[name][i, 1:-1, 0] = np.clip(np.rint(frames_), 0, 255).astype(np.uint8)
    truth = torch.from_numpy(clips[:, 1:-1])
    return {k: float(psnr(torch.from_numpy(v[:, 1:-1]), truth, 255).mean()) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="32,48", help="canvas sides, comma-separated")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--n", type=int, default=300, help="test clips per size")
    ap.add_argument("--seed", type=int, default=0, help="test-clip seed (0 is what `ganimate clip evaluate` uses)")
    args = ap.parse_args()

    print(f"in-betweening PSNR (dB) on {args.n} test clips, 1 digit, {args.frames} frames, seed {args.seed}")
    print(f"{'size':>4} {'step px':>7} {'crossfade':>9} {'opt.flow':>8} {'straight':>8} {'physics':>8} "
          f"{'+blur':>8} {'true path':>9} {'physics-best':>12} {'+blur-best':>10} {'s':>4}")
    for size in (int(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        p = ceiling(size, args.frames, args.n, args.seed)
        best = max(p["crossfade"], p["optical_flow"])
        print(f"{size:>4} {default_speed(size)[0]:>7.1f} {p['crossfade']:>9.2f} {p['optical_flow']:>8.2f} "
              f"{p['straight_path']:>8.2f} {p['physics_solver']:>8.2f} {p['physics_blur_solver']:>8.2f} "
              f"{p['true_path']:>9.2f} {p['physics_solver'] - best:>+12.2f} "
              f"{p['physics_blur_solver'] - best:>+10.2f} {time.perf_counter() - start:>4.0f}")


if __name__ == "__main__":
    main()
