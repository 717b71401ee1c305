"""stabbench: a benchmark of the temporal stability of video segmentation models."""

__version__ = "0.2.0"
