"""Continual pools: every mode against torch.nn, state handling, refused arguments."""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cozoo.co.conv import Conv1d
from cozoo.co.module import StepShapeError
from cozoo.co.pooling import (
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

CO = {
    ("avg", 1): AvgPool1d,
    ("avg", 2): AvgPool2d,
    ("avg", 3): AvgPool3d,
    ("max", 1): MaxPool1d,
    ("max", 2): MaxPool2d,
    ("max", 3): MaxPool3d,
}
NN = {
    ("avg", 1): nn.AvgPool1d,
    ("avg", 2): nn.AvgPool2d,
    ("avg", 3): nn.AvgPool3d,
    ("max", 1): nn.MaxPool1d,
    ("max", 2): nn.MaxPool2d,
    ("max", 3): nn.MaxPool3d,
}
SHAPES = {1: (2, 3, 11), 2: (2, 3, 11, 7), 3: (2, 3, 10, 7, 6)}
ATOL = 1e-6


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def reference(kind: str, dims: int, kw: dict) -> Callable[[Tensor], Tensor]:
    """The torch computation a pool's forward must reproduce."""
    kw = dict(kw)
    kw.pop("temporal_fill", None)
    if kind == "max":
        return NN[(kind, dims)](**kw)
    dilation = kw.pop("dilation", 1)
    if _tup(dilation, dims)[0] == 1:
        return NN[(kind, dims)](**kw)
    # Average pool with temporal dilation (torch has none): a depthwise conv with a dilated box
    # of ones is an independent reference (count_include_pad=True, no ceil_mode/override).
    k = _tup(kw["kernel_size"], dims)
    s = _tup(kw.get("stride") or k, dims)
    p = _tup(kw.get("padding", 0), dims)
    d = _tup(dilation, dims)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]

    def fn(x: Tensor) -> Tensor:
        c = x.shape[1]
        w = torch.full((c, 1) + k, 1.0 / math.prod(k), dtype=x.dtype)
        return conv(x, w, None, s, p, d, c)

    return fn


def step_all(m, x: Tensor) -> List[Optional[Tensor]]:
    return [m.forward_step(x[:, :, t]) for t in range(x.shape[2])]


def has_output(t: int, delay: int, stride: int) -> bool:
    return t >= delay and (t - delay) % stride == 0


def close(a: Tensor, b: Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=1e-5, equal_nan=True)


