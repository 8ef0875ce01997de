"""Model zoo: generators and discriminators, rebuilt from a config alone."""

from ganimate.models.dcgan import ARCHS, Discriminator, Generator, build_models, count_params

__all__ = ["ARCHS", "Discriminator", "Generator", "build_models", "count_params"]
