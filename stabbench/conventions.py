"""Conventions shared by every layer: the one home of each constant.

=================  =====  ==================================================================
name               value  meaning
=================  =====  ==================================================================
``IGNORE_LABEL``   255    label of "no ground truth" pixels (datasets, metrics, losses)
``BAND_WIDTH``     15     width (px, odd) of the band around ground-truth edges: the band
                          of S_boundary and of the boundary coherency loss L_bc (the
                          paper's setting, method.md)
=================  =====  ==================================================================
"""

IGNORE_LABEL = 255
BAND_WIDTH = 15

__all__ = ["IGNORE_LABEL", "BAND_WIDTH"]