def _grid():
    cases = []
    for kind in ("avg", "max"):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                for d in (1, 2):
                    window = d * (k - 1) + 1
                    limit = k // 2 if kind == "max" else window // 2
                    for p in sorted({0, limit}):
                        cases.append(
                            (kind, 1, dict(kernel_size=k, stride=s, padding=p, dilation=d))
                        )
        cases.append((kind, 1, dict(kernel_size=3, stride=1, padding=1, ceil_mode=True)))
    cases += [
        ("avg", 1, dict(kernel_size=3, stride=2, count_include_pad=False)),
        ("avg", 2, dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1))),
        (
            "avg",
            2,
            dict(kernel_size=(2, 3), stride=(2, 2), padding=(0, 1), count_include_pad=False),
        ),
        ("avg", 2, dict(kernel_size=(3, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True)),
        ("avg", 2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), divisor_override=5)),
        ("avg", 2, dict(kernel_size=(3, 2), stride=(1, 1), padding=(2, 1), dilation=(2, 1))),
        ("avg", 2, dict(kernel_size=3)),
        ("avg", 3, dict(kernel_size=2)),
        ("avg", 3, dict(kernel_size=(3, 3, 2), stride=(1, 2, 1), padding=(1, 1, 1))),
        (
            "avg",
            3,
            dict(
                kernel_size=(2, 3, 3),
                stride=(2, 2, 2),
                padding=(0, 1, 1),
                count_include_pad=False,
                ceil_mode=False,
            ),
        ),
        (
            "avg",
            3,
            dict(
                kernel_size=(3, 3, 2),
                stride=(1, 2, 2),
                padding=(1, 1, 0),
                ceil_mode=True,
                divisor_override=7,
            ),
        ),
        (
            "avg",
            3,
            dict(kernel_size=(2, 2, 2), stride=(1, 1, 2), padding=(1, 1, 0), dilation=(3, 1, 1)),
        ),
        ("max", 2, dict(kernel_size=3)),
        ("max", 2, dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 2))),
        ("max", 2, dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1), ceil_mode=False)),
        ("max", 2, dict(kernel_size=(3, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True)),
        ("max", 3, dict(kernel_size=2)),
        (
            "max",
            3,
            dict(kernel_size=(3, 3, 3), stride=(2, 2, 1), padding=(1, 1, 1), dilation=(2, 1, 2)),
        ),
        ("max", 3, dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
        (
            "max",
            3,
            dict(kernel_size=(3, 2, 3), stride=(1, 2, 2), padding=(1, 0, 1), ceil_mode=True),
        ),
    ]
    return cases


GRID = _grid()


def _id(case):
    kind, dims, kw = case
    return f"{kind}{dims}d-" + "-".join(f"{k}={v}" for k, v in kw.items())


# --------------------------------------------------------------------------------------------
# the modes agree with torch.nn over a grid of parameters
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", GRID, ids=[_id(c) for c in GRID])
def test_modes_match_torch(case):
    kind, dims, kw = case
    torch.manual_seed(0)
    m = CO[(kind, dims)](**kw)
    ref = reference(kind, dims, kw)
    x = torch.randn(SHAPES[dims])
    expected = ref(x)

    # forward: torch's own op (bit-exact), or the independent dilated reference
    y = m(x)
    dilated_avg = kind == "avg" and m.dilation[0] > 1
    if dilated_avg:
        assert close(y, expected)
    else:
        assert torch.equal(y, expected)
    assert m.receptive_field == m.dilation[0] * (m.kernel_size[0] - 1) + 1
    assert m.delay == m.receptive_field - 1 - m.padding[0]
    assert m.stride[0] == _tup(kw.get("stride") or kw["kernel_size"], dims)[0]

    # forward_steps on a fresh module == forward
    assert close(m.forward_steps(x, pad_end=True), y)
    m.clean_state()

    # step by step: None exactly while warming up / off-stride, else forward's frames in order
    outs = step_all(m, x)
    pattern = [o is not None for o in outs]
    assert pattern == [has_output(t, m.delay, m.stride[0]) for t in range(x.shape[2])]
    got = [o for o in outs if o is not None]
    if got:
        assert close(torch.stack(got, 2), y[:, :, : len(got)])

    # split stepping continues the stream: steps(:3) + step(3) + steps(4:, pad_end) == forward
    m.clean_state()
    parts = [m.forward_steps(x[:, :, :3]), m.forward_step(x[:, :, 3])]
    if parts[1] is not None:
        parts[1] = parts[1].unsqueeze(2)
    parts.append(m.forward_steps(x[:, :, 4:], pad_end=True))
    joined = torch.cat([p for p in parts if p is not None], 2)
    assert close(joined, y)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_forward_steps_none_and_lengths(kind):
    m = CO[(kind, 1)](4, stride=1, padding=0)  # delay 3
    x = torch.randn(1, 2, 3)
    assert m.forward_steps(x) is None  # T <= delay: None, not an empty tensor
    y = m.forward_steps(torch.randn(1, 2, 5))
    assert y.shape == (1, 2, 5)  # continuing: every step now yields


def test_stride_defaults_to_kernel_and_tuples():
    m = MaxPool3d(2)
    assert m.stride == (2, 2, 2) and m.padding == (0, 0, 0) and m.kernel_size == (2, 2, 2)
    a = AvgPool2d((3, 2), stride=(1, 2))
    assert a.stride == (1, 2) and a.dilation == (1, 1)
    assert AvgPool1d(3, dilation=2).receptive_field == 5


# --------------------------------------------------------------------------------------------
# temporal fill and dilation (reference defects)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_pool_pads_time_with_neg_inf(dims):
    torch.manual_seed(1)
    kernel = (3,) + (2,) * (dims - 1)
    padding = (1,) + (1,) * (dims - 1)
    m = CO[("max", dims)](kernel, stride=1, padding=padding)
    assert m.temporal_fill == "neg_inf"
    x = -1.0 - torch.rand(SHAPES[dims])  # all negative: zero padding would show up as 0
    expected = NN[("max", dims)](kernel, stride=1, padding=padding)(x)
    assert (expected < 0).all()
    assert close(m.forward_steps(x, pad_end=True), expected)
    m.clean_state()
    outs = [o for o in step_all(m, x) if o is not None]
    assert len(outs) == x.shape[2] - 1
    assert close(torch.stack(outs, 2), expected[:, :, : len(outs)])
    # the reference's zero fill would be wrong here: the fill really matters
    z = CO[("max", dims)](kernel, stride=1, padding=padding, temporal_fill="zeros")
    assert (z.forward_steps(x, pad_end=True)[:, :, 0] == 0).all()


def test_max_pool_dilation_non_monotonic():
    torch.manual_seed(2)
    x = torch.randperm(40).float().view(2, 2, 10) * torch.tensor([1.0, -1.0]).view(1, 2, 1)
    for d in (2, 3):
        m = MaxPool1d(3, stride=1, padding=1, dilation=d)
        expected = nn.MaxPool1d(3, stride=1, padding=1, dilation=d)(x)
        assert m.receptive_field == 2 * d + 1
        outs = [o for o in step_all(m, x) if o is not None]
        assert torch.equal(torch.stack(outs, 2), expected[:, :, : len(outs)])
        m.clean_state()
        assert torch.equal(m.forward_steps(x, pad_end=True), expected)


def test_avg_pool_dilation_non_monotonic():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 14)
    m = AvgPool1d(3, stride=1, padding=2, dilation=3)
    expected = F.conv1d(x, torch.full((3, 1, 3), 1 / 3), padding=2, dilation=3, groups=3)
    assert close(m(x), expected)
    outs = [o for o in step_all(m, x) if o is not None]
    assert close(torch.stack(outs, 2), expected[:, :, : len(outs)])
    assert "dilation=(3,)" in repr(m)


