"""Dense optical flow with OpenCV's DIS (Dense Inverse Search), both directions + validity.

DIS (Kroeger et al., ECCV 2016) is an inverse-compositional Lucas-Kanade patch method with
a coarse-to-fine pyramid and variational refinement: a weight-free stand-in for the
iterative Lucas-Kanade-style flow the Coherent Loss paper used (method notes, section 4,
"Correspondences"). It runs on grayscale ``uint8`` images; colour frames are converted with
``cv2.COLOR_RGB2GRAY``.

Determinism: for fixed input, preset and OpenCV version the flow is bitwise identical from
run to run, whether the DIS object is fresh or reused (one is kept per preset and thread),
and (measured with OpenCV 5.0.0 on 854x480 frames) for 1, 2, 4 and 8 OpenCV threads. The flow cache keys on the OpenCV version for that reason (see
:mod:`stabbench.flow.cache`).

Working resolution (``FlowParams.max_side``): when set and the frames' long side exceeds it,
the flow is computed on frames downscaled (``cv2.INTER_AREA``) so the long side is at most
``max_side`` (the short side is kept at >= 16 px), then upsampled bilinearly to the frames'
size and its vectors multiplied by the per-axis scale (``W / w`` for ``dx``, ``H / h`` for
``dy``). ``cv2.resize`` maps pixel centres to pixel centres, so this is exact for the
convention of :mod:`perturbations.geometry`. Halving the resolution costs about 4x less
time; fine detail and motions under a pixel at the working resolution are lost (see
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np

from stabbench.flow.consistency import valid_mask

#: DIS presets by name (OpenCV's constants). Speed/quality trade-off, fastest first.
PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

#: DIS refuses images smaller than this (OpenCV 5.0: "width or height >= 12").
MIN_SIDE = 12
#: The working resolution never shrinks the short side below this.
_MIN_WORKING_SIDE = 16


@dataclass(frozen=True)
class FlowParams:
    """Settings of :func:`bidirectional_flow` (all of them key the flow cache).

    Attributes:
        preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``.
        alpha, beta_fb: forward-backward check ``|f + b~|^2 < alpha (|f|^2 + |b~|^2) + beta_fb``
            (Sundaram et al. 2010: 0.01 and 0.5 px^2).
        max_side: ``None`` (full resolution) or the working resolution: the flow is computed
            on frames downscaled so their long side is at most ``max_side`` and scaled back.
    """

    preset: str = "medium"
    alpha: float = 0.01
    beta_fb: float = 0.5
    max_side: int | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if not (np.isfinite(self.alpha) and self.alpha >= 0 and np.isfinite(self.beta_fb) and self.beta_fb >= 0):
            raise ValueError(f"alpha and beta_fb must be finite and >= 0, got {self.alpha}, {self.beta_fb}")
        if self.max_side is not None and (int(self.max_side) != self.max_side or self.max_side < _MIN_WORKING_SIDE):
            raise ValueError(f"max_side must be None or an integer >= {_MIN_WORKING_SIDE}, got {self.max_side!r}")
        # canonical types, so equal settings always give the same cache key
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "beta_fb", float(self.beta_fb))
        if self.max_side is not None:
            object.__setattr__(self, "max_side", int(self.max_side))

    def to_dict(self) -> dict:
        return asdict(self)

    def canonical_json(self) -> str:
        """Sorted-key, no-whitespace JSON of every field (the cache key's parameter part)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


class PairFlow(NamedTuple):
    """Flows of a pair ``(t, t+1)`` in both directions and where each can be trusted.

    Attributes:
        flow_fw: ``(H, W, 2)`` float32, frame ``t`` -> ``t+1``.
        valid_fw: ``(H, W)`` bool over frame ``t``: forward-backward consistent and in frame.
        flow_bw: ``(H, W, 2)`` float32, frame ``t+1`` -> ``t``.
        valid_bw: ``(H, W)`` bool over frame ``t+1`` (the same check, roles swapped).
    """

    flow_fw: np.ndarray
    valid_fw: np.ndarray
    flow_bw: np.ndarray
    valid_bw: np.ndarray


def to_gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB or ``(H, W)`` gray ``uint8`` -> contiguous ``(H, W)`` ``uint8``."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    raise ValueError(f"frames must be (H, W, 3) RGB or (H, W) gray, got shape {frame.shape}")


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """``(h, w)`` the flow is computed at for ``(height, width)`` frames (see module doc)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    scale = max(scale, min(1.0, _MIN_WORKING_SIDE / min(height, width)))
    return max(1, round(height * scale)), max(1, round(width * scale))


class _Instances(threading.local):
    """One DIS object per preset, frame size and thread: reusing one keeps its pyramid buffers
    (about 20 % faster at 854x480 than a fresh object per call); an object is not thread-safe.
    Never shared between sizes: OpenCV's DIS keeps state from the sizes it has seen (after a
    small frame, say 24x24, its flow of a larger frame differs from a fresh object's), so a
    flow would depend on what was computed before it. The last few sizes are kept."""

    def __init__(self):
        self.objects: OrderedDict[tuple[str, int, int], cv2.DISOpticalFlow] = OrderedDict()


_INSTANCES = _Instances()
#: DIS objects kept per thread (distinct preset x size).
_MAX_INSTANCES = 4


def _dis(preset: str, height: int, width: int) -> cv2.DISOpticalFlow:
    key = (preset, height, width)
    objects = _INSTANCES.objects
    dis = objects.get(key)
    if dis is None:
        dis = objects[key] = cv2.DISOpticalFlow_create(PRESETS[preset])
        while len(objects) > _MAX_INSTANCES:
            objects.popitem(last=False)
    else:
        objects.move_to_end(key)
    return dis


def _flow_gray(gray_a: np.ndarray, gray_b: np.ndarray, params: FlowParams) -> np.ndarray:
    height, width = gray_a.shape
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE} px for DIS, got {width}x{height}")
    h, w = working_size(height, width, params.max_side)
    if (h, w) == (height, width):
        return _dis(params.preset, h, w).calc(gray_a, gray_b, None)
    small_a = cv2.resize(gray_a, (w, h), interpolation=cv2.INTER_AREA)
    small_b = cv2.resize(gray_b, (w, h), interpolation=cv2.INTER_AREA)
    small = _dis(params.preset, h, w).calc(small_a, small_b, None)
    flow = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= np.float32(width / w)
    flow[..., 1] *= np.float32(height / h)
    return flow


def _pair_gray(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gray_a, gray_b = to_gray(frame_a), to_gray(frame_b)
    if gray_a.shape != gray_b.shape:
        raise ValueError(f"frames differ in size: {gray_a.shape} and {gray_b.shape}")
    return gray_a, gray_b


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, params: FlowParams = FlowParams()) -> np.ndarray:
    """DIS flow from ``frame_a`` to ``frame_b``: ``(H, W, 2)`` float32 (``[..., 0] = dx``).

    Frames are ``(H, W, 3)`` RGB (or ``(H, W)`` gray) ``uint8`` of the same size, at least
    12x12 px. The content at pixel ``x`` of ``frame_a`` is at ``x + flow[y, x]`` in ``frame_b``.
    """
    return _flow_gray(*_pair_gray(frame_a, frame_b), params)


def validity(flow_fw: np.ndarray, flow_bw: np.ndarray, params: FlowParams = FlowParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(valid_fw, valid_bw)``: forward-backward consistent and in-frame masks of both frames."""
    return (valid_mask(flow_fw, flow_bw, params.alpha, params.beta_fb),
            valid_mask(flow_bw, flow_fw, params.alpha, params.beta_fb))


def bidirectional_flow(frame_t: np.ndarray, frame_t1: np.ndarray, params: FlowParams = FlowParams()) -> PairFlow:
    """Forward and backward DIS flow of the pair ``(t, t+1)`` and both validity masks.

    ``valid_fw`` marks pixels of frame ``t`` that pass the forward-backward check and whose
    target is inside frame ``t+1``; ``valid_bw`` the same for frame ``t+1`` with the roles
    swapped. Not cached: use :class:`stabbench.flow.FlowCache` to compute a pair only once.
    """
    gray_t, gray_t1 = _pair_gray(frame_t, frame_t1)
    flow_fw = _flow_gray(gray_t, gray_t1, params)
    flow_bw = _flow_gray(gray_t1, gray_t, params)
    valid_fw, valid_bw = validity(flow_fw, flow_bw, params)
    return PairFlow(flow_fw, valid_fw, flow_bw, valid_bw)
