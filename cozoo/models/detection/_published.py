"""The published facts of the online-detection family on THUMOS14, one ``Weights`` entry per
feature set. No checkpoint of these models was released, so every entry has ``url=None``: it
carries the published figures and the recipe that trains the model (load a trained file with
``weights=<path>``).

Sources:

- Hedegaard, Bakhtiarnia & Iosifidis, "Continual Transformers: Redundancy-Free Attention for
  Online Inference", ICLR 2023 (arXiv 2201.06268), Table 6 (THUMOS14 mAP and FLOPs, ActivityNet
  and Kinetics features) and Table 7 (with audio features);
- the training logs of five seeds each that the CoOadTR repository (LukasHedegaard/CoOadTR)
  commits (``runs_thumos*``), final epoch: "logged" results, mean and sample standard deviation;
- Wang et al., "OadTR: Online Action Detection with Transformers", ICCV 2021 (the original
  OadTR figures).

How to read the figures:

- mAP is the per-frame mAP of THUMOS14 in % (the OadTR protocol: softmax over logits 0-20,
  classes 1-20, steps 63 .. L-10 of every test video, Ambiguous steps dropped);
- "FLOPs" in the paper are ptflops multiply-accumulates (MACs here, in GMACs): for a continual
  model one step at batch 1 counted with module hooks (the published convention, see
  ``counting.py``); for the regular networks one 64-step window. The paper's own table prints
  b1/b2 and OadTR figures that differ from the logs in the last digit; the logs are used here;
- ``num_params`` are the trainable parameters of the architecture as built here. The published
  baseline counts include parameters their code builds but never uses (noted per entry).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from .._meta import Baseline, Compute, FeatureInput, Result, Variant, WeightsMeta
from .._weights import Weights

__all__ = ["FEATURES", "weights_members"]

PAPER = (
    "Hedegaard, Bakhtiarnia & Iosifidis, Continual Transformers: Redundancy-Free Attention for "
    "Online Inference, ICLR 2023 (arXiv 2201.06268)"
)
OADTR_PAPER = "Wang et al., OadTR: Online Action Detection with Transformers, ICCV 2021"
LOGS = "training logs of 5 seeds in LukasHedegaard/CoOadTR (runs_thumos*), final epoch 4"
LICENSE = "Apache-2.0 (the CoOadTR code); THUMOS14 features: research use"
DATASET = "THUMOS14"
MAP = "mAP"
WINDOW = 64
CLASSES = 22

#: member -> (feature dim, feature description, audio)
FEATURES: Dict[str, Tuple[int, str]] = {
    "THUMOS14_KINETICS": (4096, "TSN ResNet-50 rgb (2048) + flow (2048), Kinetics-400 pretrained"),
    "THUMOS14_ANET": (3072, "TSN rgb (2048) + flow (1024), ActivityNet pretrained"),
    "THUMOS14_KINETICS_AUDIO": (8192, "Kinetics TSN rgb + flow (4096) + AudioSet audio (4096)"),
    "THUMOS14_ANET_AUDIO": (7168, "ActivityNet TSN rgb + flow (3072) + AudioSet audio (4096)"),
}
_SETS = {"THUMOS14_KINETICS": "kinetics", "THUMOS14_ANET": "anet",
         "THUMOS14_KINETICS_AUDIO": "kinetics+audio",
         "THUMOS14_ANET_AUDIO": "anet+audio"}  # fmt: skip

#: Published MACs (GMACs) per member: continual models per step, regular ones per window.
GMACS: Dict[str, Dict[str, float]] = {
    "cooadtr_b1": {"THUMOS14_KINETICS": 0.010648, "THUMOS14_ANET": 0.009599,
                   "THUMOS14_KINETICS_AUDIO": 0.014842, "THUMOS14_ANET_AUDIO": 0.013793},
    "cooadtr_b2": {"THUMOS14_KINETICS": 0.411988, "THUMOS14_ANET": 0.410939,
                   "THUMOS14_KINETICS_AUDIO": 0.416182, "THUMOS14_ANET_AUDIO": 0.415134},
    "oadtr": {"THUMOS14_KINETICS": 2.512946, "THUMOS14_ANET": 2.445837,
              "THUMOS14_KINETICS_AUDIO": 2.7819, "THUMOS14_ANET_AUDIO": 2.7149},
    "oadtr_b1": {"THUMOS14_KINETICS": 0.672600, "THUMOS14_ANET": 0.605491},
    "oadtr_b2": {"THUMOS14_KINETICS": 1.075322, "THUMOS14_ANET": 1.008213},
}  # fmt: skip

#: Published mAP (%): (paper table value, its table, logged mean, logged sd) per member.
MAPS: Dict[str, Dict[str, Tuple[Optional[float], str, float, float]]] = {
    "cooadtr_b1": {"THUMOS14_KINETICS": (64.5, "6", 64.49, 0.36),
                   "THUMOS14_ANET": (56.2, "6", 56.59, 0.47),
                   "THUMOS14_KINETICS_AUDIO": (64.3, "7", 65.24, 0.22),
                   "THUMOS14_ANET_AUDIO": (57.1, "7", 57.43, 0.29)},
    "cooadtr_b2": {"THUMOS14_KINETICS": (64.4, "6", 64.94, 0.21),
                   "THUMOS14_ANET": (56.4, "6", 57.40, 0.50),
                   "THUMOS14_KINETICS_AUDIO": (64.7, "7", 65.29, 0.42),
                   "THUMOS14_ANET_AUDIO": (57.4, "7", 58.33, 0.54)},
    "oadtr": {"THUMOS14_KINETICS": (64.4, "6", 64.01, 0.31),
              "THUMOS14_ANET": (57.8, "6", 57.03, 0.36),
              "THUMOS14_KINETICS_AUDIO": (64.4, "7", 64.28, 0.55),
              "THUMOS14_ANET_AUDIO": (57.5, "7", 57.47, 0.47)},
    "oadtr_b1": {"THUMOS14_KINETICS": (None, "6", 63.90, 0.55),
                 "THUMOS14_ANET": (None, "6", 56.31, 0.28)},
    "oadtr_b2": {"THUMOS14_KINETICS": (None, "6", 64.38, 0.43),
                 "THUMOS14_ANET": (None, "6", 56.61, 0.31)},
}  # fmt: skip
#: The original OadTR paper's own figures (ActivityNet, Kinetics features).
OADTR_ORIGINAL = {"THUMOS14_ANET": 58.3, "THUMOS14_KINETICS": 65.2}

#: The CoOadTR-b1 ActivityNet positional-encoding ablation (logged, 5 seeds): kwargs -> mAP.
PE_ABLATION = {
    "cooadtr_b1": {("fixed", 64): (55.98, 0.46), ("learned", 127): (55.68, 0.22),
                   ("learned", 64): (55.85, 0.38)},
    "cooadtr_b2": {("fixed", 64): (57.19, 0.57), ("learned", 127): (56.06, 0.34),
                   ("learned", 64): (56.17, 0.32)},
}  # fmt: skip

#: Parameters the published counts include but the networks never use: OadTR builds a
#: positional embedding for its decoder queries that is never applied (8 x 1024); the
#: decoder-free baselines keep a class token (1024) and a second 1024 -> 22 classifier.
UNUSED_PUBLISHED_PARAMS = {"oadtr": 8 * 1024, "oadtr_b1": 1024 + 22_550, "oadtr_b2": 1024 + 22_550}

DISPLAY = {"cooadtr_b1": "CoOadTR-b1", "cooadtr_b2": "CoOadTR-b2", "oadtr": "OadTR",
           "oadtr_b1": "OadTR-b1", "oadtr_b2": "OadTR-b2"}  # fmt: skip
CONTINUAL = ("cooadtr_b1", "cooadtr_b2")
_MODEL_KWARGS_DEFAULTS = {"pe": "fixed", "pe_rows": 127}


def num_params(model: str, feature_dim: int) -> int:
    """Trainable parameters of ``model`` built for ``feature_dim`` (22 classes, fixed PE for
    the continual models): closed forms checked against the architectures by the tests."""
    e = 1024
    embedding = feature_dim * e + e
    norm, head = 2 * e, e * CLASSES + CLASSES
    ff = 2 * (e * e + e)
    if model in CONTINUAL:  # post-norm layers, bias-free attention
        layer = 4 * e * e + 2 * norm + ff
        return embedding + (1 if model == "cooadtr_b1" else 2) * layer + norm + head
    encoder_layer = norm + 3 * e * e + (e * e + e) + norm + ff
    if model != "oadtr":
        layers = 1 if model == "oadtr_b1" else 2
        return embedding + (WINDOW + 1) * e + layers * encoder_layer + norm + head
    decoder_layer = 2 * (4 * e * e + 4 * e) + ff + 3 * norm
    return (
        embedding + e + (WINDOW + 1) * e + 3 * encoder_layer + norm
        + 8 * e + 5 * decoder_layer + norm + (2 * e * CLASSES + CLASSES) + head
    )  # fmt: skip


def _results(model: str, member: str) -> Tuple[Result, ...]:
    value, table, mean, sd = MAPS[model][member]
    setting = {"features": _SETS[member], "protocol": "oadtr"}
    out = []
    if value is not None:
        out.append(Result(MAP, value, "%", DATASET, setting={**setting, "table": table},
                          source=f"{PAPER}, Table {table}"))  # fmt: skip
    if model == "oadtr" and member in OADTR_ORIGINAL:
        original = {**setting, "run": "original paper"}
        out.append(Result(MAP, OADTR_ORIGINAL[member], "%", DATASET, setting=original,
                          source=OADTR_PAPER))  # fmt: skip
    out.append(Result(MAP, mean, "%", DATASET, setting={**setting, "seeds": 5, "sd": sd},
                      source=LOGS, note=f"mean of 5 seeds, sample sd {sd}"))  # fmt: skip
    if member == "THUMOS14_ANET":
        for (pe, rows), (m, s) in PE_ABLATION.get(model, {}).items():
            out.append(Result(MAP, m, "%", DATASET, variant={"pe": pe, "pe_rows": rows},
                              setting={**setting, "seeds": 5, "sd": s}, source=LOGS))  # fmt: skip
    return tuple(out)


def _baseline(member: str) -> Baseline:
    return Baseline("OadTR", _results("oadtr", member), builder="oadtr")


def _meta(model: str, member: str) -> WeightsMeta:
    dim, described = FEATURES[member]
    continual = model in CONTINUAL
    step_note = (
        "ptflops module hooks on one step at batch 1 (attention by its own formula, norms and "
        "the positional encoding 0); see cozoo/models/detection/counting.py"
        if continual
        else "one 64-step window (a regular model recomputes it for every prediction)"
    )
    gmacs = GMACS[model][member]
    clip = GMACS["oadtr"][member] if continual else gmacs
    unused = UNUSED_PUBLISHED_PARAMS.get(model)
    return WeightsMeta(
        display_name=DISPLAY[model],
        input=FeatureInput(dim, WINDOW, described),
        num_classes=CLASSES,
        num_params=num_params(model, dim),
        macs_per_clip=Compute(
            clip, "GMACs", (dim, WINDOW), LOGS, note="OadTR on one window" if continual else None
        ),
        macs_per_step=Compute(gmacs, "GMACs", (dim,), LOGS, note=step_note),
        variants=(Variant({}, WINDOW, WINDOW - 1),),
        published=_results(model, member),
        published_note=(
            None
            if unused is None
            else f"the published parameter count is {unused:,} higher: "
            "parameters its code builds but never uses"
        ),
        baseline=_baseline(member) if continual else None,
        recipe=f"{model}_{_SETS[member].replace('+', '_')}" if member in MAPS[model] else None,
        license=LICENSE,
        source=PAPER if model != "oadtr" else OADTR_PAPER,
        model_kwargs={"feature_dim": dim, **(_MODEL_KWARGS_DEFAULTS if continual else {})},
    )


def weights_members(model: str) -> Dict[str, Weights]:
    """The ``WeightsEnum`` members of ``model``: one per feature set, ``DEFAULT`` Kinetics."""
    members = {
        member: Weights(None, None, "cozoo", _meta(model, member))
        for member in FEATURES
        if member in GMACS[model]
    }
    members["DEFAULT"] = members["THUMOS14_KINETICS"]
    return members
