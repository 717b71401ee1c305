"""Pure metric functions: pair consistency (stability), boundary band, confusion and IoU.

Every function here is stateless and NumPy/OpenCV only; the classes in
:mod:`stabbench.metrics.stability` and :mod:`stabbench.metrics.confusion` keep their
integer counts. Definitions follow ``method.md`` section 3; where it is silent, the choice
made here is stated in the docstring of the function that makes it.

Units: every rate (stability rate, IoU, mIoU) is in **percent**, as the paper reports
them, and ``NaN`` where it is undefined (nothing counted).

Convention (that of :mod:`perturbations.geometry`):
    * Arrays are indexed ``[row y, column x]``; coordinates are ``(x, y)``; integer
      coordinates are pixel **centres**, so pixel ``[i, j]`` is the point ``(j, i)``.
    * A flow of the pair ``(t, t+1)`` is ``(H, W, 2)`` float32 ``(dx, dy)``: the content at
      pixel ``x`` of frame ``t`` is at ``x + f(x)`` in frame ``t+1`` (forward flow).
    * Label maps are ``(H, W)`` integer class ids; ground truth is uint8 with
      ``ignore_label`` (255) meaning "no label".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from stabbench.conventions import BAND_WIDTH, IGNORE_LABEL

#: Version of the metric definitions (docs/metrics.md: tracked pixels with the ground-truth
#: agreement rule, the Euclidean band, per-sequence then per-set averaging). Results measured
#: under different definitions are never compared (``stabbench gate``); bump it on any change.
DEFINITIONS = "1"

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


# ------------------------------------------------------------------------ validation


def _check_label_map(name: str, array: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``array`` as an integer (or bool) ndarray of ``shape``; raises ``ValueError``."""
    array = np.asarray(array)
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if shape is None and array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) label map, got shape {array.shape}")
    return array


