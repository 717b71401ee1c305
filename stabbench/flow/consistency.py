"""Forward-backward consistency (Sundaram, Brox & Keutzer, ECCV 2010) and the in-frame mask.

Convention: :mod:`perturbations.geometry` -- ``(x, y)`` order, integer coordinates are pixel
centres, a flow is ``(H, W, 2)`` float32 with ``[..., 0] = dx``; the content at pixel ``x``
of frame ``t`` is at ``x + f(x)`` in frame ``t+1``. A backward flow ``b`` is the same for
the pair read the other way (frame ``t+1`` -> frame ``t``).

Forward-backward check: following ``x`` forward then back should return near ``x``. With
``b~(x) = b(x + f(x))`` (``b`` sampled bilinearly at the non-integer point ``x + f(x)``),
pixel ``x`` is *consistent* when::

    |f(x) + b~(x)|^2  <  alpha * (|f(x)|^2 + |b~(x)|^2) + beta

(``alpha = 0.01``, ``beta = 0.5`` in the paper: the tolerance grows with the motion, since
flow errors do too). Pixels whose target ``x + f(x)`` leaves the frame have no
correspondence; :func:`in_frame` masks them. :func:`fb_consistency` is the check alone (for
such targets it reads ``b`` from the replicated border): a pixel is *valid* when both hold,
``fb_consistency(f, b, ...) & in_frame(f)``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import cv2
import numpy as np


def _check_flow(flow: np.ndarray, name: str) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{name} must be (H, W, 2), got shape {flow.shape}")
    return np.ascontiguousarray(flow, dtype=np.float32)


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel-centre coordinates ``(x, y)`` (read-only, cached)."""
    grid = np.empty((height, width, 2), np.float32)
    grid[..., 0] = np.arange(width, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def targets(flow: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` float32 target points ``x + f(x)`` (a ``cv2.remap`` map)."""
    flow = _check_flow(flow, "flow")
    return flow + _grid(*flow.shape[:2])


def target_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(map_x, map_y)``: the ``(H, W)`` float32 coordinates of ``x + f(x)``."""
    tg = targets(flow)
    return np.ascontiguousarray(tg[..., 0]), np.ascontiguousarray(tg[..., 1])


def _inside(tg: np.ndarray) -> np.ndarray:
    height, width = tg.shape[:2]
    return np.greater(cv2.inRange(tg, (0.0, 0.0), (width - 1.0, height - 1.0)), 0)


def in_frame(flow: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: ``x + f(x)`` lies inside ``[0, W-1] x [0, H-1]`` (NaN: False)."""
    return _inside(targets(flow))


class _Workspace(threading.local):
    """Scratch buffers of the check, reused per thread for one frame size (fresh multi-MB
    arrays cost page faults: about a third of the check's time at 854x480)."""

    shape: tuple[int, int] | None = None

    def get(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.shape != (height, width):
            self.tg = np.empty((height, width, 2), np.float32)
            self.b = np.empty((height, width, 2), np.float32)
            self.lhs = np.empty((height, width), np.float32)
            self.rhs = np.empty((height, width), np.float32)
            self.shape = (height, width)
        return self.tg, self.b, self.lhs, self.rhs


_WORKSPACE = _Workspace()


def _remap(field: np.ndarray, tg: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return cv2.remap(np.ascontiguousarray(field, dtype=np.float32), tg, None, cv2.INTER_LINEAR, dst=out,
                     borderMode=cv2.BORDER_REPLICATE)


def sample_at_targets(field: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``field(x + f(x))``: ``field`` (``(H, W, C)`` float32) sampled bilinearly at the targets.

    ``cv2.remap`` with float maps interpolates with 1/32-pixel weights (``INTER_TAB_SIZE``);
    targets outside the frame read the replicated border (callers mask them).
    """
    return _remap(field, targets(flow))


def _targets_into(fw: np.ndarray, tg: np.ndarray) -> np.ndarray:
    return np.add(fw, _grid(*fw.shape[:2]), out=tg)


def _consistent(fw: np.ndarray, bw: np.ndarray, tg: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The check, given the targets ``tg`` of ``fw`` (``tg`` is overwritten)."""
    _, b, lhs, rhs = _WORKSPACE.get(*fw.shape[:2])
    _remap(bw, tg, out=b)
    e = np.add(fw, b, out=tg)
    e *= e
    np.add(e[..., 0], e[..., 1], out=lhs)  # |f + b~|^2
    b *= b
    b += np.multiply(fw, fw, out=tg)
    np.add(b[..., 0], b[..., 1], out=rhs)
    rhs *= np.float32(alpha)
    rhs += np.float32(beta)  # alpha (|f|^2 + |b~|^2) + beta
    return np.less(lhs, rhs)


def fb_consistency(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """``(H, W)`` bool: pixels of the forward flow's frame that pass the forward-backward check.

    Args:
        flow_fw: ``(H, W, 2)`` flow of frame ``t`` -> ``t+1``.
        flow_bw: ``(H, W, 2)`` flow of frame ``t+1`` -> ``t`` (same size).
        alpha, beta: see the module docstring (``beta`` in squared pixels).

    The check alone: combine with :func:`in_frame` (targets outside the frame read ``b`` at
    the replicated border). Non-finite flows give False. For the check of frame ``t+1``
    swap the arguments.
    """
    fw, bw = _pair(flow_fw, flow_bw)
    tg = _targets_into(fw, _WORKSPACE.get(*fw.shape[:2])[0])
    return _consistent(fw, bw, tg, alpha, beta)


def valid_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """``fb_consistency(flow_fw, flow_bw, alpha, beta) & in_frame(flow_fw)``, sharing the work."""
    fw, bw = _pair(flow_fw, flow_bw)
    tg = _targets_into(fw, _WORKSPACE.get(*fw.shape[:2])[0])
    inside = _inside(tg)
    return np.logical_and(_consistent(fw, bw, tg, alpha, beta), inside, out=inside)


def _pair(flow_fw: np.ndarray, flow_bw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fw = _check_flow(flow_fw, "flow_fw")
    bw = _check_flow(flow_bw, "flow_bw")
    if fw.shape != bw.shape:
        raise ValueError(f"flow_fw {fw.shape} and flow_bw {bw.shape} differ in size")
    return fw, bw
