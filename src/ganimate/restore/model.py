"""The restoration GAN in the DCGAN style of the seed paper: an encoder-decoder generator and a
discriminator of the paper's blocks that judges (degraded, image) pairs, as in pix2pix (Isola et al. 2017).

G: degraded image (B, C, H, W) in [-1, 1], at full size -> restored image in [-1, 1]. Encoder: a 3x3
convolution, then two 5x5 stride-2 convolutions (H -> H/2 -> H/4), batch norm then LeakyReLU (the
order of `ganimate.models.dcgan`), a 3x3 convolution at H/4; decoder: two 5x5 stride-2
Conv2DTranspose layers with batch norm and LeakyReLU, each followed by a skip connection from the
encoder map of the same size, and a 3x3 convolution to a tanh image.

D: the paper's discriminator (`ganimate.models.dcgan.Discriminator`, 3x3 convolution -> 2x2 average
pooling -> batch norm -> LeakyReLU, three times, dropout 0.4, one dense logit) on the degraded input
and the clean or restored image stacked as channels, so it judges whether an image fits its input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ganimate.models.dcgan import Discriminator, init_weights


def _block(conv: nn.Module, cout: int, bn_affine: bool) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(cout, affine=bn_affine), nn.LeakyReLU(0.2))


class RestoreGenerator(nn.Module):
    """Degraded (B, C, H, W) -> restored (B, C, H, W), both in [-1, 1]; H divisible by 4."""

    def __init__(self, channels: int = 1, width: int = 32, bn_affine: bool = True):
        super().__init__()
        self.channels, w = channels, width
        self.enc1 = nn.Sequential(nn.Conv2d(channels, w, 3, 1, 1), nn.LeakyReLU(0.2))  # no BN on the input layer
        self.enc2 = _block(nn.Conv2d(w, 2 * w, 5, 2, 2, bias=False), 2 * w, bn_affine)
        self.enc3 = _block(nn.Conv2d(2 * w, 4 * w, 5, 2, 2, bias=False), 4 * w, bn_affine)
        self.mid = _block(nn.Conv2d(4 * w, 4 * w, 3, 1, 1, bias=False), 4 * w, bn_affine)
        self.up1 = _block(nn.ConvTranspose2d(4 * w, 2 * w, 5, 2, 2, output_padding=1, bias=False), 2 * w, bn_affine)
        self.up2 = _block(nn.ConvTranspose2d(4 * w, w, 5, 2, 2, output_padding=1, bias=False), w, bn_affine)
        self.out = nn.Sequential(nn.Conv2d(2 * w, channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)  # (B, w, H, W)
        e2 = self.enc2(e1)  # (B, 2w, H/2, W/2)
        h = self.mid(self.enc3(e2))  # (B, 4w, H/4, W/4)
        h = torch.cat([self.up1(h), e2], 1)  # (B, 4w, H/2, W/2)
        h = torch.cat([self.up2(h), e1], 1)  # (B, 2w, H, W)
        return self.out(h)  # (B, C, H, W)


class PairDiscriminator(nn.Module):
    """(degraded, image) pairs (B, C, H, W) each -> real/fake logit (B,)."""

    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 32, bn_affine: bool = True):
        super().__init__()
        self.net = Discriminator("paper", image_size, 2 * channels, 0, width, bn_affine=bn_affine)

    def forward(self, degraded: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([degraded, image], 1))  # (B,)


def build_restore_models(cfg) -> tuple[RestoreGenerator, PairDiscriminator]:
    """(G, D) from a RestoreTrainConfig, DCGAN-initialised."""
    G = RestoreGenerator(cfg.channels, cfg.g_width, cfg.bn_affine)
    D = PairDiscriminator(cfg.image_size, cfg.channels, cfg.d_width, cfg.bn_affine)
    init_weights(G)
    init_weights(D)
    return G, D