def _check_flow(flow: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flow, valid = np.asarray(flow), np.asarray(valid)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    if valid.shape != flow.shape[:2]:
        raise ValueError(f"valid must have shape {flow.shape[:2]} (the flow's H, W), got {valid.shape}")
    if valid.dtype != np.bool_:
        raise ValueError(f"valid must be a bool mask, got dtype {valid.dtype}")
    return flow, valid


def _check_ignore(ignore_label: int) -> int:
    if not 0 <= int(ignore_label) <= 255:
        raise ValueError(f"ignore_label must be in [0, 255], got {ignore_label}")
    return int(ignore_label)


# ------------------------------------------------------------------------ stability


@dataclass(frozen=True)
class PairTracks:
    """Where every pixel of frame ``t`` lands in frame ``t+1``; see :func:`target_indices`.

    Attributes:
        shape: ``(H, W)``.
        coords: ``(H, W, 2)`` int16 ``(x', y')``, the pixel of frame ``t+1`` nearest to
            ``x + f(x)`` (an OpenCV ``CV_16SC2`` map for ``cv2.remap``); meaningful where
            tracked.
        tracked: ``(H, W)`` bool, the tracked pixels of frame ``t``.
    """

    shape: tuple[int, int]
    coords: np.ndarray
    tracked: np.ndarray

    @property
    def num_tracked(self) -> int:
        return int(np.count_nonzero(self.tracked))

    @property
    def target(self) -> np.ndarray:
        """``(H*W,)`` intp flat index ``y' * W + x'`` of each pixel's target; 0 where not tracked."""
        flat = self.coords[..., 1].astype(np.intp) * self.shape[1] + self.coords[..., 0]
        flat[~self.tracked] = 0
        return flat.ravel()


@lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(H, W, 2)`` int16 ``(x, y)`` of every pixel, and uint16 ``(W, H)`` everywhere."""
    grid = np.empty((height, width, 2), np.int16)
    grid[..., 0] = np.arange(width, dtype=np.int16)[None, :]
    grid[..., 1] = np.arange(height, dtype=np.int16)[:, None]
    limits = np.empty((height, width, 2), np.uint16)  # full-size: a contiguous compare is SIMD
    limits[...] = (width, height)
    grid.flags.writeable = limits.flags.writeable = False
    return grid, limits


def target_indices(flow: np.ndarray, valid: np.ndarray) -> PairTracks:
    """The pixel of frame ``t+1`` nearest to ``x + f(x)``, for every pixel ``x`` of frame ``t``.

    Compute it once per pair: it depends on the flow only, and serves every prediction
    (and both S_global and S_boundary) of that pair.

    Convention: ``x' = x + rint(dx)``, ``y' = y + rint(dy)``: the displacement rounded to
    the nearest integer per axis, **ties to even** (IEEE round-half-even, as ``np.rint``,
    ``torch.round`` and OpenCV's ``cvRound``). Since ``x`` is an integer this is the pixel
    nearest to ``x + f(x)``, computed exactly on the float32 flow (no rounding of the sum
    ``x + dx``); only an exact tie (``dx`` with fraction exactly .5, which continuous
    flows essentially never give) needs the even rule.

    A pixel is **tracked** when ``valid`` is True, its flow is finite and its target pixel
    lies inside the frame. With ground-truth flow the validity mask already guarantees the
    last two (``perturbations.VALIDITY_MARGIN``); estimated flow may need them.

    Args:
        flow: ``(H, W, 2)`` float (converted to float32), ``(dx, dy)``, forward flow of
            the pair ``(t, t+1)``; ``H, W <= 32767``.
        valid: ``(H, W)`` bool, pixels of frame ``t`` with a correspondence.

    Returns:
        :class:`PairTracks`.
    """
    flow, valid = _check_flow(flow, valid)
    height, width = valid.shape
    if max(height, width) > 32767:
        raise ValueError(f"image of {height}x{width} pixels is too large (at most 32767 per side)")
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    # rint of the displacement, saturated to int16 (NaN/inf become -32768 on x86, caught
    # below anyway); adding x wraps around in int16, which keeps every out-of-range
    # target out of range: as uint16, [0, W) holds exactly the true targets in [0, W)
    coords, _ = cv2.convertMaps(flow, None, cv2.CV_16SC2, nninterpolation=True)
    grid, limits = _pixel_grid(height, width)
    coords += grid
    # as uint16, negative targets become >= 32768: x' < W and y' < H is one compare
    inside = coords.view(np.uint16) < limits
    tracked = inside.view(np.uint16)[..., 0] == 0x0101  # both axes inside
    tracked &= valid
    if not np.isfinite(cv2.sumElems(flow)[:2]).all():  # NaN/inf make the (float64) sum non-finite
        tracked &= np.isfinite(flow).view(np.uint16)[..., 0] == 0x0101  # (dx, dy) both finite
    return PairTracks((height, width), coords, tracked)


def _remappable(name: str, labels: np.ndarray) -> np.ndarray:
    """``labels`` in a dtype ``cv2.remap`` takes (uint8, uint16, int16), values unchanged."""
    if labels.dtype in (np.uint8, np.uint16, np.int16):
        return labels
    if labels.dtype == np.bool_:
        return labels.view(np.uint8)
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo >= 0 and hi <= 65535:
        return labels.astype(np.uint16)
    if lo >= -32768 and hi <= 32767:
        return labels.astype(np.int16)
    raise ValueError(f"{name} labels must fit in 16 bits, got range [{lo}, {hi}]")


def consistent_pixels(pred_t: np.ndarray, pred_t1: np.ndarray, tracks: PairTracks) -> np.ndarray:
    """``(H, W)`` bool: ``pred_t[x] == pred_t1[x']`` (meaningful where tracked).

    Stability uses predictions only: the ground truth of either frame plays no part here
    (a target on an ignore pixel of frame ``t+1`` counts like any other).

    Args:
        pred_t, pred_t1: ``(H, W)`` integer (or bool) labels; values must fit in 16 bits.
    """
    pred_t = _check_label_map("pred_t", pred_t, tracks.shape)
    pred_t1 = _remappable("pred_t1", _check_label_map("pred_t1", pred_t1, tracks.shape))
    warped = cv2.remap(pred_t1, tracks.coords, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return np.equal(pred_t, warped)


def pair_consistency(
    pred_t: np.ndarray,
    pred_t1: np.ndarray,
    flow: np.ndarray,
    valid: np.ndarray,
    region: np.ndarray | None = None,
) -> tuple[int, int]:
    """Counts of one pair: ``(consistent, tracked)``.

    ``tracked`` = tracked pixels ``x`` of frame ``t`` (see :func:`target_indices`), inside
    ``region`` if given; ``consistent`` = those with ``pred_t[x] == pred_t1[x']``, ``x'``
    the pixel nearest to ``x + f(x)``. The pair's stability rate is
    :func:`stability_rate` of the two.

    Args:
        pred_t, pred_t1: ``(H, W)`` integer predicted labels of frames ``t`` and ``t+1``.
        flow, valid: as :func:`target_indices`.
        region: optional ``(H, W)`` bool restricting the counted pixels of frame ``t``
            (e.g. :func:`boundary_band`).
    """
    tracks = target_indices(flow, valid)
    return region_counts(consistent_pixels(pred_t, pred_t1, tracks), tracks.tracked, region)


def region_counts(consistent: np.ndarray, tracked: np.ndarray, region: np.ndarray | None = None) -> tuple[int, int]:
    """``(count(consistent & tracked & region), count(tracked & region))`` of ``(H, W)`` bool masks."""
    mask = tracked
    if region is not None:
        region = np.asarray(region)
        if region.dtype != np.bool_ or region.shape != tracked.shape:
            raise ValueError(f"region must be a bool mask of shape {tracked.shape}, got {region.dtype} {region.shape}")
        mask = tracked & region
    return int(np.count_nonzero(consistent & mask)), int(np.count_nonzero(mask))


def stability_rate(consistent, tracked):
    """``100 * consistent / tracked`` in percent; ``NaN`` where ``tracked == 0``.

    Works on scalars and arrays (elementwise).
    """
    return _percent(consistent, tracked)


def _percent(numerator, denominator):
    """``100 * numerator / denominator`` as float64; ``NaN`` where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(100.0 * numerator, denominator, out=out, where=denominator > 0)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------------------------ boundary band


def object_edges(mask: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``(H, W)`` bool: the ground-truth object edge, one pixel thick.

    Definition: a pixel is an edge pixel when its label ``a`` is not ignore and one of
    its 4-neighbours has a non-ignore label ``b < a``. So each boundary between two labels
    is marked on exactly one side (the larger label's: for a binary mask, the object's
    inner contour), which makes the band of :func:`boundary_band` exactly ``width`` px
    across a straight edge. A label next to the ignore region or the image border is
    **not** an object edge.

    Args:
        mask: ``(H, W)`` integer labels with values in ``[0, 255]`` (uint8 by convention).
    """
    mask = _check_label_map("mask", mask)
    ignore_label = _check_ignore(ignore_label)
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(f"mask labels must be in [0, 255], got range [{mask.min()}, {mask.max()}]")
        mask = mask.astype(np.uint8)
    lower = mask
    if ignore_label != 255:  # an ignore neighbour must never compare as smaller
        lower = mask.copy()
        lower[mask == ignore_label] = 255
    # erosion by the 4-neighbour cross = min over self and 4-neighbours; the border
    # counts as +max (OpenCV's default for erode), so the image border is never an edge
    edges = cv2.erode(np.ascontiguousarray(lower), _CROSS) < mask
    edges &= mask != ignore_label
    return edges


@lru_cache(maxsize=16)
def _disc(radius: int) -> np.ndarray:
    """``(2r+1, 2r+1)`` uint8 kernel of offsets ``(dx, dy)`` with ``dx^2 + dy^2 <= r^2``."""
    d = np.arange(-radius, radius + 1)
    disc = ((d[None, :] ** 2 + d[:, None] ** 2) <= radius * radius).astype(np.uint8)
    disc.flags.writeable = False
    return disc


def boundary_band(mask: np.ndarray, width: int = BAND_WIDTH, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``(H, W)`` bool: the band of ``width`` px around the ground-truth object edge.

    Definition: the pixels whose **Euclidean** distance (between pixel centres) to the
    nearest pixel of :func:`object_edges` is at most ``r = (width - 1) / 2``, i.e. the edge
    dilated by a digital disc of radius ``r``. Across a straight edge the band is exactly
    ``width`` px: the edge pixel line plus ``r`` px on each side of it (so ``r`` px of the
    smaller label and ``r + 1`` of the larger one, the edge being on the larger side). Euclidean, not
    chessboard, so that the band's thickness does not depend on the edge's orientation (a
    chessboard band is up to sqrt(2) thicker across diagonal edges, which would make
    S_boundary vary with rotation). A mask with no edge (one class, or only ignore) gives
    an empty band. For the pair ``(t, t+1)`` the band is taken on frame ``t``'s mask. The
    band may reach into ignore pixels near an edge: they count like any other pixel, as
    stability compares predictions only (the ground truth only places the band).

    Args:
        mask: ``(H, W)`` integer labels in ``[0, 255]``, ``ignore_label`` = no label.
        width: odd positive integer (the paper's 15).
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1 or width % 2 == 0:
        raise ValueError(f"band width must be an odd positive integer (a band centred on a pixel line), got {width!r}")
    edges = object_edges(mask, ignore_label).view(np.uint8)
    band = np.zeros(edges.shape, dtype=np.uint8)
    x, y, w, h = cv2.boundingRect(edges)  # bbox of the edge pixels; (0,0,0,0) if none
    if w == 0:
        return band.view(np.bool_)
    r = (int(width) - 1) // 2
    x0, y0 = max(0, x - r), max(0, y - r)
    x1, y1 = min(edges.shape[1], x + w + r), min(edges.shape[0], y + h + r)
    # dilation reaches r px, so the crop (edge bbox grown by r) loses nothing;
    # OpenCV's dilate treats outside pixels as 0 (no edge)
    band[y0:y1, x0:x1] = cv2.dilate(edges[y0:y1, x0:x1], _disc(r))
    return band.view(np.bool_)


# ------------------------------------------------------------------------ per-pair bundle


@dataclass(frozen=True)
class PairGeometry:
    """Everything of a pair ``(t, t+1)`` that does not depend on the predictions.

    Build it once per pair with :func:`pair_geometry` and reuse it for every model.

    Attributes:
        tracks: :func:`target_indices` of the pair's flow.
        band: ``(H, W)`` bool :func:`boundary_band` of frame ``t``'s ground truth.
        band_tracked: ``(H, W)`` bool, ``tracks.tracked & band``.
        band_width, ignore_label: the settings the band was made with.
        band_tracked_no_gt_rule: ``(H, W)`` bool, the band's tracked pixels *before* the
            ground-truth agreement rule (a diagnostic: S_boundary without the rule);
            ``None`` when no rule was applied (it then equals ``band_tracked``).
    """

    tracks: PairTracks
    band: np.ndarray
    band_tracked: np.ndarray
    band_width: int = BAND_WIDTH
    ignore_label: int = IGNORE_LABEL
    band_tracked_no_gt_rule: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.tracks.shape

    @cached_property
    def num_tracked(self) -> int:
        return self.tracks.num_tracked

    @cached_property
    def num_band_tracked(self) -> int:
        return int(np.count_nonzero(self.band_tracked))

    @property
    def band_before_gt_rule(self) -> np.ndarray:
        """``(H, W)`` bool: the band's tracked pixels without the ground-truth agreement rule."""
        return self.band_tracked if self.band_tracked_no_gt_rule is None else self.band_tracked_no_gt_rule

    @cached_property
    def num_band_tracked_no_gt_rule(self) -> int:
        return int(np.count_nonzero(self.band_before_gt_rule))


def pair_geometry(
    flow: np.ndarray,
    valid: np.ndarray,
    gt_t: np.ndarray,
    width: int = BAND_WIDTH,
    ignore_label: int = IGNORE_LABEL,
    gt_t1: np.ndarray | None = None,
) -> PairGeometry:
    """:class:`PairGeometry` of a pair from its flow, validity and frame ``t``'s ground truth.

    With ``gt_t1`` (frame ``t+1``'s ground truth), pixels whose ground-truth label is not
    preserved by the correspondence (``gt_t[x] != gt_t1[x']``) are not tracked: under
    sub-pixel motion the nearest-neighbour masks of the two frames disagree on a line of
    about one pixel along the edges (the true boundary passes between pixel centres), where
    no prediction can be both correct and stable; without this rule even the ground truth
    scores S < 100. The stabbench runner always passes ``gt_t1`` (see docs/metrics.md).

    The band's tracked pixels before the rule are kept as a diagnostic
    (``band_tracked_no_gt_rule``): S_boundary without the rule, and the share of band pixels
    the rule removed, are reported beside S_boundary (they change nothing in it).
    """
    tracks = target_indices(flow, valid)
    gt_t = _check_label_map("gt_t", gt_t, tracks.shape)
    band = boundary_band(gt_t, width, ignore_label)
    band_no_rule = None
    if gt_t1 is not None:
        gt_t1 = _check_label_map("gt_t1", gt_t1, tracks.shape)
        band_no_rule = tracks.tracked & band
        agree = consistent_pixels(gt_t, gt_t1, tracks)
        tracks = PairTracks(tracks.shape, tracks.coords, tracks.tracked & agree)
    return PairGeometry(tracks, band, tracks.tracked & band, int(width), int(ignore_label), band_no_rule)


def pair_counts(pred_t: np.ndarray, pred_t1: np.ndarray, geometry: PairGeometry) -> tuple[int, int, int, int, int, int]:
    """``(consistent, tracked, boundary_consistent, boundary_tracked, boundary_consistent_no_gt_rule,
    boundary_tracked_no_gt_rule)`` of one pair.

    Global counts over all tracked pixels, boundary counts over tracked pixels in the band;
    the last two count the band before the ground-truth agreement rule (a diagnostic; equal
    to the boundary counts when the geometry was built without ``gt_t1``).
    """
    consistent = consistent_pixels(pred_t, pred_t1, geometry.tracks)
    boundary_consistent = np.count_nonzero(consistent & geometry.band_tracked)
    if geometry.band_tracked_no_gt_rule is None:
        boundary_consistent_no_rule = boundary_consistent
    else:
        boundary_consistent_no_rule = np.count_nonzero(consistent & geometry.band_tracked_no_gt_rule)
    consistent &= geometry.tracks.tracked
    return (
        int(np.count_nonzero(consistent)),
        geometry.num_tracked,
        int(boundary_consistent),
        geometry.num_band_tracked,
        int(boundary_consistent_no_rule),
        geometry.num_band_tracked_no_gt_rule,
    )


# ------------------------------------------------------------------------ confusion / IoU


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL
) -> np.ndarray:
    """``(C, C)`` int64 pixel counts; row = ground-truth class, column = predicted class.

    Pixels whose ``target`` is ``ignore_label`` are left out. Any other ``target`` value,
    and any ``pred`` value (ignore pixels included), outside ``[0, C)`` raises
    ``ValueError`` naming it: a prediction must be a class id.

    Args:
        pred, target: integer arrays of the same shape (any, usually ``(H, W)``).
        num_classes: ``C`` in ``[1, 255]``; ``ignore_label`` must not be in ``[0, C)``.
    """
    p, g, num_classes, ignore_label = _check_confusion_args(pred, target, num_classes, ignore_label)
    keep = g != ignore_label
    if num_classes == 2:  # binary (DAVIS, VHS): a few counts instead of a histogram
        cm = _binary_confusion(p, g, keep)
    elif p.size < 1 << 24:  # calcHist counts in float32: exact below 2**24 per bin
        ranges = [0, num_classes] * 2
        cm = cv2.calcHist(
            [g.reshape(-1, 1), p.reshape(-1, 1)], [0, 1], keep.reshape(-1, 1).view(np.uint8), [num_classes] * 2, ranges
        )
        cm = cm.astype(np.int64)
    else:
        idx = g[keep].astype(np.intp) * num_classes + p[keep]
        cm = np.bincount(idx[idx < num_classes**2], minlength=num_classes**2).reshape(num_classes, -1)
    if cm.sum() != np.count_nonzero(keep):  # some non-ignore target outside [0, C) was left out
        bad = g[(g >= num_classes) & keep].flat[0]
        raise ValueError(f"target label {int(bad)} outside [0, {num_classes}) and not ignore ({ignore_label})")
    return cm


def _check_confusion_args(pred, target, num_classes, ignore_label) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Validated ``(pred, target)`` as contiguous uint8, ``num_classes``, ``ignore_label``."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    _check_label_map("pred", pred, pred.shape)
    _check_label_map("target", target, target.shape)
    ignore_label = _check_ignore(ignore_label)
    if isinstance(num_classes, bool) or not 1 <= int(num_classes) <= 255:
        raise ValueError(f"num_classes must be in [1, 255], got {num_classes!r}")
    num_classes = int(num_classes)
    if ignore_label < num_classes:
        raise ValueError(f"ignore_label {ignore_label} is a class id (num_classes={num_classes})")
    if pred.size:
        lo, hi = pred.min(), pred.max()
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"prediction label {int(lo if lo < 0 else hi)} outside [0, {num_classes}) (num_classes={num_classes})"
            )
    if target.size and target.dtype != np.uint8:
        lo, hi = target.min(), target.max()
        if lo < 0 or hi > 255:
            raise ValueError(
                f"target label {int(lo if lo < 0 else hi)} outside [0, {num_classes}) and not ignore ({ignore_label})"
            )
    return np.ascontiguousarray(pred, np.uint8), np.ascontiguousarray(target, np.uint8), num_classes, ignore_label


def _binary_confusion(pred: np.ndarray, target: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``(2, 2)`` confusion of 0/1 uint8 ``pred`` over the ``keep`` pixels (``target`` in {0, 1} there)."""
    gt1 = target == 1
    n1, n0 = np.count_nonzero(gt1), np.count_nonzero(target == 0)
    pred1 = pred.view(np.bool_)  # values checked: 0 or 1
    tp = np.count_nonzero(gt1 & pred1)
    fp = np.count_nonzero(keep & pred1) - tp
    return np.array([[n0 - fp, fp], [n1 - tp, tp]], np.int64)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """``(C,)`` float64 IoU per class, percent: ``TP / (TP + FP + FN)``.

    ``NaN`` for a class absent from both ground truth and prediction (``0 / 0``).
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return _percent(tp, union)


def mean_iou(cm: np.ndarray) -> float:
    """Mean of :func:`iou_from_confusion` over classes that are not ``NaN`` (percent); ``NaN`` if none."""
    iou = iou_from_confusion(cm)
    iou = iou[~np.isnan(iou)]
    return float(iou.mean()) if iou.size else float("nan")
