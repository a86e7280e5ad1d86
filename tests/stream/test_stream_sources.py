"""Sources and the model's input protocol: per-frame video preprocessing equals the clip
transform, PyAV resampling equals the clip decoder, skeleton layouts and NTU files, folders,
and the model/weights/protocol resolution (run checkpoint, random weights)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from cozoo.models import VideoInput, create_model
from cozoo.stream import SkeletonSource, SourceError, VideoSource, expand_inputs, video_step
from cozoo.stream.loading import load_stream_model, newest_run_checkpoint, sample_protocol


def test_a_video_step_is_the_clip_transform_of_that_frame():
    from cozoo.data.transforms import clip_transform

    clip = np.random.default_rng(0).integers(0, 255, (5, 40, 52, 3), dtype=np.uint8)
    protocol = VideoInput(frames=5, sampling_rate=1, short_side=32, crop=28)
    expected = clip_transform(frames=5, short_side=32, crop=28)(clip)
    steps = torch.stack([video_step(frame, protocol) for frame in clip], dim=1)
    assert steps.shape == (3, 5, 28, 28)
    torch.testing.assert_close(steps, expected, rtol=0, atol=1e-6)


def test_video_source_resamples_like_the_clip_decoder(tiny_videos):
    from cozoo.data.kinetics import read_frames

    frames = list(VideoSource(tiny_videos[0], fps=30, sampling_rate=2).frames())
    assert [f.index for f in frames] == list(range(0, 40, 2))
    assert frames[3].time == pytest.approx(6 / 30)
    clip = read_frames(tiny_videos[0], lambda n: torch.arange(0, n, 2))
    np.testing.assert_array_equal(np.stack([f.data for f in frames]), clip)


def test_skeleton_layouts_persons_and_modalities(tmp_path):
    rng = np.random.default_rng(0)
    ctvm = rng.standard_normal((3, 6, 25, 1)).astype(np.float32)  # one person
    np.save(tmp_path / "ctvm.npy", ctvm)
    np.save(tmp_path / "tvmc.npy", ctvm.transpose(1, 2, 3, 0))
    a = list(SkeletonSource(str(tmp_path / "ctvm.npy")).frames())
    b = list(SkeletonSource(str(tmp_path / "tvmc.npy")).frames())
    assert len(a) == 6 and a[0].data.shape == (3, 25, 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.data, y.data)
    assert not a[2].data[..., 1].any()  # the empty second body slot
    np.testing.assert_array_equal(a[2].data[..., 0], ctvm[:, 2, :, 0])
    bones = list(SkeletonSource(str(tmp_path / "ctvm.npy"), modality="joint_bone").frames())
    assert bones[0].data.shape == (6, 25, 2)
    np.testing.assert_array_equal(bones[0].data[:3], a[0].data)
    np.save(tmp_path / "bad.npy", np.zeros((6, 18, 2, 3), np.float32))
    with pytest.raises(SourceError, match=r"bad.npy: expected joints .*V=25.*\(6, 18, 2, 3\)"):
        list(SkeletonSource(str(tmp_path / "bad.npy")).frames())


def test_an_ntu_skeleton_file_is_prenormalised(tmp_path):
    from cozoo.data.ntu import normalize_agcn, read_skeleton
    from cozoo.data.ntu.skeleton_file import write_skeleton

    rng = np.random.default_rng(1)
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(path, [[rng.standard_normal((25, 3)) + [0, 0, 3]] for _ in range(7)])
    steps = list(SkeletonSource(str(path)).frames())
    expected = normalize_agcn(read_skeleton(path), 7)
    assert len(steps) == 7
    np.testing.assert_array_equal(np.stack([s.data for s in steps], 1), expected)


def test_folders_expand_to_their_files(tmp_path):
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", np.zeros((2, 3)))
    (tmp_path / "notes.txt").write_text("skip me")
    assert expand_inputs([str(tmp_path), "rtsp://cam/1", "0"]) == [
        str(tmp_path / "sub" / "x.npy"),
        "rtsp://cam/1",
        "0",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="a folder without"):
        expand_inputs([str(tmp_path / "empty")])


def test_random_weights_use_the_sample_protocol_and_warn(tmp_path):
    protocol, kwargs, names = sample_protocol("cox3d_m")
    assert (protocol.crop, protocol.sampling_rate, protocol.fps) == (48, 2, 30)
    assert kwargs["pool_size"] == 8 and kwargs["num_classes"] == 6 and names[0] == "growing"
    protocol, kwargs, names = sample_protocol("costgcn_mod")
    assert (protocol.kind, protocol.frames, protocol.joints, kwargs["pool_size"]) == (
        "skeleton", 88, 25, 8,
    )  # fmt: skip
    assert kwargs["num_classes"] == len(names) == 6
    said = []
    sm = load_stream_model("cox3d_s", None, str(tmp_path), said.append, pool_size=2)
    assert sm.random and sm.weights == "random" and "RANDOM weights" in said[0]
    assert sm.class_names[1] == "moving left" and sm.model.pool_size == 2


def test_the_newest_run_checkpoint_is_streamed_with_its_protocol(tmp_path):
    torch.manual_seed(0)
    net = create_model("cox3d_s", pool_size=2, num_classes=6)
    data = {"root": None, "frames": 4, "sampling_rate": 3, "short_side": 40, "crop": 36}
    checkpoint = {
        "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"model": {"name": "cox3d_s", "num_classes": 6, "pool_size": 2}},
        "datamodule_hyper_parameters": data,
    }
    for run, age in (("old", 100), ("new", 0)):
        path = tmp_path / "cox3d_s" / run / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        torch.save(checkpoint, path)
        os.utime(path, (time.time() - age, time.time() - age))
    assert newest_run_checkpoint(str(tmp_path), "cox3d_s").parts[-3] == "new"
    said = []
    sm = load_stream_model("cox3d_s", None, str(tmp_path), said.append)
    assert "new" in said[0] and sm.weights.endswith(os.path.join("new", "checkpoints", "last.ckpt"))
    assert (sm.protocol.crop, sm.protocol.short_side, sm.protocol.sampling_rate) == (36, 40, 3)
    assert sm.class_names[0] == "growing" and not sm.random
    torch.testing.assert_close(sm.model.state_dict(), net.state_dict())


def test_a_pyskl_pickle_gives_a_source_per_sequence(tmp_path):
    from cozoo.data.ntu import normalize_agcn
    from cozoo.data.ntu.layouts import load_pyskl
    from cozoo.data.ntu.sample import write_pyskl_pickle
    from cozoo.stream import pyskl_sources

    path = write_pyskl_pickle(tmp_path / "anno.pkl", size="tiny")
    sources = pyskl_sources(f"{path}::xsub_val")
    data = load_pyskl(path)
    names = data["split"]["xsub_val"]
    assert [s.name for s in sources] == names
    kp = next(a for a in data["annotations"] if a["frame_dir"] == names[1])["keypoint"]
    steps = np.stack([f.data for f in sources[1].frames()], axis=1)
    np.testing.assert_array_equal(steps, normalize_agcn(kp, kp.shape[1], select=False))
    with pytest.raises(SourceError, match="no split 'nope'"):
        pyskl_sources(f"{path}::nope")


def test_feature_arrays_are_checked_against_a_feature_protocol(tmp_path):
    from cozoo.models import FeatureInput
    from cozoo.stream.cli import make_sources

    np.save(tmp_path / "video_1.npy", np.ones((6, 4), np.float32))
    np.save(tmp_path / "video_2.npy", np.ones((6, 5), np.float32))
    ok, bad = make_sources([str(tmp_path)], FeatureInput(dim=4), array_rate=4.0)
    assert [f.time for f in ok.frames()] == [0, 0.25, 0.5, 0.75, 1.0, 1.25]
    with pytest.raises(SourceError, match=r"video_2.npy: expected steps of shape \(4,\)"):
        list(bad.frames())
