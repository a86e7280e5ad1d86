"""What the benchmark reads from the model registry, for any family: a model's input shapes
(``info.input``: video ``(3, T, H, W)``, skeleton ``(C, T, V, M)``, features ``(D, T)``), the
builder kwargs to build it with, our MAC counts and its published figures (the weights' meta;
empty for a model without weights)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Sequence

from cozoo.models import (
    InputSpec,
    ModelInfo,
    WeightsMeta,
    create_model,
    get_model_info,
    list_models,
)

PUBLISHED_COLUMNS = (
    "published_top1",
    "published_clip_model",
    "published_clip_top1",
    "published_clip_gmacs",
    "published_step_gmacs",
    "published_reduction",
    "published_clip_memory_mb",
    "published_step_memory_mb",
    "published_cpu_speedup",
)


def weights_meta(name: str) -> Optional[WeightsMeta]:
    """The meta of ``name``'s default weights; None for a model without published weights."""
    weights = get_model_info(name).weights
    return None if weights is None else weights.DEFAULT.meta


def model_input(
    name: str, *, frames: Optional[int] = None, crop: Optional[int] = None
) -> InputSpec:
    """The input spec to feed model ``name``: the registry's (``info.input``), with the clip
    length ``frames`` (any kind) and the crop ``H = W`` (video only; other kinds ignore it)
    replaced when given (0 / None: the registered value)."""
    spec = get_model_info(name).input
    if spec is None:
        raise ValueError(
            f"{name!r} has no input spec in the model registry (no weights meta and no "
            f"register_model(input=...)): the benchmark cannot tell its clip shape"
        )
    if frames:
        spec = replace(spec, frames=int(frames))
    if crop and spec.kind == "video":
        spec = replace(spec, crop=int(crop))
    return spec


def input_label(spec: InputSpec) -> str:
    """The clip shape without its channel dim: ``"16x224x224"`` (video T x H x W), ``"300x25x2"``
    (skeleton T x V x M), ``"2048x64"`` (features D x T)."""
    return "x".join(str(n) for d, n in zip(spec.dims, spec.clip_shape) if d != "C")


def _takes_pool_size(info: ModelInfo) -> bool:
    """Whether the builder takes ``pool_size``: its weights' variants are told apart by it, or
    its signature names it (builders taking ``**kwargs`` alone tell nothing)."""
    if info.weights is not None:
        if any("pool_size" in v.kwargs for v in info.weights.DEFAULT.meta.variants):
            return True
    try:
        return "pool_size" in inspect.signature(info.builder).parameters
    except (TypeError, ValueError):
        return False


def builder_kwargs(name: str, pool_size: Optional[int]) -> Dict[str, Any]:
    """``{"pool_size": pool_size}`` where model ``name`` takes it, else ``{}``."""
    if pool_size is None or not _takes_pool_size(get_model_info(name)):
        return {}
    return {"pool_size": int(pool_size)}


def published_variant(meta: Optional[WeightsMeta]) -> Dict[str, Any]:
    """The builder kwargs the flops table counts a model with: the published variant with the
    smallest pool (the MACs hardly depend on the pool size), else the first variant, else the
    builder's defaults."""
    if meta is None or not meta.variants:
        return {}
    pooled = [v for v in meta.variants if "pool_size" in v.kwargs]
    if pooled:
        return dict(min(pooled, key=lambda v: v.kwargs["pool_size"]).kwargs)
    return dict(meta.variants[0].kwargs)


def gmacs(name: str, kwargs: Mapping[str, Any], clip_shape: Sequence[int]) -> Dict[str, float]:
    """Our MAC counts (per sample, GMACs) of model ``name`` built with ``kwargs``: a clip of
    ``clip_shape`` ``(B, *clip)`` (counted at batch 1) and a step (mean and peak); NaN without
    ptflops."""
    from cozoo.co.flops import complexity

    try:
        model = create_model(name, **kwargs).eval().to("meta")
        c = complexity(model, (1,) + tuple(clip_shape[1:]))
    except ImportError:  # ptflops missing
        nan = float("nan")
        return {"clip_gmacs": nan, "step_gmacs": nan, "step_gmacs_peak": nan}
    return {
        "clip_gmacs": c.clip_macs / 1e9,
        "step_gmacs": c.step_macs_mean / 1e9,
        "step_gmacs_peak": c.step_macs / 1e9,
    }


def _value(result: Any) -> Any:
    return None if result is None else result.value


def baseline_meta(builder: str) -> Optional[WeightsMeta]:
    """The meta of a weights entry whose regular (clip) network is the registered ``builder``
    (``"stgcn"`` -> CoST-GCN's: ST-GCN's published figures); None if no entry names it."""
    for name in list_models():
        weights = get_model_info(name).weights
        if (
            weights is not None
            and getattr(weights.DEFAULT.meta.baseline, "builder", None) == builder
        ):
            return weights.DEFAULT.meta
    return None


def published_against(
    meta: Optional[WeightsMeta], variant: Mapping[str, Any], against: str
) -> Dict[str, Any]:
    """``published`` for a step timed against the clip of the registered model ``against``:
    the clip columns (network, top-1, GMACs, reduction) are ``against``'s published ones."""
    row = published(meta, variant)
    other = baseline_meta(against)
    if meta is None or other is None:
        return row
    base = other.baseline
    row["published_clip_model"] = base.display_name
    row["published_clip_top1"] = _value(base.find("top-1 accuracy"))
    row["published_clip_gmacs"] = other.macs_per_clip.value
    row["published_reduction"] = other.macs_per_clip.value / meta.macs_per_step.value
    row["published_cpu_speedup"] = None
    return row


def published(meta: Optional[WeightsMeta], variant: Mapping[str, Any]) -> Dict[str, Any]:
    """The published figures (``PUBLISHED_COLUMNS``) of the model built with the builder kwargs
    ``variant`` (e.g. ``{"pool_size": 64}``): the weights' meta, the regular clip network's from
    ``meta.baseline``; all None without weights."""
    if meta is None:
        return dict.fromkeys(PUBLISHED_COLUMNS)
    base = meta.baseline
    clip_cpu = None if base is None else _value(base.find("CPU throughput"))
    step_cpu = _value(meta.find("CPU throughput", **variant))
    clip_gmacs, step_gmacs = meta.macs_per_clip.value, meta.macs_per_step.value
    return {
        "published_top1": _value(meta.find("top-1 accuracy", **variant)),
        "published_clip_model": None if base is None else base.display_name,
        "published_clip_top1": None if base is None else _value(base.find("top-1 accuracy")),
        "published_clip_gmacs": clip_gmacs,
        "published_step_gmacs": step_gmacs,
        "published_reduction": clip_gmacs / step_gmacs,
        "published_clip_memory_mb": None if base is None else _value(base.find("memory")),
        "published_step_memory_mb": _value(meta.find("memory", **variant)),
        "published_cpu_speedup": None
        if clip_cpu is None or step_cpu is None
        else step_cpu / clip_cpu,
    }
