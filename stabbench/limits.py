"""Resource limits on input, checked before anything is decoded.

``MAX_PIXELS`` (default 80 million: an 8K frame is 33 million, a Cityscapes image 2 million)
is the most pixels an image or a frame may declare; a larger one is refused with a
:class:`~stabbench.errors.DataError` (exit 3) before it is decoded, so a "decompression bomb"
(a small file declaring a huge image) never allocates its size. Set the environment variable
``STABBENCH_MAX_PIXELS`` to change it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from stabbench.errors import DataError

DEFAULT_MAX_PIXELS = 80_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def max_pixels() -> int:
    """The pixel limit: ``STABBENCH_MAX_PIXELS`` if set (a positive integer), else the default."""
    text = os.environ.get("STABBENCH_MAX_PIXELS")
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(None, f"STABBENCH_MAX_PIXELS must be a positive integer, got {text!r}")
    return value


def check_pixels(path: str | Path | None, width: int, height: int) -> None:
    """DataError when a ``width x height`` image is beyond :func:`max_pixels` (or not positive)."""
    if width < 1 or height < 1:
        raise DataError(path, f"image declares a size of {width}x{height}")
    limit = max_pixels()
    if width * height > limit:
        raise DataError(path, f"image declares {width}x{height} = {width * height} pixels, beyond the limit of "
                              f"{limit} (STABBENCH_MAX_PIXELS); refused before decoding")


def png_size(data: bytes, path: str | Path | None = None) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk; DataError if ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise DataError(path, "not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height
