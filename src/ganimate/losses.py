"""GAN losses on logits: the binary cross-entropy of the DCGAN paper ("bce"), written with softplus, and the
hinge loss (Lim & Ye 2017, "Geometric GAN"; "hinge"); and the reconstruction error of the conditional
models (L1 or squared).

softplus(-l) = BCE(sigmoid(l), 1) and softplus(l) = BCE(sigmoid(l), 0), without the
numerical trouble of a sigmoid followed by a log.
"""


import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge")


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """D learns real -> 1, fake -> 0 (hinge: real logits above 1, fake ones below -1)."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Non-saturating G loss: fake -> 1 (hinge: raise the fake logits)."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def reconstruction(diff: torch.Tensor, kind: str = "l1", dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """The mean absolute ("l1") or squared ("l2") value of the differences `diff`, over dims (default all)."""
    e = diff.abs() if kind == "l1" else diff.pow(2)
    return e.mean() if dims is None else e.mean(dims)


def mode_seeking(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The mode-seeking term of Mao et al. 2019 ("MSGAN"), to be minimised by G: the images of the first and the
    second half of the batch form pairs (i, i + B/2) drawn for the same class; the term is 1 / (the pairs' mean
    absolute image difference / their mean absolute latent difference), so G pays for mapping distant latents to
    look-alike images."""
    half = len(fake) // 2
    images = (fake[:half].float() - fake[half : 2 * half].float()).abs().mean()
    latents = (z[:half].float() - z[half : 2 * half].float()).abs().mean()
    return 1.0 / (images / latents + eps)
