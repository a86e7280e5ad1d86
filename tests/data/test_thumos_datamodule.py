"""THUMOS14 data: the generated sample (deterministic, learnable), both layouts read to the same
tensors, the data module's batch and video contract, train offsets, and bad files reported and
skipped."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cozoo import safe_pickle
from cozoo.data.thumos import ThumosDataModule, ThumosVideo, evaluated_steps, layouts
from cozoo.data.thumos import sample as S
from cozoo.data.thumos.cli import main as thumos_main
from cozoo.data.thumos.protocol import test_videos as thumos_test_videos
from cozoo.data.thumos.protocol import train_videos
from cozoo.metrics import PerFrameMAP


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("thumos-cache")


@pytest.fixture(scope="module")
def tiny(cache) -> Path:
    return S.ensure_sample(cache, "tiny", seed=0)


@pytest.fixture(scope="module")
def lstr(tmp_path_factory) -> Path:
    return S.write_lstr_sample(tmp_path_factory.mktemp("lstr") / "THUMOS", "tiny", seed=0)


def _dm(**kwargs) -> ThumosDataModule:
    kwargs.setdefault("batch_size", 16)
    return ThumosDataModule(**kwargs)


# ---- the generated sample ----------------------------------------------------------------------
def test_sample_is_the_pickle_layout_and_deterministic(tiny, cache, tmp_path):
    assert tiny == cache / "thumos" / "tiny-kin-seed0" and S.is_complete(
        tiny, "tiny", 0, "kinetics", False
    )
    names = sorted(p.name for p in tiny.iterdir())
    assert names == [
        "SAMPLE.json",
        "data_info_new.json",
        "thumos_kin_test.pickle",
        "thumos_kin_val.pickle",
        "thumos_test_anno.pickle",
        "thumos_val_anno.pickle",
    ]
    feats = safe_pickle.load(tiny / "thumos_kin_val.pickle")
    annos = safe_pickle.load(tiny / "thumos_val_anno.pickle")
    assert list(feats) == list(annos) == train_videos()[:3]
    entry = feats[train_videos()[0]]
    anno = annos[train_videos()[0]]
    length = anno["feature_length"]
    assert entry["rgb"].shape == (length, 2048) and entry["flow"].shape == (length, 2048)
    assert entry["rgb"].dtype == np.float32 and anno["anno"].shape == (length, 22)
    assert (anno["anno"].sum(1) == 1).all()  # one-hot
    labels = anno["anno"].argmax(1)
    assert labels[0] == 0 and labels[-12:].max() == 0  # segments start and stop in background
    assert set(labels) - {0, 21} <= set(S.SAMPLE_ACTIONS)
    again = S.ensure_sample(tmp_path, "tiny", seed=0)
    for name in names[1:]:
        assert (again / name).read_bytes() == (tiny / name).read_bytes()
    other = S.ensure_sample(tmp_path, "tiny", seed=1)
    assert (other / names[2]).read_bytes() != (tiny / names[2]).read_bytes()
    audio = S.sample_videos("tiny", 0, "kinetics", audio=True)["val"][0]
    plain = S.sample_videos("tiny", 0, "kinetics")["val"][0]
    assert audio.parts["audio"].shape[1] == 4096
    np.testing.assert_array_equal(audio.parts["flow"], plain.parts["flow"])


def test_sample_has_every_action_ambiguous_steps_and_is_learnable():
    """A nearest-class-mean on the last step's features (the model's input is a window that
    ends there) beats chance clearly on the test videos of the small sample."""
    videos = S.sample_videos("small", seed=0, features="anet")
    x = {
        s: np.concatenate([np.concatenate(list(v.parts.values()), 1) for v in vs])
        for s, vs in videos.items()
    }
    y = {s: np.concatenate([v.anno for v in vs]).argmax(1) for s, vs in videos.items()}
    assert set(y["val"]) == {0, 21, *S.SAMPLE_ACTIONS} and (y["val"] == 21).sum() >= 5
    classes = [0, *S.SAMPLE_ACTIONS]
    means = np.stack([x["val"][y["val"] == c].mean(0) for c in classes])
    dist = ((x["test"][:, None, :] - means[None]) ** 2).sum(-1)
    logits = torch.full((len(dist), 22), -1e4)
    logits[:, classes] = torch.from_numpy(-(dist - dist.min(1, keepdims=True)) / 100.0).float()
    target = torch.eye(22)[y["test"]]
    mask = torch.cat([evaluated_steps(torch.from_numpy(v.anno)) for v in videos["test"]])
    metric = PerFrameMAP(protocol="oadtr")
    metric.update(logits[mask], target[mask])
    accuracy = (logits.argmax(1) == torch.from_numpy(y["test"]))[torch.from_numpy(y["test"] != 21)]
    assert float(metric.compute()) > 0.8 and float(accuracy.float().mean()) > 0.9
    # chance: random scores give a mAP near the positives' share (well under 0.2)
    chance = PerFrameMAP(protocol="oadtr")
    chance.update(
        torch.randn(int(mask.sum()), 22, generator=torch.Generator().manual_seed(0)), target[mask]
    )
    assert float(chance.compute()) < 0.3


# ---- both layouts ------------------------------------------------------------------------------
def test_both_layouts_read_to_the_same_videos(tiny, lstr):
    assert layouts.find_source(tiny) == ("oadtr_pickle", tiny)
    assert layouts.find_source(lstr.parent) == ("lstr_npy", lstr)
    for fsplit in ("val", "test"):
        a = layouts.open_split("oadtr_pickle", tiny, fsplit, "kinetics", False)
        b = layouts.open_split("lstr_npy", lstr, fsplit, "kinetics", False)
        assert a.names == b.names and len(a) > 0 and a.feature_dim == b.feature_dim == 4096
        for i in range(len(a)):
            np.testing.assert_array_equal(a.targets(i), b.targets(i))
            np.testing.assert_array_equal(a.features(i), b.features(i))
            assert a.features(i, 5, 69).shape == (64, 4096)
    pickle_dm, npy_dm = _dm(root=str(tiny)), _dm(root=str(lstr.parent))
    assert npy_dm.source == ("lstr_npy", lstr) and npy_dm.feature_dim == 4096
    for split in ("train", "test"):
        batches = [next(iter(dm.dataloader(split, shuffle=False))) for dm in (pickle_dm, npy_dm)]
        for key in ("features", "target", "future", "step"):
            torch.testing.assert_close(batches[0][key], batches[1][key], rtol=0, atol=0)
        assert batches[0]["video"] == batches[1]["video"]
    with pytest.raises(ValueError, match="no audio"):
        layouts.open_split("lstr_npy", lstr, "test", "kinetics", True)


def test_upstream_oadtr_file_names_and_pickle_protocol_5(tiny, tmp_path):
    for name in ("thumos_val_anno.pickle", "thumos_test_anno.pickle", "data_info_new.json"):
        shutil.copy(tiny / name, tmp_path / name)
    for fsplit in ("val", "test"):  # re-pickled with protocol 5, under OadTR's V3 name
        data = safe_pickle.load(tiny / f"thumos_kin_{fsplit}.pickle")
        with open(tmp_path / f"thumos_all_feature_{fsplit}_V3.pickle", "wb") as f:
            pickle.dump(data, f, protocol=5)
    ours = layouts.open_split("oadtr_pickle", tiny, "test", "kinetics", False)
    theirs = layouts.open_split("oadtr_pickle", tmp_path, "test", "kinetics", False)
    assert theirs.feature_path.name == "thumos_all_feature_test_V3.pickle"
    assert theirs.names == ours.names
    np.testing.assert_array_equal(theirs.features(0), ours.features(0))


# ---- the data module's contract ----------------------------------------------------------------
def test_batches_videos_and_class_names(cache, caplog):
    dm = _dm(cache_dir=str(cache), sample_size="tiny")
    with caplog.at_level(logging.WARNING, logger="cozoo.data.thumos.datamodule"):
        dm.prepare_data()
    assert "NO data.root GIVEN" in caplog.text and "THUMOS14" in caplog.text
    assert dm.feature_dim == 4096 and dm.num_classes == 22
    assert dm.class_names[0] == "Background" and dm.class_names[-1] == "Ambiguous"
    batch = next(iter(dm.train_dataloader()))
    b = 16
    assert batch["features"].shape == (b, 4096, 64) and batch["features"].dtype == torch.float32
    assert batch["target"].shape == (b, 22) and batch["target"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (b,)
    assert torch.equal(batch["label"], batch["target"].argmax(1)) and (batch["label"] != 21).all()
    assert batch["future"].shape == (b, 8, 22) and batch["future"].dtype == torch.float32
    assert batch["step"].dtype == torch.int64 and isinstance(batch["video"], list)
    videos = {v.name: v for v in dm.videos("train")}
    assert all(isinstance(v, ThumosVideo) for v in videos.values())
    for k in range(b):  # every item is the window of its video that ends at its step
        v, t = videos[batch["video"][k]], int(batch["step"][k])
        assert v.features.shape[0] == 4096 and v.features.dtype == torch.float32
        torch.testing.assert_close(batch["features"][k], v.features[:, t - 63 : t + 1])
        torch.testing.assert_close(batch["target"][k], v.targets[t])
        torch.testing.assert_close(batch["future"][k], v.targets[t + 1 : t + 9])
    # the test windows are exactly the evaluated steps of the whole videos
    dm.setup("test")
    test = dm.datasets["test"]
    total = sum(int(evaluated_steps(v.targets).sum()) for v in dm.videos("test"))
    assert len(test) == total > 0 and dm.skipped["test"] == {
        "missing": 0,
        "unreadable": 0,
        "failed": 0,
    }


def test_train_offsets_are_deterministic_per_seed(tiny):
    def first_steps(seed):
        dm = _dm(root=str(tiny), seed=seed)
        dm.setup("fit")
        steps = dm.datasets["train"].steps
        return {int(v): int(steps[steps[:, 0] == v, 1].min()) for v in np.unique(steps[:, 0])}

    a, b = first_steps(0), first_steps(0)
    assert a == b and a != first_steps(5)
    dm = _dm(root=str(tiny), seed=0)
    dm.setup("fit")
    assert len(dm.datasets["val"]) > len(dm.datasets["train"]) - 200  # val: offset 0
    assert min(dm.datasets["val"].steps[:, 1]) == 63
    # the train loader drops the last incomplete batch (as OadTR), the others keep it
    train, val = len(dm.datasets["train"]), len(dm.datasets["val"])
    assert len(dm.train_dataloader()) == train // 16 and len(dm.val_dataloader()) == -(-val // 16)


def test_audio_and_anet_widths(cache):
    dm = _dm(cache_dir=str(cache), sample_size="tiny", features="anet", audio=True, batch_size=2)
    assert dm.feature_dim == 2048 + 1024 + 4096
    assert next(iter(dm.val_dataloader()))["features"].shape == (2, 7168, 64)


# ---- bad files ---------------------------------------------------------------------------------
def test_bad_pickles_are_reported_and_skipped(tiny, tmp_path, caplog):
    root = tmp_path / "root"
    shutil.copytree(tiny, root)
    (root / "SAMPLE.json").unlink()
    feats = safe_pickle.load(root / "thumos_kin_val.pickle")
    second, third = train_videos()[1:3]
    feats[second]["flow"] = feats[second]["flow"][:, :100]
    del feats[third]
    with open(root / "thumos_kin_val.pickle", "wb") as f:
        pickle.dump(feats, f)
    data = (root / "thumos_kin_test.pickle").read_bytes()
    (root / "thumos_kin_test.pickle").write_bytes(data[: len(data) // 2])  # truncated
    dm = _dm(root=str(root))
    with caplog.at_level(logging.WARNING, logger="cozoo.data.thumos.layouts"):
        with pytest.raises(FileNotFoundError, match=r"no readable video .*\[val\]"):
            dm.setup("fit")  # train is built first, then val (the truncated test pickle) fails
    report = dm.scan_reports["train"]
    assert len(report.ok) == 1 and report.counts["missing"] == 1
    assert report.counts["unreadable"] == 1
    where, why = report.unreadable[0]
    assert where.endswith(f"thumos_kin_val.pickle::{second}")
    assert "width 100" in why
    assert str(root / "thumos_kin_val.pickle") in caplog.text
    assert str(root / "thumos_kin_test.pickle") in caplog.text and "truncated" in caplog.text
    assert len(dm.datasets["train"]) > 0
    assert dm.skipped["train"] == {"missing": 1, "unreadable": 1, "failed": 0}
    assert dm.split_source("test").unreadable[0][0] == str(root / "thumos_kin_test.pickle")

    # a pickle naming any other global is refused, never run
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(root / "thumos_kin_test.pickle", "wb") as f:
        pickle.dump({thumos_test_videos()[0]: Evil()}, f)
    src = layouts.open_split("oadtr_pickle", root, "test", "kinetics", False)
    assert len(src) == 0 and "UnsafePickleError" in src.unreadable[0][1]
    assert thumos_main(["scan", str(root)]) == 1


def test_missing_and_corrupt_npy_files_are_reported_and_skipped(lstr, tmp_path, capsys):
    root = tmp_path / "THUMOS"
    shutil.copytree(lstr, root)
    first_test, second_test = thumos_test_videos()[:2]
    (root / "flow_kinetics_bninception" / f"{first_test}.npy").unlink()
    first_train = train_videos()[0]
    (root / "target_perframe" / f"{first_train}.npy").write_bytes(b"not an npy")
    dm = _dm(root=str(tmp_path))
    dm.setup("fit")
    assert dm.skipped["train"] == {"missing": 0, "unreadable": 1, "failed": 0}
    assert dm.skipped["val"] == {"missing": 1, "unreadable": 0, "failed": 0}
    bad = dm.scan_reports["train"].unreadable[0][0]
    assert bad == str(root / "target_perframe" / f"{first_train}.npy")
    assert [v.name for v in dm.videos("test")] == [second_test]
    missing = dm.scan_reports["val"].missing[0][0]
    assert missing == str(root / "flow_kinetics_bninception" / f"{first_test}.npy")
    assert thumos_main(["scan", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 missing" in out and "unreadable" in out and "feature dim 4096" in out
    assert thumos_main(["scan", str(lstr)]) == 0
    assert thumos_main(["scan", str(tmp_path / "nowhere")]) == 2


# ---- the recipe groups -------------------------------------------------------------------------
def test_recipe_groups_build_the_data_module(cache):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import cozoo.recipes

    groups = Path(cozoo.recipes.__file__).parent
    cfg = OmegaConf.create(
        {
            "seed": 3,
            "data": OmegaConf.load(groups / "data" / "thumos.yaml"),
            "sample": OmegaConf.load(groups / "sample" / "thumos.yaml"),
            "published": {
                "batch_size": 128,
                "num_workers": 8,
                "features": "kinetics",
                "audio": False,
            },
        }
    )
    cfg.data.cache_dir, cfg.data.sample_size = str(cache), "tiny"
    dm = instantiate(cfg.data)
    assert isinstance(dm, ThumosDataModule) and dm.is_generated_sample
    assert dm.hparams.batch_size == 32 and dm.hparams.seed == 3 and dm.hparams.window == 64
    cfg.data.root = "/data/thumos"  # with a root: the recipe's published settings
    assert cfg.data.batch_size == 128 and cfg.data.num_workers == 8
