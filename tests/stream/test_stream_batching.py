"""Continuous batching: every source gets the predictions it gets streamed alone, with sources
of different lengths, more sources than rows, a source that fails in between, and rows that
are refilled after ``clean_state(streams=[i])``.

Equality is within float32 rounding (``atol=1e-6``), not bit for bit: a batch of B rows runs
the same convolutions as a batch of 1 through matrix kernels that may sum in another order
(measured differences are ~3e-8); which frames produce a prediction is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cozoo.stream import Scheduler, StepArraySource

LENGTHS = (7, 12, 3, 9, 5, 2, 10)


def _arrays(lengths=LENGTHS):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 4)).astype(np.float32) for n in lengths]


def _alone(tiny_model, memory_sink, array):
    sink = memory_sink()
    Scheduler(tiny_model(), [StepArraySource("alone", array=array)], rows=1, sink=sink).run()
    return sink.predictions.get(0, [])


def _assert_same(alone, batched):
    assert [f for f, _ in alone] == [f for f, _ in batched]
    for (_, a), (_, b) in zip(alone, batched):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 3, 4])
def test_every_stream_equals_running_it_alone(tiny_model, memory_sink, rows):
    arrays = _arrays()
    sink = memory_sink()
    sources = [StepArraySource(f"s{i}.npy", array=a) for i, a in enumerate(arrays)]
    scheduler = Scheduler(tiny_model(), sources, rows=rows, sink=sink)
    stats = scheduler.run()
    assert [s.status for s in stats] == ["done"] * len(arrays)
    assert [s.frames for s in stats] == list(LENGTHS)
    # delay 3: a source of n steps predicts at its steps 3..n-1, in the batch as alone
    assert [s.predictions for s in stats] == [max(0, n - 3) for n in LENGTHS]
    for i, array in enumerate(arrays):
        _assert_same(_alone(tiny_model, memory_sink, array), sink.predictions.get(i, []))
    # the batch is never wider than `rows`, and it takes as many steps as the rows need
    assert scheduler.rows == rows
    assert scheduler.batch_steps >= -(-sum(LENGTHS) // rows)


def test_a_refilled_row_starts_clean_while_the_others_keep_their_state(tiny_model, memory_sink):
    # row 0: a short source then a long one; row 1: one long source all along
    arrays = _arrays((2, 20, 8))
    sink = memory_sink()
    sources = [StepArraySource(f"s{i}", array=a) for i, a in enumerate(arrays)]
    stats = Scheduler(tiny_model(), sources, rows=2, sink=sink).run()
    assert [s.row for s in stats] == [0, 1, 0]
    assert sink.events.index(("end", 0)) < sink.events.index(("start", 2))
    for i, array in enumerate(arrays):
        _assert_same(_alone(tiny_model, memory_sink, array), sink.predictions.get(i, []))


def test_a_failing_source_leaves_the_other_streams_untouched(tiny_model, memory_sink):
    arrays = _arrays((9, 6, 11))
    bad = np.zeros((5, 3), np.float32)  # (L, 3): wrong step shape
    sources = [StepArraySource("a", array=arrays[0]), StepArraySource("bad", array=bad)]
    sources += [StepArraySource("b", array=arrays[1]), StepArraySource("c", array=arrays[2])]
    sink = memory_sink()
    stats = Scheduler(tiny_model(), sources, rows=2, sink=sink).run()
    assert [s.status for s in stats] == ["done", "failed", "done", "done"]
    assert "bad" in stats[1].error and "(3,)" in stats[1].error and "(4,)" in stats[1].error
    for i, k in ((0, 0), (1, 2), (2, 3)):
        _assert_same(_alone(tiny_model, memory_sink, arrays[i]), sink.predictions.get(k, []))


def test_a_video_model_streams_equal_alone(memory_sink, tiny_videos):
    """A real zoo network (tiny CoX3D-S) over two videos of different lengths and a third
    source queued behind them: per-frame preprocessing and the row reset hold for it too."""
    from cozoo.models import VideoInput, create_model
    from cozoo.stream import StreamModel, VideoSource

    torch.manual_seed(0)
    net = create_model("cox3d_s", pool_size=2, num_classes=3).eval()
    protocol = VideoInput(frames=4, sampling_rate=1, short_side=32, crop=32)

    def sources(paths):
        return [VideoSource(p, fps=30, sampling_rate=1) for p in paths]

    sm = StreamModel(net, "cox3d_s", "random", protocol)
    sink = memory_sink()
    paths = [tiny_videos[1], tiny_videos[0], tiny_videos[1]]
    stats = Scheduler(sm, sources(paths), rows=2, sink=sink).run()
    assert [s.frames for s in stats] == [24, 40, 24]
    assert stats[1].predictions == 40 - net.delay
    for k, path in enumerate(paths):
        alone = memory_sink()
        net.clean_state()
        Scheduler(sm, sources([path]), rows=1, sink=alone).run()
        _assert_same(alone.predictions.get(0, []), sink.predictions.get(k, []))