def test_avg_pool_replicate_fill():
    x = torch.randn(2, 3, 9)
    m = AvgPool1d(3, stride=1, padding=1, temporal_fill="replicate")
    padded = torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2)
    expected = F.avg_pool1d(padded, 3, 1)
    assert close(m.forward_steps(x, pad_end=True), expected)
    assert not close(m(x), expected)  # forward pads with zeros, as torch does
    assert "temporal_fill='replicate'" in repr(m)


# --------------------------------------------------------------------------------------------
# running sum
# --------------------------------------------------------------------------------------------
def test_avg_pool_long_stream_has_no_drift():
    torch.manual_seed(4)
    m = AvgPool1d(64, stride=1)
    x = torch.randn(2, 8, 20_000)
    with torch.no_grad():
        for t in range(x.shape[2]):
            y = m.forward_step(x[:, :, t])
    expected = m(x[:, :, -64:])[:, :, 0]
    # Without the periodic exact re-sum the error grows to ~1e-6 here; with it it stays ~5e-8.
    assert (y - expected).abs().max() < 3e-7
    assert m.get_state().extra[1] < 63  # the re-sum counter is bounded


def test_avg_pool_running_sum_is_used():
    m = AvgPool1d(8, stride=1)
    x = torch.randn(1, 2, 12)
    m.forward_steps(x)
    total, age = m.get_state().extra
    assert age == 0 and torch.allclose(total, x[:, :, -7:].sum(2))
    m.forward_step(torch.randn(1, 2))
    assert m.get_state().extra[1] == 1
    # a deliberately wrong running sum shows in the next output: the step reads it
    state = m.get_state()
    m.set_state(state._replace(extra=(state.extra[0] + 8.0, state.extra[1])))
    a = m.forward_step(torch.zeros(1, 2), update_state=False)
    m.set_state(state)
    b = m.forward_step(torch.zeros(1, 2), update_state=False)
    assert torch.allclose(a - b, torch.ones_like(a))


