"""Figures of the README, generated from the weights' meta: ``python -m cozoo.figures NAME``.

::

    python -m cozoo.figures accuracy_vs_flops --out docs/accuracy_vs_flops.png

``accuracy_vs_flops``: Kinetics-400 top-1 accuracy against the MACs one prediction costs, the
regular clip models (one prediction = one clip forward) next to their continual versions (one
prediction = one step, per pool size), like co3d's ``figures/results.png``. The continual points
come from ``get_model_weights(name).DEFAULT.meta``; the clip models have no weights in the zoo,
so their published numbers are kept here as data (``CLIP_MODELS``) with their source.

Needs matplotlib (``pip install 'cozoo[dev]'``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "CLIP_MODELS",
    "CONTINUAL_PUBLISHED",
    "FIGURES",
    "PublishedClipModel",
    "accuracy_vs_flops",
    "accuracy_vs_flops_points",
    "main",
]

SOURCE = "co3d README figures/results.png, as tabled in ../shared/spec/video-models.md §6.1"


@dataclass(frozen=True)
class PublishedClipModel:
    """A regular (clip) model as published: Kinetics-400, 1 clip / 1 crop."""

    label: str
    top1: float  # %
    gmacs_per_clip: float  # GMACs ("GFLOPs" in the figure)
    memory_mb: float  # max allocated memory during inference
    cpu_clips_per_s: float  # the figure's CPU throughput


#: The regular network behind each continual zoo model (same weights, clip forward).
#: Source: ``SOURCE`` (Acc, FLOPs, Mem, CPU columns).
CLIP_MODELS: Dict[str, PublishedClipModel] = {
    "cox3d_s": PublishedClipModel("X3D-S", 64.71, 2.06, 61.29, 2.23),
    "cox3d_m": PublishedClipModel("X3D-M", 67.24, 4.97, 126.29, 0.83),
    "cox3d_l": PublishedClipModel("X3D-L", 69.29, 19.17, 240.66, 0.25),
    "coslow": PublishedClipModel("Slow-8x8-R50", 67.42, 54.87, 266.04, 0.38),
    "coi3d": PublishedClipModel("I3D-R50", 63.98, 28.61, 191.59, 0.93),
}

#: Published memory (MB) and CPU steps/s of the continual models per pool size, which the
#: weights' meta does not hold. Source: ``SOURCE`` (Mem and CPU columns).
CONTINUAL_PUBLISHED: Dict[Tuple[str, int], Tuple[float, float]] = {
    ("cox3d_s", 13): (41.91, 13.16),
    ("cox3d_s", 64): (41.99, 13.19),
    ("cox3d_m", 16): (68.88, 7.57),
    ("cox3d_m", 64): (68.96, 7.51),
    ("cox3d_l", 16): (184.29, 2.30),
    ("cox3d_l", 64): (184.37, 2.30),
    ("coslow", 8): (175.98, 2.80),
    ("coslow", 64): (176.41, 2.92),
    ("coi3d", 8): (235.87, 3.00),
    ("coi3d", 64): (236.08, 3.15),
}

_CONTINUAL_LABELS = {
    "cox3d_s": "CoX3D-S",
    "cox3d_m": "CoX3D-M",
    "cox3d_l": "CoX3D-L",
    "coslow": "CoSlow",
    "coi3d": "CoI3D",
}

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
    "gmacs", "top1"}``; continual points from the weights' meta, clip points from
    ``CLIP_MODELS``."""
    from cozoo.models import get_model_weights, list_models

    points: List[dict] = []
    for name in names if names is not None else list_models():
        meta = get_model_weights(name).DEFAULT.meta
        clip = CLIP_MODELS.get(name)
        if clip is not None:
            points.append(
                {
                    "model": name,
                    "label": clip.label,
                    "kind": "clip",
                    "pool_size": None,
                    "gmacs": clip.gmacs_per_clip,
                    "top1": clip.top1,
                }
            )
        base = _CONTINUAL_LABELS.get(name, name)
        for pool_size, top1 in sorted(meta["published"]["per_pool_size"].items()):
            points.append(
                {
                    "model": name,
                    "label": f"{base}$_{{{pool_size}}}$",
                    "kind": "continual",
                    "pool_size": pool_size,
                    "gmacs": float(meta["macs_per_step"]["value"]),
                    "top1": float(top1),
                }
            )
    return points


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
    # Each clip model to its continual version with the same pool size as the clip (the
    # smallest published one): the same weights, one prediction for a step instead of a clip.
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
        "continual: the weights' meta; clip: co3d README figures/results.png",
        fontsize=6,
        color="gray",
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


FIGURES = {"accuracy_vs_flops": accuracy_vs_flops}


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
