"""Names and FLOPs counts a continual-inference user expects, and the places where cozoo
deliberately differs (README, "Where cozoo deliberately differs").

FLOPs are counted through ptflops as a user calls it, with its defaults (``count_functional``
on), and compared with counts worked out by hand from what the step computes.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from ptflops import get_model_complexity_info
from torch import nn

from cozoo import co

torch.manual_seed(0)

E, H, L = 4, 2, 10  # embedding, heads, sequence length
D = E // H  # head dim


def macs(module, input_res, count_functional=True):
    """ptflops as a user calls it (defaults), or with its functional counting off."""
    config = {} if count_functional else {"backend_specific_config": {"count_functional": False}}
    count, _ = get_model_complexity_info(
        module, input_res, as_strings=False, print_per_layer_stat=False, ost=io.StringIO(), **config
    )
    assert count is not None
    return count


def linear_macs(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # weights and bias, one token


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------
def test_a_warming_up_attention_step_counts_its_projections():
    """A step without output still projects its token's query, key and value."""
    net = co.SingleOutputMultiheadAttention(E, H, dropout=0.0, batch_first=True, sequence_len=L)
    net.call_mode = "forward_step"
    warm = macs(net, (E,))
    assert warm == 3 * linear_macs(E, E) > 0
    assert warm == net.warmup_step_flops()


def test_a_retroactive_warm_up_step_counts_its_window_update():
    net = co.RetroactiveMultiheadAttention(E, H, dropout=0.0, batch_first=True, sequence_len=L)
    net.call_mode = "forward_step"
    update = 7 * L * D + 2 * L - 3 * D  # the retroactive update per head (the paper's count)
    assert macs(net, (E,)) == 3 * linear_macs(E, E) + H * update


def test_an_encoder_step_counts_what_it_computes_by_hand():
    """One single-output encoder layer (E=4, T=10) and a final norm: the step projects one
    token, attends one query to L keys, projects one output, runs the feed-forward and three
    norms on one token."""
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=2 * E, dropout=0.0, batch_first=True)
    regular = nn.TransformerEncoder(layer, num_layers=1, norm=nn.LayerNorm(E))
    net = co.TransformerEncoder.build_from(regular, sequence_len=L)
    clip = macs(net, (E, L))
    net.forward_steps(torch.randn(1, E, L - 1))  # warm up
    net.call_mode = "forward_step"
    attention = 3 * linear_macs(E, E) + H * (2 * L * D + 2 * D) + linear_macs(E, E)
    feed_forward = linear_macs(E, 2 * E) + linear_macs(2 * E, E)
    norms = 3 * macs(nn.LayerNorm(E), (1, E))
    by_hand = attention + feed_forward + norms
    assert macs(net, (E,)) == by_hand
    assert macs(net, (E,), count_functional=False) == by_hand
    assert by_hand <= clip / L  # the reference's bound: a step costs at most a clip's share


@pytest.mark.parametrize(
    "build, clip_res, step_res",
    [
        (
            lambda: co.BroadcastReduce(co.Conv1d(3, 3, 3, padding=1), co.Conv1d(3, 3, 1)),
            (3, 4),
            (3,),
        ),
        (lambda: co.Sequential(co.Conv1d(3, 3, 3), co.AvgPool1d(2, stride=1)), (3, 5), (3,)),
        (lambda: co.Residual(co.Conv1d(3, 3, 3, padding=1), reduce="mul"), (3, 4), (3,)),
    ],
    ids=["broadcast-reduce", "pool", "residual"],
)
def test_counts_are_the_same_with_ptflops_functional_counting_on_or_off(build, clip_res, step_res):
    """Each module counts itself once: no step or clip calls a torch function that ptflops'
    ``count_functional`` (on by default) would count a second time."""
    net = build()
    assert macs(net, clip_res) == macs(net, clip_res, count_functional=False)
    net.forward_steps(torch.randn(1, *clip_res))
    net.call_mode = "forward_step"
    assert macs(net, step_res) == macs(net, step_res, count_functional=False) > 0


def test_a_reduce_counts_as_its_branches():
    """continual-inference's convention: a BroadcastReduce costs what its branches cost, as
    the same convolutions in a Sequential do, in a clip and in a step."""
    seq = co.Sequential(co.Conv1d(3, 3, 3, padding=1), co.Conv1d(3, 3, 3, padding=1))
    br = co.BroadcastReduce(co.Conv1d(3, 3, 3, padding=1), co.Conv1d(3, 3, 3, padding=1))
    assert macs(seq, (3, 4)) == macs(br, (3, 4))
    clip = macs(seq, (3, 4))
    for net in (seq, br):
        net.forward_steps(torch.randn(1, 3, 4))
    with co.call_mode("forward_step"):
        assert macs(seq, (3,)) == macs(br, (3,)) == clip / 4


