"""A timeline of class scores over time: one line per shown class, and optionally the
ground-truth segments of each class as shaded bands (online action detection: THUMOS-style
``(start, end, class)`` segments against per-frame scores).

::

    plot_timeline(times, scores, "clip.png", class_names=names, title="clip.mp4")
    plot_timeline(t, scores, "video.png", class_names=names,
                  segments=[Segment(3.2, 7.9, 4), ...])      # ground truth shaded per class
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .saving import save_figure

__all__ = ["Segment", "plot_timeline", "top_classes"]


@dataclass(frozen=True)
class Segment:
    """A ground-truth segment: class ``label`` (an index) from ``start`` to ``end`` (the
    timeline's time unit, seconds or frames)."""

    start: float
    end: float
    label: int


def top_classes(scores: np.ndarray, k: int, always: Sequence[int] = ()) -> list:
    """The ``k`` classes of largest peak score in ``scores`` ``(N, K)`` (highest first), after
    the classes in ``always`` (e.g. the ground truth's)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return list(always)
    order = [int(c) for c in np.argsort(-np.nanmax(scores, axis=0))]
    chosen = list(dict.fromkeys(int(c) for c in always))
    for c in order:
        if len(chosen) >= max(k, len(always)):
            break
        if c not in chosen:
            chosen.append(c)
    return chosen


def plot_timeline(
    times: Sequence[float],
    scores: np.ndarray,
    out: Union[str, Path],
    *,
    class_names: Optional[Sequence[str]] = None,
    classes: Optional[Sequence[int]] = None,
    k: int = 5,
    segments: Sequence[Segment] = (),
    title: str = "",
    xlabel: str = "time (s)",
    ylabel: str = "score",
) -> Path:
    """Write a PNG of ``scores`` ``(N, K)`` at ``times`` ``(N,)``: the classes ``classes``
    (default: the ``k`` of largest peak, after those of ``segments``) as lines, each class's
    ``segments`` as a band of its colour under the lines. Returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(times, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).reshape(len(t), -1) if len(t) else np.zeros((0, 1))
    gt = sorted({seg.label for seg in segments})
    shown = list(classes) if classes is not None else top_classes(s, k, gt)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=120)
    for n, c in enumerate(shown):
        colour = colours(n % 10)
        name = class_names[c] if class_names is not None and c < len(class_names) else f"{c}"
        for seg in segments:
            if seg.label == c:
                ax.axvspan(seg.start, seg.end, color=colour, alpha=0.18, lw=0)
        if len(t) and c < s.shape[1]:
            ax.plot(t, s[:, c], color=colour, lw=1.4, label=name)
    if segments:
        ax.plot([], [], color="gray", alpha=0.4, lw=8, label="ground truth")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02 if len(s) == 0 or np.nanmax(s) <= 1 else None)
    span = [float(v) for v in t[[0, -1]]] if len(t) else []
    span += [v for seg in segments for v in (seg.start, seg.end)]
    if span:  # the predictions and the ground truth both in view
        lo, hi = min(span), max(span)
        ax.set_xlim(lo, hi if hi > lo else lo + 1)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if shown:
        ax.legend(loc="upper left", fontsize=7, ncol=min(3, len(shown) + bool(segments)))
    return save_figure(fig, out)
