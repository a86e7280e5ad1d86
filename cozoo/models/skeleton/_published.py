"""The published checkpoints of the continual skeleton models, one ``Weights`` entry per file.

Source of every number: Hedegaard, Heidari & Iosifidis, "Continual Spatio-Temporal Graph
Convolutional Networks", Pattern Recognition 140 (2023) 109528 (arXiv 2203.11009): Table II
(NTU RGB+D 60, params / FLOPs / accuracy of all twelve networks), Table III (NTU RGB+D 60, one
and two streams), Table IV (NTU RGB+D 120) and Table V (Kinetics-Skeleton). The files are those
of the continual-skeletons repository (LukasHedegaard/continual-skeletons), released in a Google
Drive folder linked from its README (no direct URL: download them and pass ``weights=<path>``),
named ``{arch}_{dataset}_{split}_{modality}.{pt|ckpt}``: CoST-GCN loads ``stgcn_*.pt``,
CoA-GCN ``agcn_*.pt``, CoS-TR ``str_*.ckpt``, and the stride-one models the fine-tuned
``stgcnmod_*`` / ``agcnmod_*`` / ``strmod_*.ckpt`` files.

How to read the figures:

- "FLOPs" in the paper are ptflops multiply-accumulates (GMACs here) with the graph matmuls not
  counted. ``macs_per_clip`` is the regular network on one 300-frame clip; ``macs_per_step``
  the continual model per prediction: one frame for the stride-one models, four frames for the
  original ones (the published non-mod figures were not all counted the same way, see the
  notes);
- ``num_params`` counts trainable parameters, as the paper does: the fixed graphs ``A`` (stored
  in the checkpoints) are not counted (S-TR's attention layers own a trainable ``A``, counted);
- accuracies are top-1 (and top-5 on Kinetics) in %, each continual model evaluated on whole
  300-frame samples of the validation split (which is the test split); two streams = the
  logits of the joint and the bone model summed. Table II and Table III print different
  single-stream NTU-60 accuracies for the original (non-mod) continual models; both are kept.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from .._meta import Baseline, Compute, Result, SkeletonInput, Variant, WeightsMeta
from .._weights import Weights

__all__ = ["DATASETS", "MODELS", "weights_members"]

PAPER = (
    "Hedegaard, Heidari & Iosifidis, Continual Spatio-Temporal Graph Convolutional Networks, "
    "Pattern Recognition 140 (2023) 109528 (arXiv 2203.11009)"
)
REPOSITORY = "continual-skeletons (LukasHedegaard/continual-skeletons)"
LICENSE = "not stated (the continual-skeletons repository declares no license)"
FORMAT = "continual_skeletons"
FRAMES = 300
TOP1, TOP5 = "top-1 accuracy", "top-5 accuracy"


def table(number: str) -> str:
    """The citation of one table of the paper."""
    return f"{PAPER}, Table {number}"


# --------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------
#: model -> (display name, file prefix, baseline builder, baseline name, mod, model_kwargs)
MODELS: Dict[str, Tuple[str, str, str, str, bool, Dict[str, str]]] = {
    "costgcn": ("CoST-GCN", "stgcn", "stgcn", "ST-GCN", False, {}),
    "costgcn_mod": ("CoST-GCN*", "stgcnmod", "stgcn_mod", "ST-GCN*", True, {}),
    "coagcn": ("CoA-GCN", "agcn", "agcn", "AGCN", False, {"adaptive_unit": "clip"}),
    "coagcn_mod": ("CoA-GCN*", "agcnmod", "agcn_mod", "AGCN*", True,
                   {"adaptive_unit": "published"}),
    "costr": ("CoS-TR", "str", "str", "S-TR", False, {}),
    "costr_mod": ("CoS-TR*", "strmod", "str_mod", "S-TR*", True, {}),
}  # fmt: skip

#: The published file extension per file prefix (as the evaluation scripts load them).
EXTENSIONS = {"stgcn": "pt", "agcn": "pt", "str": "ckpt", "stgcnmod": "ckpt",
              "agcnmod": "ckpt", "strmod": "ckpt"}  # fmt: skip

#: Trainable parameters with the NTU-60 head (Table II: 3.14 M / 3.47 M / 3.09 M) and the
#: Kinetics-400 head (18 joints): exact counts of the architectures.
PARAMS = {
    "stgcn": (3_141_478, 3_219_744),
    "agcn": (3_469_510, 3_547_776),
    "str": (3_086_470, 3_150_400),
}
#: The 120-class head has 60 x 257 more parameters than the 60-class one.
NTU120_EXTRA_PARAMS = 60 * 257

#: (receptive field, delay) in frames: original 449 / 296 (pool 75 zero-padded by 19), mod
#: 300 / 299 (pool 220).
TEMPORAL = {False: (449, 296), True: (300, 299)}

# --------------------------------------------------------------------------------------------
# Compute (GMACs): the regular network per 300-frame clip, the continual one per prediction
# --------------------------------------------------------------------------------------------
#: model -> (NTU clip, NTU step, Kinetics clip, Kinetics step); None: not published
GMACS: Dict[str, Tuple[float, float, Optional[float], float]] = {
    "costgcn": (16.73, 0.27, 12.04, 0.16),
    "costgcn_mod": (36.90, 0.16, None, 0.11),
    "coagcn": (18.69, 0.30, 13.45, 0.18),
    "coagcn_mod": (40.87, 0.17, None, 0.12),
    "costr": (16.14, 0.22, 11.62, 0.16),
    "costr_mod": (35.65, 0.15, None, 0.11),
}
#: The clip GMACs of the stride-one regular networks on Kinetics-Skeleton (18 joints), which
#: the paper does not print: counted with cozoo.co.flops on the architecture (batch 1).
MEASURED_KINETICS_CLIP = {"costgcn_mod": 26.57, "coagcn_mod": 29.43, "costr_mod": 25.67}

_STEP_NOTES = {
    "costgcn": (
        "Per prediction (4 frames). 0.27 is the cost of feeding the 4 frames one step at a time "
        "with the stride-2 convolutions evaluated at every step; the ideal per-prediction cost "
        "is the clip cost / 75 = 0.2235."
    ),
    "coagcn": (
        "Per prediction (4 frames). 0.30 is the cost of feeding the 4 frames one step at a time "
        "with the stride-2 convolutions evaluated at every step; the ideal per-prediction cost "
        "is the clip cost / 75 = 0.2496."
    ),
    "costr": (
        "Per prediction (4 frames), counted on 4 frames at once (= the clip cost / 75), unlike "
        "the CoST-GCN and CoA-GCN figures. Tables III and IV print 0.17 (apparently swapped "
        "with CoA-GCN*'s 0.22 there)."
    ),
    "coagcn_mod": "Tables III and IV print 0.22 (apparently swapped with CoS-TR's 0.17 there).",
}

# --------------------------------------------------------------------------------------------
# Accuracies (%)
# --------------------------------------------------------------------------------------------
#: NTU-60 single stream, Table II: model -> (X-Sub, X-View); the regular networks by name.
NTU60_TABLE2 = {
    "ST-GCN": (86.0, 93.4), "AGCN": (86.4, 94.3), "S-TR": (86.8, 93.8),
    "costgcn": (85.3, 93.1), "costgcn_mod": (86.3, 93.8),
    "coagcn": (86.0, 93.9), "coagcn_mod": (84.1, 92.6),
    "costr": (86.5, 93.3), "costr_mod": (86.3, 92.4),
}  # fmt: skip
#: Table III (NTU-60): (X-Sub, X-View) for one stream (joint), then two (joint + bone).
NTU60_TABLE3 = {
    "ST-GCN": ((86.0, 93.4), (88.1, 94.8)), "AGCN": ((86.4, 94.3), (88.3, 95.3)),
    "S-TR": ((86.8, 93.8), (89.1, 95.3)),
    "costgcn": ((86.0, 93.4), (88.1, 94.8)), "costgcn_mod": ((86.3, 93.8), (88.3, 95.0)),
    "coagcn": ((86.4, 94.2), (88.2, 95.3)), "coagcn_mod": ((84.1, 92.6), (86.0, 93.1)),
    "costr": ((86.5, 93.5), (88.8, 95.3)), "costr_mod": ((86.3, 92.4), (88.9, 94.8)),
}  # fmt: skip
#: Table IV (NTU-120): (X-Sub, X-Set) for one stream, then two.
NTU120_TABLE4 = {
    "ST-GCN": ((79.0, 80.7), (83.7, 85.1)), "AGCN": ((79.7, 80.7), (84.0, 85.4)),
    "S-TR": ((80.2, 81.8), (84.8, 86.2)),
    "costgcn": ((78.9, 80.7), (83.7, 85.1)), "costgcn_mod": ((79.4, 81.6), (84.0, 85.5)),
    "coagcn": ((79.6, 80.7), (84.0, 85.3)), "coagcn_mod": ((77.3, 79.1), (80.4, 82.0)),
    "costr": ((80.1, 81.7), (84.8, 86.1)), "costr_mod": ((79.7, 81.7), (84.8, 86.1)),
}  # fmt: skip
#: Table V (Kinetics-Skeleton): (top-1, top-5) for one stream, then two.
KINETICS_TABLE5 = {
    "ST-GCN": ((33.4, 56.1), (34.4, 57.5)), "AGCN": ((35.0, 57.5), (36.9, 59.6)),
    "S-TR": ((32.0, 54.9), (34.7, 57.9)),
    "costgcn": ((31.8, 54.6), (33.1, 56.1)), "costgcn_mod": ((30.2, 52.4), (32.2, 54.5)),
    "coagcn": ((33.0, 55.5), (35.0, 57.3)), "coagcn_mod": ((23.3, 44.3), (27.5, 49.1)),
    "costr": ((29.7, 52.6), (32.7, 55.6)), "costr_mod": ((27.4, 49.7), (29.9, 52.7)),
}  # fmt: skip

_TABLE_2_3_NOTE = (
    "Table II prints {ii} and Table III {iii} for the same model and split; Table III's value "
    "equals the regular network's (or nearly), as if evaluated with an unpadded pool"
)
_NTU60, _NTU120, _KINETICS = "NTU RGB+D 60", "NTU RGB+D 120", "Kinetics-Skeleton"

# --------------------------------------------------------------------------------------------
# The datasets (one published file per dataset, split and modality)
# --------------------------------------------------------------------------------------------
#: member prefix -> (file stem, dataset, split, graph, classes)
DATASETS = {
    "NTU60_XSUB": ("ntu60_xsub", _NTU60, "xsub", "ntu", 60),
    "NTU60_XVIEW": ("ntu60_xview", _NTU60, "xview", "ntu", 60),
    "NTU120_XSUB": ("ntu120_xsub", _NTU120, "xsub", "ntu", 120),
    "NTU120_XSET": ("ntu120_xset", _NTU120, "xset", "ntu", 120),
    "KINETICS": ("kinetics", _KINETICS, None, "kinetics", 400),
}
MODALITIES = ("joint", "bone")
JOINTS = {"ntu": 25, "kinetics": 18}


def _result(metric: str, value: float, dataset: str, setting: Dict, note: Optional[str] = None):
    return Result(metric, value, "%", dataset, setting=setting, views="1 clip (300 frames)",
                  source=table(setting["table"]), note=note)  # fmt: skip


def accuracies(key: str, prefix: str, modality: str) -> Tuple[Result, ...]:
    """The published accuracies that involve the file ``prefix``/``modality`` of ``key`` (a
    model name, or a regular network's display name): its single stream (joint files only;
    no bone-only accuracy is published) and the two-stream (joint + bone) ensemble."""
    stem, dataset, split, _, _ = DATASETS[prefix]
    results = []
    streams = ((1, "joint"), (2, "joint+bone")) if modality == "joint" else ((2, "joint+bone"),)
    for count, used in streams:
        setting = {"streams": count, "modality": used}
        if dataset == _KINETICS:
            top1, top5 = KINETICS_TABLE5[key][count - 1]
            setting["table"] = "V"
            results += [
                _result(TOP1, top1, dataset, setting),
                _result(TOP5, top5, dataset, setting),
            ]
            continue
        column = 0 if split == "xsub" else 1
        setting = {"split": split, **setting}
        if dataset == _NTU120:
            value = NTU120_TABLE4[key][count - 1][column]
            results.append(_result(TOP1, value, dataset, {**setting, "table": "IV"}))
            continue
        iii = NTU60_TABLE3[key][count - 1][column]
        if count == 2:
            results.append(_result(TOP1, iii, dataset, {**setting, "table": "III"}))
            continue
        ii = NTU60_TABLE2[key][column]
        if ii == iii:
            results.append(_result(TOP1, ii, dataset, {**setting, "table": "II, III"}))
            continue
        note = _TABLE_2_3_NOTE.format(ii=ii, iii=iii)
        results.append(_result(TOP1, ii, dataset, {**setting, "table": "II"}, note))
        results.append(_result(TOP1, iii, dataset, {**setting, "table": "III"}, note))
    return tuple(results)


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------
def num_params(model: str, prefix: str) -> int:
    """Trainable parameters of ``model`` with the head and graph of the dataset ``prefix``."""
    ntu, kinetics = PARAMS[MODELS[model][1].replace("mod", "")]
    if prefix == "KINETICS":
        return kinetics
    return ntu + (NTU120_EXTRA_PARAMS if prefix.startswith("NTU120") else 0)


def compute(model: str, spec: SkeletonInput) -> Tuple[Compute, Compute]:
    """``macs_per_clip`` (regular network, 300 frames) and ``macs_per_step`` (per prediction)."""
    mod = MODELS[model][4]
    kinetics = spec.graph == "kinetics"
    ntu_clip, ntu_step, kinetics_clip, kinetics_step = GMACS[model]
    base = MODELS[model][3]
    clip_note = f"{base} on one {FRAMES}-frame clip"
    clip_source = table("V" if kinetics else "II")
    if kinetics and kinetics_clip is None:
        kinetics_clip = MEASURED_KINETICS_CLIP[model]
        clip_source = "cozoo.co.flops (ptflops module hooks), batch 1"
        clip_note += "; measured, not published (the paper prints no clip cost for it)"
    elif not kinetics and model == "costr":
        clip_note += "; Table III prints 16.20"
    clip = Compute(kinetics_clip if kinetics else ntu_clip, "GMACs", spec.clip_shape,
                   clip_source, clip_note)  # fmt: skip
    step_shape = spec.step_shape if mod else (spec.channels, 4, spec.joints, spec.persons)
    step_note = _STEP_NOTES.get(model) if not kinetics else None
    if kinetics and not mod:
        step_note = "Per prediction (4 frames), counted on 4 frames at once (= clip cost / 75)."
    step = Compute(kinetics_step if kinetics else ntu_step, "GMACs", step_shape,
                   table("V" if kinetics else "II"), step_note)  # fmt: skip
    return clip, step


def _temporal_note(model: str) -> str:
    display, _, _, base, mod, _ = MODELS[model]
    if mod:
        return (
            f"a prediction every frame from frame 299 (0-based) on; each equals the regular "
            f"{base} on the last 300 frames, as the published accuracy was measured"
        )
    return (
        "a prediction every 4th frame from frame 296 (0-based) on; the pool averages the last "
        "75 steps of layer10, zero-padded by 19 at the start, so the first prediction (the "
        f"clip output the published accuracy was measured with) differs from the regular {base}"
        "'s; pool_padding=0 gives the regular output but delays the first prediction to frame "
        "372" + ("; the adaptive unit sees one frame per step, so steps differ from forward"
                 if model == "coagcn" else "")
    )  # fmt: skip


_PROVENANCE = {
    False: "the authors' training of the original network",
    True: "the regular stride-one network fine-tuned from the original network's weights",
}


def _entry(model: str, prefix: str, modality: str) -> Weights:
    display, file_prefix, builder, base, mod, kwargs = MODELS[model]
    stem, dataset, split, graph, classes = DATASETS[prefix]
    spec = SkeletonInput(frames=FRAMES, channels=3, joints=JOINTS[graph], persons=2,
                         graph=graph, modality=modality)  # fmt: skip
    clip, step = compute(model, spec)
    rf, delay = TEMPORAL[mod]
    file_name = f"{file_prefix}_{stem}_{modality}.{EXTENSIONS[file_prefix]}"
    notes = [
        f"Evaluated in clip mode on whole {FRAMES}-frame samples of the validation split "
        "(also the test split); two streams: joint and bone logits summed."
    ]
    if mod:
        notes.append(
            f"The regular {base} computes the same outputs with these weights (its accuracy is "
            f"this one); the original {base.rstrip('*')}'s is in {model[:-4]}'s entries."
        )
    if model == "costr_mod":
        notes.append("The continual-inference README lists CoS-TR* under the name 'CoST-GCN'.")
    if graph == "kinetics":
        notes.append(
            "The released code's Kinetics class list holds NTU's 120 names (Kinetics runs fail "
            "as shipped); the numbers are the paper's."
        )
    model_kwargs = dict(kwargs)
    if graph != "ntu":
        model_kwargs["graph"] = graph
    baseline = (
        Baseline(base, (), builder=builder)
        if mod
        else Baseline(f"{base}", accuracies(base, prefix, modality), builder=builder)
    )
    meta = WeightsMeta(
        display_name=display,
        input=spec,
        num_classes=classes,
        num_params=num_params(model, prefix),
        macs_per_clip=clip,
        macs_per_step=step,
        variants=(Variant({}, rf, delay),),
        published=accuracies(model, prefix, modality),
        published_note=" ".join(notes),
        baseline=baseline,
        # no Kinetics-skeleton data module yet: no recipe for the Kinetics entries
        recipe=None if spec.graph == "kinetics" else f"{model}_{stem}_{modality}",
        license=LICENSE,
        source=f"{REPOSITORY}, file {file_name} ({_PROVENANCE[mod]})",
        model_kwargs=model_kwargs,
        temporal_note=_temporal_note(model),
    )
    return Weights(None, None, FORMAT, meta)


def weights_members(model: str) -> Dict[str, Weights]:
    """The weights entries of ``model`` by member name (``NTU60_XSUB_JOINT`` ...
    ``KINETICS_BONE``, and ``"DEFAULT"``: ``NTU60_XSUB_JOINT``)."""
    if model not in MODELS:
        raise KeyError(f"no published skeleton weights for {model!r}; known: {', '.join(MODELS)}")
    members = {
        f"{prefix}_{modality.upper()}": _entry(model, prefix, modality)
        for prefix in DATASETS
        for modality in MODALITIES
    }
    members["DEFAULT"] = members["NTU60_XSUB_JOINT"]
    return members
