"""Kinetics data: listing, pre-flight scan (and its command line), PyAV decoding, the clip
protocol and the data module on a real Kinetics-layout root.

Videos are written with PyAV into ``tmp_path``; each frame carries its own index as a binary
code (8 black/white stripes), so the tests can read back *which* frames a clip holds.
"""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from cozoo.data import kinetics as K
from cozoo.data.kinetics import preflight
from cozoo.data.kinetics import sample as S
from cozoo.models import get_model_weights

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
    monkeypatch.setattr(preflight, "probe_video", lambda *a, **k: pytest.fail("probed again"))
    assert K.scan(kin["root"], "train", cache_dir=tmp_path).counts == rep.counts


def test_scan_command_line(kin, capsys):
    status = K.main(["scan", str(kin["root"]), "--split", "train", "--no-cache"])
    out = capsys.readouterr().out
    assert status == 1  # problems found
    assert "6 listed, 4 ok, 1 missing, 1 unreadable" in out
    assert str(kin["missing"]) in out and str(kin["corrupt"]) in out


def test_module_runs_as_a_program(kin):
    """``python -m cozoo.data.kinetics`` (the package's ``__main__``) runs the command line."""
    done = subprocess.run(
        [sys.executable, "-m", "cozoo.data.kinetics", "scan", str(kin["root"]), "--split", "val"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 listed, 2 ok, 0 missing, 0 unreadable" in done.stdout
    assert "RuntimeWarning" not in done.stderr


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
# Decoding and the clip protocol (30 fps, centred window, last frame repeated)
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
    proto = K.KineticsDataModule.from_model("cox3d_s", root=str(kin["root"]))
    assert (proto.hparams.frames, proto.hparams.sampling_rate, proto.hparams.crop) == (13, 6, 160)
    assert proto.hparams.mean == (0.45,) * 3 and proto.hparams.std == (0.225,) * 3
    same = K.KineticsDataModule.from_protocol(
        get_model_weights("cox3d_s").DEFAULT.transforms, root=str(kin["root"])
    )
    assert same.hparams == proto.hparams


def test_public_names_keep_importing():
    """The names and modules of ``cozoo.data`` before it became a package of dataset families."""
    import cozoo.data as D
    from cozoo.data import samples, transforms

    for name in D.__all__:
        assert getattr(D, name) is not None, name
    assert D.KineticsDataModule is K.KineticsDataModule and D.scan is K.scan
    assert samples.SampleSpec is S.SampleSpec and samples.ensure_sample is S.ensure_sample
    assert D.SAMPLE_CLASSES == samples.SAMPLE_CLASSES
    assert transforms.clip_transform is D.clip_transform
    for name in K.__all__ + ["main"]:
        assert getattr(K, name) is not None, name
