"""Pacing on a fake clock (no sleeps): ``mode=realtime`` feeds a frame when it is due and, when
the model is slower than the source, takes the newest due frame and counts the others as
dropped; ``mode=offline`` feeds every frame."""

from __future__ import annotations

import numpy as np
import pytest

from cozoo.stream import FakeClock, Scheduler, StepArraySource


class SlowNet:
    """Wraps a network: every step costs ``cost`` seconds of the fake clock."""

    def __init__(self, net, clock: FakeClock, cost: float) -> None:
        self.net, self.clock, self.cost = net, clock, cost

    def forward_step(self, x):
        self.clock.advance(self.cost)
        return self.net.forward_step(x)

    def clean_state(self, streams=None):
        self.net.clean_state(streams)

    @property
    def last_valid(self):
        return self.net.last_valid


def _expected_fed(length: int, rate: float, cost: float):
    """Independently: the newest frame due when the model becomes free, or the next one."""
    fed, now, k = [], 0.0, 0
    while k < length:
        now = max(now, k / rate)
        newest = min(length - 1, int(np.floor(now * rate + 1e-9)))
        fed.append(newest)
        now += cost
        k = newest + 1
    return fed


def _run(tiny_model, memory_sink, length, rate, cost, mode, sources=1):
    clock = FakeClock()
    sm = tiny_model()
    sm.model = SlowNet(sm.model, clock, cost)
    array = np.zeros((length, 4), np.float32)
    srcs = [StepArraySource(f"s{i}", rate=rate, array=array) for i in range(sources)]
    sink = memory_sink()
    stats = Scheduler(sm, srcs, rows=sources, mode=mode, sink=sink, clock=clock).run()
    return stats, sink, clock


@pytest.mark.parametrize("cost", [0.25, 0.31, 0.05])
def test_realtime_drops_the_older_due_frames(tiny_model, memory_sink, cost):
    stats, sink, clock = _run(tiny_model, memory_sink, 30, 10.0, cost, "realtime")
    expected = _expected_fed(30, 10.0, cost)
    assert sink.fed[0] == expected
    assert stats[0].frames == len(expected)
    assert stats[0].dropped == 30 - len(expected) - (29 - expected[-1])
    if cost < 0.1:  # faster than the source: nothing dropped, the run lasts the video
        assert stats[0].dropped == 0 and clock.now() == pytest.approx(2.9 + cost)
    else:
        assert stats[0].dropped > 0


def test_offline_feeds_every_frame_whatever_the_model_costs(tiny_model, memory_sink):
    stats, sink, clock = _run(tiny_model, memory_sink, 30, 10.0, 0.5, "offline", sources=2)
    assert sink.fed[0] == list(range(30)) and sink.fed[1] == list(range(30))
    assert [s.dropped for s in stats] == [0, 0]
    assert clock.now() == pytest.approx(30 * 0.5)  # no waiting for frames


def test_realtime_batch_steps_at_the_slowest_rows_rate(tiny_model, memory_sink):
    clock = FakeClock()
    sm = tiny_model()
    fast = StepArraySource("fast", rate=20.0, array=np.zeros((40, 4), np.float32))
    slow = StepArraySource("slow", rate=10.0, array=np.zeros((20, 4), np.float32))
    sink = memory_sink()
    stats = Scheduler(sm, [fast, slow], rows=2, mode="realtime", sink=sink, clock=clock).run()
    assert sink.fed[1] == list(range(20)) and stats[1].dropped == 0
    # the 20 fps row takes every second frame: the one due with the 10 fps row's frame
    assert sink.fed[0][:20] == list(range(0, 40, 2)) and stats[0].dropped >= 19
    assert stats[0].frames + stats[0].dropped <= 40
