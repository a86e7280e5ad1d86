"""Continual Conv1d/2d/3d against ``torch.nn``: every mode, the output patterns of delay and
stride, and the defects of ``continual-inference`` 1.2.4's convolutions done right."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cozoo import co
from cozoo.co import CoModule

NN = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CO = {1: co.Conv1d, 2: co.Conv2d, 3: co.Conv3d}
SPATIAL_SIZE = {1: (), 2: (7,), 3: (6, 5)}
SPATIAL_KERNEL = {1: (), 2: (3,), 3: (3, 2)}
DIMS = [1, 2, 3]
TOL = dict(atol=1e-6, rtol=1e-6)
# gradients of the weights sum over batch, time and space: allow for the longer reductions
GRAD_TOL = dict(atol=1e-5, rtol=1e-5)


def conv_kwargs(dims, k=3, s=1, p=0, d=1, sk=None, ss=1, sp=0, sd=1, **extra):
    """torch conv keyword arguments: temporal k/s/p/d, the same spatial sk/ss/sp/sd on every
    spatial dim (default spatial kernel from SPATIAL_KERNEL)."""
    n = dims - 1
    kernel = (k,) + (SPATIAL_KERNEL[dims] if sk is None else (sk,) * n)
    return dict(
        kernel_size=kernel,
        stride=(s,) + (ss,) * n,
        padding=(p,) + (sp,) * n,
        dilation=(d,) + (sd,) * n,
        **extra,
    )


def make_pair(dims, cin=4, cout=6, **kw):
    ref = NN[dims](cin, cout, **conv_kwargs(dims, **kw))
    return ref, CO[dims].build_from(ref)


def make_clip(dims, batch=2, channels=4, steps=11, dtype=None):
    return torch.randn((batch, channels, steps) + SPATIAL_SIZE[dims], dtype=dtype)


def frame_index(t, module):
    """Index of the ``forward`` output frame that the output of step ``t`` equals."""
    return (t - module.delay) // module.stride[0]


def check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern, tol=TOL):
    """forward bit-exact; forward_steps(pad_end) == forward; per-step outputs and None pattern."""
    y = ref(x)
    m.clean_state()
    assert torch.equal(m.forward(x), y)
    assert torch.equal(m(x), y)  # default call mode is forward
    assert m.get_state() is None  # forward never touches the state

    m.clean_state()
    assert_close(m.forward_steps(x, pad_end=True), y, **tol)

    m.clean_state()
    steps = run_steps(m, x)
    T = x.shape[2]
    s = m.stride[0]
    assert pattern_of(steps) == expected_pattern(T, m.delay, s)
    outs = []
    for t, out in enumerate(steps):
        if out is not None:
            assert_close(out, y[:, :, frame_index(t, m)], **tol)
            outs.append(out)

    # forward_steps without end padding: exactly the step outputs, one per output step
    m.clean_state()
    no_pad = m.forward_steps(x)
    n = -(-(T - m.delay) // s) if T > m.delay else 0
    assert len(outs) == n
    if n == 0:
        assert no_pad is None
    else:
        assert no_pad.shape[2] == n
        assert_close(no_pad, torch.stack(outs, 2), **tol)
    return y


# --------------------------------------------------------------------------------------------
# Construction, parameters, properties
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", DIMS)
def test_build_from_and_constructor_share_weights_and_state_dict(dims):
    kw = conv_kwargs(dims, k=3, s=1, p=1, groups=2)
    ref = NN[dims](4, 6, **kw)
    built = CO[dims].build_from(ref)
    made = CO[dims](4, 6, **kw)
    assert list(made.state_dict().keys()) == list(ref.state_dict().keys())
    assert list(built.state_dict().keys()) == list(ref.state_dict().keys())
    made.load_state_dict(ref.state_dict(), strict=True)
    x = make_clip(dims)
    y = ref(x)
    assert torch.equal(built(x), y)
    assert torch.equal(made(x), y)
    assert isinstance(built, NN[dims]) and isinstance(built, CoModule)
    # the copy owns its parameters
    assert built.weight.data_ptr() != ref.weight.data_ptr()
    with torch.no_grad():
        ref.weight.add_(1.0)
    assert not torch.equal(built(x), ref(x))


@pytest.mark.parametrize("dims", DIMS)
def test_build_from_keeps_dtype_and_bias_false(dims):
    ref = NN[dims](3, 5, **conv_kwargs(dims, k=2, bias=False)).double()
    m = CO[dims].build_from(ref)
    assert m.bias is None and m.weight.dtype == torch.float64
    x = make_clip(dims, channels=3, dtype=torch.float64)
    assert torch.equal(m(x), ref(x))


@pytest.mark.parametrize("dims", DIMS)
def test_repr_matches_torch(dims):
    ref = NN[dims](4, 6, **conv_kwargs(dims, k=3, s=2, p=1, bias=False))
    assert repr(CO[dims].build_from(ref)) == repr(ref)
    rep = NN[dims](4, 6, **conv_kwargs(dims, k=3, p=1, sp=1, padding_mode="replicate"))
    assert repr(CO[dims].build_from(rep)) == repr(rep)
    odd = CO[dims](4, 6, **conv_kwargs(dims, k=3, p=1), temporal_fill="replicate")
    assert "temporal_fill='replicate'" in repr(odd)


@pytest.mark.parametrize(
    "k, s, p, d",
    [(3, 1, 0, 1), (3, 1, 2, 1), (5, 2, 1, 1), (1, 3, 0, 1), (3, 1, 0, 2), (3, 2, 3, 3)],
)
def test_temporal_properties(k, s, p, d):
    m = co.Conv3d(2, 2, (k, 3, 3), stride=(s, 2, 1), padding=(p, 1, 0), dilation=(d, 1, 1))
    rf = d * (k - 1) + 1
    assert m.receptive_field == rf
    assert m.delay == rf - 1 - p
    assert m.stride == (s, 2, 1)
    assert m.padding == (p, 1, 0)


# --------------------------------------------------------------------------------------------
# All modes against torch over a grid of configurations
# --------------------------------------------------------------------------------------------
TEMPORAL_CASES = [
    dict(k=3),
    dict(k=3, p=1),
    dict(k=3, p=2),
    dict(k=3, s=2),
    dict(k=3, s=2, p=1),
    dict(k=3, s=2, p=2),
    dict(k=3, s=3, p=1),
    dict(k=5, s=2, p=1),
    dict(k=1),
    dict(k=1, s=2),
    dict(k=1, s=3),
    dict(k=2, p=1),
    dict(k=4, s=2, p=3),
    # temporal dilation (the reference refuses it)
    dict(k=3, d=2),
    dict(k=3, d=2, p=2),
    dict(k=3, d=2, p=4),
    dict(k=2, d=3, s=2, p=1),
    dict(k=3, d=3, s=2, p=5),
]


def _case_id(case):
    return "-".join(f"{k}{v}" for k, v in case.items())


@pytest.mark.parametrize("case", TEMPORAL_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_temporal_configs_all_modes(dims, case, run_steps, pattern_of, expected_pattern):
    ref, m = make_pair(dims, **case)
    check_all_modes(ref, m, make_clip(dims, steps=12), run_steps, pattern_of, expected_pattern)


SPATIAL_CASES = [
    dict(ss=2),
    dict(sp=1),
    dict(sd=2, sp=2),
    dict(ss=2, sp=1, sd=2),
    dict(sk=1, ss=2),
]


@pytest.mark.parametrize("case", SPATIAL_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", [2, 3])
def test_spatial_configs_all_modes(dims, case, run_steps, pattern_of, expected_pattern):
    ref, m = make_pair(dims, k=3, p=1, **case)
    check_all_modes(ref, m, make_clip(dims), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize(
    "case",
    [
        dict(groups=2),
        dict(groups=4, cout=8),
        dict(bias=False),
        dict(groups=2, bias=False, k=3, s=2, p=1, d=2),
    ],
    ids=_case_id,
)
@pytest.mark.parametrize("dims", DIMS)
def test_groups_and_bias_all_modes(dims, case, run_steps, pattern_of, expected_pattern):
    ref, m = make_pair(dims, **case)
    assert (m.bias is None) == (case.get("bias", True) is False)
    check_all_modes(ref, m, make_clip(dims), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dims", DIMS)
def test_batch_sizes_all_modes(dims, batch, run_steps, pattern_of, expected_pattern):
    ref, m = make_pair(dims, k=3, s=2, p=1)
    x = make_clip(dims, batch=batch)
    check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern)


def test_conv3d_groups_dilation_replicate(run_steps, pattern_of, expected_pattern):
    """Conv3d groups=5, spatial dilation 2, stride 2, padding 1, replicate padding."""
    ref = nn.Conv3d(
        5, 10, 3, stride=(1, 2, 2), padding=1, dilation=(1, 2, 2), groups=5,
        padding_mode="replicate",
    )  # fmt: skip
    m = co.Conv3d.build_from(ref)
    x = torch.randn(2, 5, 9, 10, 10)
    check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern)


def test_train_and_eval_mode_give_the_same_results(run_steps, pattern_of, expected_pattern):
    ref, m = make_pair(2, k=3, p=1, s=2)
    x = make_clip(2)
    m.train()
    y_train = check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern)
    m.eval()
    y_eval = check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern)
    assert torch.equal(y_train, y_eval)


# --------------------------------------------------------------------------------------------
# Exact None patterns: output at step t iff t >= delay and (t - delay) % stride == 0
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k, s, p, expected",
    [
        (3, 1, 0, "..OOOOOOOO"),
        (3, 1, 1, ".OOOOOOOOO"),
        (3, 1, 2, "OOOOOOOOOO"),
        (3, 2, 0, "..O.O.O.O."),
        (3, 2, 2, "O.O.O.O.O."),
        (3, 3, 1, ".O..O..O.."),
        (5, 2, 1, "...O.O.O.O"),
    ],
)
def test_none_patterns(k, s, p, expected, run_steps, pattern_of):
    m = co.Conv1d(2, 3, k, stride=s, padding=p)
    assert pattern_of(run_steps(m, torch.randn(1, 2, 10))) == expected
    # the pattern restarts after clean_state
    m.clean_state()
    assert pattern_of(run_steps(m, torch.randn(1, 2, 10))) == expected


def test_dilated_none_pattern(run_steps, pattern_of):
    m = co.Conv1d(2, 3, 3, padding=1, dilation=2)  # rf 5, delay 3
    assert pattern_of(run_steps(m, torch.randn(1, 2, 10))) == "...OOOOOOO"
    m = co.Conv1d(2, 3, 3, stride=2, dilation=2)  # rf 5, delay 4
    assert pattern_of(run_steps(m, torch.randn(1, 2, 10))) == "....O.O.O."


# --------------------------------------------------------------------------------------------
# padding="same" / "valid", padding modes, invalid padding
# --------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("k, d, sk", [(3, 1, 3), (3, 2, 3), (2, 2, 3), (5, 1, 2), (3, 1, 4)])
@pytest.mark.parametrize("dims", DIMS)
def test_padding_same(dims, k, d, sk, run_steps, pattern_of, expected_pattern):
    kw = conv_kwargs(dims, k=k, d=d, sk=sk, sd=1)
    kw["padding"] = "same"
    ref = NN[dims](4, 6, **kw)
    m = CO[dims].build_from(ref)
    window = d * (k - 1) + 1
    assert m.delay == (window - 1) // 2
    y = check_all_modes(ref, m, make_clip(dims), run_steps, pattern_of, expected_pattern)
    assert y.shape[2] == 11  # "same" keeps the length
    made = CO[dims](4, 6, **kw)
    made.load_state_dict(ref.state_dict())
    check_all_modes(ref, made, make_clip(dims), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize("dims", DIMS)
def test_padding_valid(dims, run_steps, pattern_of, expected_pattern):
    kw = conv_kwargs(dims, k=3, s=2, d=2)
    kw["padding"] = "valid"
    ref = NN[dims](4, 6, **kw)
    m = CO[dims].build_from(ref)
    assert m.delay == 4
    check_all_modes(ref, m, make_clip(dims), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize("k, d", [(2, 1), (4, 1), (4, 3)])
@pytest.mark.parametrize("dims", DIMS)
def test_padding_same_with_even_temporal_window_raises(dims, k, d):
    kw = conv_kwargs(dims, k=k, d=d)
    kw["padding"] = "same"
    with pytest.raises(ValueError, match=f"Conv{dims}d.*same"):
        CO[dims](4, 6, **kw)
    with pytest.raises(ValueError, match=f"Conv{dims}d.*same"):
        CO[dims].build_from(NN[dims](4, 6, **kw))


@pytest.mark.parametrize("p", [0, 1, 2])
@pytest.mark.parametrize("dims", DIMS)
def test_padding_mode_replicate(dims, p, run_steps, pattern_of, expected_pattern):
    kw = conv_kwargs(dims, k=3, p=p, sp=1, s=2 if p == 1 else 1, padding_mode="replicate")
    ref = NN[dims](4, 6, **kw)
    x = make_clip(dims)
    check_all_modes(ref, CO[dims].build_from(ref), x, run_steps, pattern_of, expected_pattern)
    made = CO[dims](4, 6, **kw)  # the constructor also defaults to replicate in time
    made.load_state_dict(ref.state_dict())
    check_all_modes(ref, made, x, run_steps, pattern_of, expected_pattern)


def test_replicate_with_dilation(run_steps, pattern_of, expected_pattern):
    ref = nn.Conv2d(3, 4, (3, 3), padding=(4, 1), dilation=(2, 1), padding_mode="replicate")
    m = co.Conv2d.build_from(ref)
    check_all_modes(ref, m, torch.randn(2, 3, 10, 6), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize("dims", [2, 3])
def test_padding_mode_reflect_circular_without_temporal_padding(
    dims, mode, run_steps, pattern_of, expected_pattern
):
    kw = conv_kwargs(dims, k=3, s=2, p=0, sp=1, padding_mode=mode)
    ref = NN[dims](4, 6, **kw)
    m = CO[dims].build_from(ref)
    check_all_modes(ref, m, make_clip(dims), run_steps, pattern_of, expected_pattern)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize("dims", DIMS)
def test_padding_mode_reflect_circular_with_temporal_padding_raises(dims, mode):
    kw = conv_kwargs(dims, k=3, p=1, padding_mode=mode)
    with pytest.raises(ValueError, match=f"Conv{dims}d.*{mode}"):
        CO[dims](4, 6, **kw)
    with pytest.raises(ValueError, match=f"Conv{dims}d.*{mode}"):
        CO[dims].build_from(NN[dims](4, 6, **kw))


@pytest.mark.parametrize("k, d, p", [(3, 1, 3), (1, 1, 1), (3, 2, 5), (2, 3, 4)])
@pytest.mark.parametrize("dims", DIMS)
def test_temporal_padding_beyond_window_raises(dims, k, d, p):
    kw = conv_kwargs(dims, k=k, d=d, p=p)
    with pytest.raises(ValueError, match=f"Conv{dims}d.*padding"):
        CO[dims](4, 6, **kw)
    with pytest.raises(ValueError, match=f"Conv{dims}d.*padding"):
        CO[dims].build_from(NN[dims](4, 6, **kw))


@pytest.mark.parametrize("dims", DIMS)
def test_wrong_clip_rank_raises(dims):
    m = CO[dims](4, 6, **conv_kwargs(dims, k=3))
    bad = torch.randn((2, 4) + SPATIAL_SIZE[dims])  # a step, not a clip
    with pytest.raises(ValueError, match=f"Conv{dims}d"):
        m.forward(bad)
    with pytest.raises(ValueError, match=f"Conv{dims}d"):
        m.forward_steps(bad)


# --------------------------------------------------------------------------------------------
# Chaining calls
# --------------------------------------------------------------------------------------------
CHAIN_CASES = [dict(k=3, p=1), dict(k=3, s=2, p=2), dict(k=5, s=3, p=1), dict(k=3, d=2, p=3)]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_forward_steps_split_equals_one_call(dims, case):
    ref, m = make_pair(dims, **case)
    x = make_clip(dims, steps=13)
    y = ref(x)
    whole = m.forward_steps(x)
    for a in [0, 1, 2, m.delay, 7, 12, 13]:
        m.clean_state()
        first = m.forward_steps(x[:, :, :a])
        second = m.forward_steps(x[:, :, a:])
        parts = [p for p in (first, second) if p is not None]
        assert_close(torch.cat(parts, 2), whole, **TOL)
        # with end padding on the last part: forward
        m.clean_state()
        first = m.forward_steps(x[:, :, :a])
        second = m.forward_steps(x[:, :, a:], pad_end=True)
        parts = [p for p in (first, second) if p is not None]
        assert_close(torch.cat(parts, 2), y, **TOL)


@pytest.mark.parametrize("case", CHAIN_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_mixed_steps_step_steps_equals_forward(dims, case):
    """Chunks and single steps mixed, the last chunk with ``pad_end``, concatenate to forward."""
    ref, m = make_pair(dims, **case)
    x = make_clip(dims, steps=12)
    outs = [
        m.forward_steps(x[:, :, :3]),
        m.forward_step(x[:, :, 3]),
        m.forward_steps(x[:, :, 4:9]),
        m.forward_step(x[:, :, 9]),
        m.forward_steps(x[:, :, 10:], pad_end=True),
    ]
    outs = [o if o is None or o.dim() == x.dim() else o.unsqueeze(2) for o in outs]
    assert_close(torch.cat([o for o in outs if o is not None], 2), ref(x), **TOL)


@pytest.mark.parametrize("case", CHAIN_CASES + [dict(k=1, s=2)], ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_step_after_pad_end_continues_the_stream(dims, case, run_steps, expected_pattern):
    """End padding must not touch the state: the next steps equal torch on the longer clip."""
    ref, m = make_pair(dims, **case)
    x = make_clip(dims, steps=16)
    T = 10
    y_full = ref(x)
    padded = m.forward_steps(x[:, :, :T], pad_end=True)
    assert_close(padded, ref(x[:, :, :T]), **TOL)
    nxt = run_steps(m, x[:, :, T:])
    pattern = expected_pattern(16, m.delay, m.stride[0])
    for i, out in enumerate(nxt):
        t = T + i
        assert (out is not None) == (pattern[t] == "O")
        if out is not None:
            assert_close(out, y_full[:, :, frame_index(t, m)], **TOL)


@pytest.mark.parametrize("case", CHAIN_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_pad_end_without_update_state_on_warm_module(dims, case):
    """``pad_end=True, update_state=False`` after earlier chunks: the end padding follows this
    call's chunk (``continual-inference`` 1.2.4 computed it from the stale stored state)."""
    ref, m = make_pair(dims, **case)
    x = make_clip(dims, steps=13)
    y = ref(x)
    for a in [1, 5, 9]:
        m.clean_state()
        first = m.forward_steps(x[:, :, :a])
        state = m.get_state()
        second = m.forward_steps(x[:, :, a:], pad_end=True, update_state=False)
        assert m.get_state() is state
        parts = [p for p in (first, second) if p is not None]
        assert_close(torch.cat(parts, 2), y, **TOL)
        # the same call with update_state=True gives the same outputs
        again = m.forward_steps(x[:, :, a:], pad_end=True)
        assert torch.equal(again, second)


