"""Tiny models and predictors the tests load as Python entries (``--model tests.fixtures_models:build``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 3


class TinyNet(nn.Module):
    """3-class per-pixel net; output (B, 3, H, W) logits at the input size."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, NUM_CLASSES, 1)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


def build() -> nn.Module:
    """Entry returning an nn.Module (wrapped by the loader with the spec)."""
    return TinyNet()


class ThresholdPredictor:
    """Stateless predictor: labels = red channel > 127, at half resolution."""

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return (frames[:, ::2, ::2, 0] > 127).astype(np.uint8)


def build_predictor() -> ThresholdPredictor:
    return ThresholdPredictor()


class StatefulPredictor:
    """Counts frames since reset(); label of every pixel = that count mod 2; refuses without reset."""

    max_batch = 1

    def __init__(self):
        self.resets = 0
        self.seen: int | None = None
        self.batch_sizes: list[int] = []

    def reset(self) -> None:
        self.resets += 1
        self.seen = 0

    def predict(self, frames: np.ndarray) -> np.ndarray:
        if self.seen is None:
            raise RuntimeError("predict before reset")
        self.batch_sizes.append(len(frames))
        out = np.empty(frames.shape[:3], np.uint8)
        for i in range(len(frames)):
            out[i] = self.seen % 2
            self.seen += 1
        return out


class BadShapePredictor:
    """Returns (B, 2, W): the wrong shape."""

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return np.zeros((len(frames), 2, frames.shape[2]), np.float32)


class NanPredictor:
    """Two-class probabilities with a NaN and an Inf."""

    def predict(self, frames: np.ndarray) -> np.ndarray:
        out = np.zeros((len(frames), 2, *frames.shape[1:3]), np.float32)
        out[:, 1] = 1.0
        out[0, 0, 0, 0] = np.nan
        out[0, 1, 0, 1] = np.inf
        return out


class RecordingPredictor:
    """Stateful predictor for tests/cli/test_evaluate.py: logs every reset() and every frame it sees.

    ``RecordingPredictor.log`` (class-level, so a test can read it after the CLI built and
    dropped the instance) gets ``("reset",)`` per reset and ``("frame", sha256 of the frame
    bytes, frames seen since the last reset)`` per frame; predictions are all background.
    Refuses frames before the first reset (a stateful model has no state then).
    """

    log: list[tuple] = []

    def __init__(self):
        self.seen: int | None = None

    def reset(self) -> None:
        self.seen = 0
        RecordingPredictor.log.append(("reset",))

    def predict(self, frames: np.ndarray) -> np.ndarray:
        import hashlib

        if self.seen is None:
            raise RuntimeError("predict before reset")
        for frame in frames:
            RecordingPredictor.log.append(("frame", hashlib.sha256(frame.tobytes()).hexdigest(), self.seen))
            self.seen += 1
        return np.zeros(frames.shape[:3], np.uint8)
