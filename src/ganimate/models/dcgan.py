"""DCGAN generators and discriminators (Radford et al. 2015), conditional or not.

Three architectures, each a generator / discriminator class pair registered under its name with its
default widths and learning rates (`ganimate.models.registry`):

- ``paper``: the design of "Generating Video from Images using GANs" (IJITEE 2020).
  G: z -> dense -> (base x base x 256) -> 5x5 Conv2DTranspose upsampling with batch
  norm and LeakyReLU -> tanh image. D: 3x3 convolutions with 64, 128 and 256 filters,
  each followed by 2x2 average pooling and batch norm, then LeakyReLU; then flatten,
  dropout 0.4 and one dense logit. The activation comes after the batch norm, as in
  DCGAN: with batch norm last, each batch is centred on its own before the dense
  layer, so D cannot tell a real batch from a fake one by its mean and G stays noise
  (seen here: 300 steps on MNIST left G drawing noise; with this order, digits).
  Each convolution and its pooling run as one 4x4 stride-2 convolution (`PooledConv2d`):
  the same function at 16/36 of the arithmetic.
- ``tutorial``: the TensorFlow DCGAN tutorial's pair: the same generator and a
  discriminator of two 5x5 stride-2 convolutions (64, 128) with LeakyReLU and
  dropout 0.3, then a dense logit.
- ``fast``: the CPU preset (the default of ``ganimate train``). G: z -> dense ->
  (base x base x 192) -> 4x4 stride-2 Conv2DTranspose layers with batch norm and
  LeakyReLU -> tanh; a 4x4 kernel at stride 2 gives every output pixel the same
  number of taps, so no checkerboard. D: 4x4 stride-2 convolutions (32, 64, ...)
  with batch norm (not on the first) and LeakyReLU, then a dense logit; Adam at 6e-4.
  A training step costs 0.13 GFLOP per image against the paper pair's 0.50; its
  samples reach a lower FD sooner (bench/RESULTS.md).

Conditioning: the class enters G as a learned embedding concatenated to z, and D
through a projection (Miyato & Koyama 2018): logit += <embed(y), features>.
Labels may be int64 class indices (B,) or float class weights (B, K); a blend of
one-hot rows interpolates between classes (used by class morph videos).

All sizes come from the config, so a checkpoint's config rebuilds the models. The pairs share
`DCGANGenerator` (embedding, dense layer, upsampling stack) and `DCGANDiscriminator` (feature stack,
dense logit, projection); a subclass supplies only its stack.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganimate.memory import available_bytes, check_fits
from ganimate.models.registry import ArchSpec, get_arch, register_arch


def class_weights(y: torch.Tensor | None, num_classes: int, dtype: torch.dtype) -> torch.Tensor | None:
    """Labels (B,) int or (B, K) float -> float class weights (B, K)."""
    if y is None or num_classes == 0:
        return None
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        return F.one_hot(y.long(), num_classes).to(dtype)
    return y.to(dtype)


class Dropout(nn.Dropout):
    """`nn.Dropout` with a cheaper mask on the CPU. torch draws a CPU dropout mask one element at a time
    (`bernoulli_`, mostly on one thread), which cost the tutorial discriminator 14% of its training step. Here the
    random bits come from numpy's SFC64 generator, seeded by one draw of torch's global generator (so
    `torch.manual_seed` decides the mask, as for nn.Dropout), twice as fast as torch's own integers; each 16-bit
    slice is compared with the keep threshold (the keep probability rounded to a multiple of 1/65536), straight into
    x's dtype. The same distribution to within that rounding (bench/RESULTS.md). On other devices, torch's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        keep = round((1.0 - self.p) * 65536)  # kept slices: those below keep - 32768 of the int16 range
        if keep == 0:
            return x * 0
        if keep == 65536:  # p below 1/131072: every element kept (and the threshold would not fit an int16)
            return x * 1
        seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64))
        bits = np.random.SFC64(seed).random_raw((x.numel() + 3) // 4).view(np.int16)[: x.numel()]  # (numel,)
        mask = torch.lt(torch.from_numpy(bits), keep - 32768, out=torch.empty(x.numel(), dtype=x.dtype))
        # the mask in x's own layout: a channels-last x times a contiguous mask takes a slow mixed-stride path
        # (2.3 GB/s, and the gradients that flow back inherit it); a contiguous x gets the mask as before
        mask = mask.as_strided(x.shape, x.stride()) if is_channels_last(x) else mask.view(x.shape)
        if x.dtype == torch.float32:  # the scale in the mask: one pass forward and back, the same numbers
            return x * mask.mul_(65536 / keep)
        return (x * mask).mul_(65536 / keep)  # the scale as a scalar: not rounded to x's dtype (bf16)


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """(base resolution, number of stride-2 upsamplings) so that base * 2**n == image_size."""
    n = 2
    while image_size % (2**n) == 0 and image_size // (2**n) > 8:
        n += 1
    if image_size % (2**n) != 0 or image_size // (2**n) < 3:
        raise ValueError(f"image size {image_size} is not supported: use a multiple of 4 such as 28, 32 or 64")
    return image_size // (2**n), n


def condition(embed: nn.Module | None, num_classes: int, z: torch.Tensor, y: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A generator's input and class weights: (z with the class embedding concatenated, class weights (B, K)), or
    (z, None) for an unconditional G (`embed` None)."""
    if embed is None:
        return z, None
    if y is None:
        raise ValueError("this generator is conditional: pass class labels")
    w = class_weights(y, num_classes, z.dtype)  # (B, K)
    return torch.cat([z, embed(w)], dim=1), w


def is_batch_norm(m: nn.Module) -> bool:
    """A batch norm of any kind, the distributed runs' SyncBatchNorm included."""
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether a 4-d tensor is laid out channels-last, as its strides say (also for one channel, where the
    contiguous test accepts both layouts)."""
    return t.dim() == 4 and t.stride(1) == 1 and t.is_contiguous(memory_format=torch.channels_last)


class PooledConv2d(nn.Conv2d):
    """A 3x3 convolution (stride 1, padding 1) followed by 2x2 average pooling, computed as the one function they
    make together: a 4x4 convolution at stride 2 (padding 1) whose kernel is the 3x3 one box-filtered. The output is
    the pair's (floor(H / 2) x floor(W / 2)), the arithmetic 16/36 of the pair's and there is no pooling pass. The
    parameter stays the 3x3 kernel, so a state dict is the plain `nn.Conv2d`'s."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, 1, 1)

    def pooled_weight(self) -> torch.Tensor:
        """(out, in, 4, 4): the 3x3 kernel zero-padded to 5x5, then 2x2-averaged (the mean of its four placements in
        a 4x4 window), in the weight's own memory format (so a channels-last D stays channels-last)."""
        w4 = F.avg_pool2d(F.pad(self.weight, (1, 1, 1, 1)), 2, stride=1)
        return w4.contiguous(memory_format=torch.channels_last) if is_channels_last(self.weight) else w4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.pooled_weight(), self.bias, 2, 1)  # (B, out, H // 2, W // 2)


class _GradLike(torch.autograd.Function):
    """Identity whose gradient comes back in the memory format of its input: a channels-last activation flattened
    for a dense layer would otherwise get a contiguous gradient, and PyTorch's elementwise backward kernels (e.g.
    LeakyReLU's) take a slow path when their two operands' layouts differ."""

    @staticmethod
    def forward(ctx, x):
        ctx.channels_last = is_channels_last(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous(memory_format=torch.channels_last) if ctx.channels_last else g


class Flatten(nn.Flatten):
    """`nn.Flatten` whose gradient keeps the layout of its input (see `_GradLike`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_GradLike.apply(x))


class ClassModulation(nn.Module):
    """The class part of conditional batch norm (de Vries et al. 2017; BigGAN): h * (1 + gamma(y)) + beta(y) per
    channel, gamma and beta learned per class and zero at the start, so a new G begins as the plain one."""

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, 2 * channels))  # (K, [gamma, beta])

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h (B, C, H, W) after a batch norm, w class weights (B, K)."""
        gamma, beta = (w @ self.weight).to(h.dtype).chunk(2, 1)  # (B, C) each
        return h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class DCGANGenerator(nn.Module):
    """z (B, z_dim) [+ class] -> dense -> (width, base, base) -> `upsampling` stack -> image (B, C, H, W) in [-1, 1].

    With `class_norm` (conditional G only) every batch norm's output is modulated per class (`ClassModulation`)."""

    def __init__(
        self,
        z_dim: int = 100,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 0,
        width: int = 256,
        embed_dim: int = 50,
        bn_affine: bool = True,
        class_norm: bool = False,
    ):
        super().__init__()
        self.z_dim, self.image_size, self.channels, self.num_classes = z_dim, image_size, channels, num_classes
        self.base, n_up = upsampling_plan(image_size)
        self.width = width
        self.embed = nn.Linear(num_classes, embed_dim, bias=False) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        self.fc = nn.Linear(in_dim, width * self.base * self.base, bias=False)
        self.fc_norm = nn.BatchNorm2d(width, affine=bn_affine)
        self.net = nn.Sequential(*self.upsampling(width, n_up, channels, bn_affine))
        norms = [width, *(m.num_features for m in self.net if is_batch_norm(m))]
        self.class_norms = (nn.ModuleList(ClassModulation(num_classes, c) for c in norms)
                            if class_norm and num_classes else None)  # after fc_norm, then after each net batch norm

    def upsampling(self, width: int, n_up: int, channels: int, bn_affine: bool) -> list[nn.Module]:
        """Layers from (B, width, base, base) to (B, channels, base * 2**n_up, ...), ending in tanh."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z, w = condition(self.embed, self.num_classes, z, y)
        h = self.fc(z).view(-1, self.width, self.base, self.base)  # (B, W, base, base)
        if is_channels_last(self.net[0].weight):  # a channels-last G: one layout forward and back (mixed ones are slow)
            h = h.contiguous(memory_format=torch.channels_last)
        if self.class_norms is None:
            return self.net(F.leaky_relu(self.fc_norm(h), 0.2))  # (B, C, H, W)
        h = F.leaky_relu(self.class_norms[0](self.fc_norm(h), w), 0.2)
        norms = iter(self.class_norms[1:])
        for layer in self.net:
            h = layer(h)
            if is_batch_norm(layer):
                h = next(norms)(h, w)
        return h  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """image (B, C, H, W) [+ class] -> `downsampling` stack -> flatten, dropout -> real/fake logit (B,).

    `mbstd` > 0 adds the minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs"): one more
    input to the dense logit, the spread of the features across each group of `mbstd` images, so D can tell a
    batch of look-alikes from a varied real one."""

    dropout = 0.0

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 0,
        width: int = 64,
        bn_affine: bool = True,
        mbstd: int = 0,
    ):
        super().__init__()
        self.num_classes, self.mbstd = num_classes, mbstd
        layers, c, s = self.downsampling(image_size, channels, width, bn_affine)
        features = c * s * s
        self.features = nn.Sequential(*layers, Flatten(), Dropout(self.dropout))
        self.fc = nn.Linear(features + (1 if mbstd else 0), 1)
        self.embed = nn.Linear(num_classes, features, bias=False) if num_classes else None

    def batch_spread(self, h: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> (B, 1): the mean over features of their standard deviation within each group of
        `mbstd` images (images b, b + B/g, b + 2B/g ... form a group; the whole batch when B does not divide)."""
        b = h.shape[0]
        g = self.mbstd if b % self.mbstd == 0 else b
        grouped = h.float().view(g, b // g, -1)  # (g, B/g, F)
        spread = (grouped.var(0, unbiased=False) + 1e-8).sqrt().mean(1)  # (B/g,)
        return spread.repeat(g).unsqueeze(1).to(h.dtype)  # (B, 1)

    def downsampling(self, image_size: int, channels: int, width: int,
                     bn_affine: bool) -> tuple[list[nn.Module], int, int]:
        """(layers, output channels, output side) of the convolutional stack."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, F)
        out = self.fc(torch.cat([h, self.batch_spread(h)], 1) if self.mbstd else h).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass class labels")
            out = out + (self.embed(class_weights(y, self.num_classes, h.dtype)) * h).sum(1)
        return out


# ---------------------------------------------------------------- fast: the CPU preset


class FastGenerator(DCGANGenerator):
    """4x4 stride-2 transposed convolutions, halving the channels down to 16: every output pixel gets the same
    number of taps, so no checkerboard."""

    def upsampling(self, width, n_up, channels, bn_affine):
        layers, c = [], width
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(c, max(c // 2, 16), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(max(c // 2, 16), affine=bn_affine), nn.LeakyReLU(0.2)]
            c = max(c // 2, 16)
        return [*layers, nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]


class FastDiscriminator(DCGANDiscriminator):
    """4x4 stride-2 convolutions (width, 2 width, ...) down to 8x8 or less, batch norm after the first."""

    def downsampling(self, image_size, channels, width, bn_affine):
        layers, c, s, mult = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)], width, image_size // 2, 1
        while s > 8:
            mult *= 2
            layers += [nn.Conv2d(c, width * mult, 4, 2, 1), nn.BatchNorm2d(width * mult, affine=bn_affine),
                       nn.LeakyReLU(0.2)]
            c, s = width * mult, s // 2
        return layers, c, s


class DeepGenerator(FastGenerator):
    """The fast G with depth instead of width: a 3x3 convolution (+ batch norm, LeakyReLU) at the base resolution and
    after each hidden upsampling, so every resolution but the last has two layers. At 128 channels it costs less
    than the fast G at 256 and trains the quality preset's MNIST to better FD, precision and 1-NN error
    (bench/RESULTS.md, "Depth instead of width")."""

    def upsampling(self, width, n_up, channels, bn_affine):
        def conv3(c: int) -> list[nn.Module]:
            return [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c, affine=bn_affine), nn.LeakyReLU(0.2)]

        fast = super().upsampling(width, n_up, channels, bn_affine)  # [ConvT, BN, LReLU] * (n_up - 1), ConvT, Tanh
        layers = conv3(width)
        for i in range(0, len(fast) - 2, 3):
            layers += [*fast[i : i + 3], *conv3(fast[i].out_channels)]
        return [*layers, *fast[-2:]]


class DeeperDiscriminator(FastDiscriminator):
    """The fast D with a 3x3 convolution (+ LeakyReLU, and batch norm where the fast D has one) after each of its
    downsamplings. Beside the deep G it keeps the deep G's recall and buys precision and class accuracy
    (bench/RESULTS.md, "A deeper D")."""

    convs_per_resolution = 1  # 3x3 convolutions after each downsampling

    def downsampling(self, image_size, channels, width, bn_affine):
        fast, c, s = super().downsampling(image_size, channels, width, bn_affine)
        blocks, block = [], []  # [Conv, LReLU], then [Conv, BN, LReLU] for each further downsampling
        for layer in fast:
            block.append(layer)
            if isinstance(layer, nn.LeakyReLU):
                blocks.append(block)
                block = []
        layers = []
        for conv, *rest in blocks:
            n, norm = conv.out_channels, isinstance(rest[0], nn.BatchNorm2d)
            layers += [conv, *rest]
            for _ in range(self.convs_per_resolution):
                layers += [nn.Conv2d(n, n, 3, 1, 1, bias=not norm),
                           *([nn.BatchNorm2d(n, affine=bn_affine)] if norm else []), nn.LeakyReLU(0.2)]
        return layers, c, s


class DeepestDiscriminator(DeeperDiscriminator):
    """The deeper D with two 3x3 convolutions after each downsampling instead of one: three layers at each of D's
    resolutions. It takes the quality preset's 1-NN error under 4% and Fashion-MNIST's FD down a fifth
    (bench/RESULTS.md, "Deeper still")."""

    convs_per_resolution = 2


# Adam's learning rate is measured in bench/RESULTS.md.
register_arch(ArchSpec("fast", FastGenerator, FastDiscriminator, g_width=192, d_width=32, lr_g=6e-4, lr_d=6e-4))
register_arch(ArchSpec("deep", DeepGenerator, FastDiscriminator, g_width=128, d_width=32, lr_g=6e-4, lr_d=6e-4))
register_arch(ArchSpec("deeper", DeepGenerator, DeeperDiscriminator, g_width=128, d_width=32, lr_g=6e-4,
                       lr_d=6e-4))
register_arch(ArchSpec("deepest", DeepGenerator, DeepestDiscriminator, g_width=128, d_width=32, lr_g=6e-4,
                       lr_d=6e-4))


# ---------------------------------------------------------------- paper: "Generating Video from Images using GANs"


class PaperGenerator(DCGANGenerator):
    """5x5 transposed convolutions: one at stride 1 halving the width, then stride-2 ones halving it down to 16."""

    def upsampling(self, width, n_up, channels, bn_affine):
        def up(cin, cout, stride):
            return [nn.ConvTranspose2d(cin, cout, 5, stride, 2, output_padding=stride - 1, bias=False),
                    nn.BatchNorm2d(cout, affine=bn_affine), nn.LeakyReLU(0.2)]

        layers, c = up(width, width // 2, 1), width // 2
        for _ in range(n_up - 1):
            layers += up(c, max(c // 2, 16), 2)
            c = max(c // 2, 16)
        return [*layers, nn.ConvTranspose2d(c, channels, 5, 2, 2, output_padding=1), nn.Tanh()]


class PaperDiscriminator(DCGANDiscriminator):
    """3x3 convolutions (width, 2 width, 4 width), each followed by 2x2 average pooling, batch norm, LeakyReLU."""

    dropout = 0.4

    def downsampling(self, image_size, channels, width, bn_affine):
        layers, c, s = [], channels, image_size
        for mult in (1, 2, 4):  # nn.Identity keeps the layer indices (and state dicts) of conv, pool, norm, act
            layers += [PooledConv2d(c, width * mult), nn.Identity(),
                       nn.BatchNorm2d(width * mult, affine=bn_affine), nn.LeakyReLU(0.2)]
            c, s = width * mult, s // 2
        return layers, c, s


register_arch(ArchSpec("paper", PaperGenerator, PaperDiscriminator, g_width=256, d_width=64, lr_g=2e-4, lr_d=2e-4))


# ---------------------------------------------------------------- tutorial: TensorFlow's DCGAN tutorial


class TutorialDiscriminator(DCGANDiscriminator):
    """Two 5x5 stride-2 convolutions (width, 2 width), each with LeakyReLU and dropout 0.3."""

    def downsampling(self, image_size, channels, width, bn_affine):
        layers, c, s = [], channels, image_size
        for mult in (1, 2):
            layers += [nn.Conv2d(c, width * mult, 5, 2, 2), nn.LeakyReLU(0.2), Dropout(0.3)]
            c, s = width * mult, (s + 1) // 2
        return layers, c, s


register_arch(ArchSpec("tutorial", PaperGenerator, TutorialDiscriminator, g_width=256, d_width=64, lr_g=2e-4,
                       lr_d=2e-4))


# ---------------------------------------------------------------- building


def Generator(
    z_dim: int = 100,
    image_size: int = 28,
    channels: int = 1,
    num_classes: int = 0,
    width: int = 256,
    embed_dim: int = 50,
    bn_affine: bool = True,
    arch: str = "paper",
) -> DCGANGenerator:
    """The generator of architecture `arch` (not initialised; see `build_models`). Once the class that branched
    on `arch`; kept for callers that name the architecture as a string."""
    return get_arch(arch).generator(z_dim, image_size, channels, num_classes, width, embed_dim, bn_affine)


def Discriminator(
    arch: str = "paper",
    image_size: int = 28,
    channels: int = 1,
    num_classes: int = 0,
    width: int = 64,
    bn_affine: bool = True,
) -> DCGANDiscriminator:
    """The discriminator of architecture `arch` (not initialised; see `build_models`). Once the class that
    branched on `arch`; restore.model builds its pair discriminator with it."""
    return get_arch(arch).discriminator(image_size, channels, num_classes, width, bn_affine)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, N(1, 0.02) batch-norm scales, zero biases (2D and 3D layers)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _make(cfg) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    spec = get_arch(cfg.arch)
    num_classes = cfg.num_classes if cfg.conditional else 0
    extra = {"class_norm": True} if getattr(cfg, "class_norm", False) else {}  # the ArchSpec signature otherwise
    G = spec.generator(cfg.z_dim, cfg.image_size, cfg.channels, num_classes, cfg.g_width, bn_affine=cfg.bn_affine,
                       **extra)
    D = spec.discriminator(cfg.image_size, cfg.channels, num_classes, cfg.d_width, bn_affine=cfg.bn_affine,
                           mbstd=getattr(cfg, "mbstd", 0))
    return G, D


def estimate_bytes(cfg, training: bool = True, activations: bool = True) -> int:
    """Memory (G, D) of `cfg` take, from a model built on the meta device (nothing allocated): weights, and when
    training their gradients, Adam's two moments, G's moving average and, with `activations`, those of one
    batch (a forward pass on the meta device, which costs about 2 s the first time in a process)."""
    with torch.device("meta"):
        G, D = _make(cfg)
    weights = 4 * (count_params(G) + count_params(D))
    if not training:
        return weights
    states = 5 * 4 * count_params(G) + 4 * 4 * count_params(D)
    if not activations:
        return states
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.numel()))
             for m in (*G.modules(), *D.modules()) if not list(m.children())]
    with torch.device("meta"):
        batch = getattr(cfg, "batch_size", 1)
        y = torch.zeros(batch, dtype=torch.long) if G.num_classes else None
        D(G(torch.zeros(batch, cfg.z_dim), y), y)
    for h in hooks:
        h.remove()
    return states + 3 * 4 * sum(outputs)  # D sees real and fake; the backward pass keeps what it needs


def build_models(cfg, training: bool = True) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """Build (G, D) of `cfg.arch` from a TrainConfig (or anything with the same fields), DCGAN-initialised.

    A model too large for the machine (`--g-width`, `--d-width`, `--image-size`, `--batch-size`) is refused with
    its estimate before anything is allocated."""
    need = estimate_bytes(cfg, training, activations=False)
    batch = getattr(cfg, "batch_size", 1)
    if training and (batch > 1024 or need > 0.05 * (available_bytes() or float("inf"))):
        need = estimate_bytes(cfg, training)  # worth the meta forward pass only when it may not fit
    check_fits(need, f"{'training ' if training else ''}this {cfg.arch} model "
               f"(G width {cfg.g_width}, D width {cfg.d_width}, {cfg.image_size}x{cfg.image_size}"
               + (f", batch {batch})" if training else ")"),
               "use a smaller --g-width / --d-width" + (" / --batch-size" if training else ""))
    G, D = _make(cfg)
    init_weights(G)
    init_weights(D)
    return G, D


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
