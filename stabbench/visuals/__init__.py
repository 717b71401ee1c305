"""Seeing the flicker: overlay clips, source-space flicker heatmaps, worst-N selection (``stabbench show``).

Pure functions on arrays, so any caller (a synthetic result, a real-video comparison) can reuse them:

* :func:`sequence_flicker`: the metric's inconsistent pixels of every pair, and the band
  (:func:`pair_flicker`: one pair's, for any tracked pixels, e.g. a real video's);
* :func:`render_clip`: frames with the predicted outline, flicker pixels red, the band shaded;
* :func:`source_flicker_rate` / :func:`draw_heatmap`: inconsistent pixels mapped back to the
  source image through each frame's affine, as a rate per source pixel, with a colour bar;
* :func:`write_gif` / :func:`write_mp4` / :func:`side_by_side`: the clip files;
* :func:`worst_sequences`: the N sequences of a result with the lowest S_boundary.
"""

from stabbench.visuals.clips import side_by_side, write_gif, write_mp4
from stabbench.visuals.flicker import SequenceFlicker, pair_flicker, sequence_flicker
from stabbench.visuals.heatmap import draw_heatmap, source_flicker_rate
from stabbench.visuals.overlay import draw_overlay, render_clip
from stabbench.visuals.select import worst_sequences

__all__ = [
    "SequenceFlicker",
    "draw_heatmap",
    "draw_overlay",
    "pair_flicker",
    "render_clip",
    "sequence_flicker",
    "side_by_side",
    "source_flicker_rate",
    "worst_sequences",
    "write_gif",
    "write_mp4",
]
