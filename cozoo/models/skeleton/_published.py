# ruff: noqa: E501  (first version; the full table replaces it)
"""The published facts of the continual skeleton models, as ``Weights`` entries with
``WeightsMeta``: Hedegaard, Heidari & Iosifidis, "Continual Spatio-Temporal Graph Convolutional
Networks", Pattern Recognition 140 (2023) 109528 (arXiv 2203.11009), Tables II-V.

(First version: the NTU-60 X-Sub joint entry of each model; the full table follows.)
"""

from __future__ import annotations

from typing import Dict

from .._meta import Baseline, Compute, Result, SkeletonInput, Variant, WeightsMeta
from .._weights import Weights

__all__ = ["MODELS", "weights_members"]

PAPER = "Hedegaard et al., Continual Spatio-Temporal GCNs (Pattern Recognition 2023), Table II"
SOURCE = "continual-skeletons (LukasHedegaard/continual-skeletons) weights folder (Google Drive)"
LICENSE = "Apache-2.0 (license of the releasing repository)"

#: model -> (display name, regular baseline builder, baseline display name, params NTU-60,
#: clip GMACs, step GMACs, receptive field, delay, X-Sub top-1, baseline X-Sub top-1)
MODELS = {
    "costgcn": ("CoST-GCN", "stgcn", "ST-GCN", 3_141_478, 16.73, 0.27, 449, 296, 85.3, 86.0),
    "costgcn_mod": ("CoST-GCN*", "stgcn_mod", "ST-GCN*", 3_141_478, 36.90, 0.16, 300, 299, 86.3, None),
    "coagcn": ("CoA-GCN", "agcn", "AGCN", 3_469_510, 18.69, 0.30, 449, 296, 86.0, 86.4),
    "coagcn_mod": ("CoA-GCN*", "agcn_mod", "AGCN*", 3_469_510, 40.87, 0.17, 300, 299, 84.1, None),
    "costr": ("CoS-TR", "str", "S-TR", 3_086_470, 16.14, 0.22, 449, 296, 86.5, 86.8),
    "costr_mod": ("CoS-TR*", "str_mod", "S-TR*", 3_086_470, 35.65, 0.15, 300, 299, 86.3, None),
}  # fmt: skip


def weights_members(model: str) -> Dict[str, Weights]:
    """The weights entries of ``model`` by member name (``"DEFAULT"`` included)."""
    name, baseline, base_name, params, clip, step, rf, delay, top1, base_top1 = MODELS[model]
    spec = SkeletonInput()
    base_results = () if base_top1 is None else (
        Result("top-1 accuracy", base_top1, "%", "NTU RGB+D 60", setting={"split": "xsub"}, source=PAPER),
    )  # fmt: skip
    meta = WeightsMeta(
        display_name=name,
        input=spec,
        num_classes=60,
        num_params=params,
        macs_per_clip=Compute(clip, "GMACs", spec.clip_shape, PAPER),
        macs_per_step=Compute(step, "GMACs", spec.step_shape, PAPER),
        variants=(Variant({}, rf, delay),),
        published=(
            Result(
                "top-1 accuracy", top1, "%", "NTU RGB+D 60", setting={"split": "xsub"}, source=PAPER
            ),
        ),  # fmt: skip
        baseline=Baseline(base_name, base_results, builder=baseline),
        license=LICENSE,
        source=SOURCE,
        model_kwargs={"adaptive_unit": "published"} if model == "coagcn_mod" else {},
    )
    entry = Weights(None, None, "continual_skeletons", meta)
    return {"NTU60_XSUB_JOINT": entry, "DEFAULT": entry}
