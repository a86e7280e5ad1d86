"""Containers: Sequential, Broadcast, Parallel, ParallelDispatch, Reduce, BroadcastReduce,
Residual, Conditional.

References are computed with plain ``torch.nn`` modules sharing the weights, or by hand.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from cozoo import co
from cozoo.co import CoModule
from cozoo.co.container import reduce_concat, reduce_max, reduce_mul, reduce_sum

TOL = dict(atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def tree_clone(obj):
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, tuple):
        items = [tree_clone(o) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


def assert_tree_equal(a, b):
    if isinstance(b, Tensor):
        assert isinstance(a, Tensor) and torch.equal(a, b)
    elif isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b), (a, b)
        for ai, bi in zip(a, b):
            assert_tree_equal(ai, bi)
    else:
        assert a == b


def first_frame(steps_done: int, delay: int, stride: int) -> int:
    """Index of the first ``forward`` frame still to come after ``steps_done`` steps."""
    return max(0, math.ceil((steps_done - delay) / stride))


def cat_parts(parts):
    parts = [p for p in parts if p is not None]
    return torch.cat(parts, 2) if parts else None


def check_modes(m, x, expected, tol=TOL, splits=None):
    """All modes of ``m`` against ``expected`` (= what ``forward(x)`` must return):

    forward; forward_steps(pad_end=True) on a fresh module; forward_step outputs at exactly the
    steps ``t >= delay, (t - delay) % stride == 0`` and equal to ``forward``'s frames;
    forward_steps without end padding; split stepping (steps / step / steps(pad_end)) at
    several points; update_state=False leaves the (whole-network) state untouched.
    """
    T, d, s = x.shape[2], m.delay, m.stride[0]
    m.clean_state()
    assert_close(m.forward(x), expected, **tol)
    assert_close(m(x), expected, **tol)
    assert m.get_state() is None  # forward never touches the state
    assert m._forward_length(T) == expected.shape[2]
    assert_close(m.forward_steps(x, pad_end=True), expected, **tol)

    m.clean_state()
    outs = []
    for t in range(T):
        y = m.forward_step(x[:, :, t])
        should = t >= d and (t - d) % s == 0
        assert (y is not None) == should, f"step {t}: delay {d}, stride {s}"
        if y is not None:
            assert_close(y, expected[:, :, (t - d) // s], **tol)
            outs.append(y)
    m.clean_state()
    no_pad = m.forward_steps(x)
    if outs:
        assert_close(no_pad, torch.stack(outs, 2), **tol)
    else:
        assert no_pad is None

    for a in splits or sorted({1, T // 2, T - 2}):
        m.clean_state()
        head = m.forward_steps(x[:, :, :a])
        snap = tree_clone(m.get_state())
        dry = m.forward_steps(x[:, :, a:], pad_end=True, update_state=False)
        assert_tree_equal(m.get_state(), snap)
        dry_step = m.forward_step(x[:, :, a], update_state=False)
        assert_tree_equal(m.get_state(), snap)
        mid = m.forward_step(x[:, :, a])
        assert (dry_step is None) == (mid is None)
        if mid is not None:
            assert_close(dry_step, mid, **tol)
            mid = mid.unsqueeze(2)
        rest = m.forward_steps(x[:, :, a + 1 :], pad_end=True)
        assert_close(cat_parts([head, mid, rest]), expected, **tol, msg=f"split at {a}")
        j = first_frame(a, d, s)
        if j < expected.shape[2]:
            assert_close(dry, expected[:, :, j:], **tol)
        else:
            assert dry is None
    m.clean_state()


def per_stream_expectations(m, x, resets):
    """Expected step outputs per step and stream: ``resets`` maps a stream to the step of its
    reset; a reset stream is a fresh single-stream run from that step on."""
    B, T = x.shape[0], x.shape[2]
    table = []
    for b in range(B):
        single = copy.deepcopy(m)
        single.clean_state()
        start = resets.get(b, 0)
        before = [single.forward_step(x[b : b + 1, :, t]) for t in range(start)]
        single.clean_state()
        table.append(before + [single.forward_step(x[b : b + 1, :, t]) for t in range(start, T)])
    return [[table[b][t] for b in range(B)] for t in range(T)]


def check_per_stream_reset(m, x, resets, tol=TOL):
    """Batched stepping with per-stream ``clean_state`` equals independent single streams;
    rows of streams without an output are NaN and ``last_valid`` says which."""
    m.clean_state()
    expected = per_stream_expectations(m, x, resets)
    m.clean_state()
    seen_mixed = False
    for t in range(x.shape[2]):
        streams = [b for b, at in resets.items() if at == t]
        if streams:
            m.clean_state(streams=streams)
        y = m.forward_step(x[:, :, t])
        valid = tuple(e is not None for e in expected[t])
        if not any(valid):
            assert y is None, f"step {t}"
            assert m.last_valid is False
        elif all(valid):
            assert m.last_valid is True, f"step {t}"
            assert_close(y, torch.cat(expected[t], 0), **tol)
        else:
            seen_mixed = True
            assert m.last_valid == valid, f"step {t}"
            for b, e in enumerate(expected[t]):
                if e is None:
                    assert torch.isnan(y[b]).all(), f"step {t}, stream {b}"
                else:
                    assert_close(y[b : b + 1], e, **tol)
    m.clean_state()
    return seen_mixed


def nn_conv1d(cin, cout, k, s=1, p=0, d=1, **kw):
    return nn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, **kw)


def shared(module):
    """A continual copy of a torch module with the same weights."""
    return co.continual(module)


# --------------------------------------------------------------------------------------------
# Sequential
# --------------------------------------------------------------------------------------------
SEQ_CASES = {
    "padded": [dict(k=3, p=1), "relu", dict(k=3, s=2, p=1), dict(k=5, p=2)],
    "unpadded": [dict(k=3), dict(k=3, s=2), "tanh", dict(k=3)],
    "s2p2-then-k3": [dict(k=3, s=2, p=2), dict(k=3)],
    "even-kernel": [dict(k=2, p=1), dict(k=3, s=3, p=1), dict(k=1, s=2)],
    "dilated": [dict(k=3, d=2, p=2), "relu", dict(k=3, s=2, p=1)],
    "k1-only": [dict(k=1), dict(k=1)],
}


def build_nn_stack(case, channels=3):
    layers = []
    for spec in SEQ_CASES[case]:
        if spec == "relu":
            layers.append(nn.ReLU())
        elif spec == "tanh":
            layers.append(nn.Tanh())
        else:
            layers.append(nn_conv1d(channels, channels, **spec))
    return nn.Sequential(*layers)


@pytest.mark.parametrize("case", list(SEQ_CASES))
@pytest.mark.parametrize("how", ["build_from", "raw_children", "continual"])
def test_sequential_equals_torch_sequential(case, how):
    ref = build_nn_stack(case)
    if how == "build_from":
        m = co.Sequential.build_from(ref)
    elif how == "raw_children":
        m = co.Sequential(*copy.deepcopy(list(ref)))
    else:
        m = co.continual(ref)
    assert isinstance(m, co.Sequential) and isinstance(m, nn.Sequential)
    assert list(m.state_dict()) == list(ref.state_dict())
    x = torch.randn(3, 3, 23)
    with torch.no_grad():
        y = ref(x)
        assert torch.equal(m.forward(x), y)  # the same torch ops in forward
        check_modes(m, x, y)


@pytest.mark.parametrize("case", ["padded", "unpadded", "even-kernel"])
def test_sequential_per_stream_reset(case):
    m = co.Sequential.build_from(build_nn_stack(case))
    x = torch.randn(2, 3, 25)
    with torch.no_grad():
        assert check_per_stream_reset(m, x, {1: 7})


def test_sequential_2d_and_3d_convs_with_norms_eval():
    ref = nn.Sequential(
        nn.Conv3d(2, 4, (3, 3, 3), padding=(1, 1, 1)),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.Conv3d(4, 4, (3, 1, 3), stride=(2, 1, 2), padding=(2, 0, 1)),
        nn.LayerNorm([3, 2]),
    )
    ref[1].running_mean.uniform_(-1, 1)
    ref[1].running_var.uniform_(0.5, 2)
    ref.eval()
    m = co.Sequential.build_from(ref).eval()
    x = torch.randn(2, 2, 9, 3, 4)
    with torch.no_grad():
        check_modes(m, x, ref(x))
    ref2 = nn.Sequential(
        nn.Conv2d(2, 3, (3, 2)), nn.SiLU(), nn.Conv2d(3, 2, (2, 1), padding=(1, 0))
    )
    m2 = co.Sequential.build_from(ref2)
    x2 = torch.randn(2, 2, 10, 5)
    with torch.no_grad():
        check_modes(m2, x2, ref2(x2))


def test_sequential_children_share_nothing_with_the_torch_module():
    ref = build_nn_stack("padded")
    m = co.Sequential.build_from(ref)
    with torch.no_grad():
        ref[0].weight.add_(1.0)
    x = torch.randn(1, 3, 8)
    assert not torch.equal(m(x), ref(x))


# ---- properties: receptive field, delay, stride and padding from the children ----------------
def fwd_len(m, steps):
    return m.forward(torch.randn(1, 1, steps)).shape[2]


def test_properties_ten_k9_convs():
    m = co.Sequential(*[co.Conv1d(1, 1, 9) for _ in range(10)])
    assert m.receptive_field == 81
    assert m.padding == (0,) and m.stride == (1,)
    assert m.delay == 80
    assert fwd_len(m, 100) == 100 - 80
    padded = co.Sequential(*[co.Conv1d(1, 1, 9, padding=4) for _ in range(10)])
    assert padded.receptive_field == 81
    assert padded.padding == (40,)
    assert padded.delay == 40
    assert fwd_len(padded, 100) == 100 - 80 + 2 * 40


def test_properties_strided_stack():
    m = co.Sequential(*[co.Conv1d(1, 1, 3, stride=s) for s in (1, 2, 3, 1)])
    assert m.receptive_field == 21
    assert m.stride == (6,)
    assert m.padding == (0,)
    assert m.delay == 20
    p = co.Sequential(*[co.Conv1d(1, 1, 3, stride=s, padding=1) for s in (1, 2, 3, 1)])
    assert p.receptive_field == 21
    assert p.padding == (10,)
    assert p.delay == 10
    x = torch.randn(1, 1, 40)
    outs = [p.forward_step(x[:, :, t]) for t in range(40)]
    assert [t for t, o in enumerate(outs) if o is not None] == list(range(10, 40, 6))
    with torch.no_grad():
        check_modes(p, x, p.forward(x))


def test_properties_s2p2_then_k3():
    m = co.Sequential(co.Conv1d(1, 1, 3, stride=2, padding=2), co.Conv1d(1, 1, 3))
    assert m.receptive_field == 7
    assert m.padding == (2,)
    assert m.delay == 4
    assert m.stride == (2,)


def test_properties_conv_maxpool_conv():
    from cozoo.co.pooling import MaxPool1d

    m = co.Sequential(
        co.Conv1d(1, 1, 3, padding=1),
        MaxPool1d(2, stride=2),
        co.Conv1d(1, 1, 3, stride=2, padding=1),
    )
    assert m.stride == (4,)
    assert m.padding == (3,)
    assert m.receptive_field == 8
    assert m.delay == 4
    x = torch.randn(2, 1, 29)
    with torch.no_grad():
        check_modes(m, x, m.forward(x))


@pytest.mark.parametrize("case", list(SEQ_CASES))
def test_forward_length_formula(case):
    m = co.Sequential.build_from(build_nn_stack(case, channels=1))
    rf, p, s = m.receptive_field, m.padding[0], m.stride[0]
    assert m.delay == rf - 1 - p
    for T in range(rf, rf + 9):
        assert fwd_len(m, T) == math.ceil((T - rf + 1 + 2 * p) / s)


def test_empty_sequential_properties_raise_clearly():
    m = co.Sequential()
    for prop in ("delay", "receptive_field", "stride", "padding"):
        with pytest.raises(ValueError, match="empty"):
            getattr(m, prop)


# ---- construction -----------------------------------------------------------------------------
def test_sequential_append_and_ordered_dict():
    m = co.Sequential(OrderedDict([("conv", nn.Conv1d(2, 2, 3)), ("act", nn.ReLU())]))
    assert list(m._modules) == ["conv", "act"]
    assert isinstance(m.conv, co.Conv1d) and isinstance(m.act, nn.ReLU)
    assert isinstance(m.act, CoModule)
    assert m.append(nn.Conv1d(2, 2, 3, padding=1)) is m
    assert isinstance(m[2], co.Conv1d)
    assert m.delay == 3


def test_sequential_build_from_keeps_child_names_and_nests():
    inner = nn.Sequential(OrderedDict([("a", nn.Conv1d(2, 2, 3, padding=1)), ("b", nn.ReLU())]))
    ref = nn.Sequential(OrderedDict([("first", nn.Conv1d(2, 2, 3)), ("inner", inner)]))
    m = co.Sequential.build_from(ref)
    assert isinstance(m.inner, co.Sequential)
    assert list(m.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 2, 11)
    with torch.no_grad():
        check_modes(m, x, ref(x))


# Regression: nested Sequentials continued with x=None must still flush their end padding.


def test_nested_sequential_starting_with_a_stateless_child_pads_the_end():
    inner = nn.Sequential(nn.ReLU(), nn.Conv1d(2, 2, 3, padding=1))
    m = co.Sequential(co.Sequential.build_from(inner))
    x = torch.randn(2, 2, 11)
    with torch.no_grad():
        check_modes(m, x, inner(x))


def test_nested_sequential_strided_child_pads_the_end_on_odd_lengths():
    inner = nn.Sequential(nn_conv1d(2, 2, 3), nn_conv1d(2, 2, 3, s=2, p=1))
    last = nn_conv1d(2, 2, 2)
    m = co.Sequential(co.Sequential.build_from(inner), last)
    x = torch.randn(2, 2, 9)
    with torch.no_grad():
        check_modes(m, x, last(inner(x)))


def test_sequential_steps_stop_at_the_first_child_without_output():
    from cozoo.co.closure import Lambda

    calls = []

    def count(x):
        calls.append(x.shape)
        return x

    m = co.Sequential(co.Conv1d(1, 1, 3), Lambda(count))
    x = torch.randn(1, 1, 6)
    for t in range(6):
        m.forward_step(x[:, :, t])
    assert len(calls) == 4  # not stepped during the conv's 2 warm-up steps


def test_sequential_rejects_unconvertible_children():
    with pytest.raises(TypeError, match="Flatten"):
        co.Sequential(nn.Conv1d(1, 1, 3), nn.Flatten())


# --------------------------------------------------------------------------------------------
# Broadcast, ParallelDispatch
# --------------------------------------------------------------------------------------------
def test_broadcast_int_forward_and_step():
    b = co.Broadcast(2)
    assert b.forward(42) == [42, 42]
    assert b(42) == [42, 42]
    assert b.forward_step(42) == [42, 42]
    with co.call_mode("forward_step"):
        assert b(42) == [42, 42]
    assert b.delay == 0 and b.receptive_field == 1


def test_broadcast_forward_steps_on_tensors():
    b = co.Broadcast(2)
    x = torch.randn(1, 2, 4)
    ys = b.forward_steps(x)
    assert len(ys) == 2 and all(torch.equal(y, x) for y in ys)
    ys = b.forward_steps(x, pad_end=True)
    assert len(ys) == 2 and all(torch.equal(y, x) for y in ys)


def test_broadcast_int_forward_steps():
    assert co.Broadcast(2).forward_steps(42) == [42, 42]


def test_broadcast_without_num_streams_raises_clearly():
    with pytest.raises(ValueError, match="num_streams"):
        co.Broadcast()(torch.randn(1, 1, 2))


def test_broadcast_learns_num_streams_from_the_following_parallel():
    m = co.Sequential(co.Broadcast(), co.Parallel(nn.ReLU(), nn.Tanh(), nn.Sigmoid()), co.Reduce())
    assert m[0].num_streams == 3
    x = torch.randn(2, 2, 5)
    with torch.no_grad():
        check_modes(m, x, x.relu() + x.tanh() + x.sigmoid())


def test_parallel_dispatch_mapping_example():
    pd = co.ParallelDispatch([2, 0, [0, 2], 2])
    assert pd([10, 11, 12]) == [12, 10, [10, 12], 12]
    assert pd.forward_step([10, 11, 12]) == [12, 10, [10, 12], 12]
    xs = [torch.randn(1, 1, 3) for _ in range(3)]
    out = pd(xs)
    assert out[0] is xs[2] and out[1] is xs[0] and out[2][1] is xs[2]


def test_parallel_dispatch_forward_steps():
    pd = co.ParallelDispatch([1, 0])
    xs = [torch.randn(1, 1, 3), torch.randn(1, 1, 3)]
    out = pd.forward_steps(xs)
    assert out[0] is xs[1] and out[1] is xs[0]


@pytest.mark.parametrize("mapping", [[0, -1], [0, "a"], [0, [1, 1.5]], [True]])
def test_parallel_dispatch_rejects_bad_mappings(mapping):
    with pytest.raises(ValueError):
        co.ParallelDispatch(mapping)


def test_parallel_dispatch_in_a_network_all_modes():
    # x -> [x, x] -> [conv(x), x] -> [x, conv(x)] -> cat on channels
    conv = nn.Conv1d(2, 3, 3, padding=1)
    m = co.Sequential(
        co.Broadcast(2),
        co.Parallel(conv, co.Delay(1)),
        co.ParallelDispatch([1, 0]),
        co.Reduce("concat"),
    )
    x = torch.randn(2, 2, 9)
    with torch.no_grad():
        check_modes(m, x, torch.cat([x, conv(x)], 1))


# --------------------------------------------------------------------------------------------
# Parallel
# --------------------------------------------------------------------------------------------
def test_parallel_ordered_dict_properties_and_auto_delay():
    a, b = nn_conv1d(2, 2, 3, p=1), nn_conv1d(2, 2, 5)
    par = co.Parallel(OrderedDict([("a", a), ("b", b)]))
    assert list(par._modules) == ["a", "b"]
    # the shorter branch got a Delay appended, under the same key
    assert isinstance(par.a, co.Sequential) and isinstance(par.a[1], co.Delay)
    assert par.a[1].delay == 3
    assert isinstance(par.b, co.Conv1d)
    assert par.delay == 4 and par.receptive_field == 6  # rf - 1 - padding == delay
    assert par.padding == (1,) and par.stride == (1,)
    x = torch.randn(2, 2, 10)
    with torch.no_grad():
        ya, yb = par([x, x])
        assert torch.equal(ya, a(x)) and torch.equal(yb, b(x))
        # step mode: both branches emit together, from step 4 on
        for t in range(10):
            oa, ob = par.forward_step([x[:, :, t], x[:, :, t]])
            assert (oa is None) == (ob is None) == (t < 4)
            if t >= 4:
                assert_close(oa, a(x)[:, :, t - 4], **TOL)
                assert_close(ob, b(x)[:, :, t - 4], **TOL)


def test_parallel_without_auto_delay_keeps_branches():
    par = co.Parallel(co.Conv1d(1, 1, 3, padding=1), co.Conv1d(1, 1, 5), auto_delay=False)
    assert isinstance(par[0], co.Conv1d)
    x = torch.randn(1, 1, 8)
    outs = [par.forward_step([x[:, :, t], x[:, :, t]]) for t in range(8)]
    assert [o[0] is None for o in outs] == [True] + [False] * 7
    assert [o[1] is None for o in outs] == [True] * 4 + [False] * 4


def test_parallel_accepts_raw_torch_modules_with_auto_delay():
    conv = nn.Conv1d(2, 2, 3)
    par = co.Parallel(conv, nn.ReLU())
    assert isinstance(par[0], co.Conv1d)
    assert isinstance(par[1], co.Sequential) and isinstance(par[1][0], nn.ReLU)
    x = torch.randn(1, 2, 7)
    with torch.no_grad():
        for t in range(7):
            y0, y1 = par.forward_step([x[:, :, t], x[:, :, t]])
            if t >= 2:
                assert_close(y0, conv(x)[:, :, t - 2], **TOL)
                assert torch.equal(y1, x[:, :, t - 2].relu())


def test_parallel_rejects_different_strides():
    with pytest.raises(ValueError, match="stride"):
        co.Parallel(co.Conv1d(1, 1, 3, stride=2), co.Conv1d(1, 1, 3))


def test_parallel_expects_one_input_per_branch():
    par = co.Parallel(nn.ReLU(), nn.ReLU())
    with pytest.raises(ValueError, match="list of 2"):
        par([torch.randn(1, 1, 2)])


def test_parallel_forward_steps_pad_end_equals_forward():
    a, b = nn_conv1d(2, 2, 3, p=1), nn_conv1d(2, 2, 3)
    par = co.Parallel(a, b)
    x = torch.randn(2, 2, 9)
    with torch.no_grad():
        ya, yb = par.forward_steps([x, x], pad_end=True)
        assert_close(ya, a(x), **TOL)
        assert_close(yb, b(x), **TOL)


def test_auto_delay_with_strided_branches():
    a, b = nn_conv1d(2, 2, 3, s=2, p=1), nn_conv1d(2, 2, 1, s=2)
    br = co.BroadcastReduce(a, b)
    assert [m.delay for m in br] == [1, 1]
    x = torch.randn(2, 2, 11)
    with torch.no_grad():
        check_modes(br, x, a(x) + b(x))


# --------------------------------------------------------------------------------------------
# Reduce
# --------------------------------------------------------------------------------------------
REDUCERS = {
    "sum": lambda xs: xs[0] + xs[1] + xs[2],
    "mul": lambda xs: xs[0] * xs[1] * xs[2],
    "max": lambda xs: torch.maximum(torch.maximum(xs[0], xs[1]), xs[2]),
    "concat": lambda xs: torch.cat(xs, 1),
}


@pytest.mark.parametrize("name", list(REDUCERS))
def test_reduce_builtins_in_all_modes(name):
    r = co.Reduce(name)
    xs = [torch.randn(2, 3, 5) for _ in range(3)]
    expected = REDUCERS[name](xs)
    assert torch.equal(r(xs), expected)
    assert torch.equal(r.forward_steps(xs), expected)
    for t in range(5):
        assert torch.equal(r.forward_step([x[:, :, t] for x in xs]), expected[:, :, t])
    assert r.delay == 0


def test_reduce_callable_and_helpers():
    def weighted(xs):
        return 2 * xs[0] - xs[1]

    r = co.Reduce(weighted)
    xs = [torch.randn(1, 2, 4), torch.randn(1, 2, 4)]
    assert torch.equal(r(xs), 2 * xs[0] - xs[1])
    step = r.forward_step([x[:, :, 1] for x in xs])
    assert torch.equal(step, 2 * xs[0][:, :, 1] - xs[1][:, :, 1])
    assert "weighted" in repr(r)
    assert torch.equal(reduce_sum(xs), xs[0] + xs[1])
    assert torch.equal(reduce_concat(xs), torch.cat(xs, 1))
    assert torch.equal(reduce_mul(xs), xs[0] * xs[1])
    assert torch.equal(reduce_max(xs), torch.maximum(*xs))


def test_reduce_step_is_none_unless_every_input_has_a_frame():
    r = co.Reduce("sum")
    assert r.forward_step([torch.ones(1, 2), None]) is None
    assert r.forward_steps([torch.ones(1, 2, 3), None]) is None


def test_reduce_errors():
    with pytest.raises(ValueError):
        co.Reduce("avg")
    with pytest.raises(ValueError, match="at least 2"):
        co.Reduce("sum")([torch.ones(1, 1, 1)])


def test_sequential_broadcast_parallel_reduce_equals_broadcast_reduce():
    a, b = nn_conv1d(2, 3, 3, p=1), nn_conv1d(2, 3, 5, p=2)
    explicit = co.Sequential(co.Broadcast(2), co.Parallel(a, b), co.Reduce("sum"))
    short = co.BroadcastReduce(a, b, reduce="sum")
    x = torch.randn(2, 2, 12)
    with torch.no_grad():
        expected = a(x) + b(x)
        check_modes(explicit, x, expected)
        check_modes(short, x, expected)
        assert explicit.delay == short.delay == 2
        for t in range(12):
            ye, ys = explicit.forward_step(x[:, :, t]), short.forward_step(x[:, :, t])
            assert (ye is None) == (ys is None)
            if ye is not None:
                assert_close(ye, ys, **TOL)


# --------------------------------------------------------------------------------------------
# BroadcastReduce
# --------------------------------------------------------------------------------------------
def unit_conv(k, p):
    conv = co.Conv1d(1, 1, k, padding=p)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    return conv


def test_broadcast_reduce_unit_weight_example():
    m = co.BroadcastReduce(unit_conv(5, 2), unit_conv(3, 1), unit_conv(1, 0))
    assert m.stride == (1,) and m.delay == 2 and m.padding == (2,) and m.receptive_field == 5
    x = torch.arange(7.0).view(1, 1, 7)
    expected = torch.tensor([4.0, 10, 18, 27, 36, 38, 32]).view(1, 1, 7)
    assert torch.equal(m(x), expected)
    with torch.no_grad():
        check_modes(m, x, expected, tol=dict(atol=1e-5, rtol=0))
        # continuation: the first steps, then one step, then end padding
        m.clean_state()
        head = m.forward_steps(x[:, :, :4])
        assert head.flatten().tolist() == [4.0, 10.0]
        assert m.forward_step(x[:, :, 4]).item() == 18.0
        assert m.forward_steps(x[:, :, 5:], pad_end=True).flatten().tolist() == [27, 36, 38, 32]


@pytest.mark.parametrize("reduce", ["sum", "max", "mul", "concat"])
def test_broadcast_reduce_reducers_against_torch(reduce):
    a, b, c = nn_conv1d(2, 3, 3, p=1), nn_conv1d(2, 3, 5, p=2), nn_conv1d(2, 3, 1)
    m = co.BroadcastReduce(a, b, c, reduce=reduce)
    x = torch.randn(2, 2, 10)
    with torch.no_grad():
        expected = REDUCERS[reduce]([a(x), b(x), c(x)])
        check_modes(m, x, expected)
        assert check_per_stream_reset(m, x, {1: 4})


def test_broadcast_reduce_with_unpadded_matching_branches():
    a, b = nn_conv1d(2, 2, 3), nn.Sequential(nn_conv1d(2, 2, 2), nn_conv1d(2, 2, 2))
    m = co.BroadcastReduce(a, b)
    x = torch.randn(3, 2, 9)
    with torch.no_grad():
        check_modes(m, x, a(x) + b(x))


def test_broadcast_reduce_strided_branches():
    a = nn_conv1d(2, 2, 3, s=2, p=1)
    b = nn.Sequential(nn.Tanh(), nn_conv1d(2, 2, 3, s=2, p=1), nn.ReLU())  # same geometry
    m = co.BroadcastReduce(a, b)
    x = torch.randn(2, 2, 13)
    with torch.no_grad():
        check_modes(m, x, a(x) + b(x))


def test_broadcast_reduce_checks_branch_lengths_at_construction():
    with pytest.raises(ValueError, match="length"):
        co.BroadcastReduce(co.Conv1d(1, 1, 3, padding=1), co.Conv1d(1, 1, 3))
    with pytest.raises(ValueError, match="length"):
        co.BroadcastReduce(co.Conv1d(1, 1, 5, padding=1), co.Conv1d(1, 1, 3, padding=1))


def test_broadcast_reduce_raw_torch_modules():
    conv = nn_conv1d(2, 2, 3, p=1)
    m = co.BroadcastReduce(conv, nn.ReLU())
    x = torch.randn(2, 2, 8)
    with torch.no_grad():
        check_modes(m, x, conv(x) + x.relu())


def test_broadcast_reduce_forward_stepping_branch_and_identity():
    """Reference bug 7.1: ``co.BroadcastReduce(co.continual(nn.ReLU()), co.Identity())`` fails in
    every mode there (KeyError)."""
    from cozoo.co.closure import Identity

    m = co.BroadcastReduce(co.continual(nn.ReLU()), Identity())
    x = torch.randn(2, 3, 6)
    expected = x.relu() + x
    check_modes(m, x, expected)
    for mode in ("forward", "forward_steps", "forward_step"):
        m.clean_state()
        m.call_mode = mode
        y = m(x) if mode != "forward_step" else m(x[:, :, 0])
        assert_close(y, expected if mode != "forward_step" else expected[:, :, 0], **TOL)
        m.call_mode = "forward"
        with co.call_mode(mode):
            y = m(x) if mode != "forward_step" else m(x[:, :, 0])
        assert_close(y, expected if mode != "forward_step" else expected[:, :, 0], **TOL)


def test_broadcast_reduce_repr_and_errors():
    m = co.BroadcastReduce(co.Conv1d(1, 1, 1), co.Delay(0))
    text = repr(m)
    assert text.startswith("BroadcastReduce(")
    assert "reduce=reduce_sum" in text
    assert "reduce=reduce_concat" in repr(co.BroadcastReduce(nn.ReLU(), nn.Tanh(), reduce="concat"))
    with pytest.raises(ValueError, match="at least 2"):
        co.BroadcastReduce(co.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="stride"):
        co.BroadcastReduce(co.Conv1d(1, 1, 3, stride=2), co.Conv1d(1, 1, 3))


# --------------------------------------------------------------------------------------------
# Residual
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_residual_equals_x_plus_conv(dims):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](3, 3, 3, padding=1)
    m = co.Residual(conv)
    x = torch.randn((2, 3, 9) + (4,) * (dims - 1))
    with torch.no_grad():
        expected = x + conv(x)
        assert_close(m.forward(x), expected, **TOL)
        check_modes(m, x, expected)
    assert m.delay == 1 and m.receptive_field == 3 and m.padding == (1,)


def test_residual_of_a_padded_stack_and_per_stream_reset():
    body = nn.Sequential(nn_conv1d(2, 4, 3, p=1), nn.ReLU(), nn_conv1d(4, 2, 5, p=2))
    m = co.Residual(body)
    x = torch.randn(2, 2, 14)
    with torch.no_grad():
        check_modes(m, x, x + body(x))
        assert check_per_stream_reset(m, x, {0: 6})


def test_residual_of_stateless_module():
    m = co.Residual(nn.Tanh())
    x = torch.randn(2, 2, 5)
    check_modes(m, x, x + x.tanh())
    assert m.delay == 0


@pytest.mark.parametrize("reduce", ["mul", "max", "concat"])
def test_residual_other_reductions(reduce):
    conv = nn_conv1d(2, 2, 3, p=1)
    m = co.Residual(conv, reduce=reduce)
    x = torch.randn(2, 2, 8)
    with torch.no_grad():
        y = conv(x)
        expected = {"mul": x * y, "max": torch.maximum(x, y), "concat": torch.cat([x, y], 1)}
        check_modes(m, x, expected[reduce])


# residual_shrink: (kernel, padding) -> which input frame of each output window is the residual
SHRINK_CASES = [
    # k, p, shrink, start offset of the residual crop (frames dropped at the front)
    (3, 0, True, 1),
    (3, 0, "centered", 1),
    (3, 0, "lagging", 0),
    (3, 0, "leading", 2),
    (4, 0, True, 1),  # even window: the earlier of the two centre frames
    (4, 0, "centered", 1),
    (4, 0, "lagging", 0),
    (4, 0, "leading", 3),
    (5, 1, True, 1),  # padded but still shortening: window covers x[j-1 .. j+3]
    (5, 1, "lagging", 0),
    (5, 1, "leading", 2),
    (3, 1, True, 0),  # length preserving: shrink changes nothing
    (3, 1, "leading", 0),
]


@pytest.mark.parametrize("k, p, shrink, offset", SHRINK_CASES)
def test_residual_shrink(k, p, shrink, offset):
    conv = nn_conv1d(2, 2, k, p=p)
    m = co.Residual(conv, residual_shrink=shrink)
    x = torch.randn(2, 2, 12)
    with torch.no_grad():
        y = conv(x)
        n = y.shape[2]
        expected = x[:, :, offset : offset + n] + y
        check_modes(m, x, expected)
        assert check_per_stream_reset(m, x, {1: 5})
    assert m.delay == k - 1 - p


def test_residual_shrink_false_on_shortening_module_raises_at_construction():
    with pytest.raises(ValueError, match="residual_shrink"):
        co.Residual(co.Conv1d(1, 1, 3))
    with pytest.raises(ValueError, match="residual_shrink"):
        co.Residual(co.Conv1d(1, 1, 5, padding=1))
    with pytest.raises(ValueError, match="residual_shrink"):
        co.Residual(co.Conv1d(1, 1, 3), residual_shrink="middle")


def test_residual_needs_temporal_stride_one():
    with pytest.raises(ValueError, match="stride"):
        co.Residual(co.Conv1d(1, 1, 3, stride=2, padding=1))


def test_residual_inside_strided_sequential():
    ref = nn.Sequential(nn_conv1d(2, 2, 3, s=2, p=1), nn.ReLU())
    res_conv = nn_conv1d(2, 2, 3, p=1)
    m = co.Sequential(co.continual(ref), co.Residual(res_conv))
    x = torch.randn(2, 2, 15)
    with torch.no_grad():
        h = ref(x)
        check_modes(m, x, h + res_conv(h))
        assert check_per_stream_reset(m, x, {1: 3})


# --------------------------------------------------------------------------------------------
# Whole-network snapshot / restore through nested containers
# --------------------------------------------------------------------------------------------
def nested_network():
    body = nn.Sequential(nn_conv1d(4, 4, 3, p=1), nn.ReLU(), nn_conv1d(4, 4, 3, p=1))
    ref = nn.Sequential(nn_conv1d(3, 4, 3), nn.ReLU(), nn_conv1d(4, 4, 3, s=2, p=1))
    m = co.Sequential(co.continual(ref), co.Residual(body), nn_conv1d(4, 2, 2))
    return m


def test_nested_network_all_modes_and_reset():
    m = nested_network()
    x = torch.randn(2, 3, 26)
    with torch.no_grad():
        y = m.forward(x)
        inner, res, last = m[0], m[1], m[2]
        h = inner(x)
        body = res[1]
        assert_close(y, last(h + body(h)), **TOL)
        check_modes(m, x, y)
        assert check_per_stream_reset(m, x, {1: 9})


def test_whole_network_snapshot_and_restore():
    m = nested_network()
    x = torch.randn(2, 3, 30)
    with torch.no_grad():
        m.forward_steps(x[:, :, :13])
        snap = m.get_state()
        # a tuple of the children's states, nested like the network
        assert isinstance(snap, tuple) and len(snap) == 3
        assert isinstance(snap[0], tuple) and len(snap[0]) == 3
        assert isinstance(snap[1], tuple) and len(snap[1]) == 2  # residual branch, body
        assert isinstance(snap[1][1], tuple) and len(snap[1][1]) == 3
        kept = tree_clone(snap)
        first = m.forward_steps(x[:, :, 13:], pad_end=True)
        assert_tree_equal(snap, kept)  # later steps did not write into the snapshot
        m.set_state(snap)
        assert_tree_equal(m.get_state(), kept)
        again = m.forward_steps(x[:, :, 13:], pad_end=True)
        assert torch.equal(first, again)
        # restore into a fresh copy of the network
        twin = copy.deepcopy(m)
        twin.clean_state()
        assert twin.get_state() is None
        twin.set_state(snap)
        assert torch.equal(twin.forward_steps(x[:, :, 13:], pad_end=True), first)
        # set_state(None) is a clean state
        m.set_state(None)
        assert m.get_state() is None


def test_set_state_with_wrong_structure_raises():
    m = nested_network()
    with pytest.raises(ValueError):
        m.set_state((None, None))


def test_update_state_false_in_nested_network_on_fresh_module_keeps_it_fresh():
    m = nested_network()
    x = torch.randn(1, 3, 12)
    with torch.no_grad():
        m.forward_steps(x, update_state=False)
        m.forward_step(x[:, :, 0], update_state=False)
    assert m.get_state() is None


# --------------------------------------------------------------------------------------------
# Conditional
# --------------------------------------------------------------------------------------------
def is_training(module, x):
    return module.training


def test_conditional_branch_selection_in_all_modes():
    conv = nn_conv1d(2, 2, 3, p=1)  # delay 1
    m = co.Conditional(is_training, conv, nn.ReLU())
    assert m.delay == 1
    # the shorter branch got a Delay *before* it
    on_true, on_false = m.children()
    assert isinstance(on_true, co.Conv1d)
    assert isinstance(on_false, co.Sequential) and isinstance(on_false[0], co.Delay)
    x = torch.randn(2, 2, 9)
    with torch.no_grad():
        m.train()
        check_modes(m, x, conv(x))
        m.eval()
        check_modes(m, x, x.relu())


def test_conditional_delay_alignment_delay2_delay3():
    m = co.Conditional(is_training, co.Delay(2), co.Delay(3))
    assert m.delay == 3
    assert [c.delay for c in m.children()] == [3, 3]
    assert m.receptive_field == 4
    x = torch.randn(1, 2, 8)
    for training in (True, False):
        m.train(training)
        m.clean_state()
        outs = [m.forward_step(x[:, :, t]) for t in range(8)]
        assert [o is None for o in outs] == [True] * 3 + [False] * 5
        for t in range(3, 8):
            assert torch.equal(outs[t], x[:, :, t - 3])


def test_conditional_single_branch_passes_input_aligned():
    conv = nn_conv1d(2, 2, 3, p=1)
    m = co.Conditional(is_training, conv)
    x = torch.randn(2, 2, 9)
    with torch.no_grad():
        m.eval()
        check_modes(m, x, x)  # input, delayed like the conv in step modes
        m.train()
        check_modes(m, x, conv(x))


def test_conditional_predicate_per_step_in_step_mode():
    m = co.Conditional(lambda mod, x: bool(x.mean() > 0), nn.ReLU(), nn.Tanh())
    x = torch.randn(1, 3, 20)
    for t in range(20):
        xt = x[:, :, t]
        expected = xt.relu() if xt.mean() > 0 else xt.tanh()
        assert torch.equal(m.forward_step(xt), expected)
    pos = x.abs() + 0.1
    assert torch.equal(m.forward_steps(pos), pos.relu())  # once per call
    assert torch.equal(m(-pos), (-pos).tanh())


def test_conditional_clean_state_recurses():
    m = co.Conditional(is_training, co.Conv1d(1, 1, 3), co.Delay(1))
    x = torch.randn(1, 1, 10)
    m.train()
    m.forward_steps(x[:, :, :5])
    m.eval()
    m.forward_steps(x[:, :, :5])
    assert m.get_state() is not None
    m.clean_state()
    assert m.get_state() is None
    assert all(c.get_state() is None for c in m.children())
    m.train()
    assert [m.forward_step(x[:, :, t]) is None for t in range(4)] == [True, True, False, False]


def test_conditional_snapshot_and_per_stream_reset():
    conv = nn_conv1d(2, 2, 3, p=1)
    m = co.Conditional(is_training, conv, nn.Sigmoid())
    x = torch.randn(2, 2, 12)
    with torch.no_grad():
        m.train()
        m.forward_steps(x[:, :, :5])
        snap = m.get_state()
        assert isinstance(snap, tuple) and len(snap) == 2
        first = m.forward_steps(x[:, :, 5:])
        m.set_state(snap)
        assert torch.equal(m.forward_steps(x[:, :, 5:]), first)
        assert check_per_stream_reset(m, x, {0: 4})


def test_conditional_call_mode_propagates():
    m = co.Conditional(is_training, co.Conv1d(1, 1, 3), co.Delay(2))
    m.call_mode = "forward_step"
    assert all(c.call_mode == "forward_step" for c in m.modules() if isinstance(c, CoModule))
    x = torch.randn(1, 1, 4)
    assert [m(x[:, :, t]) is None for t in range(4)] == [True, True, False, False]


def test_conditional_repr_named_predicate():
    m = co.Conditional(is_training, co.Delay(2), co.Delay(3))
    assert repr(m) == (
        "Conditional(\n"
        "  predicate=is_training\n"
        "  (0): Sequential(\n"
        "    (0): Delay(1)\n"
        "    (1): Delay(2)\n"
        "  )\n"
        "  (1): Delay(3)\n"
        ")"
    )


def test_conditional_repr_lambda_predicate():
    m = co.Conditional(lambda m, x: m.training, co.Delay(2))
    assert repr(m) == (
        "Conditional(\n  predicate=lambda m, x: m.training\n  (0): Delay(2)\n  (1): Delay(2)\n)"
    )


# --------------------------------------------------------------------------------------------
# Long stream, hooks, call modes
# --------------------------------------------------------------------------------------------
def test_long_stream_conv_avgpool_has_no_drift():
    from cozoo.co.pooling import AvgPool1d

    m = co.Sequential(co.Conv1d(2, 3, 3), AvgPool1d(64, stride=1))
    assert m.receptive_field == 66 and m.delay == 65
    T = 20_000
    x = torch.randn(1, 2, T) * 3 + 10
    checks = {}
    with torch.no_grad():
        for t in range(T):
            y = m.forward_step(x[:, :, t])
            if t < 65:
                assert y is None
            elif t % 4999 == 0 or t == T - 1:
                checks[t] = y
        for t, y in checks.items():
            window = m.forward(x[:, :, t - 65 : t + 1])
            assert window.shape[2] == 1
            assert_close(y, window[:, :, 0], atol=2e-5, rtol=1e-6)
    assert T - 1 in checks


def test_hooks_fire_for_children_in_all_modes():
    conv = co.Conv1d(2, 2, 3, padding=1)
    m = co.Sequential(conv, nn.ReLU())
    pre, post = [], []
    conv.register_forward_pre_hook(lambda mod, args: pre.append(1))
    conv.register_forward_hook(lambda mod, args, out: post.append(1))
    x = torch.randn(1, 2, 6)
    m(x)
    assert pre and post
    for mode, arg in (("forward_step", x[:, :, 0]), ("forward_steps", x)):
        pre.clear()
        post.clear()
        with co.call_mode(mode):
            m(arg)
        assert pre and post, mode
        pre.clear()
        post.clear()
        getattr(m, mode)(arg)
        assert pre and post, mode


def test_hooks_see_the_step_input_and_output_once_per_step():
    conv = co.Conv1d(2, 2, 3, padding=1)
    m = co.Sequential(conv, nn.ReLU())
    seen = []
    conv.register_forward_hook(lambda mod, args, out: seen.append((args, out)))
    x = torch.randn(1, 2, 6)
    with torch.no_grad():
        m.forward_step(x[:, :, 0])  # delay 1: no output yet
        m.forward_step(x[:, :, 1])
    assert len(seen) == 2
    assert len(seen[0][0]) == 1 and torch.equal(seen[0][0][0], x[:, :, 0])
    assert seen[0][1] is None
    assert torch.equal(seen[1][0][0], x[:, :, 1]) and isinstance(seen[1][1], Tensor)
    seen.clear()
    conv.call_mode = "forward_step"
    conv(x[:, :, 2])
    assert len(seen) == 1


@pytest.mark.parametrize("where", ["module", "global"])
def test_hooks_of_a_stateless_child_fire_in_step_mode(where):
    # A Sequential applies a stateless child's frame directly only while it has no hooks.
    m = co.Sequential(co.Conv1d(2, 2, 1), nn.ReLU(), co.Delay(0))
    relu = m[1]
    x = torch.randn(1, 2)
    with torch.no_grad():
        plain = m.forward_step(x)
        if where == "module":
            handle = relu.register_forward_hook(lambda mod, args, out: out + 10)
        else:
            handle = nn.modules.module.register_module_forward_hook(
                lambda mod, args, out: out + 10 if mod is relu else None
            )
        try:
            hooked = m.forward_step(x)
        finally:
            handle.remove()
        assert torch.equal(hooked, plain + 10)
        assert torch.equal(m.forward_step(x), plain)


def test_forward_hook_can_change_a_child_output_in_step_mode():
    conv = co.Conv1d(1, 1, 1)
    m = co.Sequential(conv, co.Delay(0))
    x = torch.randn(1, 1, 4)
    with torch.no_grad():
        plain = m.forward(x)
        conv.register_forward_hook(
            lambda mod, args, out: out * 2 if isinstance(out, Tensor) else None
        )
        assert torch.equal(m.forward(x), plain * 2)


def test_call_mode_property_on_container_sets_children():
    m = nested_network()
    m.call_mode = "forward_steps"
    assert all(c.call_mode == "forward_steps" for c in m.modules() if isinstance(c, CoModule))
    x = torch.randn(1, 3, 20)
    with torch.no_grad():
        y = m(x, pad_end=True)
        m.call_mode = "forward"
        assert_close(y, m(x), **TOL)


def test_gradients_through_forward_steps_equal_forward():
    m = nested_network()
    x = torch.randn(2, 3, 22)  # even: odd lengths hit the nested end-padding bug above
    w = torch.randn_like(m.forward(x))
    (m.forward(x) * w).sum().backward()
    expected = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.clean_state()
    (m.forward_steps(x, pad_end=True) * w).sum().backward()
    for n, p in m.named_parameters():
        assert_close(p.grad, expected[n], atol=1e-4, rtol=1e-4, msg=n)


def test_float64_conversion_mid_stream():
    m = nested_network()
    x = torch.randn(2, 3, 24, dtype=torch.float64)
    ref = copy.deepcopy(m).double()
    with torch.no_grad():
        expected = ref.forward(x)
        head = m.forward_steps(x[:, :, :10].float())
        m.double()  # the live state is converted with the parameters
        rest = m.forward_steps(x[:, :, 10:], pad_end=True)
        assert rest.dtype == torch.float64
        assert_close(torch.cat([head.double(), rest], 2), expected, atol=1e-5, rtol=1e-5)


def sweep_networks():
    from cozoo.co.pooling import MaxPool1d

    nets = {f"seq-{case}": co.Sequential.build_from(build_nn_stack(case)) for case in SEQ_CASES}
    nets["broadcast-reduce-strided"] = co.BroadcastReduce(
        nn_conv1d(3, 3, 3, s=2, p=1), nn.Sequential(nn.Tanh(), nn_conv1d(3, 3, 3, s=2, p=1))
    )
    nets["strided-then-residual"] = co.Sequential(
        nn_conv1d(3, 3, 3, s=2, p=1), co.Residual(nn_conv1d(3, 3, 3, p=1)), nn_conv1d(3, 3, 2)
    )
    nets["conv-maxpool-conv"] = co.Sequential(
        nn_conv1d(3, 3, 3, p=1), MaxPool1d(2, stride=2), nn_conv1d(3, 3, 3, s=2, p=1)
    )
    nets["residual-leading"] = co.Residual(nn_conv1d(3, 3, 4), residual_shrink="leading")
    nets["residual-centered"] = co.Residual(nn_conv1d(3, 3, 5, p=1), residual_shrink=True)
    return nets


def test_forward_equals_forward_steps_pad_end_for_every_length():
    for name, m in sweep_networks().items():
        rf = m.receptive_field
        for steps in range(max(rf - 2 * m.padding[0], 1), rf + 9):
            x = torch.randn(2, 3, steps)
            with torch.no_grad():
                m.clean_state()
                y = m.forward(x)
                got = m.forward_steps(x, pad_end=True)
                if y.shape[2] == 0:
                    assert got is None, (name, steps)
                else:
                    assert_close(got, y, **TOL, msg=f"{name}, T={steps}")
