"""What the discriminator sees: differentiable augmentation of real and generated images alike, so that D
overfits a small dataset later and the augmentations do not leak into G's samples.

- `diffaug`: DiffAugment's policy "color,translation,cutout" (Zhao et al. 2020, "Differentiable Augmentation
  for Data-Efficient GAN Training"): brightness, saturation and contrast; a shift by up to 1/8 of the size
  with zero padding; a cutout of half the size, each on every image.
- `ada`: the same five operations, each applied to an image with probability p (Karras et al. 2020,
  "Training Generative Adversarial Networks with Limited Data"), p adjusted every `ADA_INTERVAL` steps from
  r_t = E[sign(D(real))] against a target (0.6): up when D is too sure of the reals, down otherwise, fast
  enough to go from 0 to 1 in `ADA_SPEED_IMAGES` real images.

The random draws come from an explicit `torch.Generator` (on the CPU), the same number per call whatever p
is, so a run that saves and restores `Augmenter.state_dict()` continues bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("none", "diffaug", "ada")
SMALL_DATASET = 10_000  # `auto` augments (ada) datasets with fewer images than this
AUTO_CONSISTENCY = 0.5  # and adds bCR of this weight to them (reports/small_data_10k.md: 0.5 beat 1 and 2)
ADA_INTERVAL = 4  # steps between two adjustments of p (the paper's N = 4 minibatches)
# Real images over which p can move from 0 to 1. The paper uses 500k for runs of millions of images; a
# ganimate CPU run sees some 40k-300k (600-5,000 steps of 64), and p must be able to rise early within one.
ADA_SPEED_IMAGES = 20_000
N_OPS = 5  # brightness, saturation, contrast, translation, cutout
_DRAWS = 2 * N_OPS + 2  # uniforms per image per call: one "apply?" per op, 3 colour, 2 shift, 2 cutout centre


def resolve_augment(augment: str, n_images: int) -> str:
    """`auto` -> `ada` for datasets under SMALL_DATASET images, else `none`; other values unchanged."""
    if augment != "auto":
        return augment
    return "ada" if n_images < SMALL_DATASET else "none"


def resolve_consistency(consistency: float | None, augment: str, n_images: int) -> float:
    """--consistency's default (None): AUTO_CONSISTENCY where `--augment auto` picks ada (a small dataset), else 0;
    `augment` as the user gave it (before `resolve_augment`). A given weight is kept."""
    if consistency is not None:
        return consistency
    return AUTO_CONSISTENCY if augment == "auto" and n_images < SMALL_DATASET else 0.0


def brightness(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Add r - 0.5 to every pixel of image b; x (B, C, H, W) in [-1, 1], r (B,) in [0, 1)."""
    return x + (r - 0.5).view(-1, 1, 1, 1)


