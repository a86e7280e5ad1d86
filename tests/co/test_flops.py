"""MACs per mode, counted through ptflops, against counts worked out by hand."""

from __future__ import annotations

import io

import pytest
import torch
from ptflops import get_model_complexity_info
from torch import nn

from cozoo import co
from cozoo.co.flops import complexity


def ptflops_macs(module, shape):
    macs, params = get_model_complexity_info(
        module,
        tuple(shape[1:]),
        input_constructor=lambda _: torch.randn(shape),
        as_strings=False,
        print_per_layer_stat=False,
        backend="pytorch",
        backend_specific_config={"count_functional": False},
        ost=io.StringIO(),
    )
    assert macs is not None
    return macs, params


@pytest.mark.parametrize("bias", [True, False])
def test_conv3d_clip_and_step(bias):
    c_in, c_out, k, t, h = 3, 5, (3, 3, 3), 8, 6
    conv = co.Conv3d(c_in, c_out, k, padding=(0, 1, 1), bias=bias)
    per_output = c_in * 27 * c_out + (c_out if bias else 0)  # one output position
    frame = per_output * h * h
    result = complexity(conv, (1, c_in, t, h, h))
    assert result.clip_macs == frame * (t - 2)
    assert result.step_macs == frame  # exactly one output frame, not k_t zero-padded taps
    assert result.params == sum(p.numel() for p in conv.parameters())
    assert result.unit == "MACs"


def test_strided_conv_steps_cost_nothing_off_phase():
    conv = co.Conv1d(4, 6, 3, stride=2)
    result = complexity(conv, (1, 4, 10))
    per_output = 4 * 3 * 6 + 6
    assert result.step_macs == per_output
    assert result.step_macs_mean == per_output / 2
    assert result.clip_macs == per_output * 4


def test_linear_on_channel_dim_one():
    lin = co.Linear(10, 4, channel_dim=1)
    result = complexity(lin, (1, 10, 7))
    assert result.clip_macs == 7 * (10 * 4 + 4)
    assert result.step_macs == 10 * 4 + 4


def test_pools_count_one_op_per_input_element():
    pool = co.AvgPool3d((4, 2, 2), stride=(1, 2, 2))
    result = complexity(pool, (1, 3, 9, 4, 4))
    assert result.clip_macs == 3 * 9 * 4 * 4
    assert result.step_macs == 3 * 4 * 4


def test_gru_step_is_one_time_step_of_the_clip():
    gru = co.GRU(4, 6, num_layers=2)
    result = complexity(gru, (1, 4, 7))
    assert result.clip_macs == 7 * result.step_macs
    # ptflops' GRU convention, per layer: the gate matmuls 3H x (input + H), the gate
    # element-wise work 7H, and the two biases 2 x 3H
    h = 6
    by_hand = sum(3 * h * (n_in + h) + 7 * h + 2 * 3 * h for n_in in (4, 6))
    assert result.step_macs == by_hand


def test_ptflops_counts_what_the_call_mode_runs():
    net = co.Sequential(co.Conv1d(2, 3, 3, padding=1), nn.ReLU(), co.Conv1d(3, 3, 1)).eval()
    clip_macs, params = ptflops_macs(net, (1, 2, 5))
    with torch.no_grad():
        net.forward_steps(torch.randn(1, 2, 4))  # warm up
    net.call_mode = "forward_step"
    step_macs, step_params = ptflops_macs(net, (1, 2))
    assert step_params == params
    # ReLU (3 per frame) is counted by ptflops through the forward_stepping class too.
    per_frame = (2 * 3 * 3 + 3) + 3 + (3 * 3 + 3)
    assert step_macs == per_frame
    assert clip_macs == 5 * per_frame


def test_complexity_keeps_state_and_modes():
    net = co.Sequential(co.Conv1d(2, 3, 3), nn.BatchNorm1d(3)).train()
    with torch.no_grad():
        net.forward_steps(torch.randn(1, 2, 5))
    before = net.get_state()
    complexity(net, (1, 2, 6))
    assert net.training
    assert net.call_mode == "forward"
    assert all(a is b for a, b in zip(before[0].frames, net.get_state()[0].frames)), (
        "the stored state changed"
    )


def test_a_stepping_class_made_after_registration_is_counted_like_its_torch_class():
    from ptflops import pytorch_ops

    class Doubling(nn.Module):  # a torch class that ptflops knows, stepped only from now on
        def forward(self, x):
            return 2 * x

    def count_elements(module, inputs, output):
        module.__flops__ += int(output.numel())

    pytorch_ops.MODULES_MAPPING[Doubling] = count_elements
    try:
        stepping = co.forward_stepping(Doubling())
        assert type(stepping) in pytorch_ops.MODULES_MAPPING
        clip_macs, _ = ptflops_macs(stepping, (1, 3, 4))
        assert clip_macs == 12
        stepping.call_mode = "forward_step"
        step_macs, _ = ptflops_macs(stepping, (1, 3))
        assert step_macs == 3
    finally:
        pytorch_ops.MODULES_MAPPING.pop(Doubling, None)
        pytorch_ops.MODULES_MAPPING.pop(type(stepping), None)