@pytest.mark.parametrize("dims", DIMS)
def test_forward_steps_returns_none_without_outputs(dims):
    ref, m = make_pair(dims, k=5, s=2, p=0)  # delay 4
    x = make_clip(dims, steps=9)
    assert m.forward_steps(x[:, :, :4]) is None
    assert m.forward_steps(x[:, :, 4:5]).shape[2] == 1
    assert m.forward_steps(x[:, :, 5:6]) is None  # off stride
    assert_close(m.forward_steps(x[:, :, 6:]), ref(x)[:, :, 1:], **TOL)


# --------------------------------------------------------------------------------------------
# Long streams, autograd, dtypes
# --------------------------------------------------------------------------------------------
def test_long_stream_has_no_drift():
    m = co.Conv1d(3, 4, 5, dilation=2)
    T = 2000
    x = torch.randn(2, 3, T)
    y = m.forward(x)
    outs = [o for o in (m.forward_step(x[:, :, t]) for t in range(T)) if o is not None]
    assert len(outs) == T - m.delay
    stepped = torch.stack(outs, 2)
    assert_close(stepped, y, **TOL)
    last_window = x[:, :, -m.receptive_field :]
    assert_close(outs[-1], nn.functional.conv1d(last_window, m.weight, m.bias, dilation=2)[..., 0])
    # chunked forward_steps over the same stream
    m.clean_state()
    chunks = [m.forward_steps(x[:, :, i : i + 13]) for i in range(0, T, 13)]
    assert_close(torch.cat([c for c in chunks if c is not None], 2), y, **TOL)


