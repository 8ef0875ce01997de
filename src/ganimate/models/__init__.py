"""Model zoo: generators and discriminators, rebuilt from a config alone."""

from ganimate.errors import GanimateError
from ganimate.models.dcgan import ARCHS, Discriminator, Generator, build_models, count_params

# What each architecture starts from when --g-width / --d-width / --lr-g / --lr-d are not given. The fast
# preset's learning rate is measured in bench/RESULTS.md; paper and tutorial keep DCGAN's 2e-4.
ARCH_DEFAULTS = {
    "fast": {"g_width": 192, "d_width": 32, "lr_g": 6e-4, "lr_d": 6e-4},
    "paper": {"g_width": 256, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4},
    "tutorial": {"g_width": 256, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4},
}


def check_arch(name: str) -> None:
    if name not in ARCHS:
        raise GanimateError(f"unknown arch {name!r}: choose from {', '.join(ARCHS)}")


def arch_defaults(name: str) -> dict:
    return dict(ARCH_DEFAULTS[name])


__all__ = ["ARCHS", "Discriminator", "Generator", "arch_defaults", "build_models", "check_arch", "count_params"]
