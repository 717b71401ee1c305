"""Conventions shared by every layer: the one home of each constant.

=================  =====  ==================================================================
name               value  meaning
=================  =====  ==================================================================
``IGNORE_LABEL``   255    label of "no ground truth" pixels (datasets, metrics, losses)
``BAND_WIDTH``     15     width (px, odd) of the band around ground-truth edges: the band
                          of S_boundary and of the boundary coherency loss L_bc (the
                          paper's setting, method.md)
``LIU_WEIGHT``     0.1    weight of Liu et al.'s temporal loss (``finetune --temporal-loss
                          liu``; its public code's Cityscapes ``st_weight``)
``LIU_ALPHA``      4.42   sharpness of its photometric weight, for images in [0, 1]
                          (``1 / 0.226``: the code's 1 on ImageNet-normalised images)
=================  =====  ==================================================================
"""

IGNORE_LABEL = 255
BAND_WIDTH = 15
LIU_WEIGHT = 0.1
LIU_ALPHA = 1.0 / 0.226

__all__ = ["IGNORE_LABEL", "BAND_WIDTH", "LIU_ALPHA", "LIU_WEIGHT"]
