"""Figures of the README, generated from the weights' meta: ``python -m cozoo.figures NAME``.

::

    python -m cozoo.figures accuracy_vs_flops --out docs/accuracy_vs_flops.png
    python -m cozoo.figures stream_timeline --out docs/stream_timeline.png
    python -m cozoo.figures detection_timeline --out docs/detection_timeline.png [--video NAME]

``accuracy_vs_flops``: Kinetics-400 top-1 accuracy against the MACs one prediction costs, the
regular clip models (one prediction = one clip forward) next to their continual versions (one
prediction = one step, per pool size), like co3d's ``figures/results.png``. The continual points
and the clip models (``meta.baseline``) both come from ``get_model_weights(name).DEFAULT.meta``.

``stream_timeline``: ``cozoo.stream``'s class scores over time on one generated stream whose
class changes (sample videos of three classes in a row), ground truth shaded, through the newest
``runs/cox3d_m`` checkpoint of ``python -m cozoo.train recipe=cox3d_m``.

``detection_timeline``: an online detector (``cooadtr_b1``, the newest ``runs/cooadtr_b1``
checkpoint) streamed over one THUMOS14 test video (``--root``; default: the generated sample),
its per-step class scores against the ground-truth segments.

Needs matplotlib (``pip install 'cozoo[dev]'``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = [
    "FIGURES",
    "accuracy_vs_flops",
    "accuracy_vs_flops_points",
    "detection_timeline",
    "main",
    "stream_timeline",
]

_METRIC, _DATASET = "top-1 accuracy", "Kinetics-400"

# One colour per family, shared by a clip model and its continual version.
_COLOURS = {
    "cox3d_s": "tab:green",
    "cox3d_m": "tab:blue",
    "cox3d_l": "tab:purple",
    "coslow": "tab:red",
    "coi3d": "tab:orange",
}


def accuracy_vs_flops_points(names: Optional[Sequence[str]] = None) -> List[dict]:
    """The figure's points: ``{"model", "label", "kind": "clip"|"continual", "pool_size",
    "gmacs", "top1"}`` of every model (default: all) with Kinetics-400 top-1 results: the
    regular network from ``meta.baseline``, the continual one per published pool size."""
    from cozoo.models import get_model_weights, list_models

    points: List[dict] = []
    for name in names if names is not None else list_models():
        enum = get_model_weights(name)
        meta = None if enum is None else enum.DEFAULT.meta
        results = (
            [] if meta is None else [r for r in meta.results(_METRIC) if r.dataset == _DATASET]
        )
        if not results:
            continue
        clip = meta.baseline.find(_METRIC) if meta.baseline is not None else None
        if clip is not None:
            points.append(
                {
                    "model": name,
                    "label": meta.baseline.display_name,
                    "kind": "clip",
                    "pool_size": None,
                    "gmacs": float(meta.macs_per_clip.value),
                    "top1": float(clip.value),
                }
            )
        for result in sorted(results, key=lambda r: r.variant["pool_size"]):
            pool_size = result.variant["pool_size"]
            points.append(
                {
                    "model": name,
                    "label": f"{meta.display_name}$_{{{pool_size}}}$",
                    "kind": "continual",
                    "pool_size": pool_size,
                    "gmacs": float(meta.macs_per_step.value),
                    "top1": float(result.value),
                }
            )
    return points


def _link_clip_to_continual(ax, points: List[dict]) -> None:
    """An arrow from each clip model to its continual version with the same pool size as the
    clip (the smallest published one): the same weights, one prediction for a step instead of a
    clip."""
    for name in {p["model"] for p in points}:
        clip = [p for p in points if p["model"] == name and p["kind"] == "clip"]
        co = [p for p in points if p["model"] == name and p["kind"] == "continual"]
        if clip and co:
            target = min(co, key=lambda p: p["pool_size"])
            ax.annotate(
                "",
                xy=(target["gmacs"], target["top1"]),
                xytext=(clip[0]["gmacs"], clip[0]["top1"]),
                arrowprops={
                    "arrowstyle": "->",
                    "color": _COLOURS.get(name, "tab:gray"),
                    "alpha": 0.35,
                    "linestyle": "--",
                },
                zorder=1,
            )


def accuracy_vs_flops(out: Path, names: Optional[Sequence[str]] = None) -> Path:
    """Write the accuracy-vs-FLOPs-per-prediction figure to ``out`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cozoo.plots import save_figure

    points = accuracy_vs_flops_points(names)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=150)
    for p in points:
        colour = _COLOURS.get(p["model"], "tab:gray")
        clip = p["kind"] == "clip"
        ax.scatter(
            p["gmacs"],
            p["top1"],
            marker="o" if clip else "*",
            s=55 if clip else 150,
            facecolors="none" if clip else colour,
            edgecolors=colour,
            linewidths=1.5,
            zorder=3,
        )
        ax.annotate(
            p["label"],
            (p["gmacs"], p["top1"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=7.5,
            color=colour,
        )
    _link_clip_to_continual(ax, points)
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="k", label="clip model (per clip)")
    ax.scatter([], [], marker="*", s=120, color="k", label="continual model (per step), pool P")
    ax.set_xscale("log")
    ax.set_xlim(0.12, 150)
    ax.set_xlabel("GMACs per prediction (log scale)")
    ax.set_ylabel("Kinetics-400 top-1 (%), 1 clip / 1 frame")
    ax.set_title("Accuracy vs FLOPs per prediction: clip vs continual models")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.text(
        0.01,
        0.01,
        "published figures from the weights' meta (Hedegaard & Iosifidis, ECCV 2022)",
        fontsize=6,
        color="gray",
    )
    return save_figure(fig, out)


def stream_timeline(
    out: Path,
    names: Optional[Sequence[str]] = None,
    classes: Sequence[str] = ("moving left", "rotating clockwise", "growing"),
    runs_root: str = "runs",
) -> Path:
    """Class scores over time of ``cozoo.stream`` on one stream that changes class: val videos
    of the generated Kinetics-layout sample of ``classes``, one after the other in one mp4, the
    ground truth shaded. The model: ``names[0]`` (default ``cox3d_m``) with the newest
    ``<runs_root>/<model>/*/checkpoints/last.ckpt`` (else random weights, loudly)."""
    import tempfile

    import numpy as np

    from cozoo.data.kinetics.sample import SAMPLE_CLASSES, encode_mp4, ensure_sample
    from cozoo.plots import Segment, plot_timeline
    from cozoo.stream import Scheduler, Sink, VideoSource, load_stream_model

    name = names[0] if names else "cox3d_m"
    sm = load_stream_model(name, None, runs_root)
    root = ensure_sample(size="small")
    parts, segments, t = [], [], 0.0
    for label in classes:
        video = sorted((root / "val" / label).glob("*.mp4"))[0]
        frames = np.stack([f.data for f in VideoSource(str(video), fps=30).frames()])
        parts.append(frames)
        segments.append(Segment(t, t + len(frames) / 30, SAMPLE_CLASSES.index(label)))
        t += len(frames) / 30

    class Keep(Sink):
        times: List[float] = []
        scores: List[np.ndarray] = []

        def prediction(self, stats, frame, step, scores) -> None:
            self.times.append(frame.time)
            self.scores.append(scores)

    keep = Keep()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "changing.mp4"
        encode_mp4(path, np.concatenate(parts), fps=30)
        rate = sm.protocol.sampling_rate
        Scheduler(sm, [VideoSource(str(path), fps=30, sampling_rate=rate)], sink=keep).run()
    weights = "random weights" if sm.random else f"run {Path(sm.weights).parts[-3]}"
    return plot_timeline(
        keep.times,
        np.stack(keep.scores),
        out,
        class_names=sm.class_names,
        segments=segments,
        classes=[s.label for s in segments],
        title=f"python -m cozoo.stream: {name} ({weights}) on one stream of "
        f"{len(classes)} sample videos; shaded: ground truth",
    )


def _segments(targets, seconds_per_step: float, skip: Sequence[int]) -> list:
    """Runs of one class in one-hot ``targets`` ``(L, K)`` -> ``Segment`` s in seconds (the
    classes in ``skip``, e.g. background, left out)."""
    from cozoo.plots import Segment

    labels = targets.argmax(1).tolist()
    segments, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if labels[start] not in skip:
                segments.append(
                    Segment(start * seconds_per_step, t * seconds_per_step, labels[start])
                )
            start = t
    return segments


def detection_timeline(
    out: Path,
    names: Optional[Sequence[str]] = None,
    video: Optional[str] = None,
    root: Optional[str] = None,
    features: str = "kinetics",
    runs_root: str = "runs",
    sample_size: str = "small",
    cache_dir: Optional[str] = None,
) -> Path:
    """Ground-truth segments against per-step scores of an online detector streamed over one
    THUMOS14 test video (``root``; None: the generated sample). The model: ``names[0]`` (default
    ``cooadtr_b1``) with the newest ``<runs_root>/<model>/*/checkpoints/last.ckpt`` (else random
    weights, loudly); the video: ``video`` (a name), else the one with the most action steps.
    Scores: softmax over logits 0-20 (the OadTR protocol); one step = 0.2 s."""
    import torch

    from cozoo.data.thumos import ThumosDataModule
    from cozoo.data.thumos.protocol import AMBIGUOUS, BACKGROUND, CLASS_NAMES
    from cozoo.plots import plot_timeline
    from cozoo.stream import load_stream_model

    name = names[0] if names else "cooadtr_b1"
    sm = load_stream_model(name, None, runs_root)
    data = ThumosDataModule(
        root=root, features=features, sample_size=sample_size, cache_dir=cache_dir
    )
    videos = list(data.videos("test"))
    if video is not None:
        chosen = next((v for v in videos if v.name == video), None)
        if chosen is None:
            raise ValueError(f"detection_timeline: no test video {video!r} in {data.data_root}")
    else:
        chosen = max(videos, key=lambda v: int((v.targets.argmax(1) != BACKGROUND).sum()))
    model = sm.model
    model.clean_state()
    with torch.inference_mode():
        steps = [
            model.forward_step(chosen.features[:, t].unsqueeze(0))
            for t in range(chosen.features.shape[1])
        ]
    first = next(t for t, y in enumerate(steps) if y is not None)
    logits = torch.cat(steps[first:])[:, :AMBIGUOUS]
    scores = torch.softmax(logits, 1).numpy()
    seconds = 0.2
    segments = _segments(chosen.targets, seconds, skip=(BACKGROUND, AMBIGUOUS))
    shown = list(dict.fromkeys(s.label for s in segments))
    weights = "random weights" if sm.random else f"run {Path(sm.weights).parts[-3]}"
    return plot_timeline(
        [t * seconds for t in range(first, len(steps))],
        scores,
        out,
        class_names=CLASS_NAMES,
        segments=segments,
        classes=shown or None,
        title=f"{name} ({weights}) streamed over {chosen.name}; shaded: ground truth",
    )


FIGURES = {
    "accuracy_vs_flops": accuracy_vs_flops,
    "detection_timeline": detection_timeline,
    "stream_timeline": stream_timeline,
}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cozoo.figures", description=__doc__)
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--out", type=Path, default=None, help="PNG path (docs/FIGURE.png)")
    parser.add_argument("--models", nargs="*", default=None, help="zoo models (default: all)")
    parser.add_argument("--video", default=None, help="detection_timeline: a test video's name")
    parser.add_argument("--root", default=None, help="detection_timeline: the THUMOS14 root")
    parser.add_argument("--runs-root", default="runs", help="where cozoo.train wrote its runs")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path("docs") / f"{args.figure}.png"
    extra = {}
    if args.figure == "detection_timeline":
        extra = {"video": args.video, "root": args.root, "runs_root": args.runs_root}
    elif args.figure == "stream_timeline":
        extra = {"runs_root": args.runs_root}
    print(f"wrote {FIGURES[args.figure](out, args.models, **extra)}")


if __name__ == "__main__":
    main()
