"""Clip generators and a spatio-temporal discriminator: video from one still, and in-between frames.

- `PredictGenerator`: first frame + noise z -> the following T-1 frames (after Vondrick et al. 2016,
  "Generating Videos with Scene Dynamics", conditioned on a still): a 2D encoder of the still, z
  projected to one feature vector per future frame, and a 3D-convolution decoder that upsamples back to
  pixels with the encoder's features as skip connections and adds its output to the still (a residual:
  an untrained G repeats the still). Different z give different motions.
- `InbetweenGenerator`: first and last frame -> the T-2 frames between them, fully convolutional with
  3D convolutions at pixel level (Li et al. 2019, video in-betweening with direct 3D convolutions): a
  3D U-Net over the whole clip whose input at every time step is the two key frames, a base clip and
  the time coordinate; its output is added to the base (a residual; its last layer starts at zero, so an
  untrained G returns the base). The base is the optical-flow interpolation of the key frames
  (flow.py, OpenCV's Farnebäck flow) or their linear cross-fade (`base="crossfade"`).
- `ForecastGenerator`: the first `context` frames -> the following ones, deterministic (SimVP, Gao et al.
  2022, "SimVP: Simpler yet Better Video Prediction"): a strided 2D encoder applied to every frame, a
  translator of residual 2D convolutions over the frames' features stacked along channels (at 1/4 and
  1/8 of the side), and a decoder that turns each output frame's features back into pixels with the
  last context frame's encoder features as a skip connection. Trained with an L2 loss.
- `ViewEnsemble`: an in-between G averaged over the task's symmetries (Lim et al. 2017's geometric
  self-ensemble, with time reversal): key frames swapped, mirrored or transposed, G's frames mapped back.
- `ClipDiscriminator`: strided 3D convolutions over the whole clip (B, 1, T, H, W) with the conditioning
  frame(s) repeated along time as extra channels; the mean of its patch logits is one logit per clip.

As in models/dcgan.py, batch norm comes before the LeakyReLU and weights use the DCGAN initialisation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganimate.flow import flow_interpolation
from ganimate.models import dcgan

TASKS = ("predict", "inbetween", "forecast")
SYNTHESES = ("paint", "warp")  # how the inbetween generator makes its frames
BASES = ("flow", "crossfade")  # what the inbetween generator corrects
VIEWS = (1, 2, 4, 8, 16)  # ViewEnsemble's sizes: each doubles the one before with one more symmetry


def spatial_plan(size: int) -> int:
    """Number of stride-2 downsamplings: halve while the side is even and above 8 (32 -> 8, 64 -> 8)."""
    if size < 8 or size % 4:
        raise ValueError(f"clip size {size} is not supported: use a multiple of 4 of at least 8 (32, 48, 64)")
    n = 0
    while size % 2 == 0 and size > 8:
        size, n = size // 2, n + 1
    return n


def _block3d(cin: int, cout: int, stride=(1, 1, 1)) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.LeakyReLU(0.2))


def _block2d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _widths(width: int, levels: int) -> list[int]:
    return [width * min(2**i, 8) for i in range(levels + 1)]


def _time_channel(b: int, t: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Time coordinate 0..1 as a constant map per frame: (B, 1, T, H, W)."""
    return torch.linspace(0, 1, t, device=like.device, dtype=like.dtype).view(1, 1, t, 1, 1).expand(b, 1, t, h, w)


