"""``python -m cozoo.benchmark suite=stream``: a short row measures frames/s and step latency."""

from __future__ import annotations

from hydra import compose, initialize_config_module

from cozoo.benchmark.cli import run


def test_the_stream_suite_gives_a_row_per_streams_and_rows():
    overrides = [
        "suite=stream",
        "stream.models=[cox3d_s]",
        "stream.streams=[2]",
        "stream.rows=[1,2,4]",  # rows > streams is skipped
        "stream.seconds=0.3",
        "stream.warmup=1",
        "stream.video_frames=60",
        "threads=[1]",
    ]
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        cfg = compose("benchmark", overrides=overrides)
    rows = run(cfg)
    assert [(r["streams"], r["rows"]) for r in rows] == [(2, 1), (2, 2)]
    for r in rows:
        assert r["model"] == "cox3d_s" and r["crop"] == 160 and r["threads"] == 1
        assert r["frames"] > 0 and r["frames_per_s"] > 0
        assert r["step_ms_p95"] >= r["step_ms_p50"] > 0
