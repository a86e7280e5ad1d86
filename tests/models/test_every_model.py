"""The contract every registered model keeps, whatever its family.

- the weights' meta is the model's: each published variant builds with the meta's receptive
  field and delay, the parameter count and the number of classes are the meta's;
- ``forward`` on a clip equals ``forward_steps(clip, pad_end=True)`` on a fresh state, and the
  first output of ``forward_step`` comes exactly at ``delay`` (then every ``stride`` steps),
  equal to ``forward_steps`` on the same steps;
- one model of each family exports its step to ONNX (``co.onnx.export``), and ONNX Runtime
  equals ``forward_step`` on every step of a stream, validity flags included.

A new family adds one entry to ``TINY``: builder kwargs and an input small enough for CI, the
clip length at which its ``forward`` is the streamed clip, and the model it exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cozoo.co import onnx as co_onnx
from cozoo.models import create_model, get_model_info, list_models


@dataclass(frozen=True)
class Tiny:
    """A family's smallest useful configuration."""

    kwargs: Dict[str, Any]  # builder kwargs
    step_shape: Tuple[int, ...]  # one step of one sample, e.g. (3, 32, 32)
    clip_frames: Callable[[nn.Module], int]  # T at which forward == the streamed clip
    onnx_model: str  # the family's model exported to ONNX (the smallest graph)
    onnx_step_shape: Tuple[int, ...]  # its step, as small as the architecture allows
    # (rtol, atol) of steps vs forward_steps: float32 rounding differs between one frame and a
    # chunk of frames where a unit batches the frames (the skeleton attention units)
    step_tolerance: Tuple[float, float] = (1.3e-6, 1e-5)


TINY: Dict[str, Tiny] = {
    # the head pool averages the whole clip in forward and the last P frames in steps: equal at
    # T = P; 32x32 frames are the smallest the X3Ds and ResNets reduce to 1x1 (ONNX: 8x8 frames
    # keep CoX3D-S's whole architecture in a small graph)
    "video": Tiny(
        {"pool_size": 2}, (3, 32, 32), lambda model: model.pool_size, "cox3d_s", (3, 8, 8)
    ),  # fmt: skip
    # narrow (base_channels=32: the same layers, graph, strides and paddings), a pool of 2 and
    # the frame-wise adaptive unit: the original AGCN unit attends over the whole clip, so only
    # its own tests cover it (tests/models/skeleton); forward is the streamed clip at T >= rf
    "skeleton": Tiny(
        {"base_channels": 32, "pool_size": 2, "adaptive_unit": "corrected"},
        (3, 25, 2),
        lambda model: model.receptive_field,
        "costgcn_mod",
        (3, 25, 2),
        (1e-5, 1e-4),
    ),  # fmt: skip
    # narrow transformers with the real layer plans (E=16, 2 heads) over a window of 8 steps;
    # the regular baselines recompute their window per step (SlidingWindowNetwork)
    "detection": Tiny(
        {"feature_dim": 12, "embed_dim": 16, "heads": 2, "ff_dim": 16, "window": 8},
        (12,),
        lambda model: model.receptive_field,
        "cooadtr_b1",
        (12,),
    ),  # fmt: skip
}
FAMILIES = sorted({get_model_info(name).family for name in list_models()})

MODELS: List[str] = list_models()


def _tiny(name: str) -> Tiny:
    family = get_model_info(name).family
    assert family in TINY, f"add the {family!r} family to TINY"
    return TINY[family]


def _clip(batch: int, step_shape: Tuple[int, ...], frames: int, seed: int) -> torch.Tensor:
    shape = (batch, step_shape[0], frames, *step_shape[1:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", MODELS)
def test_the_meta_is_the_models(name: str):
    info = get_model_info(name)
    assert info.input is not None, "a model without published weights registers its input="
    if info.weights is None:
        return
    meta = info.weights.DEFAULT.meta
    assert info.input == meta.input and info.display_name == meta.display_name
    model = create_model(name).to("meta")
    assert sum(p.numel() for p in model.parameters()) == meta.num_params
    for variant in meta.variants:
        built = create_model(name, **variant.kwargs)
        assert (built.receptive_field, built.delay) == (variant.receptive_field, variant.delay)
    classes = {m.out_features for m in model.modules() if isinstance(m, nn.Linear)}
    assert meta.num_classes in classes


@pytest.mark.parametrize("name", MODELS)
def test_forward_is_the_streamed_clip(name: str):
    tiny = _tiny(name)
    model = create_model(name, **tiny.kwargs).eval()
    x = _clip(2, tiny.step_shape, tiny.clip_frames(model), seed=1)
    with torch.no_grad():
        expected = model(x)
        model.clean_state()
        got = model.forward_steps(x, pad_end=True)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_steps_start_at_the_delay_and_equal_forward_steps(
    name: str, run_steps, pattern_of, expected_pattern
):
    tiny = _tiny(name)
    model = create_model(name, **tiny.kwargs).eval()
    x = _clip(1, tiny.step_shape, model.delay + 4, seed=2)
    (stride,) = model.stride
    with torch.no_grad():
        outputs = run_steps(model, x)
        model.clean_state()
        chunk = model.forward_steps(x)
    assert pattern_of(outputs) == expected_pattern(x.shape[2], model.delay, stride)
    rtol, atol = tiny.step_tolerance
    stacked = torch.stack([o for o in outputs if o is not None], 2)
    torch.testing.assert_close(stacked, chunk, rtol=rtol, atol=atol)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_model_of_each_family_steps_the_same_in_onnx_runtime(family: str, tmp_path):
    """The exported step equals ``forward_step`` on every step of a stream past its warm-up.
    Exported with a static batch (``tests/co/test_export.py`` covers the dynamic one; tracing it
    symbolically costs the most)."""
    tiny = TINY[family]
    net = create_model(tiny.onnx_model, **tiny.kwargs).eval()
    frames = _clip(1, tiny.onnx_step_shape, net.delay + 4, seed=3)
    path = tmp_path / f"{tiny.onnx_model}.onnx"
    co_onnx.export(net, frames[:, :, 0], path, dynamic_batch=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state = co_onnx.initial_state(net, frames[:, :, 0])
    net.clean_state()
    compared = 0
    for t in range(frames.shape[2]):
        step = frames[:, :, t]
        output, valid, *state = session.run(
            None, {"input": step.numpy(), **co_onnx.state_feed(state)}
        )
        with torch.no_grad():
            expected = net.forward_step(step)
        assert bool(np.asarray(valid).all()) == (expected is not None), t
        if expected is not None:
            # float32 rounding relative to the logits' scale (skeleton logits reach ~20)
            scale = max(1.0, float(expected.abs().max()))
            np.testing.assert_allclose(output, expected.numpy(), atol=2e-6 * scale, rtol=1e-5)
            compared += 1
    assert compared == 4  # every step past the warm-up
