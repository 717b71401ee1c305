"""stabbench: a benchmark of the temporal stability of video segmentation models."""

__version__ = "0.1.0"
