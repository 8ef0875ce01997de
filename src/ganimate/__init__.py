"""ganimate: train DCGANs on image data and turn what they learn into video."""

__version__ = "0.1.0"
