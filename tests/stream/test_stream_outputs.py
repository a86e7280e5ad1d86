"""What a run writes: JSONL records per source (unique stems), the summary, the timeline PNG
(also with ground-truth segments), the annotated mp4."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cozoo.plots import Segment, plot_timeline, top_classes
from cozoo.stream import StepArraySource, stream
from cozoo.stream.outputs import write_json_atomic


def test_records_summary_and_timelines(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 4)).astype(np.float32) for n in (10, 6, 8)]
    # two sources share the stem "feats": the second becomes "feats-1"
    sources = [
        StepArraySource("a/feats.npy", array=arrays[0], rate=5.0),
        StepArraySource("b/feats.npy", array=arrays[1], rate=5.0),
        StepArraySource("c/other.npy", array=arrays[2], rate=5.0),
    ]
    summary = stream(tiny_model(), sources, tmp_path, rows=2, topk=3, display=False)
    for stem, n in (("feats", 10), ("feats-1", 6), ("other", 8)):
        lines = (tmp_path / f"{stem}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["frame"] for r in records] == list(range(3, n))
        assert [r["step"] for r in records] == list(range(3, n))
        assert records[0]["time"] == pytest.approx(3 / 5.0)
        top = records[0]["top"]
        assert len(top) == 3 and [t["score"] for t in top] == sorted(
            (t["score"] for t in top), reverse=True
        )
        assert top[0]["label"] == f"c{top[0]['index']}" and 0 < top[0]["score"] <= 1
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["frames"] == 24 and saved["rows"] == 2 and saved["dropped"] == 0
    assert [s["predictions"] for s in saved["streams"]] == [7, 3, 5]
    assert saved["streams"][1]["files"]["jsonl"].endswith("feats-1.jsonl")
    assert saved["step_latency_ms_p95"] >= saved["step_latency_ms_p50"] > 0
    assert not list(tmp_path.glob(".summary.json*"))  # the temporary file was renamed


def test_the_annotated_video_has_a_frame_per_step(tmp_path, tiny_videos):
    import av
    import torch

    from cozoo.models import VideoInput, create_model
    from cozoo.stream import StreamModel, VideoSource

    torch.manual_seed(0)
    net = create_model("cox3d_s", pool_size=2, num_classes=3).eval()
    sm = StreamModel(net, "cox3d_s", "random", VideoInput(4, 2, 32, 32), ["a", "b", "c"])
    source = VideoSource(tiny_videos[0], fps=30, sampling_rate=2)
    summary = stream(sm, [source], tmp_path, annotate=True, display=False)
    assert summary["frames"] == 20
    with av.open(str(tmp_path / "first.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (40, 48, 3)


def test_timeline_with_ground_truth_segments(tmp_path):
    t = np.arange(50) / 10
    scores = np.zeros((50, 4))
    scores[10:30, 2] = 0.9
    scores[:, 1] = 0.2
    assert top_classes(scores, 1) == [2]
    assert top_classes(scores, 2, always=[3]) == [3, 2]
    out = plot_timeline(
        t, scores, tmp_path / "gt.png", class_names=list("wxyz"), segments=[Segment(1, 3, 2)]
    )
    assert out.stat().st_size > 1000


def test_atomic_json_replaces_the_old_file(tmp_path):
    path = write_json_atomic(tmp_path / "s.json", {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2} and len(list(tmp_path.iterdir())) == 1


def test_the_live_table_shows_each_stream(tiny_model):
    from rich.console import Console

    from cozoo.stream.display import LiveDisplay, describe
    from cozoo.stream.scheduler import Sink, StreamStats

    live = LiveDisplay(Sink(), enabled=True, topk=2)
    assert live.enabled is False  # pytest's stdout is not a terminal
    a = StreamStats(0, "cam", "/dev/video0", status="running", row=0, frames=50, dropped=4)
    a.started, a.latencies_ms, a.top = 0.0, [10.0, 12.0, 30.0], [("growing", 0.7), ("x", 0.2)]
    b = StreamStats(1, "clip", "clip.mp4", status="failed", error="clip.mp4: cannot open")
    console = Console(record=True, width=140)
    console.print(live.table([a, b], now=2.0))
    text = console.export_text()
    assert "cam" in text and "25.0" in text and "growing 0.70" in text and "failed" in text
    assert "4" in text.split("cam")[1].split("\n")[0]
    assert describe(b) == "clip [failed: clip.mp4: cannot open] 0 frames, 0 predictions, 0 dropped"