def saturation(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's distance from its grey value by 2r (identity for one channel)."""
    if x.shape[1] == 1:
        return x
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (x - mean) * (2 * r).view(-1, 1, 1, 1) + mean


def contrast(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Scale each image's distance from its mean value by r + 0.5."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (r + 0.5).view(-1, 1, 1, 1) + mean


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, limit: int) -> torch.Tensor:
    """Shift image b by (dy[b], dx[b]) whole pixels (int64 (B,), at most `limit` either way), filling with
    zeros; x (B, C, H, W)."""
    b, c, h, w = x.shape
    s = limit
    padded = F.pad(x, [s, s, s, s]).flatten(2)  # (B, C, (H + 2s) * (W + 2s))
    rows = torch.arange(h, device=x.device).view(1, h, 1) + s - dy.view(b, 1, 1)  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + s - dx.view(b, 1, 1)  # (B, 1, W)
    index = (rows * (w + 2 * s) + cols).view(b, 1, h * w).expand(b, c, h * w)  # (B, C, H * W)
    return padded.gather(2, index).view(b, c, h, w)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square centred at (cy[b], cx[b]) (int64 (B,)) of image b, clipped at the border."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) - (cy.view(-1, 1, 1) - size // 2)  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - (cx.view(-1, 1, 1) - size // 2)  # (B, 1, W)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def shifter(uy: torch.Tensor, ux: torch.Tensor, h: int, w: int):
    """The translation of images (B, C, h, w) by up to 1/8 of their size either way, whole pixels, from uniforms
    uy, ux (B,) in [0, 1)."""
    limit_y, limit_x = int(h / 8 + 0.5), int(w / 8 + 0.5)
    dy = (uy * (2 * limit_y + 1)).long() - limit_y  # (B,) in [-limit, limit]
    dx = (ux * (2 * limit_x + 1)).long() - limit_x
    return lambda x: translate(x, dy, dx, max(limit_y, limit_x))


def uniforms(b: int, n: int, gen: torch.Generator, world, device) -> torch.Tensor:
    """(b, n) uniforms in [0, 1) on `device` for one process's b images: under torchrun (`world`) drawn for the
    whole global batch, of which this process takes its rows, so every process's generator stays in step."""
    size = world.size if world is not None else 1
    u = torch.rand(b * size, n, generator=gen)  # (B * processes, n)
    return (world.rows(u) if size > 1 else u).to(device)


def random_shift(x: torch.Tensor, gen: torch.Generator, world=None) -> torch.Tensor:
    """bCR's transform: every image of x (B, C, H, W) shifted by up to 1/8 of its size, zero fill; differentiable."""
    u = uniforms(x.shape[0], 2, gen, world, x.device)  # (B, 2)
    return shifter(u[:, 0], u[:, 1], x.shape[2], x.shape[3])(x)


def augment(x: torch.Tensor, p: float, gen: torch.Generator, world=None) -> torch.Tensor:
    """DiffAugment's colour, translation and cutout, each applied to each image with probability p.

    x (B, C, H, W) in [-1, 1] (colour may leave that range, as in DiffAugment); differentiable in x. p = 1 is
    DiffAugment, p = 0 the identity. Draws the same numbers from `gen` whatever p is; under torchrun (`world`,
    x one process's rows) the numbers of the whole global batch, of which x gets its rows.
    """
    b, _, h, w = x.shape
    u = uniforms(b, _DRAWS, gen, world, x.device)  # (B, 12)
    if p <= 0:
        return x
    apply = (u[:, :N_OPS] < p).view(b, N_OPS, 1, 1, 1)  # (B, 5, 1, 1, 1)
    shift = shifter(u[:, 8], u[:, 9], h, w)
    size = int(h / 2 + 0.5)
    cy = (u[:, 10] * (h + 1 - size % 2)).long()  # (B,) the centre, as DiffAugment draws it
    cx = (u[:, 11] * (w + 1 - size % 2)).long()
    ops = (lambda t: brightness(t, u[:, 5]), lambda t: saturation(t, u[:, 6]), lambda t: contrast(t, u[:, 7]),
           shift, lambda t: cutout(t, cy, cx, size))
    for i, op in enumerate(ops):
        x = torch.where(apply[:, i], op(x), x) if p < 1 else op(x)
    return x


class Augmenter:
    """The augmentation of one run: mode (none | diffaug | ada), ADA's p and the generator of the draws.

    Call it on D's image input; `observe(real_logits)` after D's pass on the augmented reals, and `step()`
    after each training step (ada: every ADA_INTERVAL steps p moves by batch_size * ADA_INTERVAL /
    ADA_SPEED_IMAGES towards r_t = target). `state_dict()` is what a checkpoint must keep.
    """

    def __init__(self, mode: str, *, target: float = 0.6, batch_size: int = 64, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"augment mode must be one of {MODES}, got {mode!r}")
        self.mode, self.target = mode, target
        self.adjust = batch_size * ADA_INTERVAL / ADA_SPEED_IMAGES
        self.p = 1.0 if mode == "diffaug" else 0.0
        self.gen = torch.Generator().manual_seed(seed * 1_000_003 + 3)
        self.sign_sum, self.sign_n, self.steps = None, 0, 0  # since the last adjustment of p
        self.world = None  # under torchrun: the job's World (set by the task), whose signs p follows

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.p, self.gen, self.world) if self.active else x

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """bCR's transform of D's input x (`random_shift`), drawn from this run's generator (whatever the mode)."""
        return random_shift(x, self.gen, self.world)

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)) (ada only; stays on the device until p is adjusted)."""
        if self.mode != "ada":
            return
        s = torch.sign(real_logits.detach().float()).sum()
        self.sign_sum = s if self.sign_sum is None else self.sign_sum + s
        self.sign_n += real_logits.numel()

    def step(self) -> None:
        """Count a training step; every ADA_INTERVAL steps adjust p from r_t (ada only)."""
        if self.mode != "ada":
            return
        self.steps += 1
        if self.steps < ADA_INTERVAL:
            return
        signs = torch.tensor([float(self.sign_sum) if self.sign_sum is not None else 0.0, float(self.sign_n)],
                             dtype=torch.float64)
        if self.world is not None and self.world.active:  # the same p on every process: r_t of the global batch
            device = self.sign_sum.device if self.sign_sum is not None else "cpu"
            signs = self.world.sum(signs.to(device)).cpu()
        if signs[1] > 0:
            r_t = float(signs[0] / signs[1])
            direction = 1.0 if r_t > self.target else -1.0 if r_t < self.target else 0.0
            self.p = min(max(self.p + direction * self.adjust, 0.0), 1.0)
        self.sign_sum, self.sign_n, self.steps = None, 0, 0

    def state_dict(self) -> dict:
        return {"mode": self.mode, "p": self.p, "rng": self.gen.get_state(), "steps": self.steps,
                "sign_sum": None if self.sign_sum is None else self.sign_sum.detach().cpu(), "sign_n": self.sign_n}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.steps, self.sign_n = float(state["p"]), int(state["steps"]), int(state["sign_n"])
        self.gen.set_state(state["rng"])
        self.sign_sum = state["sign_sum"]
