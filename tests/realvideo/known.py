"""A 12x12, 3-frame video whose flow is known (every pair moves 1 px right), shared by the
real-video tests: an object moving with the flow, and the pixels a model labels wrongly."""

from __future__ import annotations

import numpy as np

from stabbench.flow.dis import PairFlow

H, W, N = 12, 12, 3  # DIS needs 12x12 (the flow here is a stand-in, the size check is not)
#: Pixels (row, column) of frame 1 that the model labels wrongly (it is right everywhere else).
FLIPS = [(2, 4), (5, 8), (0, 1), (7, 5)]


class KnownFlow:
    """A stand-in for the flow cache: every pair moves 1 px right, backward 1 px left (no motion boundary)."""

    def get_or_compute(self, frame_t, frame_t1, params):
        fw = np.zeros((H, W, 2), np.float32)
        fw[..., 0] = 1.0
        valid = np.ones((H, W), bool)
        valid[:, -1] = False  # the last column leaves the frame
        return PairFlow(fw, valid, -fw, np.roll(valid, 1, axis=1))


def object_mask(t: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[:, 3 + t : 7 + t] = 1  # columns 3..6 at t = 0, moving 1 px right per frame
    return mask
