"""The ``flops`` suite: params and MACs of every registered model (any family) at its input,
next to the published values of its weights' meta."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from cozoo.models import InputSpec, get_model_info, list_models

from .registry import published_variant, weights_meta
from .results import print_flops_table


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a / b


def flops_row(name: str) -> Optional[Dict[str, Any]]:
    """Params and MACs (per sample) of model ``name`` at its published input (the weights'
    ``macs_per_clip.input``, else the registry's ``info.input``), and the published values
    (None without weights); None when the registry knows no input for it.

    ``step`` is what a step computes; ``step (pub. conv.)`` counts each wrapped BN/ReLU twice,
    the convention behind the published per-step figures, or is the model's own
    ``published_step_macs()`` where it has one (CoOadTR)."""
    from cozoo.co.flops import complexity
    from cozoo.models import create_model

    info, meta = get_model_info(name), weights_meta(name)
    spec: Optional[InputSpec] = info.input
    clip: Optional[Sequence[int]] = meta.macs_per_clip.input if meta is not None else None
    if clip is None and spec is not None:
        clip = spec.clip_shape
    if clip is None:
        return None
    shape = (1,) + tuple(clip)
    model = create_model(name, **published_variant(meta)).eval().to("meta")
    ours = complexity(model, shape)
    # a model whose published figures follow a convention of their own counts it itself
    own_convention = getattr(model, "published_step_macs", None)
    published_convention = (
        own_convention()
        if own_convention is not None
        else complexity(model, shape, convention="continual-inference").step_macs
    )
    clip_pub = None if meta is None else meta.macs_per_clip.value
    step_pub = None if meta is None else meta.macs_per_step.value
    rate = getattr(spec, "sampling_rate", None)
    return {
        "model": name,
        "input": "x".join(str(n) for n in shape[1:]),
        "frames_x_rate": None if spec is None else f"{spec.frames}" + (f"x{rate}" if rate else ""),
        "params": ours.params,
        "params_published": None if meta is None else meta.num_params,
        "clip_gmacs": ours.clip_macs / 1e9,
        "clip_gmacs_published": clip_pub,
        "step_gmacs": ours.step_macs / 1e9,
        "step_gmacs_mean": ours.step_macs_mean / 1e9,
        # a prediction every `stride` steps (the original skeleton networks: every 4th frame)
        "prediction_gmacs": ours.step_macs_mean * model.stride[0] / 1e9,
        "step_gmacs_published_convention": published_convention / 1e9,
        "step_gmacs_published": step_pub,
        "reduction": ours.clip_macs / ours.step_macs,
        "reduction_published": _ratio(clip_pub, step_pub),
    }


def run_flops(args: Any) -> List[dict]:
    """Params and MACs of every registered model matching ``args.pattern`` (shell-style), next
    to the published values; prints the table and returns the rows.

    Counted with ptflops on the meta device (shapes only, no arithmetic), so the whole table
    takes seconds. A model the registry knows no input of is named and skipped.
    """
    rows = []
    for name in list_models(args.pattern):
        row = flops_row(name)
        if row is None:
            print(f"{name}: no input spec in the registry (no weights, no input=...): skipped")
        else:
            rows.append(row)
    print_flops_table(rows)
    return rows