@pytest.mark.parametrize(
    "cls", [co.SingleOutputMultiheadAttention, co.RetroactiveMultiheadAttention]
)
def test_attention_steps_count_the_same_with_functional_counting_on_or_off(cls):
    net = cls(E, H, dropout=0.0, batch_first=True, sequence_len=3)
    net.call_mode = "forward_step"
    counts = []
    for _ in range(4):  # warm-up steps, then steps with an output
        counts.append((macs(net, (E,)), macs(net, (E,), count_functional=False)))
        net.forward_step(torch.randn(1, E))
    assert all(on == off > 0 for on, off in counts)
    assert counts[0][0] < counts[-1][0]  # an output costs its query's attention too


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------
def test_flat_state_dict_is_in_utils_too():
    named = co.Sequential(OrderedDict(c1=nn.Conv1d(1, 1, 3)))
    net = co.BroadcastReduce(co.Sequential(nn.Conv1d(1, 1, 3)), named)
    assert co.utils.flat_state_dict is co.flat_state_dict
    with co.utils.flat_state_dict:
        flat = net.state_dict()
    assert flat.keys() == net.state_dict(flatten=True).keys()
    assert flat.keys() != net.state_dict().keys()


@pytest.mark.parametrize(
    "shrink, padding, shown",
    [
        ("leading", 0, "Skip(2)"),
        (False, 1, "Delay(1)"),
        ("lagging", 0, "Delay(2, auto_shrink='lagging')"),
        (True, 0, "Delay(1, auto_shrink=True)"),
    ],
)
def test_residual_shows_its_time_shift_by_name(shrink, padding, shown):
    conv = co.Conv1d(1, 1, 3, padding=padding)
    net = co.Residual(conv, residual_shrink=shrink)
    assert repr(net[0]) == shown and "TimeShift" not in repr(net)
    x = torch.randn(1, 1, 7)
    steps = [net.forward_step(x[:, :, t]) for t in range(7)]
    tail = net.forward_steps(torch.zeros(1, 1, 0), pad_end=True)
    stacked = torch.stack([y for y in steps if y is not None], 2)
    if tail is not None:
        stacked = torch.cat([stacked, tail], 2)
    torch.testing.assert_close(stacked, net.forward(x))


# --------------------------------------------------------------------------------------------
# Deliberate differences
# --------------------------------------------------------------------------------------------
def test_parallel_dispatch_refuses_a_float_entry_with_a_value_error():
    """The reference refuses it too, with an AssertionError (gone under python -O)."""
    with pytest.raises(ValueError, match="ParallelDispatch: mapping entries"):
        co.ParallelDispatch([1.0, 0])


def test_conv3d_with_temporal_stride_padding_and_dilation_is_exact():
    """The reference refuses this convolution; cozoo steps it exactly."""
    regular = nn.Conv3d(1, 2, (3, 3, 3), dilation=(2, 2, 2), padding=(1, 1, 1), stride=(2, 2, 2))
    net = co.Conv3d.build_from(regular)
    x = torch.randn(1, 1, 9, 7, 7)
    torch.testing.assert_close(net.forward(x), regular(x))
    torch.testing.assert_close(net.forward_steps(x, pad_end=True), regular(x))


def test_residual_of_a_clip_shortening_module_needs_a_shrink_mode():
    """The reference builds it and its forward fails on a clip; 'lagging' gives its steps."""
    with pytest.raises(ValueError, match="residual_shrink"):
        co.Residual(co.Conv1d(2, 2, 5))
    conv = co.Conv1d(2, 2, 5)
    net = co.Residual(conv, residual_shrink="lagging")
    x = torch.randn(1, 2, 8)
    y = net.forward_steps(x)
    torch.testing.assert_close(y, conv.forward(x) + x[:, :, :4])  # x[t - 4] + conv(window)


def test_group_norm_is_refused_and_per_frame_norms_go_through_forward_stepping():
    with pytest.raises(TypeError, match="GroupNorm normalises over time"):
        co.continual(nn.GroupNorm(2, 4))
    per_frame = co.forward_stepping(nn.GroupNorm(2, 4))
    step = torch.randn(2, 4, 3)
    torch.testing.assert_close(per_frame.forward_step(step), nn.GroupNorm(2, 4)(step))
