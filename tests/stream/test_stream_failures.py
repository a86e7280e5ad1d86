"""Bad input: an unreadable file, a source that stops mid-stream (a camera that disappears),
Ctrl-C. Each is reported for its own stream, the others continue, and nothing written so far
is lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cozoo.stream import (
    Frame,
    Scheduler,
    Source,
    SourceError,
    StepArraySource,
    VideoSource,
    stream,
)


class Vanishing(Source):
    """A live-like source that gives ``n`` steps and then loses its device."""

    def __init__(self, name: str, n: int) -> None:
        super().__init__(name)
        self.n = n

    def frames(self):
        for t in range(self.n):
            yield Frame(t, t / 30, np.full(4, 0.1 * t, np.float32))
        raise SourceError(f"{self.location}: device disappeared")


class Interrupting(StepArraySource):
    """Raises KeyboardInterrupt (Ctrl-C) at step ``at``."""

    def __init__(self, name, array, at):
        super().__init__(name, array=array)
        self.at = at

    def frames(self):
        for frame in super().frames():
            if frame.index == self.at:
                raise KeyboardInterrupt
            yield frame


def test_unreadable_and_vanishing_sources_fail_alone(tmp_path, tiny_model, memory_sink):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    good = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    sources = [
        VideoSource(str(broken)),
        Vanishing("/dev/video7", 9),
        StepArraySource("good", array=good),
        StepArraySource(str(tmp_path / "missing.npy")),
    ]
    sink = memory_sink()
    stats = Scheduler(tiny_model(), sources, rows=2, sink=sink).run()
    assert [s.status for s in stats] == ["failed", "failed", "done", "failed"]
    assert "broken.mp4" in stats[0].error and "cannot open" in stats[0].error
    assert "disappeared" in stats[1].error and stats[1].frames == 9
    assert stats[1].predictions == 9 - 3  # its frames before the failure were all predicted
    assert "missing.npy" in stats[3].error
    assert stats[2].frames == 12 and stats[2].predictions == 9


def test_outputs_of_a_failed_source_and_ctrl_c_are_kept(tmp_path, tiny_model):
    array = np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32)
    sources = [Vanishing("cam", 8), Interrupting("long", array, at=20), Vanishing("never", 5)]
    summary = stream(tiny_model(), sources, tmp_path, rows=2, display=False)
    assert summary["interrupted"] is True
    statuses = {s["name"]: s["status"] for s in summary["streams"]}
    # row 0: cam fails after 8 steps, "never" takes its row and fails after 5; row 1: Ctrl-C
    assert statuses == {"cam": "failed", "long": "interrupted", "never": "failed"}
    records = [json.loads(line) for line in (tmp_path / "cam.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(3, 8))
    records = [json.loads(line) for line in (tmp_path / "long.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(3, 20))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["streams"][1]["frames"] == 20 and saved["interrupted"] is True


def test_a_network_error_still_writes_the_summary(tmp_path, tiny_model):
    sm = tiny_model()
    calls = {"n": 0}
    step = sm.model.forward_step

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("out of memory")
        return step(x)

    sm.model.forward_step = failing
    array = np.zeros((10, 4), np.float32)
    with pytest.raises(RuntimeError, match="out of memory"):
        stream(sm, [StepArraySource("a", array=array)], tmp_path, display=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["error"] == "RuntimeError: out of memory"
    assert saved["streams"][0]["status"] == "interrupted" and saved["streams"][0]["frames"] == 5
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
