"""Synthetic sequences with exactly known flow: planning, writing, reading."""

from stabbench.synth.reader import SyntheticSequence, SyntheticSet, open_set

__all__ = ["SyntheticSequence", "SyntheticSet", "open_set"]
