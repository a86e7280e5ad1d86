"""The generated Kinetics-layout sample: its layout, determinism, atomic writing into the cache,
the data module that reads it without a root, and classes that only motion tells apart."""

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

from cozoo.data import kinetics as K
from cozoo.data.kinetics import sample as S


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
    with caplog.at_level(logging.WARNING, logger="cozoo.data.kinetics.sample"):
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
