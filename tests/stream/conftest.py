"""Fixtures of the cozoo.stream tests: a tiny continual network on ``(B, C)`` steps, a sink that
keeps what it is told, and tiny mp4 files written with PyAV."""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch

from cozoo import co
from cozoo.stream import Sink, StreamModel


class MemorySink(Sink):
    """Keeps ``(frame index, scores)`` of every prediction and the order of events."""

    def __init__(self) -> None:
        self.predictions: Dict[int, List[Tuple[int, np.ndarray]]] = {}
        self.fed: Dict[int, List[int]] = {}
        self.events: List[Tuple[str, int]] = []

    def start(self, stats, source) -> None:
        self.events.append(("start", stats.index))

    def prediction(self, stats, frame, step, scores) -> None:
        self.predictions.setdefault(stats.index, []).append((frame.index, scores.copy()))

    def frame(self, stats, frame) -> None:
        self.fed.setdefault(stats.index, []).append(frame.index)

    def end(self, stats) -> None:
        self.events.append(("end", stats.index))


@pytest.fixture
def memory_sink() -> Callable[[], MemorySink]:
    return MemorySink


@pytest.fixture
def tiny_model() -> Callable[..., StreamModel]:
    """A fresh copy of the same tiny network: steps ``(B, 4)`` -> 5 class logits, delay 3."""

    def make(channels: int = 4, classes: int = 5) -> StreamModel:
        torch.manual_seed(0)
        net = co.Sequential(
            co.Conv1d(channels, 8, 3), torch.nn.ReLU(), co.Conv1d(8, classes, 2)
        ).eval()
        return StreamModel(net, "tiny", "random", None, [f"c{k}" for k in range(classes)])

    return make


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory) -> List[str]:
    """Two tiny mp4 files (48x40, 30 fps) of 40 and 24 frames."""
    from cozoo.data.kinetics.sample import encode_mp4

    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for name, frames in (("first", 40), ("second", 24)):
        video = rng.integers(0, 255, (frames, 40, 48, 3), dtype=np.uint8)
        encode_mp4(folder / f"{name}.mp4", video, fps=30)
        paths.append(str(folder / f"{name}.mp4"))
    return paths
