"""The contract every registered model keeps, whatever its family.

- the weights' meta is the model's: each published variant builds with the meta's receptive
  field and delay, the parameter count and the number of classes are the meta's;
- ``forward`` on a clip equals ``forward_steps(clip, pad_end=True)`` on a fresh state, and the
  first output of ``forward_step`` comes exactly at ``delay`` (then every ``stride`` steps),
  equal to ``forward_steps`` on the same steps.

A new family adds one entry to ``TINY``: builder kwargs and an input small enough for CI, and
the clip length at which its ``forward`` is the streamed clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import pytest
import torch
from torch import nn

from cozoo.models import create_model, get_model_info, list_models


@dataclass(frozen=True)
class Tiny:
    """A family's smallest useful configuration."""

    kwargs: Dict[str, Any]  # builder kwargs
    step_shape: Tuple[int, ...]  # one step of one sample, e.g. (3, 32, 32)
    clip_frames: Callable[[nn.Module], int]  # T at which forward == the streamed clip


TINY: Dict[str, Tiny] = {
    # the head pool averages the whole clip in forward and the last P frames in steps: equal at
    # T = P; 32x32 frames are the smallest the X3Ds and ResNets reduce to 1x1
    "video": Tiny({"pool_size": 2}, (3, 32, 32), lambda model: model.pool_size),
}

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
    torch.testing.assert_close(torch.stack([o for o in outputs if o is not None], 2), chunk)
