"""A DCGAN generator folded for sampling: the same function as the trained one in eval mode, fewer passes over memory.

In eval mode a batch norm is a fixed per-channel scale and shift, so it folds into the layer before it (the dense
layer's rows, a transposed convolution's output channels, plus a bias): two memory-bound passes over each
activation fewer. The dense layer's rows are reordered to (height, width, channel), so its output is already the
channels-last tensor oneDNN's transposed convolutions want, without a copy. LeakyReLU runs in place.
The last transposed convolution, with its one to four output channels, runs as a matrix product and an
overlap-add (`GemmConvTranspose2d`): oneDNN's kernel for so few output channels ran at a few GFLOP/s.
(torch's own kernel for that layer was 3x faster than oneDNN's too, but drew slightly different pixels in about
one process of five, so it is not used: bench/RESULTS.md, "Evaluation speed".)

Only rounding differs from the unfolded generator (a few pixels in a million move by one grey level); training
never sees this module: `sample.inference_copy` builds it for sampling on the CPU.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganimate.models.dcgan import ClassModulation, DCGANGenerator, condition, is_batch_norm

FOLDABLE = (nn.ConvTranspose2d, nn.Conv2d)  # layers a following batch norm folds into
GEMM_MAX_CHANNELS = 4  # transposed convolutions with at most this many output channels run as `GemmConvTranspose2d`


def _scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) per channel with bn(x) == x * scale + shift in eval mode."""
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale, shift = scale * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
    return scale, shift


def _fold_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """conv (a convolution or a transposed one) followed by bn (eval) as one convolution with a bias."""
    scale, shift = _scale_shift(bn)
    folded = copy.deepcopy(conv)
    if folded.bias is None:
        folded.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device))
    # the output channel is dim 1 of a ConvTranspose2d's weight (in, out / groups, kH, kW), dim 0 of a Conv2d's
    per_out = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.view(per_out))
        old_bias = conv.bias.double() if conv.bias is not None else 0.0
        folded.bias.copy_(old_bias * scale + shift)
    return folded


class GemmConvTranspose2d(nn.Module):
    """A transposed convolution with few output channels as one batched matrix product and `F.fold`'s overlap-add.

    Every input pixel's contribution to the output is its channel vector times the weight seen as (Cin, Cout * k * k):
    a matrix product of the whole batch, then `F.fold` adds the k x k patches into the output at the stride.
    Input channels-last (B, Cin, H, W); output contiguous (B, Cout, Ho, Wo)."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        if not supports_gemm(conv):
            raise ValueError("only square, ungrouped, undilated transposed convolutions")
        cin, cout, k, _ = conv.weight.shape
        self.kernel, self.stride, self.padding = k, conv.stride[0], conv.padding[0]
        self.output_padding = conv.output_padding[0]
        self.register_buffer("weight_t", conv.weight.detach().reshape(cin, cout * k * k).t().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(cout, dtype=conv.weight.dtype)
        self.register_buffer("bias", bias.clone().view(1, cout, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, cin, h, w = x.shape
        k, s, p = self.kernel, self.stride, self.padding
        size = ((h - 1) * s - 2 * p + k + self.output_padding, (w - 1) * s - 2 * p + k + self.output_padding)
        rows = x.permute(0, 2, 3, 1).reshape(b, h * w, cin).transpose(1, 2)  # (B, Cin, HW): a view when channels-last
        cols = torch.matmul(self.weight_t, rows)  # (B, Cout * k * k, HW)
        return F.fold(cols, size, k, padding=p, stride=s).add_(self.bias)


def supports_gemm(conv: nn.ConvTranspose2d) -> bool:
    return (conv.groups == 1 and conv.dilation == (1, 1) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.stride[0] == conv.stride[1] and conv.padding[0] == conv.padding[1]
            and conv.output_padding[0] == conv.output_padding[1] and conv.padding_mode == "zeros")


def foldable(G: nn.Module) -> bool:
    """Whether `FoldedGenerator` reproduces G: a DCGANGenerator with its own forward and running batch-norm stats."""
    if not isinstance(G, DCGANGenerator) or type(G).forward is not DCGANGenerator.forward:
        return False
    norms = [G.fc_norm, *(m for m in G.net if is_batch_norm(m))]
    if not all(bn.track_running_stats for bn in norms):
        return False
    mods = list(G.net)  # every batch norm of the stack directly after a convolution (transposed or not)
    return all(i > 0 and isinstance(mods[i - 1], FOLDABLE) for i, m in enumerate(mods) if is_batch_norm(m))


class FoldedGenerator(nn.Module):
    """G (a `DCGANGenerator`, see `foldable`) with its batch norms folded, for sampling only (eval mode, no grads)."""

    def __init__(self, G: DCGANGenerator):
        super().__init__()
        if not foldable(G):
            raise ValueError(f"{type(G).__name__} cannot be folded")
        self.z_dim, self.image_size, self.channels = G.z_dim, G.image_size, G.channels
        self.num_classes, self.width, self.base = G.num_classes, G.width, G.base
        self.embed = copy.deepcopy(G.embed)
        class_norms = copy.deepcopy(G.class_norms)
        self.first_norm = class_norms[0] if class_norms is not None else None  # after the dense layer's batch norm
        norms_after = iter(class_norms[1:]) if class_norms is not None else None
        w, hw = G.width, G.base * G.base
        scale, shift = _scale_shift(G.fc_norm)
        weight = G.fc.weight.double().view(w, hw, -1) * scale.view(w, 1, 1)  # rows (channel, position)
        self.fc = nn.utils.skip_init(nn.Linear, G.fc.in_features, G.fc.out_features,  # no draw from the global RNG
                                     device=G.fc.weight.device, dtype=G.fc.weight.dtype)
        with torch.no_grad():
            self.fc.weight.copy_(weight.transpose(0, 1).reshape(hw * w, -1))  # rows (position, channel)
            self.fc.bias.copy_(shift.repeat(hw))
        mods, layers, i = list(G.net), [], 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, FOLDABLE) and i + 1 < len(mods) and is_batch_norm(mods[i + 1]):
                layers.append(_fold_conv(m, mods[i + 1]))
                if norms_after is not None:
                    layers.append(next(norms_after))  # G's per-class modulation of that batch norm's output
                i += 2
                continue
            if isinstance(m, nn.ConvTranspose2d) and m.out_channels <= GEMM_MAX_CHANNELS and supports_gemm(m):
                layers.append(GemmConvTranspose2d(m))
            elif isinstance(m, nn.LeakyReLU):
                layers.append(nn.LeakyReLU(m.negative_slope, inplace=True))
            else:
                layers.append(copy.deepcopy(m))
            i += 1
        self.net = nn.Sequential(*layers)
        self.eval().requires_grad_(False)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z, w = condition(self.embed, self.num_classes, z, y)
        h = self.fc(z).view(-1, self.base, self.base, self.width).permute(0, 3, 1, 2)  # channels-last (B, W, b, b)
        if self.first_norm is None:
            return self.net(F.leaky_relu_(h, 0.2))  # (B, C, H, W)
        h = F.leaky_relu_(self.first_norm(h, w), 0.2)
        for layer in self.net:
            h = layer(h, w) if isinstance(layer, ClassModulation) else layer(h)
        return h  # (B, C, H, W)
