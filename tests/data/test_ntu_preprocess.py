"""NTU RGB+D: split rules, class names, missing-skeleton lists, the ``.skeleton`` parser, each
step of the 2s-AGCN pre-normalisation, and the bone / motion modalities, against hand-computed
expectations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cozoo.data.ntu import features as F
from cozoo.data.ntu import normalize as N
from cozoo.data.ntu import protocol as P
from cozoo.data.ntu.skeleton_file import SkeletonFileError, read_skeleton, write_skeleton
from cozoo.models.skeleton.graph import NTU


# ---- names and splits ---------------------------------------------------------------------------
def test_names_are_parsed_from_files_paths_and_bare_names():
    sid = P.parse_name("/data/nturgb+d_skeletons/S017C003P020R002A060.skeleton")
    assert (sid.setup, sid.camera, sid.performer, sid.replication, sid.action) == (17, 3, 20, 2, 60)
    assert sid.label == 59
    assert P.sample_name("S001C001P001R001A001.skeleton") == "S001C001P001R001A001"
    with pytest.raises(ValueError, match="not an NTU sample name"):
        P.parse_name("video_0001.mp4")


@pytest.mark.parametrize(
    "name, benchmark, split, train",
    [
        ("S001C001P001R001A001", "ntu60", "xsub", True),  # performer 1 trains
        ("S001C001P003R001A001", "ntu60", "xsub", False),  # performer 3 tests
        ("S001C001P038R001A001", "ntu60", "xsub", True),
        ("S001C001P001R001A001", "ntu60", "xview", False),  # camera 1 tests
        ("S001C002P003R001A001", "ntu60", "xview", True),
        ("S001C003P003R001A001", "ntu60", "xview", True),
        ("S020C001P103R001A100", "ntu120", "xsub", True),  # one of the 33 added performers
        ("S020C001P044R001A100", "ntu120", "xsub", False),
        ("S002C001P003R001A001", "ntu120", "xset", True),  # even setup trains
        ("S031C001P001R001A001", "ntu120", "xset", False),
    ],
)
def test_split_rules(name, benchmark, split, train):
    assert P.is_train(P.parse_name(name), benchmark, split) is train


def test_subject_lists_and_benchmark_membership():
    assert len(P.NTU60_TRAIN_SUBJECTS) == 20 and len(P.NTU120_TRAIN_SUBJECTS) == 53
    assert not P.in_benchmark(P.parse_name("S018C001P001R001A001"), "ntu60")  # NTU-120 setup
    assert not P.in_benchmark(P.parse_name("S001C001P001R001A061"), "ntu60")  # NTU-120 action
    assert P.in_benchmark(P.parse_name("S018C001P001R001A061"), "ntu120")
    with pytest.raises(ValueError, match="ntu60 has the splits"):
        P.check_benchmark("ntu60", "xset")
    with pytest.raises(ValueError, match="benchmark must be one of"):
        P.check_benchmark("ntu90", "xsub")


def test_split_names_sorts_and_skips_listed_missing_samples():
    missing = sorted(P.missing_skeletons("ntu60"))[0]  # a listed one
    names = ["S001C002P003R001A002", "S001C001P001R001A001", missing, "S018C001P001R001A001"]
    out = P.split_names(names, "ntu60", "xsub")
    assert missing not in out["train"] + out["val"]
    assert out == {"train": ["S001C001P001R001A001"], "val": ["S001C002P003R001A002"]}
    kept = P.split_names([missing], "ntu60", "xsub", skip_missing=False)
    assert kept["train"] + kept["val"] == [missing]


def test_missing_lists_and_class_names_ship_with_the_package():
    ntu60, ntu120 = P.missing_skeletons("ntu60"), P.missing_skeletons("ntu120")
    assert (len(ntu60), len(ntu120)) == (302, 535) and ntu60 <= ntu120
    assert max(P.parse_name(n).setup for n in ntu60) <= 17
    names = P.class_names("ntu120")
    assert len(P.class_names("ntu60")) == 60 and len(names) == 120
    assert names[0] == "drink water" and names[59] == "walking apart from each other"
    assert names[119].startswith("finger-guessing game") and len(set(names)) == 120


# ---- the .skeleton parser -----------------------------------------------------------------------
def _joints(offset: float) -> np.ndarray:
    return offset + np.arange(75, dtype=np.float64).reshape(25, 3) / 100


def test_parser_reads_bodies_in_order_of_appearance_including_a_3_body_and_an_empty_frame(
    tmp_path: Path,
):
    frames = [
        [_joints(1.0)],  # frame 0: one body
        [],  # frame 1: empty
        [_joints(2.0), _joints(3.0), _joints(4.0)],  # frame 2: three bodies
    ]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(path, frames)
    lines = path.read_text().splitlines()
    assert lines[0] == "3" and lines[1] == "1" and len(lines[2].split()) == 10
    assert lines[3] == "25" and len(lines[4].split()) == 12 and lines[29] == "0"
    x = read_skeleton(path)
    assert x.shape == (4, 3, 25, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], _joints(1.0), rtol=1e-6)
    assert not x[:, 1].any()  # the empty frame
    for slot, offset in enumerate((2.0, 3.0, 4.0)):
        np.testing.assert_allclose(x[slot, 2], _joints(offset), rtol=1e-6)
    assert not x[1:, 0].any() and not x[3].any()
    assert read_skeleton(path, max_bodies=2).shape == (2, 3, 25, 3)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda lines: lines[:10], "truncated"),
        (lambda lines: lines[:3] + ["24"] + lines[4:], "expected 25 joints"),
        (lambda lines: lines[:4] + ["1 2 3"] + lines[5:], "got 3 fields"),
        (lambda lines: lines[:4] + ["a " * 12] + lines[5:], "not a number"),
        (lambda lines: ["x"] + lines[1:], "not an integer"),
        (lambda lines: lines + ["1"], "unexpected data"),
    ],
)
def test_parser_names_the_file_of_a_corrupt_skeleton(tmp_path: Path, mutate, message):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(path, [[_joints(1.0)]])
    path.write_text("\n".join(mutate(path.read_text().splitlines())) + "\n")
    with pytest.raises(SkeletonFileError, match=message) as info:
        read_skeleton(path)
    assert str(path) in str(info.value)


# ---- pre-normalisation, step by step ------------------------------------------------------------
def test_select_bodies_keeps_the_two_of_largest_energy():
    rng = np.random.default_rng(0)
    bodies = np.zeros((4, 6, 25, 3), np.float32)
    for slot, spread in enumerate((0.1, 1.0, 0.01, 0.5)):
        bodies[slot] = rng.normal(0, spread, (6, 25, 3))
    bodies[1, 3:] = 0  # empty frames do not count in the energy
    energy = [sum(b[np.any(b != 0, axis=(1, 2))][..., c].std() for c in range(3)) for b in bodies]
    assert N.body_energy(bodies[1]) == pytest.approx(energy[1], rel=1e-6)
    out = N.select_bodies(bodies, 2)
    np.testing.assert_array_equal(out, bodies[[1, 3]])
    assert N.body_energy(np.zeros((3, 25, 3))) == 0.0


def test_fill_repeats_the_valid_prefix_and_compacts_a_late_start():
    x = np.zeros((2, 7, 25, 3), np.float32)
    x[0, :3] = np.arange(1, 4)[:, None, None]  # frames 1, 2, 3 then empty
    x[1, 2] = 5.0  # person 1 starts late, with a gap
    x[1, 4] = 6.0
    out = N.fill(x)
    np.testing.assert_array_equal(out[0, :, 0, 0], [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(out[1, :, 0, 0], [5, 6, 5, 6, 5, 6, 5])
    y = np.zeros((1, 5, 25, 3), np.float32)
    y[0, [0, 2]] = [[[1.0]], [[2.0]]]  # interior gap of a person starting at frame 0 stays
    np.testing.assert_array_equal(N.fill(y)[0, :, 0, 0], [1, 0, 2, 1, 0])
    assert not N.fill(np.zeros((2, 4, 25, 3))).any()


def test_centre_puts_spine_mid_of_person_0_at_the_origin_and_keeps_zero_joints():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 25, 3)).astype(np.float32)
    x[1, :, 7] = 0  # a missing joint of person 1
    out = N.centre(x)
    np.testing.assert_allclose(out[0, :, 1], 0, atol=1e-7)
    np.testing.assert_allclose(out[1, :, 3], x[1, :, 3] - x[0, :, 1], rtol=1e-6)
    assert not out[1, :, 7].any()


def test_rotations_align_the_spine_to_z_and_the_shoulders_to_x():
    rng = np.random.default_rng(2)
    pose = rng.normal(0, 0.3, (25, 3))
    pose[0], pose[1] = (0, 0, 0), (0, 0.3, 0)  # spine along +y
    pose[8], pose[4] = (0, 0.4, 0.2), (0, 0.4, -0.2)  # shoulders along -z, perpendicular
    x = np.zeros((2, 3, 25, 3), np.float32)
    x[0] = pose
    x[0, 2] = 0  # an empty frame stays empty
    spine = N.align(x, (0, 1), np.array([0.0, 0.0, 1.0]))
    vec = spine[0, 0, 1] - spine[0, 0, 0]
    np.testing.assert_allclose(vec / np.linalg.norm(vec), [0, 0, 1], atol=1e-6)
    both = N.align(spine, (8, 4), np.array([1.0, 0.0, 0.0]))
    sh = both[0, 0, 4] - both[0, 0, 8]
    np.testing.assert_allclose(sh / np.linalg.norm(sh), [1, 0, 0], atol=1e-6)
    vec = both[0, 0, 1] - both[0, 0, 0]
    np.testing.assert_allclose(vec / np.linalg.norm(vec), [0, 0, 1], atol=1e-6)
    # a rotation: lengths kept; empty frames and the zero person untouched
    np.testing.assert_allclose(
        np.linalg.norm(both[0, 0], axis=-1), np.linalg.norm(x[0, 0], axis=-1), rtol=1e-5
    )
    assert not both[0, 2].any() and not both[1].any()
    # Rodrigues by hand: 90 degrees about +z takes +x to +y
    np.testing.assert_allclose(
        N.rotation_matrix([0, 0, 1], np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12
    )
    np.testing.assert_array_equal(N.rotation_matrix([0, 0, 0], 1.0), np.eye(3))


def test_normalize_agcn_output_shape_and_cropping():
    rng = np.random.default_rng(3)
    bodies = rng.normal(size=(3, 320, 25, 3)).astype(np.float32)
    out = N.normalize_agcn(bodies, 300)
    assert out.shape == (3, 300, 25, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 1, 0], 0, atol=1e-6)  # centred on spine mid


# ---- modalities ---------------------------------------------------------------------------------
def test_bone_and_motion_follow_their_formulas():
    rng = np.random.default_rng(4)
    joint = rng.normal(size=(3, 5, 25, 2)).astype(np.float32)
    bone = F.bone(joint, NTU)
    for j, origin in NTU.bones:
        np.testing.assert_array_equal(bone[:, :, j], joint[:, :, j] - joint[:, :, origin])
    assert not bone[:, :, NTU.root].any() and len(NTU.bones) == 25
    # e.g. joint 3 (head, 0-based) minus joint 2 (neck)
    np.testing.assert_array_equal(bone[:, :, 3], joint[:, :, 3] - joint[:, :, 2])
    motion = F.motion(joint)
    np.testing.assert_array_equal(motion[:, 2], joint[:, 3] - joint[:, 2])
    assert not motion[:, 4].any()
    both = F.to_modality(joint, "joint_bone", NTU)
    assert both.shape == (6, 5, 25, 2)
    np.testing.assert_array_equal(both[3:], bone)
    np.testing.assert_array_equal(F.to_modality(joint, "bone_motion", NTU), F.motion(bone))
    with pytest.raises(ValueError, match="modality must be one of"):
        F.to_modality(joint, "velocity", NTU)
