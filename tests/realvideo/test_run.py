"""Counting on real video (stabbench.realvideo.run): a tiny video with known flow, tracked
pixels and flips, counted by hand; annotations read with the predictions checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stabbench.errors import DataError
from stabbench.flow import list_videos
from stabbench.predictors import load_predictor
from stabbench.realvideo import ANNOTATIONS, Settings, measure
from stabbench.realvideo.results import build_results
from tests.realvideo.known import FLIPS, H, KnownFlow, N, W, object_mask


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB").save(path)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for t in range(N):
        write_png(tmp_path / "frames" / "clip" / f"{t:05d}.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        write_png(tmp_path / "ann" / "clip" / f"{t:05d}.png", object_mask(t) * 255)  # DAVIS-2016 style 0/255
        pred = object_mask(t)
        if t == 1:
            for y, x in FLIPS:
                pred[y, x] ^= 1
        write_png(tmp_path / "pred" / "clip" / f"{t:05d}.png", pred)
    return tmp_path


def test_counts_by_hand(tiny: Path) -> None:
    model = load_predictor(f"predictions:{tiny / 'pred'}")
    state = measure(list_videos(tiny / "frames"), {"m": model}, ANNOTATIONS, tiny / "ann", Settings(band_width=3),
                    cache=KnownFlow())
    # tracked: columns 0..10 of 12 rows = 132 px per pair. Band (width 3) around the annotation's
    # edges (columns 3+t and 6+t, the object's inner contour): columns 2..4 and 5..7 (+t): 72 px.
    # Pair (0,1): each flip at (y, x) of frame 1 breaks the source pixel (y, x-1): all 4 are
    # tracked, (0, 0) is outside the band. Pair (1,2): the flipped pixels are the sources: all 4
    # tracked, (0, 1) outside the band [3, 8]. Hence 128/132 and 69/72 for both pairs.
    assert [p[2:6] for p in state.meters["m"].pairs] == [(128, 132, 69, 72)] * 2
    assert [p[2:6] for p in state.meters[ANNOTATIONS].pairs] == [(132, 132, 72, 72)] * 2
    assert state.coverage["clip"] == [[0, 144, 132, 132, 72, 72], [1, 144, 132, 132, 72, 72]]
    results = build_results(state, {"m": model.info}, {"name": ANNOTATIONS, "id": "annotations:ann", "sha256": "x"},
                            Settings(band_width=3), [str(tiny / "frames")], seed=0, resamples=200)
    (row,) = [r for r in results["overall"] if r["model"] == "m"]
    assert row["S_global"] == pytest.approx(100 * 128 / 132) and row["S_boundary"] == pytest.approx(100 * 69 / 72)
    assert row["dS_boundary"] == pytest.approx(100 * 69 / 72 - 100)
    assert row["coverage_pct"] == pytest.approx(100 * 132 / 144) and row["S_boundary_verdict"] == "less stable"
    assert results["kind"] == "real-video" and results["set"]["videos"]["clip"]["frames"] == N


def test_band_follows_a_reference_model(tiny: Path) -> None:
    """With the model itself as the reference, the band is around its own edges and delta is 0."""
    model = load_predictor(f"predictions:{tiny / 'pred'}")
    state = measure(list_videos(tiny / "frames"), {"m": model}, "m", None, Settings(band_width=3), cache=KnownFlow())
    assert set(state.meters) == {"m"}
    assert [p.tracked for p in state.meters["m"].pairs] == [132, 132]


def test_missing_annotation_is_a_data_error(tiny: Path) -> None:
    (tiny / "ann" / "clip" / "00001.png").unlink()
    model = load_predictor(f"predictions:{tiny / 'pred'}")
    with pytest.raises(DataError, match="00001.png: mask file not found"):
        measure(list_videos(tiny / "frames"), {"m": model}, ANNOTATIONS, tiny / "ann", cache=KnownFlow())


def test_flicker_oracle_runs_on_real_video_annotations(tiny: Path) -> None:
    """builtin:flicker reads the annotations through begin_sequence: a degraded reference, seeded."""
    runs = []
    for _ in range(2):
        flicker = load_predictor("builtin:flicker,rate=0.3,band=3,seed=1")
        state = measure(list_videos(tiny / "frames"), {"f": flicker}, ANNOTATIONS, tiny / "ann", Settings(band_width=3),
                        cache=KnownFlow())
        runs.append([p[2:] for p in state.meters["f"].pairs])
    assert runs[0] == runs[1] and all(c[2] < c[3] for c in runs[0])
