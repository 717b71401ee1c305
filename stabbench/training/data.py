"""Training data: labelled images, unlabeled video pairs with their flow, and the data order.

Every random choice (epoch permutations, pair order, augmentation) comes from one seeded
``numpy.random.Generator`` that the trainer owns and checkpoints, drawn in a fixed order
per step (see :class:`DataOrder`), so a resumed run sees exactly the data an uninterrupted
one would.

Resolution: everything is resized to the training size ``(H, W)`` once: images bilinearly
(as ``stabbench eval`` resizes frames for the exported model), labels by nearest neighbour,
video frames like images. The flow of a
pair is computed on the *resized* frames (so it is in training-resolution pixels) and kept
in a :class:`~stabbench.flow.FlowCache` (one computation per pair, ever).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from stabbench.conventions import IGNORE_LABEL
from stabbench.errors import DataError
from stabbench.flow.dis import PairFlow

#: Decoded training data kept in memory (labelled images, video pairs with flow), bytes.
MEMORY_BUDGET = 2 << 30
#: Range of the random up-scaling before a random crop (``--augment``).
AUG_SCALE = (1.0, 1.5)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3)`` uint8 -> ``(H, W, 3)``, bilinear: the resize ``stabbench eval`` applies to
    the frames of an exported model (``resize: stretch``), so training sees what testing sees."""
    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` uint8 class ids -> ``(H, W)`` by nearest neighbour."""
    height, width = size
    if label.shape == (height, width):
        return np.ascontiguousarray(label)
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)


def _where(source: Any) -> Any:
    return getattr(source, "label_path", None) or getattr(source, "name", None)


class LabeledData:
    """The labelled images at the training size, kept in memory when they fit the budget
    (then all are decoded and checked up front), else decoded on demand."""

    def __init__(self, listing, size: tuple[int, int], *, budget: int = MEMORY_BUDGET,
                 progress: Callable[[int, int], None] | None = None):
        self.listing = listing
        self.sources = list(listing.sources)
        if not self.sources:
            raise DataError(None, f"the labelled dataset {listing.name!r} lists no images")
        self.classes = tuple(listing.classes)
        self.num_classes = len(self.classes)
        self.size = (int(size[0]), int(size[1]))
        self.preloaded = len(self.sources) * self.size[0] * self.size[1] * 4 <= budget
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.preloaded:
            for i in range(len(self.sources)):
                self._cache[i] = self._load(i)
                if progress is not None:
                    progress(i + 1, len(self.sources))

    def __len__(self) -> int:
        return len(self.sources)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        source = self.sources[i]
        sample = source.load()
        label = resize_label(sample.label, self.size)
        bad = (label >= self.num_classes) & (label != IGNORE_LABEL)
        if bad.any():
            raise DataError(
                _where(source),
                f"label value {int(label[bad].max())} is not a class id of the dataset "
                f"({self.num_classes} classes: 0..{self.num_classes - 1}, 255 = ignore)",
            )
        return resize_image(sample.image, self.size), label

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image (H, W, 3) uint8, label (H, W) uint8)`` of image ``i``."""
        if i in self._cache:
            return self._cache[i]
        return self._load(i)

    def batch(self, indices: list[int], rng: np.random.Generator, augment: bool) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(B, H, W, 3)`` uint8 and labels ``(B, H, W)`` uint8; with ``augment`` each
        image is flipped (p = 0.5), scaled by ``U(1, 1.5)`` and randomly cropped back to size
        (always four draws per image, in index order)."""
        images, labels = [], []
        for i in indices:
            image, label = self.get(i)
            if augment:
                image, label = augment_labeled(image, label, rng)
            images.append(image)
            labels.append(label)
        return np.stack(images), np.stack(labels)

    def checksum(self) -> str:
        """sha256 over the sources' names and file checksums (what was trained on)."""
        h = hashlib.sha256()
        for source in self.sources:
            described = source.describe()
            h.update(f"{described['name']}\0{described.get('image_sha256')}\0{described.get('label_sha256')}\n".encode())
        return h.hexdigest()


def augment_labeled(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, up-scale and crop back to the same size (four draws from ``rng``)."""
    height, width = label.shape
    flip = rng.random() < 0.5
    scale = rng.uniform(*AUG_SCALE)
    fy, fx = rng.random(), rng.random()
    if flip:
        image, label = image[:, ::-1], label[:, ::-1]
    big_h, big_w = max(height, int(round(height * scale))), max(width, int(round(width * scale)))
    if (big_h, big_w) != (height, width):
        image = cv2.resize(np.ascontiguousarray(image), (big_w, big_h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(np.ascontiguousarray(label), (big_w, big_h), interpolation=cv2.INTER_NEAREST)
        y0, x0 = int(fy * (big_h - height + 1)), int(fx * (big_w - width + 1))
        y0, x0 = min(y0, big_h - height), min(x0, big_w - width)
        image, label = image[y0 : y0 + height, x0 : x0 + width], label[y0 : y0 + height, x0 : x0 + width]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


@dataclass(frozen=True)
class PairItem:
    """One video pair at the training size, from the flow cache to the loss.

    ``frame_t``, ``frame_t1``: ``(H, W, 3)`` uint8 RGB; ``flow``: the cache's
    :class:`~stabbench.flow.PairFlow` (``(H, W, 2)`` float32 flows, ``[..., 0] = dx``, and
    ``(H, W)`` bool validity, both directions).
    """

    frame_t: np.ndarray
    frame_t1: np.ndarray
    flow: PairFlow

    def flipped(self) -> PairItem:
        """Mirrored left-right: frames, validity and flows flipped, ``dx`` negated."""
        fw, bw = self.flow.flow_fw[:, ::-1].copy(), self.flow.flow_bw[:, ::-1].copy()
        fw[..., 0] *= -1
        bw[..., 0] *= -1
        flow = PairFlow(fw, self.flow.valid_fw[:, ::-1].copy(), bw, self.flow.valid_bw[:, ::-1].copy())
        return PairItem(self.frame_t[:, ::-1].copy(), self.frame_t1[:, ::-1].copy(), flow)


@dataclass(frozen=True)
class PairBatch:
    """Pairs stacked: ``frames_t``/``frames_t1`` ``(B, H, W, 3)`` uint8 and ``flow``, a
    :class:`~stabbench.flow.PairFlow` of ``(B, ...)`` arrays, or ``None`` in a frames-only
    batch (the control run, which forwards the frames but never uses the flow)."""

    frames_t: np.ndarray
    frames_t1: np.ndarray
    flow: PairFlow | None


def stack_pairs(items: list[PairItem], *, with_flow: bool = True) -> PairBatch:
    """Stack ``items`` into a :class:`PairBatch` (the flow only ``with_flow``)."""
    frames_t = np.stack([it.frame_t for it in items])
    frames_t1 = np.stack([it.frame_t1 for it in items])
    if not with_flow:
        return PairBatch(frames_t, frames_t1, None)
    flow = PairFlow(*(np.stack([getattr(it.flow, name) for it in items]) for name in PairFlow._fields))
    return PairBatch(frames_t, frames_t1, flow)


class PairData:
    """Consecutive-frame pairs sampled from unlabeled videos (``pairs_per_video`` per video at
    equal intervals), with forward/backward flow and validity at the training size."""

    def __init__(self, videos: list, size: tuple[int, int], cache, params, *, pairs_per_video: int = 30,
                 budget: int = MEMORY_BUDGET):
        from stabbench.flow import sample_pair_refs

        if not videos:
            raise DataError(None, "no videos given")
        self.videos = videos
        self.size = (int(size[0]), int(size[1]))
        self.cache = cache
        self.params = params
        self.refs = sample_pair_refs(videos, pairs_per_video)  # DataError: unreadable video, < 2 frames
        if not self.refs:
            raise DataError(videos[0].path, "no frame pairs could be sampled from the videos")
        per_pair = self.size[0] * self.size[1] * (3 * 2 + 2 * 2 * 4 + 2)
        self._budget_items = max(1, budget // per_pair)
        self._memory: OrderedDict[int, PairItem] = OrderedDict()

    def __len__(self) -> int:
        return len(self.refs)

    def _compute(self, i: int) -> PairItem:
        ref = self.refs[i]
        frame_t, frame_t1 = ref.load()
        frame_t, frame_t1 = resize_image(frame_t, self.size), resize_image(frame_t1, self.size)
        try:
            flow = self.cache.get_or_compute(frame_t, frame_t1, self.params)
        except ValueError as exc:
            raise DataError(ref.video.path, f"cannot compute the flow of frames {ref.t}, {ref.t + 1} ({exc})") from None
        return PairItem(frame_t, frame_t1, flow)

    def get(self, i: int) -> PairItem:
        """The :class:`PairItem` of pair ``i``."""
        item = self._memory.get(i)
        if item is not None:
            self._memory.move_to_end(i)
            return item
        item = self._compute(i)
        self._memory[i] = item
        while len(self._memory) > self._budget_items:
            self._memory.popitem(last=False)
        return item

    def prepare(self, progress: Callable[[int, int], None] | None = None, share: tuple[int, int] = (0, 1)) -> None:
        """Read every pair and compute (or find) its flow up front: bad videos fail before training.

        ``share=(k, n)``: only pairs ``k, k + n, ...`` (one of ``n`` processes filling a shared
        cache; no two compute the same pair)."""
        mine = range(share[0], len(self.refs), share[1])
        for done, i in enumerate(mine, 1):
            self.get(i)
            if progress is not None:
                progress(done, len(mine))

    def batch(self, indices: list[int], flips: list[bool], *, with_flow: bool = True) -> PairBatch:
        """The pairs ``indices`` (each mirrored where ``flips``); ``with_flow=False`` (the control
        run) stacks only the frames."""
        items = [self.get(i) for i in indices]
        return stack_pairs([it.flipped() if flip else it for it, flip in zip(items, flips)], with_flow=with_flow)

    def describe(self) -> list[dict]:
        """Per video: path, kind, frame count, sampled pairs and a sha256 of the frames used."""
        out = []
        for video in self.videos:
            starts = [r.t for r in self.refs if r.video is video]
            out.append({
                "path": str(video.path),
                "kind": video.kind,
                "frames": int(video.num_frames),
                "pairs": [[t, t + 1] for t in starts],
                "sha256": _video_checksum(video, starts),
            })
        return out


def _video_checksum(video, starts: list[int]) -> str:
    from stabbench.fileio import sha256_file

    if video.kind == "file":
        return sha256_file(video.path)
    h = hashlib.sha256()
    for i in sorted({t for s in starts for t in (s, s + 1)}):
        path = video.frame_path(i)
        h.update(f"{Path(path).name}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- data order


@dataclass
class DataOrder:
    """Where the run is in its data: the epoch's permutation of the labelled images, the
    cycling permutation of the video pairs, and the step counters.

    Per step, draws from the run's generator happen in this order: (at an epoch's first
    step) the labelled permutation; the labelled augmentation; the pair indices (a new pair
    permutation whenever the previous one is used up); one flip per pair (``augment``).
    The control run (``--no-coherent``) makes the same pair draws (and forwards the same
    pair frames), so its stream and its batches match.
    """

    num_labeled: int
    batch_labeled: int
    num_pairs: int = 0
    batch_pairs: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    labeled_order: list[int] | None = None
    pair_order: list[int] = field(default_factory=list)
    pair_pos: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_labeled / self.batch_labeled)

    def labeled_indices(self, rng: np.random.Generator) -> list[int]:
        if self.labeled_order is None:
            self.labeled_order = [int(v) for v in rng.permutation(self.num_labeled)]
        start = self.step_in_epoch * self.batch_labeled
        return self.labeled_order[start : start + self.batch_labeled]

    def pair_indices(self, rng: np.random.Generator) -> list[int]:
        out: list[int] = []
        for _ in range(min(self.batch_pairs, self.num_pairs)):
            if self.pair_pos >= len(self.pair_order):
                self.pair_order = [int(v) for v in rng.permutation(self.num_pairs)]
                self.pair_pos = 0
            out.append(self.pair_order[self.pair_pos])
            self.pair_pos += 1
        return out

    def advance(self) -> bool:
        """Count a finished step; True when it finished an epoch (then the next epoch starts)."""
        self.step_in_epoch += 1
        self.global_step += 1
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch += 1
            self.step_in_epoch = 0
            self.labeled_order = None
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "labeled_order": None if self.labeled_order is None else list(self.labeled_order),
            "pair_order": list(self.pair_order),
            "pair_pos": self.pair_pos,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        order = state["labeled_order"]
        self.labeled_order = None if order is None else [int(v) for v in order]
        self.pair_order = [int(v) for v in state["pair_order"]]
        self.pair_pos = int(state["pair_pos"])
