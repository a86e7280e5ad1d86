"""Helpers that state the published facts of the video models in ``WeightsMeta`` form.

The continual figures (accuracy, memory, CPU throughput per pool size P) and the regular clip
networks' figures come from the results figure of Hedegaard & Iosifidis, "Continual 3D
Convolutional Neural Networks for Real-time Processing of Videos" (ECCV 2022; co3d README
``figures/results.png``): Kinetics-400, 1 clip / 1 frame, MACs counted with ptflops module hooks
and published as "GFLOPs".
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

from .._meta import Baseline, Compute, Result, Variant

__all__ = [
    "CAFFE2",
    "CO3D_FIGURE",
    "LICENSE",
    "PYSLOWFAST",
    "PYTORCHVIDEO",
    "clip_baseline",
    "gmacs",
    "kinetics_results",
    "pool_variants",
]

CO3D_FIGURE = (
    "Hedegaard & Iosifidis, Continual 3D CNNs (ECCV 2022), co3d README figures/results.png"
)
PYSLOWFAST = "PySlowFast (facebookresearch/SlowFast) model zoo"
PYTORCHVIDEO = "PyTorchVideo (facebookresearch/pytorchvideo) Kinetics-400 model zoo"
CAFFE2 = "PySlowFast (facebookresearch/SlowFast) model zoo, Caffe2 checkpoint"
LICENSE = "Apache-2.0 (license of the releasing repository)"
KINETICS = "Kinetics-400"
VIEWS = "1 clip / 1 frame"


def gmacs(value: float, shape: Tuple[int, ...], note: Optional[str] = None) -> Compute:
    """A published compute figure: ``value`` GMACs for one input of ``shape`` (batch 1)."""
    return Compute(value, "GMACs", shape, CO3D_FIGURE + "; ptflops module hooks", note)


def pool_variants(pool_sizes: Tuple[int, ...], rf_offset: int, delay_offset: int) -> Tuple:
    """One ``Variant`` per pool size P: receptive field ``rf_offset + P`` frames, delay
    ``delay_offset + P`` steps (continual-inference 1.2.4 semantics)."""
    return tuple(
        Variant({"pool_size": p}, receptive_field=rf_offset + p, delay=delay_offset + p)
        for p in pool_sizes
    )


def kinetics_results(
    top1: Mapping[int, float],
    memory_mb: Mapping[int, float],
    steps_per_s: Mapping[int, float],
) -> Tuple[Result, ...]:
    """The continual model's published results per pool size P: Kinetics-400 top-1 (%), the
    maximum memory allocated during inference (MB) and the CPU throughput (predictions/s)."""
    results = []
    for pool in sorted(top1):
        variant: Dict[str, int] = {"pool_size": pool}
        results += [
            Result("top-1 accuracy", top1[pool], "%", KINETICS, variant, views=VIEWS,
                   source=CO3D_FIGURE),
            Result("memory", memory_mb[pool], "MB", None, variant, source=CO3D_FIGURE),
            Result("CPU throughput", steps_per_s[pool], "predictions/s", None, variant,
                   source=CO3D_FIGURE),
        ]  # fmt: skip
    return tuple(results)


def clip_baseline(name: str, top1: float, memory_mb: float, clips_per_s: float) -> Baseline:
    """The regular network (same weights, clip forward) as published."""
    return Baseline(
        name,
        (
            Result(
                "top-1 accuracy", top1, "%", KINETICS, views="1 clip / 1 crop", source=CO3D_FIGURE
            ),
            Result("memory", memory_mb, "MB", source=CO3D_FIGURE),
            Result("CPU throughput", clips_per_s, "predictions/s", source=CO3D_FIGURE),
        ),  # fmt: skip
    )
