"""The table of image GAN architectures: name -> its generator and discriminator classes and its defaults.

Each architecture registers itself beside its classes (see `dcgan`); every list of arch names derives from
this table, and an unknown name is a one-line error listing the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ganimate.errors import GanimateError


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: G(z_dim, image_size, channels, num_classes, width, bn_affine=...) and
    D(image_size, channels, num_classes, width, bn_affine=...), and the widths and Adam learning rates a
    run starts from when --g-width / --d-width / --lr-g / --lr-d are not given."""

    name: str
    generator: type[nn.Module]
    discriminator: type[nn.Module]
    g_width: int
    d_width: int
    lr_g: float
    lr_d: float

    def defaults(self) -> dict:
        return {"g_width": self.g_width, "d_width": self.d_width, "lr_g": self.lr_g, "lr_d": self.lr_d}


ARCHITECTURES: dict[str, ArchSpec] = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    if spec.name in ARCHITECTURES:
        raise ValueError(f"arch {spec.name!r} is already registered")
    ARCHITECTURES[spec.name] = spec
    return spec


def get_arch(name: str) -> ArchSpec:
    """The table entry of `name`, or a one-line GanimateError listing the known architectures."""
    spec = ARCHITECTURES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise GanimateError(f"unknown arch {name!r}: choose from {', '.join(ARCHITECTURES)}")
    return spec
