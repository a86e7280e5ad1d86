"""Kinetics data: listing, pre-flight scan, PyAV decoding, clip protocol, data module, transforms
and the generated sample.

Videos are written with PyAV into ``tmp_path``; each frame carries its own index as a binary
code (8 black/white stripes), so the tests can read back *which* frames a clip holds.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from cozoo.data import kinetics as K
from cozoo.data import samples as S
from cozoo.data.transforms import PROTOCOLS, clip_transform, uniform_indices

W, H = 64, 48  # coded frames: 8 stripes of 8 px


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def coded_frames(n: int) -> np.ndarray:
    """``(n, H, W, 3)`` uint8; frame k shows the bits of k as 8 black/white vertical stripes."""
    bits = (np.arange(n)[:, None] >> np.arange(8)[None]) & 1  # (n, 8)
    stripes = np.repeat(bits * 255, W // 8, axis=1).astype(np.uint8)  # (n, W)
    return np.broadcast_to(stripes[:, None, :, None], (n, H, W, 3)).copy()


def codes_of(frames: np.ndarray) -> List[int]:
    """Frame indices written by :func:`coded_frames`, read back from ``(T, H, W, 3)`` uint8."""
    centres = np.arange(8) * 8 + 4
    bits = frames[:, H // 2, centres, :].mean(-1) > 128  # (T, 8)
    return [int((b * (1 << np.arange(8))).sum()) for b in bits]


def write_video(path: Path, n: int, fps: int = 30, codec: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    S.encode_mp4(path, coded_frames(n), fps, codec)
    return path


def write_csv(path: Path, rows: List[Dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(S.KINETICS_CSV_HEADER))
        writer.writeheader()
        writer.writerows(rows)


def row(label: str, yid: str, split: str, start: int = 0) -> Dict[str, str]:
    return dict(label=label, youtube_id=yid, time_start=start, time_end=start + 10, split=split)


def stem(yid: str, start: int = 0) -> str:
    return f"{yid}_{start:06d}_{start + 10:06d}"


# --------------------------------------------------------------------------------------------
# A tiny Kinetics-layout root
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kin(tmp_path_factory) -> Dict[str, Path]:
    """train: 4 good videos (one at 15 fps, one 5 s long), one corrupt file, one CSV row without
    a file; val: 2 videos of 40 frames. Classes ``a`` and ``b``."""
    root = tmp_path_factory.mktemp("k400")
    p: Dict[str, Path] = {"root": root}
    p["v60"] = write_video(root / "train" / "a" / f"{stem('aaaaaaaaaaa')}.mp4", 60)
    p["v150"] = write_video(root / "train" / "a" / f"{stem('bbbbbbbbbbb')}.mp4", 150)
    p["v90"] = write_video(root / "train" / "b" / f"{stem('ccccccccccc')}.mp4", 90)
    p["v15fps"] = write_video(root / "train" / "b" / f"{stem('ddddddddddd')}.mp4", 45, fps=15)
    p["corrupt"] = root / "train" / "a" / f"{stem('eeeeeeeeeee')}.mp4"
    p["corrupt"].write_bytes(np.random.default_rng(0).bytes(4096))
    p["missing"] = root / "train" / "b" / f"{stem('fffffffffff')}.mp4"
    write_csv(
        root / "annotations" / "train.csv",
        [
            row("a", "aaaaaaaaaaa", "train"),
            row("a", "bbbbbbbbbbb", "train"),
            row("b", "ccccccccccc", "train"),
            row("b", "ddddddddddd", "train"),
            row("a", "eeeeeeeeeee", "train"),
            row("b", "fffffffffff", "train"),
        ],
    )
    p["val_a"] = write_video(root / "val" / "a" / f"{stem('ggggggggggg')}.mp4", 40)
    p["val_b"] = write_video(root / "val" / "b" / f"{stem('hhhhhhhhhhh')}.mp4", 40)
    write_csv(
        root / "annotations" / "validate.csv",
        [row("a", "ggggggggggg", "val"), row("b", "hhhhhhhhhhh", "val")],
    )
    return p


def identity_clips(paths: List[Path], **kw) -> K.KineticsClips:
    records = [K.VideoRecord(str(p), 0, "a") for p in paths]
    return K.KineticsClips(records, transform=lambda x: x, **kw)


# --------------------------------------------------------------------------------------------
# Listing and scan
# --------------------------------------------------------------------------------------------
def test_scan_reports_missing_and_unreadable_by_path(kin, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="cozoo.data.kinetics"):
        rep = K.scan(kin["root"], "train", cache_dir=tmp_path)
    assert rep.layout == "kinetics-csv" and rep.class_names == ["a", "b"]
    assert rep.counts == {"listed": 6, "ok": 4, "missing": 1, "unreadable": 1}
    assert [p for p, _ in rep.missing] == [str(kin["missing"])]
    assert [p for p, _ in rep.unreadable] == [str(kin["corrupt"])]
    assert str(kin["missing"]) in caplog.text and str(kin["corrupt"]) in caplog.text
    labels = {Path(r.path).name: r.label for r in rep.videos}
    assert labels[kin["v60"].name] == 0 and labels[kin["v90"].name] == 1

    # a second scan answers from the cache (files unchanged), with the same result
    monkeypatch.setattr(K, "probe_video", lambda *a, **k: pytest.fail("probed again"))
    assert K.scan(kin["root"], "train", cache_dir=tmp_path).counts == rep.counts


def test_scan_command_line(kin, capsys):
    status = K.main(["scan", str(kin["root"]), "--split", "train", "--no-cache"])
    out = capsys.readouterr().out
    assert status == 1  # problems found
    assert "6 listed, 4 ok, 1 missing, 1 unreadable" in out
    assert str(kin["missing"]) in out and str(kin["corrupt"]) in out


def test_other_layouts(kin, tmp_path):
    # plain class folders (pytorchvideo LabeledVideoPaths.from_directory)
    folders = tmp_path / "folders"
    for split, name in (("train", "v60"), ("train", "v90"), ("val", "val_a")):
        src = kin[name]
        dst = folders / split / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    lst = K.list_split(folders, "train")
    assert lst.layout == "folders" and lst.class_names == ["a", "b"]
    assert sorted(r.label for r in lst.records) == [0, 1] and not lst.missing

    # "<path> <label>" lists (pytorchvideo LabeledVideoPaths.from_csv)
    plist = tmp_path / "plist"
    (plist / "clips").mkdir(parents=True)
    (plist / "clips" / "x.mp4").write_bytes(kin["v60"].read_bytes())
    (plist / "train.csv").write_text("clips/x.mp4 1\nclips/nope.mp4 0\n")
    lst = K.list_split(plist, "train")
    assert lst.layout == "path-list" and lst.class_names == ["0", "1"]
    assert [r.label for r in lst.records] == [1] and len(lst.missing) == 1

    # flat split folder + annotation CSV (cvdfoundation download before arranging by class)
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    (flat / "val" / kin["val_b"].name).write_bytes(kin["val_b"].read_bytes())
    write_csv(flat / "annotations" / "val.csv", [row("b", "hhhhhhhhhhh", "val")])
    lst = K.list_split(flat, "validate")
    assert lst.layout == "kinetics-csv" and [r.label_name for r in lst.records] == ["b"]

    with pytest.raises(FileNotFoundError, match="no 'test' split"):
        K.list_split(kin["root"], "test")


# --------------------------------------------------------------------------------------------
# Decoding and the clip protocol (spec §5)
# --------------------------------------------------------------------------------------------
def test_read_frames_resamples_to_30fps(kin):
    codes = codes_of(K.read_frames(kin["v60"], lambda n: torch.arange(n)))
    assert codes == list(range(60))
    codes = codes_of(K.read_frames(kin["v15fps"], lambda n: torch.arange(n)))
    assert len(codes) == 90  # 3 s at 30 fps
    assert codes[::2] == list(range(45)) and codes == sorted(codes)  # every frame shown twice


def test_clip_indices_centre_and_last_frame_repeat(kin, tmp_path):
    # centred window of 4 × 5 = 20 frames in 60: start 20, linspace(0, 19, 4) -> 0 6 12 19
    assert K.clip_indices(60, 4, 5).tolist() == [20, 26, 32, 39]
    # window longer than the video: start 0, the last frame repeats
    assert K.clip_indices(60, 8, 10).tolist() == [0, 11, 22, 33, 45, 56, 59, 59]

    ds = identity_clips([kin["v60"]], frames=8, sampling_rate=10)
    assert codes_of(ds[0]["video"]) == [0, 11, 22, 33, 45, 56, 59, 59]
    # 5 s video: the window starts at 2.2 s, read after a real seek (key frame every 12 frames)
    ds = identity_clips([kin["v150"]], frames=4, sampling_rate=5)
    assert codes_of(ds[0]["video"]) == [65, 71, 77, 84]
    # H.264 with B-frames (as Kinetics is encoded), read after a seek
    import av

    try:
        av.codec.Codec("libx264", "w")
    except Exception:
        pytest.skip("no libx264 encoder in this PyAV")
    h264 = write_video(tmp_path / "h264.mp4", 150, codec="libx264")
    assert codes_of(identity_clips([h264], frames=4, sampling_rate=5)[0]["video"]) == [
        65,
        71,
        77,
        84,
    ]
    # training: random start, same spacing, inside the video
    ds = identity_clips([kin["v150"]], frames=4, sampling_rate=5, train=True, clips_per_video=3)
    assert len(ds) == 3
    for i in range(3):
        c = codes_of(ds[i]["video"])
        assert [b - c[0] for b in c] == [0, 6, 12, 19] and 0 <= c[0] <= 130


def test_continual_extension_repeats_last_frame_or_ends_on_the_clip(kin):
    # 12 × 5 = 60 frames from a 40-frame video: from frame 0, the last frame repeated
    ds = identity_clips([kin["val_a"]], frames=12, sampling_rate=5)
    assert codes_of(ds[0]["video"]) == [0, 5, 10, 16, 21, 26, 32, 37, 39, 39, 39, 39]
    # "end" alignment: the last 4 frames are exactly the protocol's centred clip
    ds = identity_clips([kin["v150"]], frames=8, sampling_rate=5, align="end", end_frames=4)
    assert codes_of(ds[0]["video"]) == [45, 50, 55, 60, 65, 71, 77, 84]
    # a video with too little before its centred clip [10, 16, 22, 29]: the window starts at the
    # first frame instead of repeating it (a frozen picture that the continual prediction at the
    # last frame would mostly depend on: the generated sample's continual top-1 was at chance)
    ds = identity_clips([kin["val_a"]], frames=8, sampling_rate=5, align="end", end_frames=4)
    assert codes_of(ds[0]["video"]) == [0, 5, 10, 15, 20, 26, 32, 39]


def test_end_aligned_indices_repeat_no_frame_but_the_last():
    assert K.end_aligned_indices(150, 8, 4, 5).tolist() == [45, 50, 55, 60, 65, 71, 77, 84]
    assert K.end_aligned_indices(40, 8, 4, 5).tolist() == [0, 5, 10, 15, 20, 26, 32, 39]
    # longer than the video: from frame 0, only the last frame repeats
    assert K.end_aligned_indices(30, 8, 4, 5).tolist() == [0, 5, 10, 15, 20, 26, 29, 29]
    for n in range(1, 120):
        idx = K.end_aligned_indices(n, 12, 4, 3)
        assert int(idx[0]) == max(0, int(K.clip_indices(n, 4, 3)[0]) - 8 * 3)
        steps = idx.diff()
        assert (steps >= 0).all() and int(idx[-1]) <= n - 1
        repeated = (steps == 0).nonzero().flatten().tolist()
        assert all(int(idx[i + 1]) == n - 1 for i in repeated)  # only the last frame repeats


# --------------------------------------------------------------------------------------------
# Data module
# --------------------------------------------------------------------------------------------
def small_module(kin, tmp_path, **kw) -> K.KineticsDataModule:
    args = dict(frames=4, sampling_rate=5, short_side=32, crop=32, batch_size=2)
    return K.KineticsDataModule(str(kin["root"]), cache_dir=str(tmp_path), **{**args, **kw})


def test_datamodule_batches_skip_bad_files(kin, tmp_path, caplog):
    dm = small_module(kin, tmp_path)
    with caplog.at_level(logging.WARNING, logger="cozoo.data.kinetics"):
        dm.setup("fit")
    assert str(kin["missing"]) in caplog.text and str(kin["corrupt"]) in caplog.text
    assert dm.num_classes == 2 and dm.class_names == ["a", "b"]
    assert dm.skipped["train"] == {"missing": 1, "unreadable": 1, "failed": 0}

    batches = list(dm.train_dataloader())
    assert sum(len(b["label"]) for b in batches) == 4  # the two bad videos are skipped
    b = batches[0]
    assert b["video"].shape == (2, 3, 4, 32, 32) and b["video"].dtype == torch.float32
    assert b["label"].dtype == torch.int64 and b["video_index"].dtype == torch.int64
    assert isinstance(b["path"], list) and all(isinstance(p, str) for p in b["path"])
    # black / white stripes normalised with mean 0.45, std 0.225
    lo, hi = (0 - 0.45) / 0.225, (1 - 0.45) / 0.225
    assert b["video"].min().item() == pytest.approx(lo, abs=0.1)
    assert b["video"].max().item() == pytest.approx(hi, abs=0.1)

    v = next(iter(dm.val_dataloader()))
    assert v["video"].shape == (2, 3, 4, 32, 32) and v["label"].tolist() == [0, 1]


def test_datamodule_continual_frames(kin, tmp_path):
    dm = small_module(kin, tmp_path, continual_frames=12)
    dm.setup("validate")
    video = next(iter(dm.val_dataloader()))["video"]
    assert video.shape == (2, 3, 12, 32, 32)
    for t in (-4, -3, -2):  # 40-frame videos: the last 4 frames are the last frame repeated
        assert torch.equal(video[:, :, t], video[:, :, -1])
    assert not torch.equal(video[:, :, -5], video[:, :, -1])

    # "end" alignment: the clip-mode view (the last `frames` frames) is the protocol clip
    plain = small_module(kin, tmp_path)
    plain.setup("validate")
    end = small_module(kin, tmp_path, continual_frames=6, continual_align="end")
    end.setup("validate")
    clip = next(iter(plain.val_dataloader()))["video"]
    long = next(iter(end.val_dataloader()))["video"]
    assert long.shape[2] == 6 and torch.equal(long[:, :, -4:], clip)


def test_decode_failure_while_loading_is_replaced_and_counted(kin, tmp_path, caplog):
    dm = small_module(kin, tmp_path, scan="off")  # the corrupt file gets past the listing
    dm.setup("fit")
    ds = dm.datasets["train"]
    bad = next(i for i, r in enumerate(ds.records) if r.path == str(kin["corrupt"]))
    with caplog.at_level(logging.WARNING, logger="cozoo.data.kinetics"):
        items = [ds[i] for i in range(len(ds))]
    assert str(kin["corrupt"]) in caplog.text
    assert items[bad]["path"] != str(kin["corrupt"])
    assert items[bad]["video_index"] == (bad + 1) % len(ds)  # deterministic replacement
    assert dm.skipped["train"] == {"missing": 1, "unreadable": 0, "failed": 1}


def test_hyperparameters_are_primitives(kin, tmp_path):
    omegaconf = pytest.importorskip("omegaconf")
    dm = small_module(kin, tmp_path, mean=omegaconf.ListConfig([0.5, 0.5, 0.5]))
    path = tmp_path / "hp.pt"
    torch.save(dict(dm.hparams), path)
    hp = torch.load(path, weights_only=True)
    assert hp["mean"] == (0.5, 0.5, 0.5) and hp["frames"] == 4 and hp["root"] == str(kin["root"])
    assert K.KineticsDataModule(**hp).hparams == dm.hparams
    proto = K.KineticsDataModule.from_protocol(PROTOCOLS["cox3d_s"], root=str(kin["root"]))
    assert (proto.hparams.frames, proto.hparams.sampling_rate, proto.hparams.crop) == (13, 6, 160)


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------
def test_protocol_table_matches_spec():
    expect = {  # spec/video-models.md §5
        "cox3d_s": (13, 6, 160),
        "cox3d_m": (16, 5, 224),
        "cox3d_l": (16, 5, 312),
        "coslow_8x8": (8, 8, 256),
        "coi3d": (8, 8, 224),
        "i3d": (8, 8, 224),
    }
    for name, (frames, rate, side) in expect.items():
        p = PROTOCOLS[name]
        assert (p["frames"], p["sampling_rate"], p["short_side"], p["crop"]) == (
            frames,
            rate,
            side,
            side,
        )
    assert (
        PROTOCOLS["cox3d_m"]["mean"] == (0.45,) * 3 and PROTOCOLS["cox3d_m"]["std"] == (0.225,) * 3
    )
    assert PROTOCOLS["i3d"]["mean"] == (0.485, 0.456, 0.406)


def test_eval_transform_shapes_and_values():
    def spatial(name: str) -> dict:
        return {k: v for k, v in PROTOCOLS[name].items() if k != "sampling_rate"}

    tf = clip_transform(**spatial("cox3d_m"))
    clip = np.zeros((80, 256, 340, 3), np.uint8)
    clip[..., 170:, :] = 255  # left half black, right half white
    clip[:, 0, 0, 0] = np.arange(80)  # frame index in a corner pixel
    out = tf(clip)
    assert out.shape == (3, 16, 224, 224) and out.dtype == torch.float32
    lo, hi = (0 - 0.45) / 0.225, (1 - 0.45) / 0.225
    # 340 x 256 -> 297 x 224 (short side 224, long side floored), centre crop from column 36:
    # the edge at 170 * 224 / 256 = 148.75 lands at column 112.75 of the crop
    assert torch.allclose(out[:, :, :, :112], torch.tensor(lo))
    assert torch.allclose(out[:, :, :, 114:], torch.tensor(hi))
    # uniform temporal subsample == linspace(0, T - 1, frames)
    assert uniform_indices(80, 16).tolist() == torch.linspace(0, 79, 16).long().tolist()
    # (T, 3, H, W) uint8 input is accepted too, and T == frames keeps every frame
    same = tf(torch.from_numpy(clip[uniform_indices(80, 16).numpy()]).permute(0, 3, 1, 2))
    assert torch.equal(same, out)

    i3d = clip_transform(**spatial("i3d"))(np.zeros((8, 224, 224, 3), np.uint8))
    expect = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(i3d.mean(dim=(1, 2, 3)), expect)


def test_train_transform_random_crop():
    tf = clip_transform(frames=13, short_side=160, crop=160, train=True)
    a = tf(np.random.default_rng(0).integers(0, 255, (78, 180, 320, 3), dtype=np.uint8))
    assert a.shape == (3, 13, 160, 160)


# --------------------------------------------------------------------------------------------
# The generated sample
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory) -> Path:
    return S.ensure_sample(tmp_path_factory.mktemp("cache"), "tiny", seed=0)


QUICK = S.SampleSpec(min_frames=12, max_frames=16)  # short videos: generation mechanics only


@pytest.fixture(scope="module")
def quick_sample(tmp_path_factory) -> Path:
    return S.ensure_sample(tmp_path_factory.mktemp("quick"), "tiny", seed=0, spec=QUICK)


def tree(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "SAMPLE.json"
    }


def test_sample_is_in_the_kinetics_layout(tiny_sample):
    assert S.is_complete(tiny_sample)
    train, val, test = S.SAMPLE_SIZES["tiny"]
    for split, csv_name, per_class in (
        ("train", "train.csv", train),
        ("val", "validate.csv", val),
        ("test", "test.csv", test),
    ):
        with open(tiny_sample / "annotations" / csv_name, newline="") as f:
            lines = list(csv.reader(f))
        assert lines[0] == ["label", "youtube_id", "time_start", "time_end", "split"]
        assert len(lines) - 1 == per_class * len(S.SAMPLE_CLASSES)
        for label, yid, start, end, split_value in lines[1:]:
            assert split_value == split and int(end) - int(start) == 10
            name = f"{yid}_{int(start):06d}_{int(end):06d}.mp4"
            assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}_\d{6}\.mp4", name)
            assert (tiny_sample / split / label / name).is_file()
        rep = K.scan(tiny_sample, split, use_cache=False)
        assert rep.counts["ok"] == per_class * 6 and rep.class_names == list(S.SAMPLE_CLASSES)
    import av

    with av.open(str(next((tiny_sample / "val").rglob("*.mp4")))) as c:
        s = c.streams.video[0]
        assert (s.width, s.height, s.average_rate, s.format.name) == (80, 64, 30, "yuv420p")


def test_sample_is_deterministic(quick_sample, tmp_path):
    again = S.ensure_sample(tmp_path / "a", "tiny", seed=0, spec=QUICK)
    assert tree(again) == tree(quick_sample)  # byte for byte
    other = S.ensure_sample(tmp_path / "b", "tiny", seed=1, spec=QUICK)
    assert set(tree(other)) != set(tree(quick_sample))


def test_interrupted_generation_is_never_taken_for_a_sample(quick_sample, tmp_path, caplog):
    cache = tmp_path / "cache"

    def crash(i: int, path: Path) -> None:
        if i == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        S.ensure_sample(cache, "tiny", seed=0, spec=QUICK, on_video=crash)
    root = S.sample_root(cache, "tiny", 0)
    assert not root.exists() and not list(cache.glob(".tmp-*"))

    # a process killed mid-way leaves a temporary folder; a half-copied sample has no marker
    stale = cache / ".tmp-tiny-seed0-killed"
    stale.mkdir()
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    (root / "annotations" / "train.csv").write_text("label,youtube_id\n")
    with caplog.at_level(logging.WARNING, logger="cozoo.data.samples"):
        assert S.ensure_sample(cache, "tiny", seed=0, spec=QUICK) == root
    assert "incomplete or outdated generated sample" in caplog.text
    assert S.is_complete(root, QUICK) and not stale.exists()
    assert tree(root) == tree(quick_sample)

    # a truncated video makes the sample incomplete again
    victim = next(root.rglob("*.mp4"))
    victim.write_bytes(victim.read_bytes()[:100])
    assert not S.is_complete(root)
    S.ensure_sample(cache, "tiny", seed=0, spec=QUICK)
    assert tree(root) == tree(quick_sample)
    # so does another generator version or geometry
    assert not S.is_complete(quick_sample, S.SampleSpec())


def test_cache_dir_honours_cozoo_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COZOO_CACHE", str(tmp_path))
    assert S.default_cache_dir() == tmp_path / "kinetics_sample" / "v1"
    assert S.sample_root(None, "small", 3) == tmp_path / "kinetics_sample" / "v1" / "small-seed3"


def test_datamodule_without_root_uses_the_sample_loudly(tiny_sample, caplog):
    dm = K.KineticsDataModule(
        None,
        frames=8,
        sampling_rate=5,
        short_side=64,
        crop=64,
        batch_size=4,
        cache_dir=str(tiny_sample.parent),
        sample_size="tiny",
        continual_frames=20,
    )
    with caplog.at_level(logging.WARNING, logger="cozoo.data.kinetics"):
        dm.prepare_data()
        dm.setup("fit")
    assert "NO data.root GIVEN: USING A GENERATED SAMPLE" in caplog.text
    assert str(tiny_sample) in caplog.text
    assert dm.is_generated_sample and dm.data_root == tiny_sample and dm.num_classes == 6
    b = next(iter(dm.train_dataloader()))
    assert b["video"].shape == (4, 3, 8, 64, 64)
    v = next(iter(dm.val_dataloader()))
    assert v["video"].shape == (4, 3, 20, 64, 64)


# ---- the classes can only be told apart in time ----------------------------------------------
def _object_features(frame: np.ndarray) -> np.ndarray:
    """Single-frame features of the rectangle: circular centroid (x, y), area, orientation."""
    bg = np.median(frame.reshape(-1, 3), axis=0)
    mask = np.linalg.norm(frame.astype(np.float32) - bg, axis=-1) > 35
    ys, xs = np.nonzero(mask)
    h, w = frame.shape[:2]
    ax, ay = 2 * np.pi * (xs + 0.5) / w, 2 * np.pi * (ys + 0.5) / h
    cx = np.arctan2(np.sin(ax).mean(), np.cos(ax).mean()) * w / (2 * np.pi)
    cy = np.arctan2(np.sin(ay).mean(), np.cos(ay).mean()) * h / (2 * np.pi)
    dx = (xs + 0.5 - cx + w / 2) % w - w / 2  # toroidal offsets from the centroid
    dy = (ys + 0.5 - cy + h / 2) % h - h / 2
    theta = 0.5 * np.arctan2(2 * (dx * dy).mean(), (dx * dx).mean() - (dy * dy).mean())
    return np.array([cx % w, cy % h, mask.mean(), theta])


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Fit class means on even samples, classify odd samples (standardised features)."""
    f = (features - features.mean(0)) / (features.std(0) + 1e-9)
    fit, ev = np.arange(len(f)) % 2 == 0, np.arange(len(f)) % 2 == 1
    means = np.stack([f[fit & (labels == c)].mean(0) for c in range(6)])
    pred = np.argmin(((f[ev][:, None] - means[None]) ** 2).sum(-1), axis=1)
    return float((pred == labels[ev]).mean())


