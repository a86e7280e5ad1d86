"""A step that cannot fit a module fails at the stream's first step with ``co.StepShapeError``,
naming the module, what it expected and what it got: not later, when a window fills and torch
meets the stacked taps (``Conv3d(2, 2, 3)`` fed 5 channels used to fail at step 2 about 15).
"""

from __future__ import annotations

from typing import Callable, Tuple

import pytest
import torch
from torch import nn

from cozoo import co

C = 2


def first_step_raises(module: nn.Module, step: torch.Tensor, *patterns: str) -> str:
    """The first ``forward_step`` raises StepShapeError whose message has every pattern; the
    module's state is left fresh, and a step that fits still works afterwards."""
    for update_state in (False, True):
        with pytest.raises(co.StepShapeError) as raised:
            module.forward_step(step, update_state=update_state)
        message = str(raised.value)
        for pattern in patterns:
            assert pattern in message, (pattern, message)
        assert module.get_state() is None
    return message


# (module, a step that fits, a step with wrong channels)
WITH_CHANNELS: dict = {
    "Conv1d": (lambda: co.Conv1d(C, 3, 3), (1, C), (1, 5)),
    "Conv2d": (lambda: co.Conv2d(C, 3, 3, padding=1), (1, C, 4), (1, 5, 4)),
    "Conv3d": (lambda: co.Conv3d(C, 3, 3), (1, C, 4, 4), (1, 5, 4, 4)),
    "Conv3d_k1": (lambda: co.Conv3d(C, 3, 1), (1, C, 4, 4), (1, 5, 4, 4)),
    "Conv3d_depthwise": (lambda: co.Conv3d(C, C, 3, groups=C), (1, C, 4, 4), (1, 5, 4, 4)),
    "Linear_channel_dim_1": (lambda: co.Linear(C, 3, channel_dim=1), (1, C), (1, 5)),
    "Linear_last_dim": (lambda: co.Linear(C, 3), (1, C), (1, 5)),
    "BatchNorm3d": (lambda: co.continual(nn.BatchNorm3d(C)).eval(), (1, C, 4, 4), (1, 5, 4, 4)),
    "BatchNorm3d_train": (lambda: co.continual(nn.BatchNorm3d(C)), (3, C, 4, 4), (3, 5, 4, 4)),
    "BatchNorm1d": (lambda: co.continual(nn.BatchNorm1d(C)).eval(), (1, C), (1, 5)),
    "BatchNorm_in_Sequential": (
        lambda: co.Sequential(nn.BatchNorm3d(C), co.Conv3d(C, 3, 3)).eval(),
        (1, C, 4, 4),
        (1, 5, 4, 4),
    ),
    "Conv3d_in_Sequential": (
        lambda: co.Sequential(co.Conv3d(C, 3, 3), nn.ReLU(), co.Conv3d(3, 3, 3)),
        (1, C, 4, 4),
        (1, 5, 4, 4),
    ),
    "PositionalEncoding": (lambda: co.RecyclingPositionalEncoding(C, 4), (1, C), (1, 5)),
}


@pytest.mark.filterwarnings("ignore:BatchNorm3d is in train mode")
@pytest.mark.parametrize("kind", list(WITH_CHANNELS))
def test_wrong_channels_fail_at_the_first_step(kind):
    make, good, bad = WITH_CHANNELS[kind]
    module = make()
    name = kind.split("_")[0] if not kind.startswith("PositionalEncoding") else "Recycling"
    first_step_raises(module, torch.randn(bad), name, f"{C} channels", "got 5 channels", str(bad))
    module.forward_step(torch.randn(good))  # a fitting step starts the stream as usual


RANKS: dict = {
    # module, a step of the wrong rank
    "Conv1d_clip": (lambda: co.Conv1d(C, 3, 3), (1, C, 4)),
    "Conv2d_too_few": (lambda: co.Conv2d(C, 3, 3), (1, C)),
    "Conv3d_clip": (lambda: co.Conv3d(C, 3, 3), (1, C, 3, 4, 4)),
    "Conv3d_too_few": (lambda: co.Conv3d(C, 3, 3), (1, C, 4)),
    "MaxPool3d_clip": (lambda: co.MaxPool3d((3, 1, 1), stride=1), (1, C, 3, 4, 4)),
    "AvgPool2d_too_few": (lambda: co.AvgPool2d((3, 1), stride=1), (1, C)),
    "AdaptiveAvgPool3d_clip": (
        lambda: co.AdaptiveAvgPool3d((1, 1, 1), kernel_size=2),
        (1, C, 3, 4, 4),
    ),
    "BatchNorm3d_too_few": (lambda: co.continual(nn.BatchNorm3d(C)).eval(), (1, C, 4)),
    "Linear_too_few": (lambda: co.Linear(C, 3, channel_dim=1), (C,)),
}


