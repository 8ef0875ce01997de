"""Model zoo: generators and discriminators, rebuilt from a config alone.

`registry.ARCHITECTURES` is the table of image GAN architectures (fast, deep, deeper, deepest, paper, tutorial,
registered in `dcgan`).
"""

from ganimate.models.dcgan import Discriminator, Generator, build_models, count_params
from ganimate.models.registry import ARCHITECTURES, ArchSpec, get_arch, register_arch

ARCHS = tuple(ARCHITECTURES)  # as of import; check_arch and build_models ask the table itself


def check_arch(name: str) -> None:
    """A one-line GanimateError unless `name` is a registered architecture."""
    get_arch(name)


def arch_defaults(name: str) -> dict:
    """g_width, d_width, lr_g and lr_d of architecture `name`."""
    return get_arch(name).defaults()


__all__ = ["ARCHITECTURES", "ARCHS", "ArchSpec", "Discriminator", "Generator", "arch_defaults", "build_models",
           "check_arch", "count_params", "get_arch", "register_arch"]