def test_sample_classes_are_only_separable_in_time():
    static, dynamic, labels = [], [], []
    step = 5  # the sampling rate of CoX3D-M
    # one rectangle per video (a sample video holds several, all moving alike) to measure it
    one = S.SampleSpec(min_frames=46, max_frames=46, min_objects=1, max_objects=1)
    for label in range(len(S.SAMPLE_CLASSES)):
        for k in range(30):
            rng = np.random.default_rng((99, label, k))
            video = S.render_video(label, rng, one)
            feats = np.stack([_object_features(f) for f in video[::step]])  # (T, 4)
            x, y, area, theta = feats.T
            w, h = video.shape[2], video.shape[1]
            t = int(rng.integers(0, len(feats)))
            static.append(
                [
                    np.cos(2 * np.pi * x[t] / w),
                    np.sin(2 * np.pi * x[t] / w),
                    np.cos(2 * np.pi * y[t] / h),
                    np.sin(2 * np.pi * y[t] / h),
                    area[t],
                    np.cos(2 * theta[t]),
                    np.sin(2 * theta[t]),
                ]
            )
            vx = np.median((np.diff(x) + w / 2) % w - w / 2)
            rot = np.median((np.diff(theta) + np.pi / 2) % np.pi - np.pi / 2)
            grow = np.median(np.diff(area)) / area.mean()
            dynamic.append([vx, rot, grow])
            labels.append(label)
    labels_arr = np.array(labels)

    def class_mean_z(features: List[List[float]]) -> np.ndarray:
        """Per feature: the largest |class mean - overall mean| in standard errors."""
        f = np.array(features).reshape(6, 30, -1)
        se = f.std(1, ddof=1).mean(0) / np.sqrt(30)
        return (np.abs(f.mean(1) - f.mean((0, 1))) / se).max(0)

    # the per-class means of single frames are equal up to sampling noise; motion is not
    assert class_mean_z(static).max() < 4
    assert (class_mean_z(dynamic) > 20).all()
    assert _nearest_centroid_accuracy(np.array(static), labels_arr) < 0.35  # chance: 1/6
    assert _nearest_centroid_accuracy(np.array(dynamic), labels_arr) > 0.9

    # and each class moves the way its name says (the image y axis points down)
    dyn = np.array(dynamic).reshape(6, -1, 3)
    idx = {n: i for i, n in enumerate(S.SAMPLE_CLASSES)}
    assert (dyn[idx["moving left"], :, 0] < 0).all() and (dyn[idx["moving right"], :, 0] > 0).all()
    assert (dyn[idx["rotating clockwise"], :, 1] > 0).all()
    assert (dyn[idx["rotating counterclockwise"], :, 1] < 0).all()
    assert (dyn[idx["growing"], :, 2] > 0).all() and (dyn[idx["shrinking"], :, 2] < 0).all()
