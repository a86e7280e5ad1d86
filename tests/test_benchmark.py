"""``python -m cozoo.benchmark`` (Hydra app: speed / core / flops) and ``python -m cozoo.figures``.

Fast: the speed suite runs on CoX3D-S at 4x32x32 with one repeat, and on tiny stand-in models
of the skeleton and detection families (registered for the test only).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from torch import nn

from cozoo import benchmark, co, figures
from cozoo.models import (
    FeatureInput,
    SkeletonInput,
    VideoInput,
    _registry,
    list_models,
    register_model,
)

SPEED_COLUMNS = {
    # identity
    "model", "pool_size", "input", "published_input", "batch", "threads", "fuse_bn",
    # timing, speed-up vs FLOPs reduction
    "clip_ms", "clip_spread", "step_ms", "step_spread", "clip_ms_per_stream",
    "step_ms_per_stream", "speedup", "target", "meets_target", "clip_gmacs", "step_gmacs",
    "step_gmacs_peak", "flops_reduction", "realised", "batch1_step_ms", "stream_frame_gain",
    # memory, warm-up, long video, torch.compile
    "weights_mb", "state_mb_per_stream", "clip_memory_mb_per_stream",
    "step_memory_mb_per_stream", "warmup_steps", "warmup_s", "video_frames",
    "video_steps_per_s", "compile_s", "compiled_step_ms", "compile_speedup", "compiled_clip_ms",
    "compiled_speedup", "compile_error",
    # published (the weights' meta)
    "published_top1", "published_clip_model", "published_clip_top1", "published_clip_gmacs",
    "published_step_gmacs", "published_reduction", "published_clip_memory_mb",
    "published_step_memory_mb", "published_cpu_speedup",
    # machine load
    "load_before", "load_after",
}  # fmt: skip

TINY = ["models=[cox3d_s]", "frames=4", "crop=32", "repeats=1", "video_frames=4"]


def compose_benchmark(*overrides: str):
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        return compose("benchmark", overrides=list(overrides))


def test_config_defaults_are_the_zoo_speed_table():
    cfg = compose_benchmark()
    assert cfg.suite == "speed"
    assert list(cfg.models) == ["cox3d_s", "cox3d_m", "cox3d_l", "coslow", "coi3d"]
    assert cfg.pool_size == 64 and list(cfg.batch_sizes) == [1] and not cfg.save


def test_speed_suite_row_has_every_column_and_saves_csv_json(tmp_path: Path, capsys):
    results = tmp_path / "results"
    cfg = compose_benchmark(*TINY, "save=true", f"results_dir={results}")
    rows = benchmark.run(cfg)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == SPEED_COLUMNS
    assert row["model"] == "cox3d_s" and row["input"] == "4x32x32" and not row["published_input"]
    assert row["batch"] == 1 and row["threads"] == 1 and row["target"] == 9.0
    for key in ("clip_ms", "step_ms", "speedup", "flops_reduction", "realised", "warmup_s"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["speedup"] == pytest.approx(row["clip_ms"] / row["step_ms"], rel=1e-6)
    assert row["state_mb_per_stream"] > 0
    assert row["step_memory_mb_per_stream"] > row["state_mb_per_stream"]
    assert row["clip_memory_mb_per_stream"] > row["weights_mb"]
    assert row["warmup_steps"] == 91 and row["video_steps_per_s"] > 0
    assert row["published_top1"] == 67.33 and row["published_clip_top1"] == 64.71
    assert row["published_reduction"] == pytest.approx(2.06 / 0.17)

    out = capsys.readouterr().out
    for header in ("speedup", "FLOPs red.", "realised", "state MB/stream", "load average"):
        assert header in out

    (csv_path,) = results.glob("speed_*.csv")
    (json_path,) = results.glob("speed_*.json")
    with csv_path.open() as f:
        (written,) = list(csv.DictReader(f))
    assert set(written) == SPEED_COLUMNS and written["model"] == "cox3d_s"
    data = json.loads(json_path.read_text())
    assert data["suite"] == "speed" and data["config"]["models"] == ["cox3d_s"]
    assert data["rows"][0]["clip_ms"] == row["clip_ms"]
    assert {"torch", "cores", "load_average"} <= set(data["environment"])
    assert data["environment"]["flush_denormal"] is True


def test_subnormal_floats_are_flushed_during_a_run_only_unless_turned_off(capsys):
    assert not benchmark.flushes_denormals()
    benchmark.run(compose_benchmark(*TINY, "memory=false", "flush_denormal=false"))
    assert "subnormal floats kept" in capsys.readouterr().out
    benchmark.run(compose_benchmark(*TINY, "memory=false"))
    assert "subnormal floats flushed to zero" in capsys.readouterr().out
    assert not benchmark.flushes_denormals()  # the process's setting is restored


def test_compile_columns_time_the_compiled_step_and_the_compiled_clip(monkeypatch, capsys):
    # The real compilation takes minutes per model (tests/co/test_compiled.py compiles a small
    # network): stand-ins that count their calls check the plumbing.
    calls = {"compile_step": 0, "torch.compile": 0}

    class FakeCompiledStep:
        warming_up = False
        period = 1

        def __init__(self, model):
            self.twin = copy.deepcopy(model)

        def __call__(self, frame):
            return self.twin.forward_step(frame)

    def fake_compile_step(model, example):
        calls["compile_step"] += 1
        return FakeCompiledStep(model)

    def fake_torch_compile(model, **kwargs):
        calls["torch.compile"] += 1
        return model

    monkeypatch.setattr(benchmark.co, "compile_step", fake_compile_step)
    monkeypatch.setattr(benchmark.torch, "compile", fake_torch_compile)
    cfg = compose_benchmark(*TINY, "memory=false", "video_frames=0", "compile=true")
    (row,) = benchmark.run(cfg)
    assert calls == {"compile_step": 1, "torch.compile": 1}
    assert row["compile_error"] is None
    for key in ("compile_s", "compiled_step_ms", "compile_speedup", "compiled_clip_ms"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["compiled_speedup"] == pytest.approx(
        row["compiled_clip_ms"] / row["compiled_step_ms"], rel=0.5
    )
    assert "compiled clip/step" in capsys.readouterr().out


def test_speed_suite_batch_row_is_compared_with_batch_1_interleaved(capsys):
    cfg = compose_benchmark(*TINY, "batch_sizes=[2]", "memory=false", "video_frames=0")
    (row,) = benchmark.run(cfg)
    assert row["batch"] == 2 and row["batch1_step_ms"] > 0 and row["stream_frame_gain"] > 0
    assert row["step_ms_per_stream"] == pytest.approx(row["step_ms"] / 2)
    assert row["clip_memory_mb_per_stream"] is None and row["video_steps_per_s"] is None
    assert "interleaved: a step costs" in capsys.readouterr().out


def test_batch_summary_compares_cost_per_stream_frame():
    rows = [
        {"model": "m", "threads": 1, "input": "x", "batch": 1, "step_ms_per_stream": 4.0},
        {"model": "m", "threads": 1, "input": "x", "batch": 8, "step_ms_per_stream": 1.0},
    ]
    (line,) = benchmark.batch_summary(rows)[1:]
    assert "batch 8" in line and "4.00x less" in line


def test_shorthands_map_to_the_suite_override():
    assert benchmark.shorthand_argv(["core"]) == ["suite=core"]
    assert benchmark.shorthand_argv(["flops", "pattern=cox3d_s"]) == [
        "suite=flops",
        "pattern=cox3d_s",
    ]
    assert benchmark.shorthand_argv(["repeats=3"]) == ["repeats=3"]


def test_command_line_flops_shorthand(monkeypatch, tmp_path: Path, capsys):
    out = tmp_path / "flops.json"
    monkeypatch.setattr(sys, "argv", ["cozoo.benchmark"])
    benchmark.main(["flops", "pattern=cox3d_s", f"json={out}"])
    assert "cox3d_s" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["model"] == "cox3d_s"


def test_peak_allocated_bytes_sees_a_temporary():
    def work() -> float:
        return float(torch.ones(1_000_000).sum())  # 4 MB, freed before returning

    assert benchmark.peak_allocated_bytes(work) >= 4_000_000


def test_figure_points_come_from_meta_and_the_published_clip_models():
    points = figures.accuracy_vs_flops_points(["cox3d_m"])
    clip = [p for p in points if p["kind"] == "clip"]
    co = {p["pool_size"]: p for p in points if p["kind"] == "continual"}
    assert [(p["label"], p["top1"], p["gmacs"]) for p in clip] == [("X3D-M", 67.24, 4.97)]
    assert co[64]["top1"] == 71.03 and co[16]["top1"] == 62.8 and co[64]["gmacs"] == 0.33


def test_figure_command_writes_a_png(tmp_path: Path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "docs" / "accuracy_vs_flops.png"
    figures.main(["accuracy_vs_flops", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compiled_past_warm_up_steps_through_the_warm_up_and_every_phase(monkeypatch):
    # A stand-in that warms up for 5 steps and then cycles through 2 compiled phases.
    seen = []

    class FakeCompiledStep:
        period = 2

        @property
        def warming_up(self):
            return len(seen) < 5

        def __call__(self, frame):
            seen.append(frame)

    monkeypatch.setattr(benchmark.co, "compile_step", lambda model, example: FakeCompiledStep())
    stream = torch.arange(3.0).reshape(3, 1, 1)
    fast = benchmark.compiled_past_warm_up(nn.Identity(), stream)
    assert not fast.warming_up
    assert len(seen) == 5 + 2  # the warm-up, then one step per phase (each compiles)
    assert [f.item() for f in seen] == [0, 1, 2, 0, 1, 2, 0]  # the stream's frames, cycled


# --------------------------------------------------------------------------------------------
# Other families: input shapes from the registry
# --------------------------------------------------------------------------------------------
def tiny_skeleton(*, weights=None) -> co.Sequential:
    """Clips ``(B, 3, T, 5, 1)`` (C, T, V, M), steps ``(B, 3, 5, 1)``; delay 4. Takes no
    ``pool_size``: the benchmark must not pass one."""
    return co.Sequential(co.Conv3d(3, 8, (3, 1, 1)), nn.ReLU(), co.Conv3d(8, 4, (3, 1, 1))).eval()


def tiny_features(*, weights=None) -> co.Sequential:
    """Clips ``(B, 16, T)`` (D, T), steps ``(B, 16)``; delay 2."""
    return co.Sequential(co.Conv1d(16, 8, 3), nn.ReLU(), co.Conv1d(8, 4, 1)).eval()


def no_input(*, weights=None) -> co.Sequential:
    return tiny_features()


FAMILIES = {
    # name: (register_model kwargs, speed "input" at frames=6, flops "input", delay)
    "tiny_skeleton": (
        {"family": "skeleton", "input": SkeletonInput(frames=8, channels=3, joints=5, persons=1)},
        "6x5x1",
        "3x8x5x1",
        4,
    ),
    "tiny_features": (
        {"family": "detection", "task": "detection", "input": FeatureInput(dim=16, frames=8)},
        "16x6",
        "16x8",
        2,
    ),
}


BUILDERS = {"tiny_skeleton": tiny_skeleton, "tiny_features": tiny_features}


@pytest.fixture
def registered():
    """Registers the stand-in models (and ``no_input``, without an input spec) for one test;
    the registry is as before afterwards."""
    before = list_models()
    try:
        for name, builder in BUILDERS.items():
            register_model(**FAMILIES[name][0])(builder)
        register_model(family="skeleton")(no_input)
        yield
    finally:
        for name in (*BUILDERS, "no_input"):
            _registry._MODELS.pop(name, None)
    assert list_models() == before


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_speed_suite_runs_any_family_at_its_registered_input(registered, name, capsys):
    _, label, _, delay = FAMILIES[name]
    cfg = compose_benchmark(
        f"models=[{name}]", "frames=6", "crop=32", "repeats=1", "video_frames=4",
        "step_inner=2", "batch_sizes=[2]",
    )  # fmt: skip
    (row,) = benchmark.run(cfg)
    assert set(row) == SPEED_COLUMNS
    assert row["input"] == label and not row["published_input"]  # crop: video only
    assert row["pool_size"] is None and row["target"] is None and row["meets_target"] is None
    assert row["warmup_steps"] == delay and row["video_steps_per_s"] > 0
    for key in ("clip_ms", "step_ms", "speedup", "clip_gmacs", "step_gmacs", "realised"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["state_mb_per_stream"] > 0 and row["step_memory_mb_per_stream"] > 0
    assert row["batch1_step_ms"] > 0  # the batch-1 copy steps (1, *step) frames
    published = [k for k in SPEED_COLUMNS if k.startswith("published_") and k != "published_input"]
    assert all(row[k] is None for k in published)
    assert name in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_flops_suite_counts_a_model_without_weights(registered, name, capsys):
    _, _, shape, _ = FAMILIES[name]
    (row,) = benchmark.run_flops(type("Args", (), {"pattern": name})())
    assert row["input"] == shape
    assert row["params"] == sum(p.numel() for p in BUILDERS[name]().parameters())
    assert row["clip_gmacs"] > row["step_gmacs"] > 0 and row["reduction"] > 1
    assert row["params_published"] is None and row["reduction_published"] is None
    assert name in capsys.readouterr().out


def test_a_model_without_an_input_spec(registered, capsys):
    with pytest.raises(ValueError, match="'no_input' has no input spec"):
        benchmark.run(compose_benchmark("models=[no_input]", "repeats=1", "video_frames=0"))
    assert benchmark.run_flops(type("Args", (), {"pattern": "no_*"})()) == []
    assert "no_input: no input spec" in capsys.readouterr().out


def test_inputs_and_builder_kwargs_come_from_the_registry(registered):
    video = benchmark.model_input("cox3d_s", frames=4, crop=32)
    assert isinstance(video, VideoInput) and video.clip_shape == (3, 4, 32, 32)
    assert benchmark.input_label(video) == "4x32x32"
    skeleton = benchmark.model_input("tiny_skeleton", frames=6, crop=32)
    assert skeleton.clip_shape == (3, 6, 5, 1) and skeleton.step_shape == (3, 5, 1)
    assert benchmark.builder_kwargs("cox3d_s", 64) == {"pool_size": 64}
    assert benchmark.builder_kwargs("cox3d_s", None) == {}
    assert benchmark.builder_kwargs("tiny_skeleton", 64) == {}


def test_a_step_timed_against_another_models_clip(capsys):
    """``name@other``: CoST-GCN*'s step against the original ST-GCN's clip, with ST-GCN's counts
    and published figures in the row (and the benchmark's target for it)."""
    cfg = compose_benchmark(
        "models=[costgcn_mod@stgcn]", "repeats=1", "warmup=0", "step_inner=2",
        "video_frames=0", "memory=false",
    )  # fmt: skip
    (row,) = benchmark.run(cfg)
    assert row["model"] == "costgcn_mod@stgcn" and row["target"] == 60.0
    assert round(row["clip_gmacs"], 2) == 16.73  # ST-GCN's clip, not ST-GCN*'s 36.90
    assert round(row["step_gmacs"], 3) == 0.156
    assert row["published_clip_model"] == "ST-GCN" and row["published_clip_gmacs"] == 16.73
    assert row["published_clip_top1"] == 86.0 and row["published_top1"] == 86.3
    assert "costgcn_mod@stgcn" in capsys.readouterr().out
