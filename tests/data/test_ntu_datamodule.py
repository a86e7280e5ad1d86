"""NTU RGB+D: the generated sample, the three layouts read to the same tensors (2s-AGCN npy,
pyskl pickle, ``.skeleton`` files through ``prepare``), modality files vs on-the-fly modalities,
the data module's batches for every modality, its banner, and the errors of bad inputs."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cozoo.data.ntu import NTUDataModule, NTUFormatError, features, layouts
from cozoo.data.ntu import sample as S
from cozoo.data.ntu.cli import main as ntu_main
from cozoo.data.ntu.prepare import prepare
from cozoo.models import SkeletonInput
from cozoo.models.skeleton.graph import NTU

SHORT = S.SampleSpec(frames=300, min_length=20, max_length=40)  # short motions: fast tests


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ntu-cache")


@pytest.fixture(scope="module")
def tiny(cache) -> Path:
    return S.ensure_sample(cache, "tiny", seed=0)


def _read_all(source) -> np.ndarray:
    return np.stack([source.joint(i) for i in range(len(source))])


# ---- the generated sample ----------------------------------------------------------------------
def test_sample_is_in_the_agcn_layout_and_deterministic(tiny, cache, tmp_path):
    assert tiny == cache / "ntu" / "tiny-seed0" and S.is_complete(tiny)
    train = layouts.AgcnNpySplit(tiny, "train")
    n_train, n_val = (n * len(S.SAMPLE_CLASSES) for n in S.SAMPLE_SIZES["tiny"])
    assert len(train) == n_train and len(layouts.AgcnNpySplit(tiny, "val")) == n_val
    data = np.load(tiny / "train_data_joint.npy", mmap_mode="r")
    assert data.shape == (n_train, 3, 300, 25, 2) and data.dtype == np.float32
    assert train.names == sorted(train.names) and sorted(set(train.labels)) == list(range(6))
    assert np.abs(data[:, :, :, 1, 0]).max() < 1e-5  # centred like NTU
    assert (data[:, :, :, :, 1] != 0).any(axis=(1, 2, 3)).any()  # some second persons
    assert not (data[:, :, :, :, 1] != 0).any(axis=(1, 2, 3)).all()  # and some zero ones
    again = S.ensure_sample(tmp_path, "tiny", seed=0)
    for name in ("train_data_joint.npy", "val_label.pkl"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes()
    other = S.ensure_sample(tmp_path, "tiny", seed=1)
    assert (other / "val_data_joint.npy").read_bytes() != (tiny / "val_data_joint.npy").read_bytes()
    assert S.sample_root(tmp_path, "tiny", 0, S.SampleSpec(frames=64)).name == "tiny-T64-seed0"


def test_sample_sequences_move_in_their_first_frames(tiny):
    """Every sequence moves within its first 40 frames (a window shorter than the stored 300)."""
    src = layouts.AgcnNpySplit(S.ensure_sample(tiny.parent.parent, "tiny", 0), "train")
    x = _read_all(src)[..., 0]  # (N, 3, T, V)
    y = np.array(src.labels)
    assert x.shape[0] == len(y)
    speed = np.abs(np.diff(x[:, :, :40], axis=2)).mean(axis=(1, 2, 3))
    assert (speed > 0.002).all()  # everything moves


# ---- the three layouts give the same tensors ---------------------------------------------------
def test_pyskl_pickle_reads_to_the_agcn_tensors(tiny, tmp_path):
    pkl = S.write_pyskl_pickle(tmp_path / "ntu60_3danno.pkl", "tiny", seed=0)
    for subset in ("train", "val", "test"):
        agcn = layouts.open_split("agcn_npy", tiny, "xsub", subset)
        pyskl = layouts.open_split("pyskl", pkl, "xsub", subset)
        assert pyskl.names == agcn.names and pyskl.labels == agcn.labels
        np.testing.assert_allclose(_read_all(pyskl), _read_all(agcn), atol=2e-5)
    assert layouts.find_source(tmp_path, "ntu60", "xsub") == ("pyskl", pkl)
    raw = layouts.PysklSplit(pkl, "xsub_val", normalize=False).joint(0)
    assert np.abs(raw[:, :, 1, 0]).max() > 1.0  # camera space: not centred


def test_pyskl_more_persons_dropped_missing_second_zero_float16_and_bad_entries(tmp_path):
    rng = np.random.default_rng(0)
    three = rng.normal(size=(3, 10, 25, 3)).astype(np.float16)
    one = rng.normal(size=(1, 400, 25, 3)).astype(np.float32)
    data = {
        "split": {"xview_train": ["a", "b", "c", "gone"], "xview_val": ["b"]},
        "annotations": [
            {"frame_dir": "a", "label": 3, "keypoint": three, "total_frames": 10},
            {"frame_dir": "b", "label": 4, "keypoint": one, "total_frames": 400},
            {
                "frame_dir": "c",
                "label": 5,
                "keypoint": np.zeros((1, 10, 17, 2)),
                "total_frames": 10,
            },
        ],
    }
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    split = layouts.PysklSplit(path, "xview_train", normalize=False)
    assert split.names == ["a", "b"] and split.labels == [3, 4]
    assert split.missing == [(f"{path}::gone", "no annotation")]
    assert split.unreadable[0][0] == f"{path}::c" and "(M, T, 25, 3)" in split.unreadable[0][1]
    a = split.joint(0)
    assert a.shape == (3, 300, 25, 2)
    np.testing.assert_array_equal(a[:, :10, :, 0], three[0].astype(np.float32).transpose(2, 0, 1))
    np.testing.assert_array_equal(a[:, 10:20], a[:, :10])  # repeat-padded
    np.testing.assert_array_equal(split.joint(1)[..., 0], one[0, :300].transpose(2, 0, 1))
    assert not split.joint(1)[..., 1].any()  # the missing second person is zero


def test_prepare_from_skeleton_files_gives_the_sample_and_reports_bad_files(tiny, tmp_path, caplog):
    raw = tmp_path / "raw"
    S.write_skeleton_files(raw, "tiny", seed=0)
    (raw / "S001C001P003R001A007.skeleton").write_text("3\n1\n1 2 3\n")  # corrupt
    listed = sorted(S.missing_skeletons("ntu60"))[0]  # listed: skipped without reading
    shutil.copy(raw / "S001C001P001R001A001.skeleton", raw / f"{listed}.skeleton")
    with caplog.at_level(logging.WARNING, logger="cozoo.data.ntu.prepare"):
        report = prepare(raw, tmp_path / "out", "ntu60", "xsub")
    bad = str(raw / "S001C001P003R001A007.skeleton")
    assert [path for path, _ in report.unreadable] == [bad] and bad in caplog.text
    assert report.missing_listed == 1 and report.counts == {"train": 18, "val": 12}
    root = tmp_path / "out" / "ntu60" / "xsub"
    for subset in ("train", "val"):
        ours, sample = (layouts.AgcnNpySplit(r, subset) for r in (root, tiny))
        assert ours.names == sample.names and ours.labels == sample.labels
        np.testing.assert_allclose(_read_all(ours), _read_all(sample), atol=1e-5)
    assert not list(root.parent.glob(".tmp-*"))
    # --missing replaces the shipped list
    (tmp_path / "none.txt").write_text("")
    again = prepare(raw, tmp_path / "out2", "ntu60", "xsub", missing=tmp_path / "none.txt")
    assert again.missing_listed == 0 and again.counts["train"] == 19


def test_modality_files_and_on_the_fly_modalities_agree(tiny, tmp_path):
    root = tmp_path / "ntu60" / "xview"
    root.mkdir(parents=True)
    for name in ("val_data_joint.npy", "val_label.pkl"):
        shutil.copy(tiny / name, root / name)
    joint = np.load(root / "val_data_joint.npy")
    computed = layouts.AgcnNpySplit(root, "val")
    for modality in ("bone", "joint_motion", "bone_motion", "joint_bone"):
        np.save(root / f"val_data_{modality}.npy", features.to_modality(joint, modality, NTU))
    stored = layouts.AgcnNpySplit(root, "val")
    assert set(stored.files) == set(features.MODALITIES)
    for modality in features.MODALITIES:
        np.testing.assert_array_equal(stored.get(1, modality), computed.get(1, modality))
    # a broken modality file is reported with its path and skipped (computed instead)
    np.save(root / "val_data_bone.npy", np.zeros((2, 3, 300, 25, 2), np.float32))
    report = layouts.scan(tmp_path, "ntu60", "xview", "test", modality="bone")
    assert report.unreadable[0][0] == str(root / "val_data_bone.npy")
    assert "expected shape" in report.unreadable[0][1] and report.layout == "agcn_npy"
    np.testing.assert_array_equal(report.source.get(1, "bone"), computed.get(1, "bone"))


# ---- the data module ----------------------------------------------------------------------------
@pytest.mark.parametrize("modality", list(features.MODALITIES))
def test_datamodule_batches_for_every_modality(tiny, cache, modality):
    dm = NTUDataModule(
        None, modality=modality, frames=32, batch_size=4, cache_dir=str(cache), sample_size="tiny"
    )
    batch = next(iter(dm.val_dataloader()))
    channels = 6 if modality == "joint_bone" else 3
    assert batch[NTUDataModule.input_key].shape == (4, channels, 32, 25, 2)
    assert batch["skeleton"].dtype == torch.float32 and batch["label"].dtype == torch.int64
    assert len(batch["name"]) == 4 and batch["index"].tolist() == [0, 1, 2, 3]
    assert dm.num_classes == 6 and dm.has_split("test")


def test_datamodule_without_root_uses_the_sample_loudly(cache, caplog):
    dm = NTUDataModule(None, sample_size="tiny", cache_dir=str(cache), batch_size=2)
    with caplog.at_level(logging.WARNING, logger="cozoo.data.ntu.datamodule"):
        dm.prepare_data()
    assert "NO data.root GIVEN: USING A GENERATED SAMPLE, NOT NTU RGB+D" in caplog.text
    assert "6 motion classes" in caplog.text and "turning left" in caplog.text
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 18 and dm.skipped["val"]["unreadable"] == 0


def test_datamodule_reads_a_real_root_layout_with_ntu_class_names(tiny, tmp_path):
    for sub in ("ntu60/xsub", "ntu120/xset"):
        shutil.copytree(tiny, tmp_path / sub)
    dm = NTUDataModule(str(tmp_path), benchmark="ntu120", split="xset", batch_size=3)
    batch = next(iter(dm.test_dataloader()))
    assert batch["skeleton"].shape == (3, 3, 300, 25, 2)
    assert dm.num_classes == 120 and dm.class_names[0] == "drink water"
    assert dm.source == ("agcn_npy", tmp_path / "ntu120" / "xset")
    direct = NTUDataModule(str(tmp_path / "ntu60" / "xsub"), layout="agcn_npy")
    assert direct.source[1] == tmp_path / "ntu60" / "xsub" and direct.num_classes == 60


def test_from_protocol_and_bad_arguments():
    dm = NTUDataModule.from_protocol(SkeletonInput(frames=100, channels=6, modality="joint_bone"))
    assert dm.hparams.frames == 100 and dm.hparams.modality == "joint_bone"
    with pytest.raises(ValueError, match="25-joint"):
        NTUDataModule.from_protocol(SkeletonInput(joints=18, graph="kinetics"))
    with pytest.raises(ValueError, match="channels"):
        NTUDataModule.from_protocol(SkeletonInput(channels=6))
    with pytest.raises(ValueError, match="ntu60 has the splits"):
        NTUDataModule(None, benchmark="ntu60", split="xset")
    with pytest.raises(ValueError, match="modality must be one of"):
        NTUDataModule(None, modality="rgb")
    with pytest.raises(ValueError, match="layout must be"):
        NTUDataModule(None, layout="csv")


def test_bad_inputs_name_the_path_and_expected_vs_got(tiny, tmp_path):
    root = tmp_path / "ntu60" / "xsub"
    root.mkdir(parents=True)
    shutil.copy(tiny / "val_data_joint.npy", root / "val_data_joint.npy")
    with pytest.raises(FileNotFoundError, match=str(root / "val_label.pkl")):
        NTUDataModule(str(tmp_path)).setup("validate")
    shutil.copy(tiny / "val_label.pkl", root / "val_label.pkl")
    np.save(root / "val_data_joint.npy", np.zeros((12, 3, 300, 18, 2), np.float32))
    with pytest.raises(NTUFormatError) as info:
        NTUDataModule(str(tmp_path)).setup("validate")
    message = str(info.value)
    assert str(root / "val_data_joint.npy") in message
    assert "expected shape (12, 3, T, 25, 2) float32, got (12, 3, 300, 18, 2)" in message
    with pytest.raises(FileNotFoundError, match="looked for"):
        NTUDataModule(str(tmp_path / "nothing")).setup("validate")
    (root / "val_label.pkl").write_bytes(pickle.dumps(print))  # a global: refused
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        NTUDataModule(str(tmp_path)).setup("validate")


def test_cli_sample_and_scan(cache, capsys):
    assert ntu_main(["sample", "--cache-dir", str(cache), "--size", "tiny"]) == 0
    root = capsys.readouterr().out.strip()
    assert ntu_main(["scan", root, "--benchmark", "ntu60", "--split", "xsub"]) == 0
    assert "18 ok" in capsys.readouterr().out
