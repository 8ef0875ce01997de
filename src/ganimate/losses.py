"""GAN losses on logits: the binary cross-entropy of the DCGAN paper, written with softplus.

softplus(-l) = BCE(sigmoid(l), 1) and softplus(l) = BCE(sigmoid(l), 0), without the
numerical trouble of a sigmoid followed by a log.
"""

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D learns real -> 1, fake -> 0."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: fake -> 1."""
    return F.softplus(-fake_logits).mean()
