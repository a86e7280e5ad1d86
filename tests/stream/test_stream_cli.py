"""The command: the Hydra config composes (defaults and overrides), and one tiny end-to-end run
of ``python -m cozoo.stream`` over two mp4 files written with PyAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

from cozoo.stream.cli import shorthand_argv

REPO = Path(__file__).resolve().parents[2]


def test_the_config_composes_with_overrides():
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        cfg = compose("stream", overrides=["mode=realtime", "inputs=[a.mp4,/dev/video0]", "rows=3"])
        other = compose("stream", overrides=shorthand_argv(["model=cox3d_s", "model.pool_size=2"]))
    assert dict(other.model) == {"name": "cox3d_s", "pool_size": 2}
    assert cfg.model.name == "cox3d_m" and cfg.weights is None and cfg.mode == "realtime"
    assert list(cfg.inputs) == ["a.mp4", "/dev/video0"] and cfg.rows == 3
    assert cfg.annotate is False and cfg.display is True and cfg.topk == 5 and cfg.threads == 1
    assert str(cfg.run_dir).startswith("runs/stream/")


def test_one_tiny_run_end_to_end(tmp_path):
    import numpy as np

    from cozoo.data.kinetics.sample import encode_mp4

    rng = np.random.default_rng(0)
    videos = []
    for name, frames in (("first", 80), ("second", 50)):
        videos.append(tmp_path / f"{name}.mp4")
        encode_mp4(videos[-1], rng.integers(0, 255, (frames, 40, 48, 3), dtype=np.uint8))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [
        "model=cox3d_s",
        f"inputs=[{videos[0]},{videos[1]},{tmp_path / 'nothing.mp4'}]",
        "model.pool_size=2",
        "rows=2",
        "threads=1",
        f"runs_root={tmp_path}",
        f"run_dir={tmp_path / 'out'}",
        "annotate=true",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "cozoo.stream", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RANDOM weights" in done.stderr and "nothing.mp4" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model"] == "cox3d_s" and summary["random_weights"] is True
    assert [s["status"] for s in summary["streams"]] == ["done", "done", "failed"]
    # the sample protocol of recipe cox3d_s: every 2nd frame at 30 fps; delay 29 at P=2
    assert [s["frames"] for s in summary["streams"][:2]] == [40, 25]
    records = (tmp_path / "out" / "first.jsonl").read_text().splitlines()
    assert len(records) == summary["streams"][0]["predictions"] == 40 - 29
    assert json.loads(records[0])["frame"] == 2 * 29
    assert (tmp_path / "out" / "first.png").exists() and not (
        tmp_path / "out" / "second.png"
    ).exists()
    for name in ("first.mp4", "second.mp4", "first.jsonl"):
        assert (tmp_path / "out" / name).exists()


def test_feature_arrays_stream_through_a_detection_model(tmp_path):
    """CoOadTR on per-video feature arrays (L, D): the THUMOS14 class names label the records."""
    import numpy as np

    rng = np.random.default_rng(1)
    for name, steps in (("video_a", 70), ("video_b", 66)):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((steps, 12)).astype(np.float32))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [
        "model=cooadtr_b1",
        f"inputs=[{tmp_path / 'video_a.npy'},{tmp_path / 'video_b.npy'}]",
        "model.feature_dim=12", "model.embed_dim=16", "model.heads=2", "model.ff_dim=16",
        "rows=2", "threads=1", "display=false",
        f"runs_root={tmp_path}", f"run_dir={tmp_path / 'out'}",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "cozoo.stream", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["predictions"] for s in summary["streams"]] == [70 - 63, 66 - 63]
    record = json.loads((tmp_path / "out" / "video_a.jsonl").read_text().splitlines()[0])
    assert record["frame"] == 63
    from cozoo.data.thumos.protocol import CLASS_NAMES

    assert set(json.dumps(record).split('"')) & set(CLASS_NAMES)