@pytest.mark.parametrize("kind", list(RANKS))
def test_wrong_rank_fails_at_the_first_step(kind):
    make, bad = RANKS[kind]
    message = first_step_raises(make(), torch.randn(bad), kind.split("_")[0], str(bad))
    assert f"got {len(bad)} dims" in message
    if len(bad) == 5:
        assert "forward_steps" in message  # a clip given to forward_step: says where it goes


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_error_names_the_module_expected_and_got(dims):
    conv = {1: co.Conv1d, 2: co.Conv2d, 3: co.Conv3d}[dims](C, C, 3)
    bad = (1, 5) + (4,) * (dims - 1)
    layout = {1: "(B, C=2)", 2: "(B, C=2, S)", 3: "(B, C=2, H, W)"}[dims]
    message = first_step_raises(conv, torch.randn(bad))
    assert message.startswith(f"Conv{dims}d({C}, {C}, kernel_size=")
    assert f"expected a step {layout} of {dims + 1} dims with {C} channels" in message
    assert f"got 5 channels, shape {bad}" in message


def test_the_issue_example_fails_before_the_window_fills():
    conv = co.Conv3d(2, 2, 3)
    with pytest.raises(co.StepShapeError, match="expected a step .* with 2 channels"):
        conv.forward_step(torch.randn(1, 5, 4, 4))


def test_a_chunk_with_wrong_channels_fails_with_the_same_error():
    conv = co.Conv3d(C, 3, 3)
    with pytest.raises(co.StepShapeError, match=r"expected a chunk \(B, C=2, T, H, W\)"):
        conv.forward_steps(torch.randn(1, 5, 4, 4, 4))
    assert conv.get_state() is None


RECURRENT: Tuple[Callable[[], nn.Module], ...] = (
    lambda: co.RNN(C, 3),
    lambda: co.GRU(C, 3),
    lambda: co.LSTM(C, 3),
)


@pytest.mark.parametrize("make", RECURRENT, ids=["RNN", "GRU", "LSTM"])
def test_recurrent_steps_are_checked(make):
    module = make()
    first_step_raises(module, torch.randn(1, 5), type(module).__name__, "input_size = 2")
    first_step_raises(module, torch.randn(1, C, 3), "(1, 2, 3)")
    module.forward_step(torch.randn(1, C))


ATTENTION = {
    "SingleOutputMultiheadAttention": lambda: co.SingleOutputMultiheadAttention(
        4, 2, sequence_len=3
    ),
    "RetroactiveMultiheadAttention": lambda: co.RetroactiveMultiheadAttention(4, 2, sequence_len=3),
    "SingleOutputTransformerEncoderLayer": lambda: co.SingleOutputTransformerEncoderLayer(
        4, 2, 8, sequence_len=3
    ),
    "RetroactiveTransformerEncoderLayer": lambda: co.RetroactiveTransformerEncoderLayer(
        4, 2, 8, sequence_len=3
    ),
}


@pytest.mark.parametrize("kind", list(ATTENTION))
def test_attention_and_transformer_steps_are_checked(kind):
    module = ATTENTION[kind]().eval()
    with torch.no_grad():
        first_step_raises(module, torch.randn(1, 5), kind, "E=4", "(1, 5)")
        first_step_raises(module, torch.randn(1, 4, 3), kind, "(1, 4, 3)")
        module.forward_step(torch.randn(1, 4))


def test_attention_key_and_value_features_are_checked():
    module = co.SingleOutputMultiheadAttention(4, 2, kdim=3, vdim=5, sequence_len=3).eval()
    with pytest.raises(co.StepShapeError, match=r"kdim=3.*vdim=5.*\(1, 4\), \(1, 4\), \(1, 5\)"):
        module.forward_step(torch.randn(1, 4), torch.randn(1, 4), torch.randn(1, 5))


def test_step_shape_error_is_a_value_error_and_a_runtime_error():
    assert issubclass(co.StepShapeError, ValueError)
    assert issubclass(co.StepShapeError, RuntimeError)