class InbetweenGenerator(nn.Module):
    """first, last (B, 1, H, W) in [-1, 1] -> middle frames (B, 1, T-2, H, W), about [-1, 1] (not clamped)."""

    def __init__(self, frames: int = 10, size: int = 32, width: int = 16, base: str = "flow"):
        super().__init__()
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}: choose from {', '.join(BASES)}")
        self.frames, self.size, self.base = frames, size, base
        levels = spatial_plan(size)
        ws = _widths(width, levels)
        self.inp = _block3d(4, ws[0])
        self.down = nn.ModuleList(_block3d(ws[i], ws[i + 1], (1, 2, 2)) for i in range(levels))
        self.mid = nn.Sequential(_block3d(ws[-1], ws[-1]), _block3d(ws[-1], ws[-1]))
        self.up = nn.ModuleList(_block3d(ws[i + 1] + ws[i], ws[i]) for i in reversed(range(levels)))
        self.out = nn.Conv3d(ws[0], 1, 3, 1, 1)

    def base_clip(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The clip G corrects, (B, 1, T, H, W) in [-1, 1]: flow interpolation or cross-fade of the key frames."""
        t = self.frames
        if self.base == "crossfade":
            alpha = torch.linspace(0, 1, t, device=first.device, dtype=first.dtype).view(1, 1, t, 1, 1)
            return (1 - alpha) * first.unsqueeze(2) + alpha * last.unsqueeze(2)
        def to_u8(x):
            return ((x.detach().float()[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

        frames = torch.from_numpy(flow_interpolation(to_u8(first), to_u8(last), t))  # (B, T, H, W), 0..255
        return frames.to(first.device, first.dtype).unsqueeze(1).div(127.5).sub(1)

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        """The 3D U-Net: input maps (B, C_in, T, H, W) -> features (B, width, T, H, W)."""
        skips, h_ = [], self.inp(x)  # (B, w, T, H, W)
        for down in self.down:
            skips.append(h_)
            h_ = down(h_)
        h_ = self.mid(h_)
        for up in self.up:
            skip = skips.pop()
            h_ = up(torch.cat([F.interpolate(h_, size=skip.shape[2:], mode="nearest"), skip], 1))
        return h_

    def inputs(self, first: torch.Tensor, last: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        b, _, h, w = first.shape
        a, c = first.unsqueeze(2), last.unsqueeze(2)  # (B, 1, 1, H, W)
        return torch.cat([a.expand_as(base), c.expand_as(base), base, _time_channel(b, self.frames, h, w, first)], 1)

    def forward(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        base = self.base_clip(first, last)  # (B, 1, T, H, W)
        return (base + self.out(self.unet(self.inputs(first, last, base))))[:, :, 1:-1]  # a correction of the base


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps, zero outside, kernel radius 2 sigma."""
    r = max(1, int(round(2 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=x.device, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))


class WarpInbetweenGenerator(nn.Module):
    """first, last (B, 1, H, W) in [-1, 1] -> middle frames (B, 1, T-2, H, W) in [-1, 1], made only of the key
    frames' own pixels, moved.

    A 2D U-Net over the two key frames and the pixel coordinates predicts, for every middle frame, a
    backward flow into each key frame and a blend mask (its output channels, 5 per frame): frame t =
    m * first(x + f_0(x)) + (1 - m) * last(x + f_1(x)), bilinear sampling, black outside the canvas (frame
    synthesis by warping, as in Liu et al. 2017, "Video Frame Synthesis using Deep Voxel Flow"). A digit
    that is moved is not repainted, so it stays as legible as in the key frames. The flows start at zero and
    the mask at the cross-fade's weight: an untrained G returns the cross-fade.

    Bilinear sampling only has a gradient where the sampled frame has edges, so a flow that points a digit's
    pixel at empty canvas cannot learn where the digit went. Training therefore also composes frames from
    key frames blurred at `sigmas` (pixels: 2, 4, 8, ... up to a quarter of the side) with the same flows and
    masks (`forward(..., pyramid=True)`); their wide tails pull a flow towards a digit tens of pixels away.
    """

    def __init__(self, frames: int = 10, size: int = 32, width: int = 32, grid: int = 1, match: bool = False,
                 layers: int = 1):
        super().__init__()
        levels = spatial_plan(size)
        if grid not in [2**i for i in range(levels + 1)]:
            raise ValueError(f"flow grid {grid} must be a power of 2 of at most {2**levels} for side {size}")
        self.frames, self.size, self.grid, self.layers = frames, size, grid, layers
        self.sigmas = tuple(2.0**i for i in range(1, 8) if 2**i <= size / 4)  # 2, 4, 8 (and 16 from 64 px)
        ws = _widths(width, levels)
        self.top = top = grid.bit_length() - 1  # the flows' level: 1/grid of the side
        self.inp = nn.Sequential(_block2d(4, ws[0]), _block2d(ws[0], ws[0]))  # key frames, y, x
        self.down = nn.ModuleList(nn.Sequential(_block2d(ws[i], ws[i + 1], 2), _block2d(ws[i + 1], ws[i + 1]))
                                  for i in range(levels))
        self.mid = nn.Sequential(_block2d(ws[-1], ws[-1]), _block2d(ws[-1], ws[-1]))
        lowest = top if layers == 1 else 0  # layers: the segmentation needs the full resolution
        self.up = nn.ModuleList(_block2d(ws[i + 1] + ws[i], ws[i]) for i in reversed(range(lowest, levels)))
        self.out = nn.Conv2d(ws[top], 5 * layers * (frames - 2), 3, 1, 1)  # per frame and layer: 2 flows, 1 mask
        # layers: which layer each key-frame pixel belongs to (a softmax over layers, for first and for last)
        self.seg = nn.Conv2d(ws[0], 2 * layers, 3, 1, 1) if layers > 1 else None
        self.match = None
        if match:  # a cost volume at 1/4 of the side, displacements up to half the side (Dosovitskiy et al. 2015)
            self.reach = size // 8  # in cells of 4 px
            self.match = nn.Sequential(_block2d(1, ws[0], 2), _block2d(ws[0], ws[1], 2), _block2d(ws[1], ws[1]),
                                       nn.Conv2d(ws[1], ws[0], 3, 1, 1))  # features of one frame
            self.match_in = nn.Conv2d((2 * self.reach + 1) ** 2, ws[2], 1)  # into the U-Net's 1/4 level

    def cost_volume(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Correlation of the two key frames' features at 1/4 of the side for every displacement within
        `reach` cells: (B, (2 reach + 1)^2, H/4, W/4), so the U-Net can see which digit of the first frame
        went where in the last."""
        f0, f1 = self.match(torch.cat([first, last])).chunk(2)
        b, c, h, w = f0.shape
        k = 2 * self.reach + 1
        shifted = F.unfold(f1, k, padding=self.reach).view(b, c, k * k, h, w)  # f1 at x + d, every d
        return (f0.unsqueeze(2) * shifted).sum(1) / c ** 0.5

    def motion(self, first: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T-2, H, W, 5 * layers): per middle frame and layer the flows into first and last (canvas units, x
        then y) and the mask logit, predicted at 1/grid of the side and upsampled (bilinear), so a digit moves as
        one piece; and with layers, the key frames' layer logits (B, 2 * layers, H, W), else None."""
        b, _, h, w = first.shape
        ys = torch.linspace(-1, 1, h, device=first.device, dtype=first.dtype)
        xs = torch.linspace(-1, 1, w, device=first.device, dtype=first.dtype)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(b, 2, h, w)
        skips, x = [], self.inp(torch.cat([first, last, coords], 1))
        for i, down in enumerate(self.down):
            skips.append(x)
            x = down(x)
            if i == 1 and self.match is not None:  # at 1/4 of the side
                x = x + self.match_in(self.cost_volume(first, last))
        x = self.mid(x)
        at_top = x if self.top == len(self.down) else None
        for up in self.up:
            skip = skips.pop()
            x = up(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
            if len(skips) == self.top:
                at_top = x
        out = self.out(at_top).float()
        if self.grid > 1:
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        seg = self.seg(x).float() if self.seg is not None else None
        return out.view(b, self.frames - 2, 5 * self.layers, h, w).permute(0, 1, 3, 4, 2), seg

    def forward(self, first: torch.Tensor, last: torch.Tensor, pyramid: bool = False) -> torch.Tensor:
        """Middle frames (B, 1, T-2, H, W); with pyramid, (1 + len(sigmas), B, 1, T-2, H, W): the frames and
        the same motion applied to the blurred key frames.

        With `layers` K > 1 each key frame is split into K layers (a softmax per pixel), each layer moves with
        its own flows and mask, and the frame is their sum (layered motion, Wang & Adelson 1994): two digits
        that cross need no flow field that changes at their edges, and a blurred level blurs one layer, so its
        pull leads a flow to its own digit, not to the middle of both."""
        b, _, h, w = first.shape
        t, k = self.frames - 2, self.layers
        motion, seg = self.motion(first, last)
        out = motion.reshape(b, t, h, w, k, 5).permute(0, 1, 4, 2, 3, 5)  # (B, T', K, H, W, 5)
        ys = torch.linspace(-1, 1, h, device=first.device)
        xs = torch.linspace(-1, 1, w, device=first.device)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx, gy], -1)  # grid_sample's (x, y) order
        when = torch.linspace(0, 1, self.frames, device=out.device)[1:-1].view(1, -1, 1, 1, 1)  # frame times
        mask = torch.sigmoid(out[..., 4] + torch.logit(1 - when)).unsqueeze(3)  # (B, T', K, 1, H, W)
        a, c = first.float() + 1, last.float() + 1  # 0 on black, which is what sampling outside gives
        if seg is not None:  # (B, K, H, W) layers of each key frame, summing to the frame
            a, c = a * seg[:, :k].softmax(1), c * seg[:, k:].softmax(1)
        sigmas = self.sigmas if pyramid else ()
        n = 1 + len(sigmas)

        def with_levels(key: torch.Tensor) -> torch.Tensor:
            """(B, K, H, W) -> (B, K, n, H, W): the layers, then each blurred at every sigma of the pyramid."""
            flat = key.reshape(-1, 1, h, w)
            return torch.stack([key, *(gaussian_blur(flat, s).view(b, k, h, w) for s in sigmas)], 2)

        def sample(key: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
            """Every level of one key frame's layers at grid + flow: (B, T', K, n, H, W); one grid_sample."""
            src = key.unsqueeze(1).expand(b, t, k, n, h, w).reshape(b * t * k, n, h, w)
            return F.grid_sample(src, (grid + flow).reshape(b * t * k, h, w, 2),
                                 align_corners=True).view(b, t, k, n, h, w)

        a, c = with_levels(a), with_levels(c)
        y = (mask * sample(a, out[..., 0:2]) + (1 - mask) * sample(c, out[..., 2:4])).sum(2)  # (B, T', n, H, W)
        frames = (y - 1).permute(2, 0, 1, 3, 4).unsqueeze(2)  # (n, B, 1, T', H, W)
        return frames if pyramid else frames[0]


class ViewEnsemble(nn.Module):
    """An in-between G whose frames are the mean of G's frames over `views` symmetric views of the key frames.

    Moving MNIST's motion is as likely backwards, mirrored, upside down or transposed (the digits then come out
    mirrored, which G sees less well), so each view asks G the same question, but a trained G does not answer
    the views consistently (its error differs between them), and their mean has less error than any one
    (and is blurrier where they disagree). View i applies,
    for each set bit of i: 1 swap the key frames (G's frames come back reversed in time), 2 mirror
    left-right, 4 upside down, 8 transpose; `views` is 1, 2, 4, 8 or 16, so each size holds the smaller ones,
    and the mean answers each of its symmetries exactly. For inference: no weights of its own; `views`
    passes of G, one view at a time.
    """

    def __init__(self, G: nn.Module, views: int):
        super().__init__()
        if views not in VIEWS:
            raise ValueError(f"views must be one of {', '.join(map(str, VIEWS))}, got {views}")
        self.G, self.views, self.frames, self.size = G, views, G.frames, G.size

    @staticmethod
    def _to(view: int, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-1) if view & 2 else x
        x = x.flip(-2) if view & 4 else x
        return x.transpose(-1, -2) if view & 8 else x

    @staticmethod
    def _back(view: int, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-3) if view & 1 else x  # time
        x = x.transpose(-1, -2) if view & 8 else x
        x = x.flip(-2) if view & 4 else x
        return x.flip(-1) if view & 2 else x

    def forward(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Frames (B, 1, T-2, H, W), as G returns them."""
        total = 0
        for view in range(self.views):
            a, b = self._to(view, first), self._to(view, last)
            total = total + self._back(view, self.G(b, a) if view & 1 else self.G(a, b))
        return total / self.views


class PredictGenerator(nn.Module):
    """first (B, 1, H, W) in [-1, 1], z (B, z_dim) -> following frames (B, 1, T-1, H, W), about [-1, 1]."""

    def __init__(self, frames: int = 10, size: int = 32, width: int = 16, z_dim: int = 32, z_channels: int = 16):
        super().__init__()
        self.frames, self.size, self.z_dim, self.z_channels = frames, size, z_dim, z_channels
        levels = spatial_plan(size)
        ws = _widths(width, levels)
        self.enc = nn.ModuleList([_block2d(1, ws[0])] + [_block2d(ws[i], ws[i + 1], 2) for i in range(levels)])
        self.z_proj = nn.Linear(z_dim, z_channels * (frames - 1))
        self.mid = nn.Sequential(_block3d(ws[-1] + z_channels + 1, ws[-1]), _block3d(ws[-1], ws[-1]))
        self.up = nn.ModuleList(_block3d(ws[i + 1] + ws[i], ws[i]) for i in reversed(range(levels)))
        self.out = nn.Conv3d(ws[0], 1, 3, 1, 1)

    def forward(self, first: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, t = first.shape[0], self.frames - 1
        skips, h = [], first
        for enc in self.enc:
            h = enc(h)
            skips.append(h)  # (B, w_i, H_i, W_i)
        skips.pop()
        s = h.shape[-1]
        zmap = self.z_proj(z).view(b, self.z_channels, t, 1, 1).expand(-1, -1, -1, s, s)
        x = torch.cat([h.unsqueeze(2).expand(-1, -1, t, -1, -1), zmap, _time_channel(b, t, s, s, h)], 1)
        h = self.mid(x)  # (B, C, T-1, s, s)
        for up in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=(t, *skip.shape[-2:]), mode="nearest")
            h = up(torch.cat([h, skip.unsqueeze(2).expand(-1, -1, t, -1, -1)], 1))
        return first.unsqueeze(2) + self.out(h)  # (B, 1, T-1, H, W), a correction of the still


class ClipDiscriminator(nn.Module):
    """clip (B, 1, T, H, W) + conditioning frames (B, K, H, W) -> one real/fake logit per clip (B,)."""

    def __init__(self, frames: int = 10, size: int = 32, width: int = 16, cond: int = 1):
        super().__init__()
        levels = spatial_plan(size)
        layers, c, t = [], 1 + cond, frames
        for i, cout in enumerate(_widths(width, levels)[: levels + 1]):
            ts = 2 if t >= 4 else 1
            layers.append(nn.Conv3d(c, cout, 3, (ts, 2, 2) if i < levels else 1, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm3d(cout))
            layers.append(nn.LeakyReLU(0.2))
            c, t = cout, (t - 1) // ts + 1 if i < levels else t
        self.net = nn.Sequential(*layers, nn.Conv3d(c, 1, 3, 1, 1))

    def forward(self, clip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = torch.cat([clip, cond.unsqueeze(2).expand(-1, -1, clip.shape[2], -1, -1)], 1)
        return self.net(x).mean((1, 2, 3, 4))  # (B,)


class _ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), group norm (batch-size free), 3x3 convolutions."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1),
                                 nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ForecastGenerator(nn.Module):
    """context frames (B, 1, C, H, W) in [-1, 1] -> the next frames (B, 1, T-C, H, W), about [-1, 1].

    width: channels per frame in the encoder and decoder; the translator works on 8 * width channels at
    1/4 of the side and 16 * width at 1/8. The side must be a multiple of 8.
    """

    def __init__(self, context: int = 10, frames: int = 20, size: int = 64, width: int = 16, blocks: int = 2):
        super().__init__()
        if size % 8:
            raise ValueError(f"forecast needs a side that is a multiple of 8, got {size}")
        self.context, self.frames, self.size = context, frames, size
        self.out_frames = frames - context
        w, hid = width, 8 * width
        self.enc1 = nn.Sequential(nn.Conv2d(1, w, 3, 2, 1), nn.GroupNorm(4, w), nn.SiLU())  # 1/2
        self.enc2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, 2, 1), nn.GroupNorm(4, 2 * w), nn.SiLU(),
                                  nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.GroupNorm(4, 2 * w), nn.SiLU())  # 1/4
        self.t_in = nn.Conv2d(2 * w * context, hid, 1)
        self.t_hi = nn.Sequential(*[_ResBlock(hid) for _ in range(blocks)])
        self.t_down = nn.Conv2d(hid, 2 * hid, 3, 2, 1)  # 1/8: the receptive field a 10-frame motion needs
        self.t_lo = nn.Sequential(*[_ResBlock(2 * hid) for _ in range(blocks)])
        self.t_up = nn.Sequential(nn.Conv2d(2 * hid, 4 * hid, 1), nn.PixelShuffle(2))  # back to 1/4
        self.t_out = nn.Sequential(nn.Conv2d(2 * hid, hid, 1), _ResBlock(hid),
                                   nn.Conv2d(hid, 2 * w * self.out_frames, 1))  # 2w channels per output frame
        self.dec2 = nn.Sequential(nn.GroupNorm(4, 2 * w), nn.SiLU(), nn.Conv2d(2 * w, 4 * w, 3, 1, 1),
                                  nn.PixelShuffle(2))  # 1/2, w channels
        self.dec1 = nn.Sequential(nn.Conv2d(2 * w, w, 3, 1, 1), nn.GroupNorm(4, w), nn.SiLU(),
                                  nn.Conv2d(w, 4, 3, 1, 1), nn.PixelShuffle(2))  # full size, 1 channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * c, 1, h, w)  # (B*C, 1, H, W)
        s1 = self.enc1(frames)  # (B*C, w, H/2, W/2)
        s2 = self.enc2(s1)  # (B*C, 2w, H/4, W/4)
        z = self.t_in(s2.reshape(b, c * s2.shape[1], h // 4, w // 4))  # (B, hid, H/4, W/4)
        z = self.t_hi(z)
        z = torch.cat([z, self.t_up(self.t_lo(self.t_down(z)))], 1)  # (B, 2 hid, H/4, W/4)
        t = self.out_frames
        z = self.t_out(z).reshape(b * t, -1, h // 4, w // 4)  # (B*T', 2w, H/4, W/4)
        last = s1.reshape(b, c, *s1.shape[1:])[:, -1]  # (B, w, H/2, W/2): the last context frame
        y = self.dec2(z)  # (B*T', w, H/2, W/2)
        y = torch.cat([y, last.repeat_interleave(t, 0)], 1)
        y = self.dec1(y)  # (B*T', 1, H, W)
        return y.reshape(b, t, 1, h, w).transpose(1, 2)  # (B, 1, T', H, W)


def build_clip_models(cfg) -> tuple[nn.Module, ClipDiscriminator]:
    """(G, D) for cfg.task from a ClipTrainConfig (or anything with its fields), DCGAN-initialised."""
    if cfg.task == "forecast":
        G = ForecastGenerator(cfg.context, cfg.frames, cfg.size, cfg.g_width)
        D = ClipDiscriminator(cfg.frames, cfg.size, cfg.d_width, cond=cfg.context)
        dcgan.init_weights(D)
        return G, D  # G keeps PyTorch's default initialisation, as SimVP
    if cfg.task == "predict":
        G = PredictGenerator(cfg.frames, cfg.size, cfg.g_width, cfg.z_dim)
    elif cfg.task == "inbetween" and getattr(cfg, "synthesis", "paint") == "warp":
        G = WarpInbetweenGenerator(cfg.frames, cfg.size, cfg.g_width, getattr(cfg, "flow_grid", 1),
                                   getattr(cfg, "cost_volume", False), getattr(cfg, "layers", 1))
    elif cfg.task == "inbetween":
        G = InbetweenGenerator(cfg.frames, cfg.size, cfg.g_width, cfg.base)
    else:
        raise ValueError(f"unknown task {cfg.task!r}: choose from {', '.join(TASKS)}")
    D = ClipDiscriminator(cfg.frames, cfg.size, cfg.d_width, cond=1 if cfg.task == "predict" else 2)
    dcgan.init_weights(G)
    dcgan.init_weights(D)
    if cfg.task == "inbetween":  # an untrained G returns its base clip
        nn.init.zeros_(G.out.weight)
        nn.init.zeros_(G.out.bias)
    return G, D