def test_avg_pool_mixed_validity_pure_step():
    """``_step`` with per-stream validity: each stream behaves like its own single stream, also
    across the periodic re-sum (stream 1 only gets odd steps)."""
    torch.manual_seed(5)
    m = AvgPool1d(4, stride=1, padding=1)
    single = [AvgPool1d(4, stride=1, padding=1) for _ in range(2)]
    x = torch.randn(2, 3, 25)
    state, seen, resums = None, 0, 0
    for t in range(x.shape[2]):
        valid = (True, t % 2 == 1)
        y, out_valid, state = m._step(x[:, :, t], state, valid)
        y0 = single[0].forward_step(x[0:1, :, t])
        y1 = single[1].forward_step(x[1:2, :, t]) if valid[1] else None
        flags = out_valid if isinstance(out_valid, tuple) else (out_valid,) * 2
        assert flags == (y0 is not None, y1 is not None)
        if y0 is not None:
            assert close(y[0:1], y0)
        if y1 is not None:
            assert close(y[1:2], y1)
            seen += 1
        total, age = state.extra
        if age == 0:  # a re-sum step: every stream's sum is exact, also a stream without a frame
            resums += 1
            assert torch.equal(total, torch.stack(state.frames, 0).sum(0))
    assert seen > 8 and resums > 5


# --------------------------------------------------------------------------------------------
# state API
# --------------------------------------------------------------------------------------------
POOLS = [
    lambda: AvgPool1d(4, stride=1, padding=1),
    lambda: AvgPool1d(3, stride=2, padding=2, dilation=2),
    lambda: MaxPool1d(3, stride=2, padding=1, dilation=2),
    lambda: AvgPool3d((3, 2, 2), stride=(1, 2, 2), padding=(1, 0, 0)),
    lambda: MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1)),
    lambda: AdaptiveAvgPool2d((1, 2), kernel_size=4),
    lambda: AdaptiveMaxPool3d((1, 1, 2), kernel_size=3),
]
POOL_IDS = ["avg1d", "avg1d-dil", "max1d-dil", "avg3d", "max2d", "adaptive-avg2d", "adaptive-max3d"]


def _input_for(m, t: int = 12, b: int = 2) -> Tensor:
    spatial = {1: (), 2: (5,), 3: (4, 5)}[m._dims]
    return torch.randn((b, 3, t) + spatial)


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_update_state_false(make):
    torch.manual_seed(6)
    m = make()
    x = _input_for(m)
    assert m.forward_step(x[:, :, 0], update_state=False) is None or m.delay == 0
    assert m.get_state() is None  # a fresh module stays fresh
    m.forward_steps(x[:, :, :5])
    before = m.get_state()
    peek = [m.forward_step(x[:, :, t], update_state=False) for t in (5, 5)]
    peek_chunk = m.forward_steps(x[:, :, 5:], pad_end=True, update_state=False)
    assert m.get_state() is before
    real = m.forward_step(x[:, :, 5])
    assert m.get_state() is not before
    for p in peek:
        assert (p is None and real is None) or torch.equal(p, real)
    rest = m.forward_steps(x[:, :, 6:], pad_end=True)
    joined = torch.cat(
        [t for t in (None if real is None else real.unsqueeze(2), rest) if t is not None], 2
    )
    assert close(peek_chunk, joined)


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_snapshot_restore(make):
    torch.manual_seed(7)
    m = make()
    x = _input_for(m, t=16)
    m.forward_steps(x[:, :, :6])
    snap = m.get_state()
    copies = [f.clone() for f in snap.frames]
    first = step_all(m, x[:, :, 6:])
    m.set_state(snap)
    second = step_all(m, x[:, :, 6:])
    assert any(o is not None for o in first)
    for a, b in zip(first, second):
        assert (a is None and b is None) or torch.equal(a, b)
    for f, c in zip(snap.frames, copies):  # stepping never wrote into the snapshot
        assert torch.equal(f, c)


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_per_stream_reset(make):
    torch.manual_seed(8)
    m = make()
    x = _input_for(m, t=15)
    a = 5
    whole = make()  # stream 0 uninterrupted
    fresh = make()  # stream 1 from step a on, as a fresh stream
    produced = [0, 0]
    for t in range(x.shape[2]):
        if t == a:
            m.clean_state(streams=[1])
        y = m.forward_step(x[:, :, t])
        y0 = whole.forward_step(x[0:1, :, t])
        y1 = fresh.forward_step(x[1:2, :, t]) if t >= a else (y[1:2] if y is not None else None)
        if y0 is None and y1 is None:
            assert y is None
            continue
        assert y is not None
        for row, ref in ((0, y0), (1, y1)):
            if ref is None:
                assert torch.isnan(y[row]).all()
            else:
                assert close(y[row : row + 1], ref)
                produced[row] += 1
    assert produced[0] > 0 and produced[1] > 0


