"""stabbench.synth.reader: a set read back is what the protocol rendered (frames, masks,
flows), the decoded PNG files exactly, and a file of the wrong size is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import perturbations as P
from stabbench.errors import DataError
from stabbench.synth import open_set
from stabbench.synth.plan import plan_sequences, sequence_rng
from stabbench.synth.writer import label_focus, synthesize
from tests.helpers import SH, SW, api_config, assert_same, shapes_listing


def test_reader_api_and_contents_match_the_protocol(tmp_path: Path) -> None:
    """Frames and masks on disk are what the protocol renders from each sequence's own
    generator, losslessly, in RGB order; flows are the trajectory's."""
    out = tmp_path / "set"
    listing = shapes_listing(2)
    config = api_config(listing, num_frames=5, seed=9)
    synthesize(listing, config, out)
    ds = open_set(out)
    assert repr(ds).startswith("SyntheticSet(") and ds.seed == 9 and ds.protocol_version == "v2"
    assert ds.classes == ("background", "blob", "polygon")
    samples = [ref.load() for ref in listing.sources]
    plans = plan_sequences(2, "paper", 9)
    for seq, plan in zip(ds, plans):
        assert seq.id == f"seq_{plan.index:05d}" and seq.index == plan.index
        assert (seq.perturbation, seq.severity) == (plan.perturbation, plan.severity)
        assert seq.num_frames == 5 and seq.shape == (SH, SW)
        assert isinstance(seq.params, dict) and seq.params == seq.trajectory.params
        assert plan.perturbation in repr(seq)
        frames, masks = seq.frames(), seq.masks()
        assert frames.shape == (5, SH, SW, 3) and frames.dtype == np.uint8
        assert masks.shape == (5, SH, SW) and masks.dtype == np.uint8
        np.testing.assert_array_equal(seq.frame(2), frames[2])
        np.testing.assert_array_equal(seq.mask(4), masks[4])
        # independent re-rendering from the documented seeding
        sample = samples[plan.source_index]
        rng = sequence_rng(9, plan.source_index, plan.slot)
        traj = P.make_trajectory(plan.perturbation, plan.severity, rng, SH, SW, 5, focus=label_focus(sample.label))
        rendered = list(P.render_sequence(sample.image, sample.label, traj, rng))
        np.testing.assert_array_equal(frames, np.stack([f for f, _ in rendered]))
        np.testing.assert_array_equal(masks, np.stack([m for _, m in rendered]))
        np.testing.assert_allclose(seq.trajectory.affines, traj.affines, atol=1e-12)
        assert seq.trajectory.occluders == traj.occluders
        if plan.perturbation != "occlusion":
            np.testing.assert_array_equal(frames[0], sample.image)
        pairs = list(seq.pairs())
        assert [t for t, _, _ in pairs] == [0, 1, 2, 3]
        for t, flow, valid in pairs:
            assert flow.shape == (SH, SW, 2) and flow.dtype == np.float32
            assert valid.shape == (SH, SW) and valid.dtype == bool
            ref_flow, ref_valid = P.pair_correspondence(traj, t)
            np.testing.assert_allclose(flow, ref_flow, atol=1e-5)
            assert (valid != ref_valid).sum() <= 2
        with pytest.raises(IndexError):
            seq.frame(5)
        with pytest.raises(ValueError):
            seq.flow(4)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory) -> Path:
    """A materialized set (format 1: every frame and mask a PNG) of 1 image, 4 frames."""
    out = tmp_path_factory.mktemp("materialized") / "set"
    listing = shapes_listing(1)
    synthesize(listing, api_config(listing, num_frames=4, seed=3), out)
    return out


def test_reader_returns_the_decoded_pngs(materialized: Path) -> None:
    """Frames are the RGB pixels of the frame PNGs, masks the values of the mask PNGs, as an
    independent decoder (Pillow) reads them."""
    for seq in open_set(materialized):
        frames, masks = seq.frames(), seq.masks()
        files = [seq.folder / item["frame"] for item in seq.record["frames"]]
        want = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        assert_same(frames, want)
        mask_files = [seq.folder / item["mask"] for item in seq.record["frames"]]
        assert_same(masks, np.stack([np.asarray(Image.open(f)) for f in mask_files]))
        assert_same(seq.frame(1), want[1])


def test_reader_size_mismatch_names_the_file(materialized: Path, tmp_path: Path) -> None:
    copy = tmp_path / "set"
    shutil.copytree(materialized, copy)
    seq = open_set(copy)[0]
    path = seq.folder / seq.record["frames"][2]["frame"]
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="frame_02"):
        seq.frames()


def test_source_image_of_a_compact_sequence_is_its_frame_0_but_under_the_occluder(small_set: Path,
                                                                                 materialized: Path) -> None:
    for seq in open_set(small_set):
        source, frame0 = seq.source_image(), seq.frame(0)
        assert source.shape == frame0.shape and source.dtype == np.uint8
        occluder = seq.trajectory.occluder(0)
        free = np.ones(seq.shape, bool) if occluder is None else ~occluder.raster(*seq.shape)
        np.testing.assert_array_equal(source[free], frame0[free])
        name = seq.record["render"]["source_files"]["image"]
        decoded = cv2.cvtColor(cv2.imread(str(small_set / "sources" / name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(source, decoded)
    assert open_set(materialized)[0].source_image() is None
