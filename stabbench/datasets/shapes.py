"""``shapes``: a built-in generated dataset with exact masks (demo, tests, no files needed).

Each image is a smooth random texture with one to three textured shapes on it; class 1 is
an ellipse ("blob"), class 2 a polygon ("polygon"); the mask is exactly the set of pixels
painted by each shape (no anti-aliasing), so the ground truth has no annotation noise.
Everything is drawn from ``numpy.random.default_rng([seed, index])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stabbench.datasets.base import DatasetListing, Sample
from stabbench.fileio import sha256_bytes

CLASSES = ("background", "blob", "polygon")


@dataclass(frozen=True)
class ShapeSource:
    """A generated labelled image; the same ``(seed, index, size)`` always gives the same pixels."""

    name: str
    seed: int
    index: int
    height: int
    width: int

    def load(self) -> Sample:
        image, label = render_shapes(np.random.default_rng([self.seed, self.index]), self.height, self.width)
        return Sample(self.name, image, label)

    def describe(self, root=None) -> dict:
        sample = self.load()
        return {
            "name": self.name,
            "generator": "shapes",
            "seed": self.seed,
            "index": self.index,
            "size": [self.height, self.width],
            "image_sha256": sha256_bytes(sample.image.tobytes()),
            "label_sha256": sha256_bytes(sample.label.tobytes()),
        }


def list_shapes(root=None, *, num_images: int = 4, height: int = 240, width: int = 320, seed: int = 0) -> DatasetListing:
    """``num_images`` generated images of ``height x width``; ``root`` is ignored."""
    if num_images < 1 or height < 32 or width < 32:
        raise ValueError("shapes needs num_images >= 1 and a size of at least 32x32")
    sources = [ShapeSource(f"shapes/{i:04d}", seed, i, height, width) for i in range(num_images)]
    options = {"num_images": num_images, "height": height, "width": width, "seed": seed}
    return DatasetListing("shapes", sources, CLASSES, options)


def smooth_texture(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """``(H, W, 3)`` uint8 texture: blurred noise around a random base colour."""
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    luma = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigmaX=scale)
    chroma = cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), sigmaX=scale)
    luma *= 45.0 / max(float(luma.std()), 1e-6)
    chroma *= 12.0 / max(float(chroma.std()), 1e-6)
    return np.clip(base + luma[..., None] + chroma, 0, 255).astype(np.uint8)


def render_shapes(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image: ``(H, W, 3)`` uint8 RGB and its ``(H, W)`` uint8 label map."""
    image = smooth_texture(rng, height, width, scale=6.0)
    label = np.zeros((height, width), np.uint8)
    short = min(height, width)
    for _ in range(int(rng.integers(1, 4))):
        shape = np.zeros((height, width), np.uint8)
        cls = int(rng.integers(1, 3))
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        if cls == 1:
            axes = (int(rng.uniform(0.08, 0.22) * short), int(rng.uniform(0.08, 0.22) * short))
            cv2.ellipse(shape, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1, cv2.LINE_8)
        else:
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = rng.uniform(0.1, 0.25, n) * short
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
            cv2.fillPoly(shape, [pts], 1, cv2.LINE_8)
        inside = shape.astype(bool)
        image[inside] = smooth_texture(rng, height, width, scale=3.0)[inside]
        label[inside] = cls
    return image, label