@pytest.mark.parametrize(
    "make",
    [lambda: AvgPool1d(3, stride=1), lambda: MaxPool1d(3, stride=1), lambda: AvgPool3d((3, 1, 1))],
    ids=["avg1d", "max1d", "avg3d-identity-spatial"],
)
def test_caller_may_reuse_its_step_buffer(make):
    m, ref = make(), make()
    x = _input_for(m, t=9, b=1)
    buffer = torch.empty_like(x[:, :, 0])
    for t in range(x.shape[2]):
        buffer.copy_(x[:, :, t])  # a camera loop writing every frame into one buffer
        y, expected = m.forward_step(buffer), ref.forward_step(x[:, :, t].clone())
        assert (y is None and expected is None) or torch.equal(y, expected)
    assert y is not None


def test_step_shape_change_needs_clean_state():
    m = AvgPool1d(3, stride=1)
    m.forward_step(torch.randn(2, 3))
    with pytest.raises(StepShapeError):
        m.forward_step(torch.randn(1, 3))
    m.clean_state()
    assert m.forward_step(torch.randn(1, 3)) is None


def test_wrong_step_rank_is_a_clear_error():
    m = MaxPool3d(2)
    with pytest.raises(ValueError, match="MaxPool3d"):
        m.forward_step(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="MaxPool3d"):
        m(torch.randn(2, 3, 4, 4))


# --------------------------------------------------------------------------------------------
# autograd
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: MaxPool1d(3, stride=1, padding=1),
        lambda: AvgPool1d(3, stride=1, padding=1),
        lambda: MaxPool3d((2, 2, 2), stride=(1, 2, 2)),
        lambda: AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0)),
    ],
    ids=["max1d", "avg1d", "max3d", "avg2d"],
)
def test_backward_through_steps(make):
    torch.manual_seed(9)
    m = make()
    x = _input_for(m, t=10).requires_grad_()
    m.forward_steps(x[:, :, :4]).sum().backward(retain_graph=True)
    x.grad = None
    m.clean_state()
    (m.forward_steps(x, pad_end=True) ** 2).sum().backward()
    grad_steps = x.grad.clone()
    x.grad = None
    (m(x) ** 2).sum().backward()
    assert torch.allclose(grad_steps, x.grad, atol=1e-6)
    # step by step, the graph runs through the cached frames of earlier steps
    x.grad = None
    m.clean_state()
    outs = [o for o in step_all(m, x) if o is not None]
    torch.stack(outs, 2).sum().backward()
    assert x.grad.abs().sum() > 0


def test_backward_through_conv_then_max_pool():
    torch.manual_seed(10)
    conv, pool = Conv1d(3, 4, 3, padding=1), MaxPool1d(2, stride=1)
    x = torch.randn(2, 3, 9, requires_grad=True)
    pool.forward_steps(conv.forward_steps(x, pad_end=True), pad_end=True).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# refused arguments
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, name, arg",
    [
        (lambda: AvgPool1d(3, stride=2, ceil_mode=True), "AvgPool1d", "ceil_mode"),
        (lambda: MaxPool3d(3, stride=(2, 1, 1), ceil_mode=True), "MaxPool3d", "ceil_mode"),
        (
            lambda: AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            "AvgPool2d",
            "count_include_pad",
        ),
        (lambda: MaxPool1d(3, return_indices=True), "MaxPool1d", "return_indices"),
        (lambda: AvgPool3d(3, dilation=2), "AvgPool3d", "dilation"),
        (lambda: AvgPool1d(3, temporal_fill="neg_inf"), "AvgPool1d", "temporal_fill"),
        (lambda: MaxPool1d(3, temporal_fill="bogus"), "MaxPool1d", "temporal_fill"),
        (lambda: MaxPool1d(3, padding=2, dilation=2), "MaxPool1d", "padding"),
        (lambda: AvgPool2d((3, 3), padding=(1, 2)), "AvgPool2d", "padding"),
        (lambda: AvgPool3d((3, 3)), "AvgPool3d", "kernel_size"),
        (lambda: AdaptiveAvgPool3d((2, 1, 1), kernel_size=3), "AdaptiveAvgPool3d", "output_size"),
        (lambda: AdaptiveMaxPool2d(3, kernel_size=3), "AdaptiveMaxPool2d", "output_size"),
        (lambda: AdaptiveAvgPool2d((1, 1), kernel_size=(3, 1)), "AdaptiveAvgPool2d", "kernel_size"),
    ],
)
def test_refused_arguments(make, name, arg):
    with pytest.raises(ValueError, match=name) as info:
        make()
    assert arg in str(info.value)


