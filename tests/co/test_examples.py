"""The examples of ``continual-inference``'s README and paper (quick-start, call modes,
residuals, MobileNetV2 block, Squeeze-and-Excitation, Inception), checked in every mode against
``forward`` and against plain ``torch.nn`` computations."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.testing import assert_close

from cozoo import co

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
        assert isinstance(a, tuple) and len(a) == len(b)
        for ai, bi in zip(a, b):
            assert_tree_equal(ai, bi)
    else:
        assert a == b


def cat_parts(parts):
    parts = [p for p in parts if p is not None]
    return torch.cat(parts, 2) if parts else None


def check_modes(m, x, expected, tol=TOL, splits=None):
    """forward; forward_steps(pad_end) on a fresh module; forward_step outputs (None exactly
    while warming up / off-stride) equal to forward's frames; split stepping
    (steps, step, steps(pad_end)) equal to forward; update_state=False."""
    T, d, s = x.shape[2], m.delay, m.stride[0]
    m.clean_state()
    assert_close(m.forward(x), expected, **tol)
    assert m.get_state() is None
    assert_close(m.forward_steps(x, pad_end=True), expected, **tol)
    m.clean_state()
    for t in range(T):
        y = m.forward_step(x[:, :, t])
        assert (y is not None) == (t >= d and (t - d) % s == 0), f"step {t}"
        if y is not None:
            assert_close(y, expected[:, :, (t - d) // s], **tol)
    for a in splits or sorted({1, T - 2}):
        m.clean_state()
        head = m.forward_steps(x[:, :, :a])
        snap = tree_clone(m.get_state())
        dry = m.forward_step(x[:, :, a], update_state=False)
        assert_tree_equal(m.get_state(), snap)
        mid = m.forward_step(x[:, :, a])
        assert (dry is None) == (mid is None)
        if mid is not None:
            assert_close(dry, mid, **tol)
            mid = mid.unsqueeze(2)
        rest = m.forward_steps(x[:, :, a + 1 :], pad_end=True)
        assert_close(cat_parts([head, mid, rest]), expected, **tol)
    m.clean_state()


def randomize_bn(bn: nn.Module) -> nn.Module:
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


# --------------------------------------------------------------------------------------------
# Quick-start and call modes
# --------------------------------------------------------------------------------------------
def test_quick_start_conv3d():
    #                      B, C, T, H, W
    example = torch.randn((1, 1, 5, 3, 3))
    conv = co.Conv3d(in_channels=1, out_channels=1, kernel_size=(3, 3, 3))

    # Same exact computation as torch.nn.Conv3d
    output = conv(example)
    ref = nn.Conv3d(1, 1, (3, 3, 3))
    ref.load_state_dict(conv.state_dict())
    assert torch.equal(output, ref(example))

    # But can also perform online inference efficiently
    firsts = conv.forward_steps(example[:, :, :4])
    last = conv.forward_step(example[:, :, 4])

    assert torch.allclose(output[:, :, : conv.delay], firsts, atol=1e-6)
    assert torch.allclose(output[:, :, conv.delay], last, atol=1e-6)

    # Temporal properties
    assert conv.receptive_field == 3
    assert conv.delay == 2


def test_call_mode_example():
    net = co.Sequential(co.Conv1d(3, 4, 3, padding=1), nn.ReLU(), co.Conv1d(4, 2, 3, padding=1))
    timeseries = torch.randn(2, 3, 10)
    timestep = timeseries[:, :, 0]
    with torch.no_grad():
        expected = net.forward(timeseries)

        assert torch.equal(net(timeseries), expected)  # invokes net.forward(timeseries)

        net.call_mode = "forward_step"
        assert net(timestep) is None  # invokes net.forward_step(timestep); delay 2
        net.clean_state()

        with co.call_mode("forward_steps"):
            assert_close(net(timeseries, pad_end=True), expected, **TOL)
        net.clean_state()
        with co.call_mode("forward_steps"):
            head = net(timeseries[:, :, :6])  # steps 0..5 -> frames 0..3

        # invokes net.forward_step(timestep) again: the stream continues
        assert_close(net(timeseries[:, :, 6]), expected[:, :, 4], **TOL)
        assert_close(head, expected[:, :, :4], **TOL)
        net.call_mode = "forward"


# --------------------------------------------------------------------------------------------
# Residual: three equivalent forms
# --------------------------------------------------------------------------------------------
def test_three_equivalent_residuals():
    from cozoo.co.closure import Identity

    torch_conv = nn.Conv3d(32, 32, kernel_size=3, padding=1)

    def conv():
        return co.Conv3d.build_from(torch_conv)  # the same weights, an independent module

    short = co.Residual(conv())
    explicit = co.Sequential(
        co.Broadcast(2),
        co.Parallel(
            conv(),
            co.Delay(2),
        ),
        co.Reduce("sum"),
    )
    broadcast_reduce = co.BroadcastReduce(conv(), Identity(), reduce="sum")

    x = torch.randn(2, 32, 7, 4, 4)
    with torch.no_grad():
        expected = x + torch_conv(x)
        for m, delay in ((short, 1), (explicit, 2), (broadcast_reduce, 1)):
            assert m.delay == delay
            assert m.receptive_field - 1 - m.padding[0] == delay
            check_modes(m, x, expected)


# --------------------------------------------------------------------------------------------
# MobileNetV2 inverted residual block
# --------------------------------------------------------------------------------------------
def test_mobilenet_v2_block():
    mb_conv = co.Residual(
        co.Sequential(
            co.Conv3d(32, 64, kernel_size=(1, 1, 1)),
            nn.BatchNorm3d(64),
            nn.ReLU6(),
            co.Conv3d(64, 64, kernel_size=(3, 3, 3), padding=(1, 1, 1), groups=64),
            nn.ReLU6(),
            co.Conv3d(64, 32, kernel_size=(1, 1, 1)),
            nn.BatchNorm3d(32),
        )
    )
    body = mb_conv[1]
    randomize_bn(body[1])
    randomize_bn(body[6])
    mb_conv.eval()
    assert mb_conv.receptive_field == 3
    assert mb_conv.delay == 1

    # the same computation with plain torch modules
    ref = nn.Sequential(
        nn.Conv3d(32, 64, 1), nn.BatchNorm3d(64), nn.ReLU6(),
        nn.Conv3d(64, 64, 3, padding=1, groups=64), nn.ReLU6(),
        nn.Conv3d(64, 32, 1), nn.BatchNorm3d(32),
    )  # fmt: skip
    ref.load_state_dict(body.state_dict())
    ref.eval()

    x = torch.randn(2, 32, 8, 5, 5)
    with torch.no_grad():
        expected = x + ref(x)
        check_modes(mb_conv, x, expected, splits=[2, 4, 6])


# --------------------------------------------------------------------------------------------
# Squeeze-and-Excitation
# --------------------------------------------------------------------------------------------
def make_se():
    from cozoo.co.pooling import AdaptiveAvgPool3d

    return co.Residual(
        co.Sequential(
            OrderedDict(
                [
                    ("pool", AdaptiveAvgPool3d((1, 1, 1), kernel_size=7)),
                    ("down", co.Conv3d(256, 16, kernel_size=1)),
                    ("act1", nn.ReLU()),
                    ("up", co.Conv3d(16, 256, kernel_size=1)),
                    ("act2", nn.Sigmoid()),
                ]
            )
        ),
        reduce="mul",
    )


def se_by_hand(se, x):
    body = se[1]
    s = x.mean(dim=(2, 3, 4), keepdim=True)
    s = nn.functional.conv3d(s, body.down.weight, body.down.bias).relu()
    s = nn.functional.conv3d(s, body.up.weight, body.up.bias).sigmoid()
    return x * s


def test_squeeze_excitation_forward_and_steps():
    se = make_se()
    assert se.delay == 6
    x = torch.randn(2, 256, 12, 3, 3)
    with torch.no_grad():
        assert_close(se(x[:, :, :7]), se_by_hand(se, x[:, :, :7]), **TOL)
        assert_close(se(x), se_by_hand(se, x), **TOL)  # forward pools the whole clip
        # step t: the frame of 7 steps ago scaled by the excitation of the last 7 frames
        se.clean_state()
        for t in range(12):
            y = se.forward_step(x[:, :, t])
            if t < 6:
                assert y is None
            else:
                window = x[:, :, t - 6 : t + 1]
                assert_close(y, se_by_hand(se, window)[:, :, 0], **TOL)
        # forward_steps without end padding: the same outputs
        se.clean_state()
        ys = se.forward_steps(x)
        assert ys.shape[2] == 6
        for j in range(6):
            assert_close(ys[:, :, j], se_by_hand(se, x[:, :, j : j + 7])[:, :, 0], **TOL)


def test_squeeze_excitation_pad_end_equals_forward():
    se = make_se()
    x = torch.randn(1, 256, 7, 2, 2)
    with torch.no_grad():
        expected = se_by_hand(se, x)
        assert_close(se(x), expected, **TOL)
        assert_close(se.forward_steps(x, pad_end=True), expected, **TOL)


# --------------------------------------------------------------------------------------------
# Inception
# --------------------------------------------------------------------------------------------
def norm_relu(module, channels):
    return co.Sequential(
        module,
        nn.BatchNorm3d(channels),
        nn.ReLU(),
    )


def make_inception():
    from cozoo.co.pooling import MaxPool3d

    return co.BroadcastReduce(
        co.Conv3d(192, 64, kernel_size=1),
        co.Sequential(
            norm_relu(co.Conv3d(192, 96, kernel_size=1), 96),
            norm_relu(co.Conv3d(96, 128, kernel_size=3, padding=1), 128),
        ),
        co.Sequential(
            norm_relu(co.Conv3d(192, 16, kernel_size=1), 16),
            norm_relu(co.Conv3d(16, 32, kernel_size=5, padding=2), 32),
        ),
        co.Sequential(
            MaxPool3d(kernel_size=(1, 3, 3), padding=(0, 1, 1), stride=1),
            norm_relu(co.Conv3d(192, 32, kernel_size=1), 32),
        ),
        reduce="concat",
    )


def torch_inception(m):
    """The same network with plain torch modules and the same weights."""

    def nr(conv, c):
        return nn.Sequential(conv, nn.BatchNorm3d(c), nn.ReLU())

    branches = nn.ModuleList(
        [
            nn.Conv3d(192, 64, 1),
            nn.Sequential(nr(nn.Conv3d(192, 96, 1), 96), nr(nn.Conv3d(96, 128, 3, padding=1), 128)),
            nn.Sequential(nr(nn.Conv3d(192, 16, 1), 16), nr(nn.Conv3d(16, 32, 5, padding=2), 32)),
            nn.Sequential(
                nn.MaxPool3d((1, 3, 3), padding=(0, 1, 1), stride=1), nr(nn.Conv3d(192, 32, 1), 32)
            ),
        ]
    )
    # auto_delay appended Delays to the shorter branches; they carry no parameters
    for ref, branch in zip(branches, m.children()):
        core = branch[0] if isinstance(branch[-1], co.Delay) else branch
        ref.load_state_dict(core.state_dict())
    branches.eval()
    return lambda x: torch.cat([b(x) for b in branches], 1)


def eval_inception():
    m = make_inception()
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm3d):
            randomize_bn(bn)
    return m.eval()


def explicit_inception(short):
    return co.Sequential(
        co.Broadcast(4),
        co.Parallel(*[copy.deepcopy(b) for b in short.children()], auto_delay=False),
        co.Reduce("concat"),
    ).eval()


def test_inception_module_forward_and_steps():
    m = eval_inception()
    assert m.delay == 2 and m.padding == (2,) and m.receptive_field == 5
    ref = torch_inception(m)
    explicit = explicit_inception(m)
    x = torch.randn(1, 192, 6, 5, 5)
    with torch.no_grad():
        expected = ref(x)
        assert expected.shape == (1, 256, 6, 5, 5)
        assert_close(m(x), expected, **TOL)
        assert_close(explicit(x), expected, **TOL)
        for net in (m, explicit):
            net.clean_state()
            outs = [net.forward_step(x[:, :, t]) for t in range(6)]
            assert [o is None for o in outs] == [True, True] + [False] * 4
            for t in range(2, 6):
                assert outs[t].shape == (1, 256, 5, 5)
                assert_close(outs[t], expected[:, :, t - 2], **TOL)
            net.clean_state()
            assert_close(net.forward_steps(x), expected[:, :, :4], **TOL)


def test_inception_module_pad_end():
    m = eval_inception()
    expected_fn = torch_inception(m)
    explicit = explicit_inception(m)
    x = torch.randn(1, 192, 6, 5, 5)
    with torch.no_grad():
        expected = expected_fn(x)
        assert_close(explicit.forward_steps(x, pad_end=True), expected, **TOL)
        check_modes(m, x, expected, splits=[3])


# --------------------------------------------------------------------------------------------
# Linear after pooling
# --------------------------------------------------------------------------------------------
def test_linear_channel_dim_1_after_pool():
    from cozoo.co.linear import Linear
    from cozoo.co.pooling import AvgPool3d

    net = co.Sequential(
        co.Conv3d(3, 8, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
        nn.ReLU(),
        AvgPool3d(kernel_size=(2, 4, 4), stride=1),
        Linear(8, 5, channel_dim=1),
    )
    assert net.delay == 2 and net.receptive_field == 4
    x = torch.randn(2, 3, 9, 4, 4)
    with torch.no_grad():
        conv, pool, lin = net[0], net[2], net[3]
        h = nn.functional.avg_pool3d(conv(x).relu(), (2, 4, 4), stride=1)
        expected = nn.functional.linear(h.movedim(1, -1), lin.weight, lin.bias).movedim(-1, 1)
        assert expected.shape == (2, 5, 8, 1, 1)
        check_modes(net, x, expected)
        assert pool.delay == 1
