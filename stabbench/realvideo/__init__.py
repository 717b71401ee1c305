"""Stability on real video, measured as a paired comparison with a reference (``stabbench video``).

Real video has no correspondence ground truth: estimated flow stands in, and it fails at
motion boundaries, so a raw real-video S is neither comparable with a synthetic S nor
meaningful alone. What is meaningful is a **paired comparison on identical pixels**: every
model is counted on the same tracked pixels and the same band (the reference's edges), and
the difference to the reference comes with a bootstrap interval.

Modules: :mod:`~stabbench.realvideo.tracks` (correspondences + the motion-boundary
criterion), :mod:`~stabbench.realvideo.run` (predicting and counting),
:mod:`~stabbench.realvideo.compare` (paired differences, bootstrap),
:mod:`~stabbench.realvideo.results` (results.json, CSVs, leaderboard rows).
"""

from stabbench.realvideo.compare import compare_overall, compare_video, paired_differences
from stabbench.realvideo.run import ANNOTATIONS, RealVideoState, Settings, VideoSequence, measure
from stabbench.realvideo.tracks import MotionBoundary, motion_boundary, real_tracks

__all__ = ["ANNOTATIONS", "MotionBoundary", "RealVideoState", "Settings", "VideoSequence", "compare_overall",
           "compare_video", "measure", "motion_boundary", "paired_differences", "real_tracks"]