def test_harmless_arguments_are_accepted():
    # temporal ceil_mode with temporal stride 1; count_include_pad=False without temporal padding
    x = torch.randn(2, 3, 8, 7)
    for m, ref in (
        (
            AvgPool2d(3, stride=(1, 2), padding=(0, 1), ceil_mode=True, count_include_pad=False),
            nn.AvgPool2d(3, stride=(1, 2), padding=(0, 1), ceil_mode=True, count_include_pad=False),
        ),
        (
            MaxPool2d(3, stride=(1, 2), padding=1, ceil_mode=True),
            nn.MaxPool2d(3, stride=(1, 2), padding=1, ceil_mode=True),
        ),
    ):
        assert close(m.forward_steps(x, pad_end=True), ref(x))


def test_adaptive_without_kernel_size():
    m = AdaptiveAvgPool3d(1)
    x = torch.randn(2, 3, 5, 4, 4)
    assert torch.equal(m(x), nn.AdaptiveAvgPool3d(1)(x))
    with pytest.raises(ValueError, match="kernel_size"):
        m.forward_step(x[:, :, 0])
    with pytest.raises(ValueError, match="kernel_size"):
        m.forward_steps(x)


# --------------------------------------------------------------------------------------------
# adaptive pools
# --------------------------------------------------------------------------------------------
ADAPTIVE = [
    (AdaptiveAvgPool2d, nn.AdaptiveAvgPool2d, (1, 3), (2, 3, 6, 7)),
    (AdaptiveMaxPool2d, nn.AdaptiveMaxPool2d, (1, 2), (2, 3, 6, 7)),
    (AdaptiveAvgPool3d, nn.AdaptiveAvgPool3d, (1, 1, 1), (2, 3, 6, 5, 4)),
    (AdaptiveAvgPool3d, nn.AdaptiveAvgPool3d, (1, None, 2), (2, 3, 6, 5, 4)),
    (AdaptiveMaxPool3d, nn.AdaptiveMaxPool3d, (1, 2, 3), (2, 3, 6, 5, 7)),
    (AdaptiveMaxPool3d, nn.AdaptiveMaxPool3d, 1, (2, 3, 6, 5, 4)),
]


@pytest.mark.parametrize(
    "cls, nn_cls, size, shape", ADAPTIVE, ids=[f"{c[0].__name__}-{c[2]}" for c in ADAPTIVE]
)
def test_adaptive_pools(cls, nn_cls, size, shape):
    torch.manual_seed(11)
    k = shape[2]
    torch_pool = nn_cls(size)
    m = cls.build_from(torch_pool, kernel_size=k)
    x = torch.randn((shape[0], shape[1], k + 1) + shape[3:])
    clip, shifted = x[:, :, :k], x[:, :, 1:]
    assert torch.equal(m(clip), torch_pool(clip))
    assert m.receptive_field == k and m.delay == k - 1
    assert m.kernel_size[0] == k and m.kernel_size[1:] == (None,) * (len(shape) - 3)
    # T == kernel_size: the step modes give forward's single frame
    y = m.forward_steps(clip, pad_end=True)
    assert close(y, torch_pool(clip))
    # one more step: the window slid by one frame
    assert close(m.forward_step(x[:, :, k]), torch_pool(shifted)[:, :, 0])
    # the same clip again continues the stream; its last window is the clip itself
    m.clean_state()
    m.forward_steps(clip)
    again = m.forward_steps(clip)
    assert again.shape[2] == k and close(again[:, :, -1:], torch_pool(clip))
    # a longer clip: forward is global, the steps slide (documented difference)
    m.clean_state()
    assert m.forward_steps(x, pad_end=True).shape[2] == 2 and m(x).shape[2] == 1


def test_adaptive_max_pads_time_with_neg_inf():
    m = AdaptiveMaxPool2d((1, 1), kernel_size=3, padding=1)
    assert m.temporal_fill == "neg_inf"
    x = -1.0 - torch.rand(1, 2, 3, 4)
    y = m.forward_steps(x, pad_end=True)
    expected = F.max_pool2d(x.amax(3, keepdim=True), (3, 1), 1, (1, 0))
    assert close(y, expected)


