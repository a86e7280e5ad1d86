"""Figures of the README, generated from the weights' meta: ``python -m cozoo.figures NAME``.

::

    python -m cozoo.figures accuracy_vs_flops --out docs/accuracy_vs_flops.png
    python -m cozoo.figures stream_timeline --out docs/stream_timeline.png

``accuracy_vs_flops``: Kinetics-400 top-1 accuracy against the MACs one prediction costs, the
regular clip models (one prediction = one clip forward) next to their continual versions (one
prediction = one step, per pool size), like co3d's ``figures/results.png``. The continual points
and the clip models (``meta.baseline``) both come from ``get_model_weights(name).DEFAULT.meta``.

``stream_timeline``: ``cozoo.stream``'s class scores over time on one generated stream whose
class changes (sample videos of three classes in a row), ground truth shaded, through the newest
``runs/cox3d_m`` checkpoint of ``python -m cozoo.train recipe=cox3d_m``.

Needs matplotlib (``pip install 'cozoo[dev]'``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["FIGURES", "accuracy_vs_flops", "accuracy_vs_flops_points", "main", "stream_timeline"]

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
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


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


FIGURES = {"accuracy_vs_flops": accuracy_vs_flops, "stream_timeline": stream_timeline}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cozoo.figures", description=__doc__)
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--out", type=Path, default=None, help="PNG path (docs/FIGURE.png)")
    parser.add_argument("--models", nargs="*", default=None, help="zoo models (default: all)")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path("docs") / f"{args.figure}.png"
    print(f"wrote {FIGURES[args.figure](out, args.models)}")


if __name__ == "__main__":
    main()