AUTOGRAD_CASES = [dict(k=3), dict(k=3, s=2, p=1), dict(k=2, d=2, p=1)]


@pytest.mark.parametrize("case", AUTOGRAD_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_gradients_through_forward_steps(dims, case):
    _, m = make_pair(dims, **case)
    m.train()
    x = make_clip(dims, steps=10).requires_grad_()
    inputs = [x, m.weight, m.bias]
    y = m.forward(x)
    g = torch.randn_like(y)
    expected = torch.autograd.grad((y * g).sum(), inputs)

    y_steps = m.forward_steps(x, pad_end=True)
    got = torch.autograd.grad((y_steps * g).sum(), inputs)
    for a, e in zip(got, expected):
        assert_close(a, e, **GRAD_TOL)

    # split over two chunks: gradients flow through the cached frames
    m.clean_state()
    parts = [m.forward_steps(x[:, :, :4]), m.forward_steps(x[:, :, 4:], pad_end=True)]
    y_split = torch.cat([p for p in parts if p is not None], 2)
    got = torch.autograd.grad((y_split * g).sum(), inputs)
    for a, e in zip(got, expected):
        assert_close(a, e, **GRAD_TOL)


@pytest.mark.parametrize("case", AUTOGRAD_CASES, ids=_case_id)
@pytest.mark.parametrize("dims", DIMS)
def test_gradients_through_forward_step(dims, case):
    _, m = make_pair(dims, **case)
    m.train()
    x = make_clip(dims, steps=10).requires_grad_()
    inputs = [x, m.weight, m.bias]
    outs = [o for o in (m.forward_step(x[:, :, t]) for t in range(10)) if o is not None]
    y_step = torch.stack(outs, 2)
    y = m.forward(x)[:, :, : len(outs)]  # the outputs that need no end padding
    g = torch.randn_like(y)
    expected = torch.autograd.grad((y * g).sum(), inputs)
    y_step.mul(g).sum().backward()
    for param, e in zip(inputs, expected):
        assert param.grad is not None
        assert_close(param.grad, e, **GRAD_TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_float64_all_modes(dims, run_steps, pattern_of, expected_pattern):
    ref = NN[dims](4, 6, **conv_kwargs(dims, k=3, s=2, p=1, d=2), dtype=torch.float64)
    m = CO[dims].build_from(ref)
    x = make_clip(dims, dtype=torch.float64)
    tol = dict(atol=1e-12, rtol=1e-12)
    y = check_all_modes(ref, m, x, run_steps, pattern_of, expected_pattern, tol=tol)
    assert y.dtype == torch.float64
    m.clean_state()
    assert all(o is None or o.dtype == torch.float64 for o in run_steps(m, x))
    assert m.forward_steps(x, pad_end=True).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Defects of continual-inference 1.2.4's convolutions, done right
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", DIMS)
def test_k1_stride2_forward_step_respects_stride(dims, run_steps, pattern_of):
    """Reference: k=1, s>1 has no state, so forward_step re-initialises and outputs every step."""
    ref, m = make_pair(dims, k=1, s=2)
    x = make_clip(dims, steps=9)
    outs = run_steps(m, x)
    assert pattern_of(outs) == "O.O.O.O.O"
    assert m.get_state() is not None  # the stride phase is state
    assert_close(torch.stack([o for o in outs if o is not None], 2), ref(x), **TOL)
    # chunks of odd length keep the phase
    m.clean_state()
    parts = [m.forward_steps(x[:, :, i : i + 3]) for i in range(0, 9, 3)]
    assert [p.shape[2] for p in parts] == [2, 1, 2]
    assert_close(torch.cat(parts, 2), ref(x), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_temporal_dilation_is_supported(dims):
    """Reference: AssertionError "Temporal dilation > 1 is not supported" (also in build_from)."""
    ref, m = make_pair(dims, k=3, d=2, p=2)
    assert m.receptive_field == 5 and m.delay == 2
    x = make_clip(dims, steps=9)
    assert_close(m.forward_steps(x, pad_end=True), ref(x), **TOL)


def test_step_state_holds_raw_frames_not_k_squared_partials(tensors_of):
    """``continual-inference`` 1.2.4's state ring holds (k-1)^2 partial output frames per batch;
    a window needs at most rf-1 input frames."""
    m = co.Conv2d(4, 16, (5, 3), padding=(2, 1))
    x = torch.randn(2, 4, 8, 9)
    m.forward_steps(x)
    state = m.get_state()
    numel = sum(t.numel() for t in tensors_of(state))
    assert numel <= (m.receptive_field - 1) * x[:, :, 0].numel()


@pytest.mark.parametrize(
    "cls, kwargs, shape",
    [
        (co.Conv3d, dict(kernel_size=3, padding=1, stride=(1, 2, 2)), (2, 6, 9, 7, 7)),
        (
            co.Conv3d,
            dict(kernel_size=(5, 3, 3), padding=(2, 2, 2), dilation=(1, 2, 2)),
            (1, 6, 9, 8, 8),
        ),
        (
            co.Conv3d,
            dict(kernel_size=(3, 1, 1), dilation=(2, 1, 1), padding=(2, 0, 0)),
            (2, 6, 9, 4, 4),
        ),
        (co.Conv2d, dict(kernel_size=3, padding=1, stride=(1, 2)), (2, 6, 9, 7)),
    ],
)
def test_depthwise_steps_match_forward(cls, kwargs, shape):
    """Depthwise kernels step through the direct depthwise op on the taps (not the merged form)."""
    conv = cls(6, 6, groups=6, **kwargs)
    assert conv._depthwise
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = conv(x)
        torch.testing.assert_close(conv.forward_steps(x, pad_end=True), ref, atol=1e-5, rtol=1e-5)
        conv.clean_state()
        outs = [conv.forward_step(x[:, :, t]) for t in range(shape[2])]
    steps = torch.stack([o for o in outs if o is not None], 2)
    assert outs[conv.delay] is not None and all(o is None for o in outs[: conv.delay])
    torch.testing.assert_close(steps, ref[:, :, : steps.shape[2]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=6, out_channels=6, kernel_size=3, padding=1, stride=(1, 2, 2), groups=6),
        dict(in_channels=6, out_channels=6, kernel_size=(5, 1, 1), padding=(2, 0, 0), groups=6),
        dict(
            in_channels=6,
            out_channels=6,
            kernel_size=(3, 1, 1),
            padding=(2, 0, 0),
            dilation=(2, 1, 1),
            groups=6,
            bias=False,
        ),
        dict(in_channels=6, out_channels=5, kernel_size=1),
        dict(in_channels=6, out_channels=5, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
        dict(
            in_channels=6,
            out_channels=4,
            kernel_size=(1, 3, 3),
            stride=(1, 2, 2),
            padding=(0, 1, 1),
        ),
        dict(in_channels=6, out_channels=4, kernel_size=3, stride=(1, 2, 1), padding=(1, 1, 0)),
        dict(in_channels=6, out_channels=4, kernel_size=(3, 1, 1), padding=(1, 0, 0), groups=2),
    ],
    ids=[
        "depthwise333",
        "depthwise511",
        "depthwise311-dilated",
        "pointwise",
        "temporal311",
        "spatial",
        "full333",
        "grouped311",
    ],
)
@pytest.mark.parametrize("temporal_fill", ["zeros", "replicate"])
def test_channels_last_frames_step_like_contiguous_frames(kwargs, temporal_fill):
    """Steps on channels-last frames (what the video zoo feeds) equal steps on contiguous
    frames and the clip forward, also when the layout changes mid-stream; the fast paths
    (depthwise taps, (k,1,1) weighted sums, 1x1 matmuls) keep the channels-last layout."""
    conv = co.Conv3d(**kwargs, temporal_fill=temporal_fill)
    x = torch.randn(2, 6, 9, 7, 6)
    frames = [x[:, :, t] for t in range(9)]
    channels_last = [f.contiguous(memory_format=torch.channels_last) for f in frames]
    with torch.no_grad():
        conv.clean_state()
        expected = [conv.forward_step(f) for f in frames]
        conv.clean_state()
        got = [conv.forward_step(f) for f in channels_last]
        conv.clean_state()
        mixed = [conv.forward_step(f) for f in frames[:4] + channels_last[4:]]
    for e, g, m in zip(expected, got, mixed):
        assert (e is None) == (g is None) == (m is None)
        if e is not None:
            assert_close(g, e, atol=1e-5, rtol=1e-5)
            assert_close(m, e, atol=1e-5, rtol=1e-5)
            if conv._depthwise or conv.groups == 1:  # grouped convs may change the layout
                assert g.is_contiguous(memory_format=torch.channels_last)
                assert not g.is_contiguous()
    if temporal_fill == "zeros":
        ref = conv(x)
        outs = torch.stack([g for g in got if g is not None], 2)
        assert_close(outs, ref[:, :, : outs.shape[2]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, (3, 1, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_steps_on_one_pixel_frames_match_the_clip(kernel_size, groups):
    """(B, C, 1, 1) frames (a squeeze-excitation's pooled frame) are contiguous and channels-last
    at once: their 1x1 convs run as matmuls and still equal the clip forward."""
    padding = (0, 0, 0) if kernel_size == 1 else (1, 0, 0)
    conv = co.Conv3d(8, 6, kernel_size, padding=padding, groups=groups)
    x = torch.randn(3, 8, 10, 1, 1)
    with torch.no_grad():
        ref = conv(x)
        conv.clean_state()
        steps = [conv.forward_step(x[:, :, t]) for t in range(10)]
        outs = torch.stack([y for y in steps if y is not None], 2)
        assert_close(outs, ref[:, :, : outs.shape[2]], atol=1e-5, rtol=1e-5)
        conv.clean_state()
        assert_close(conv.forward_steps(x, pad_end=True), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, padding=(1, 1, 1)),
        dict(kernel_size=3, padding=(0, 1, 1), stride=(1, 2, 2), bias=False),
        dict(kernel_size=(3, 3, 3), padding=(2, 1, 1), dilation=(2, 1, 1)),
    ],
    ids=["same", "strided", "dilated"],
)
def test_depthwise_steps_on_large_channels_last_frames_run_per_tap(kwargs):
    """Channels-last frames of 40x40 pixels and more take the per-tap depthwise path (one 2-D
    conv per tap, summed); its steps equal the clip forward and keep the layout."""
    conv = co.Conv3d(6, 6, groups=6, **kwargs)
    x = torch.randn(2, 6, 8, 40, 41)
    assert x[:, :, 0].shape[-2:].numel() >= co.conv._PER_TAP_MIN_PIXELS
    with torch.no_grad():
        ref = conv(x)
        conv.clean_state()
        steps = [
            conv.forward_step(x[:, :, t].contiguous(memory_format=torch.channels_last))
            for t in range(8)
        ]
        conv.clean_state()
        chunked = conv.forward_steps(x, pad_end=True)
    outs = [y for y in steps if y is not None]
    assert outs[-1].is_contiguous(memory_format=torch.channels_last)
    assert_close(torch.stack(outs, 2), ref[:, :, : len(outs)], atol=1e-5, rtol=1e-5)
    assert_close(chunked, ref, atol=1e-5, rtol=1e-5)