# --------------------------------------------------------------------------------------------
# build_from, call modes, repr
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "torch_pool",
    [
        nn.AvgPool1d(3, 2, 1),
        nn.AvgPool2d((3, 2), (1, 2), (0, 1), ceil_mode=True, count_include_pad=False),
        nn.AvgPool3d(2, divisor_override=3),
        nn.MaxPool1d(3, 1, 1, dilation=2),
        nn.MaxPool2d(3, (1, 2), 1),
        nn.MaxPool3d((2, 3, 3), (1, 2, 2), (1, 1, 1), dilation=(1, 1, 2)),
    ],
    ids=lambda p: type(p).__name__,
)
def test_build_from(torch_pool):
    torch.manual_seed(12)
    dims = int(type(torch_pool).__name__[-2])
    kind = "max" if "Max" in type(torch_pool).__name__ else "avg"
    m = CO[(kind, dims)].build_from(torch_pool)
    assert m.temporal_fill == ("neg_inf" if kind == "max" else "zeros")
    x = torch.randn(SHAPES[dims])
    assert torch.equal(m(x), torch_pool(x))
    assert close(m.forward_steps(x, pad_end=True), torch_pool(x))
    other = CO[(kind, dims)].build_from(torch_pool, temporal_fill="replicate")
    assert other.temporal_fill == "replicate"


def test_build_from_continual_pool_keeps_temporal_extras():
    src = AvgPool2d((3, 2), stride=1, padding=(2, 0), dilation=(2, 1), temporal_fill="replicate")
    copy = AvgPool2d.build_from(src)
    assert copy.dilation == (2, 1) and copy.temporal_fill == "replicate"
    x = torch.randn(2, 3, 9, 4)
    assert torch.equal(copy.forward_steps(x, pad_end=True), src.forward_steps(x, pad_end=True))


def test_build_from_refuses_return_indices():
    with pytest.raises(ValueError, match="return_indices"):
        MaxPool2d.build_from(nn.MaxPool2d(2, return_indices=True))
    with pytest.raises(ValueError, match="return_indices"):
        AdaptiveMaxPool3d.build_from(nn.AdaptiveMaxPool3d(1, return_indices=True), kernel_size=2)


def test_call_modes_dispatch():
    m = AvgPool1d(3, stride=1, padding=1)
    x = torch.randn(2, 3, 6)
    m.call_mode = "forward_steps"
    assert close(m(x, pad_end=True), m.forward(x))
    m.clean_state()
    m.call_mode = "forward_step"
    assert m(x[:, :, 0]) is None
    assert close(m(x[:, :, 1]), m.forward(x)[:, :, 0])


def test_repr():
    assert "temporal_fill" not in repr(MaxPool2d(2))
    assert "temporal_fill='zeros'" in repr(MaxPool2d(2, temporal_fill="zeros"))
    assert "kernel_size=4" in repr(AdaptiveAvgPool3d((1, 1, 1), kernel_size=4))


@pytest.mark.parametrize(
    "pool",
    [
        lambda: MaxPool3d((2, 1, 1), stride=(2, 1, 1)),
        lambda: MaxPool3d((3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1)),
        lambda: AvgPool3d((3, 2, 2), stride=1),
        lambda: AvgPool3d((4, 1, 1)),
    ],
    ids=["max-t2", "max-333", "avg-322", "avg-411"],
)
def test_channels_last_frames_step_like_contiguous_frames(pool):
    """Steps on channels-last frames (what the video zoo feeds) equal steps on contiguous
    frames and keep the channels-last layout for the next layer."""
    m = pool()
    x = torch.randn(2, 5, 9, 6, 6)
    with torch.no_grad():
        m.clean_state()
        expected = [m.forward_step(x[:, :, t]) for t in range(9)]
        m.clean_state()
        got = [
            m.forward_step(x[:, :, t].contiguous(memory_format=torch.channels_last))
            for t in range(9)
        ]
    assert any(g is not None for g in got)
    for e, g in zip(expected, got):
        assert (e is None) == (g is None)
        if g is not None:
            torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-6)
            assert g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous()
