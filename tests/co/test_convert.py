"""Converters ``co.continual``, ``co.forward_stepping`` and ``register``.

Deliberate differences from ``continual-inference`` 1.2.4 tested here: ``co.continual`` never
mutates its argument and raises TypeError (not AssertionError) for unknown modules;
``forward_stepping`` keeps the torch class (``isinstance`` holds) and the ``state_dict`` keys,
and the result pickles and deep-copies.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from cozoo import co
from cozoo.co import CoModule, convert
from cozoo.co.convert import register

TOL = dict(atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def cat_parts(parts):
    parts = [p for p in parts if p is not None]
    return torch.cat(parts, 2) if parts else None


def assert_tree_identical(a, b):
    """Same structure and the very same tensor objects (states are immutable snapshots)."""
    if isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        for ai, bi in zip(a, b):
            assert_tree_identical(ai, bi)
    elif isinstance(b, Tensor):
        assert a is b
    else:
        assert a == b


def check_modes(m, x, expected, tol=TOL):
    """forward, forward_steps(pad_end) on a fresh module, per-step outputs and None pattern,
    split stepping, update_state=False, all against ``expected``."""
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
    a = T // 2
    m.clean_state()
    head = m.forward_steps(x[:, :, :a])
    before = m.get_state()
    dry = m.forward_step(x[:, :, a], update_state=False)
    assert_tree_identical(m.get_state(), before)
    mid = m.forward_step(x[:, :, a])
    assert (dry is None) == (mid is None)
    if mid is not None:
        assert torch.equal(dry, mid)
        mid = mid.unsqueeze(2)
    rest = m.forward_steps(x[:, :, a + 1 :], pad_end=True)
    assert_close(cat_parts([head, mid, rest]), expected, **tol)
    m.clean_state()


def randomize(module: nn.Module) -> nn.Module:
    """Non-trivial parameters and running statistics, eval mode."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(0.5, 1.5)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return module.eval()


# --------------------------------------------------------------------------------------------
# Temporally local torch.nn modules listed in the README (plus Mish and Identity)
# --------------------------------------------------------------------------------------------
S1, S2, S3 = (2, 4, 7), (2, 4, 7, 3), (2, 4, 7, 3, 2)

LOCAL = {
    "Threshold": (lambda: nn.Threshold(0.1, -2.0), S1),
    "ReLU": (nn.ReLU, S1),
    "RReLU": (nn.RReLU, S1),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 0.5), S1),
    "ReLU6": (nn.ReLU6, S1),
    "Sigmoid": (nn.Sigmoid, S2),
    "Hardsigmoid": (nn.Hardsigmoid, S1),
    "Tanh": (nn.Tanh, S3),
    "SiLU": (nn.SiLU, S1),
    "Hardswish": (nn.Hardswish, S1),
    "ELU": (nn.ELU, S1),
    "CELU": (lambda: nn.CELU(0.7), S1),
    "SELU": (nn.SELU, S1),
    "GLU": (lambda: nn.GLU(dim=1), S1),
    "GELU": (lambda: nn.GELU(approximate="tanh"), S1),
    "Hardshrink": (nn.Hardshrink, S1),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), S1),
    "LogSigmoid": (nn.LogSigmoid, S1),
    "Softplus": (lambda: nn.Softplus(beta=2.0), S1),
    "Softshrink": (nn.Softshrink, S1),
    "PReLU": (lambda: nn.PReLU(4), S2),
    "Softsign": (nn.Softsign, S1),
    "Tanhshrink": (nn.Tanhshrink, S1),
    "Softmin": (lambda: nn.Softmin(dim=1), S1),
    "Softmax": (lambda: nn.Softmax(dim=1), S2),
    "Softmax2d": (nn.Softmax2d, S2),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=1), S1),
    "Mish": (nn.Mish, S1),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), S1),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(4), S2),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(4), S3),
    "InstanceNorm1d": (lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True), S1),
    "InstanceNorm2d": (lambda: nn.InstanceNorm2d(4, affine=True, track_running_stats=True), S2),
    "InstanceNorm3d": (lambda: nn.InstanceNorm3d(4, affine=True, track_running_stats=True), S3),
    "LayerNorm": (lambda: nn.LayerNorm([3, 2]), S3),
    "LayerNorm-1d": (lambda: nn.LayerNorm(3), S2),
    "Dropout": (lambda: nn.Dropout(0.3), S1),
    "Dropout1d": (lambda: nn.Dropout1d(0.3), S1),
    "Dropout2d": (lambda: nn.Dropout2d(0.3), S2),
    "Dropout3d": (lambda: nn.Dropout3d(0.3), S3),
    "AlphaDropout": (lambda: nn.AlphaDropout(0.3), S1),
    "FeatureAlphaDropout": (lambda: nn.FeatureAlphaDropout(0.3), S2),
    "Identity": (nn.Identity, S1),
}


@pytest.mark.parametrize("name", list(LOCAL))
def test_temporally_local_module_converts_and_matches_torch(name):
    factory, shape = LOCAL[name]
    ref = randomize(factory())
    cls = type(ref)
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    m = co.continual(ref)

    # the argument is untouched
    assert m is not ref
    assert type(ref) is cls and not isinstance(ref, CoModule)
    assert not hasattr(ref, "forward_step")
    assert all(torch.equal(v, sd[k]) for k, v in ref.state_dict().items())
    # the result keeps the torch class, the weights and the state_dict keys, without aliasing
    assert isinstance(m, cls) and isinstance(m, CoModule)
    assert list(m.state_dict()) == list(sd)
    assert all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())
    for p, q in zip(m.parameters(), ref.parameters()):
        assert p.data_ptr() != q.data_ptr()
    assert m.delay == 0 and m.receptive_field == 1
    assert not m.training  # mode copied

    x = torch.randn(shape)
    with torch.no_grad():
        expected = ref(x)
        assert torch.equal(m.forward(x), expected)
        check_modes(m, x, expected, tol=dict(atol=1e-6, rtol=1e-6))


@pytest.mark.parametrize("name", ["ReLU", "PReLU", "BatchNorm2d", "LayerNorm", "Dropout2d"])
def test_converted_local_module_pickles_and_deep_copies(name):
    factory, shape = LOCAL[name]
    ref = randomize(factory())
    m = co.continual(ref)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = ref(x)
        for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            assert isinstance(twin, type(ref)) and isinstance(twin, CoModule)
            assert list(twin.state_dict()) == list(ref.state_dict())
            assert torch.equal(twin.forward(x), expected)
            assert_close(twin.forward_step(x[:, :, 3]), expected[:, :, 3], atol=1e-6, rtol=1e-6)
            assert torch.equal(twin.forward_steps(x), expected)


def test_group_norm_is_not_silently_per_frame():
    ref = randomize(nn.GroupNorm(2, 4))
    x = torch.randn(S2)
    try:
        m = co.continual(ref)
    except TypeError:
        return
    with torch.no_grad():
        check_modes(m, x, ref(x))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "flags, missing",
    [
        (dict(), "affine=True and track_running_stats=True"),
        (dict(affine=True), "track_running_stats=True"),
        (dict(track_running_stats=True), "affine=True"),
    ],
)
def test_instance_norm_without_running_stats_is_refused(dims, flags, missing):
    cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims]
    with pytest.raises(TypeError, match=missing) as info:
        co.continual(cls(4, **flags))
    assert cls.__name__ in str(info.value)
    assert "forward_stepping" in str(info.value)


# --------------------------------------------------------------------------------------------
# Modules with a temporal window, Linear, recurrent, Sequential
# --------------------------------------------------------------------------------------------
WINDOWED = {
    "Conv1d": (lambda: nn.Conv1d(4, 3, 3, stride=2, padding=1), S1),
    "Conv1d-replicate": (lambda: nn.Conv1d(4, 3, 3, padding=2, padding_mode="replicate"), S1),
    "Conv2d": (lambda: nn.Conv2d(4, 3, (3, 2), padding=(1, 0)), S2),
    "Conv3d": (lambda: nn.Conv3d(4, 3, 3, stride=(1, 2, 1), padding=(2, 1, 1)), S3),
    "AvgPool1d": (lambda: nn.AvgPool1d(3, stride=1, padding=1), S1),
    "AvgPool2d": (lambda: nn.AvgPool2d((3, 2), stride=(2, 1)), S2),
    "AvgPool3d": (lambda: nn.AvgPool3d((2, 3, 2), stride=1, padding=(1, 1, 0)), S3),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, stride=1, padding=1), S1),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=(2, 1), padding=1), S2),
    "MaxPool3d": (lambda: nn.MaxPool3d(2), S3),
}


@pytest.mark.parametrize("name", list(WINDOWED))
def test_windowed_modules_convert_and_match_torch(name):
    factory, shape = WINDOWED[name]
    ref = factory()
    m = co.continual(ref)
    assert isinstance(m, type(ref)) and isinstance(m, CoModule)
    assert type(ref) is not type(m)  # a continual subclass; the argument keeps its class
    assert not isinstance(ref, CoModule)
    assert list(m.state_dict()) == list(ref.state_dict())
    x = torch.randn(shape) - 0.5  # negative values: max pools must pad with -inf
    with torch.no_grad():
        expected = ref(x)
        assert torch.equal(m.forward(x), expected)
        check_modes(m, x, expected)


def test_linear_converts():
    ref = nn.Linear(4, 3)
    m = co.continual(ref)
    assert isinstance(m, nn.Linear) and isinstance(m, CoModule)
    assert m.channel_dim == -1
    x = torch.randn(2, 7, 4)  # channel last in forward, as torch
    assert torch.equal(m(x), ref(x))
    step = torch.randn(2, 4)
    assert_close(m.forward_step(step), ref(step), atol=1e-6, rtol=1e-6)
    assert m.delay == 0


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_recurrent_modules_convert(kind):
    ref = getattr(nn, kind)(4, 5, num_layers=2, batch_first=True)
    m = co.continual(ref)
    assert isinstance(m, getattr(nn, kind)) and isinstance(m, CoModule)
    assert list(m.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 4, 9)  # (B, C, T)
    with torch.no_grad():
        expected = ref(x.transpose(1, 2))[0].transpose(1, 2)
        out = m.forward(x)
        assert isinstance(out, tuple)
        assert_close(out[0], expected, **TOL)
        assert_close(m.forward_steps(x), expected, **TOL)
        m.clean_state()
        for t in range(9):
            assert_close(m.forward_step(x[:, :, t]), expected[:, :, t], **TOL)
        # inside a Sequential the hidden state is dropped in forward
        seq = co.Sequential(m, nn.Tanh())
        seq.clean_state()
        assert_close(seq(x), expected.tanh(), **TOL)
        assert_close(seq.forward_steps(x), expected.tanh(), **TOL)


def test_sequential_converts_recursively_and_keeps_names():
    ref = nn.Sequential(
        nn.Conv1d(4, 4, 3, padding=1),
        nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()),
        nn.Conv1d(4, 2, 3, stride=2),
    )
    randomize(ref)
    m = co.continual(ref)
    assert isinstance(m, co.Sequential)
    assert isinstance(m[1], co.Sequential) and isinstance(m[1][0], nn.BatchNorm1d)
    assert list(m.state_dict()) == list(ref.state_dict())
    # the argument is untouched: same classes everywhere
    assert type(ref) is nn.Sequential and type(ref[1]) is nn.Sequential
    assert type(ref[0]) is nn.Conv1d and type(ref[1][1]) is nn.ReLU
    assert not any(isinstance(c, CoModule) for c in ref.modules())
    x = torch.randn(2, 4, 11)
    with torch.no_grad():
        check_modes(m, x, ref(x))


def test_continual_returns_continual_modules_unchanged():
    conv = co.Conv1d(1, 1, 3)
    assert co.continual(conv) is conv
    seq = co.Sequential(conv)
    assert co.continual(seq) is seq


def test_continual_copies_do_not_share_parameters():
    ref = nn.Conv1d(2, 2, 3)
    m = co.continual(ref)
    x = torch.randn(1, 2, 6)
    with torch.no_grad():
        ref.weight.mul_(2.0)
    assert not torch.equal(m(x), ref(x))


def test_python_function_becomes_lambda():
    def double(x):
        return 2 * x

    m = co.continual(double)
    assert isinstance(m, CoModule)
    x = torch.randn(2, 3, 5)
    check_modes(m, x, 2 * x)
    lam = co.continual(lambda x: x - 1)
    assert torch.equal(lam.forward_step(x[:, :, 0]), x[:, :, 0] - 1)


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module",
    [
        nn.Flatten(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose1d(2, 2, 3),
        nn.Embedding(10, 3),
        nn.MultiheadAttention(4, 2),
        nn.AdaptiveAvgPool1d(1),
        nn.Unfold(2),
    ],
    ids=lambda m: type(m).__name__,
)
def test_unknown_module_raises_type_error_naming_it(module):
    with pytest.raises(TypeError, match=type(module).__name__) as info:
        co.continual(module)
    assert "register" in str(info.value)


@pytest.mark.parametrize(
    "module",
    [
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.AdaptiveAvgPool3d((1, 1, 1)),
        nn.AdaptiveMaxPool2d((1, 2)),
        nn.AdaptiveMaxPool3d(1),
        nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False),
    ],
    ids=lambda m: type(m).__name__,
)
def test_modules_needing_arguments_point_at_build_from(module):
    with pytest.raises(TypeError, match="build_from") as info:
        co.continual(module)
    assert type(module).__name__ in str(info.value)


def test_adaptive_pool_build_from_with_kernel_size():
    from cozoo.co.pooling import AdaptiveAvgPool3d

    ref = nn.AdaptiveAvgPool3d((1, 2, 2))
    m = AdaptiveAvgPool3d.build_from(ref, kernel_size=5)
    x = torch.randn(2, 3, 5, 4, 4)
    assert torch.equal(m(x), ref(x))
    assert_close(m.forward_steps(x, pad_end=True), ref(x), atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# register
# --------------------------------------------------------------------------------------------
class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        return x * self.factor


class _CoScale(_Scale, CoModule):
    def _frame(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def _steps(self, x, state, pad_end=False):
        return (None if x is None else self.forward(x)), state, None

    @classmethod
    def build_from(cls, module):
        m = cls()
        m.load_state_dict(module.state_dict())
        return m


class _Shift(nn.Module):
    def forward(self, x):
        return x + 1


def test_register_a_class_with_build_from():
    register(_Scale, _CoScale)
    ref = _Scale()
    m = co.continual(ref)
    assert isinstance(m, _CoScale) and m is not ref
    x = torch.randn(1, 2, 4)
    with torch.no_grad():
        check_modes(m, x, ref(x))
        # also inside containers built from torch modules
        seq = co.continual(nn.Sequential(nn.Conv1d(2, 2, 1), _Scale()))
        assert isinstance(seq[1], _CoScale)


def test_register_a_function():
    register(_Shift, lambda module: co.forward_stepping(_Shift()))
    m = co.continual(_Shift())
    x = torch.randn(1, 2, 4)
    check_modes(m, x, x + 1)


def test_register_rejects_non_callables():
    with pytest.raises(TypeError):
        register(_Shift, 42)


# --------------------------------------------------------------------------------------------
# forward_stepping
# --------------------------------------------------------------------------------------------
def test_forward_stepping_works_in_place_and_keeps_the_class():
    ref = randomize(nn.BatchNorm1d(4))
    keys = list(ref.state_dict())
    m = co.forward_stepping(ref)
    assert m is ref  # in place, as continual-inference does
    assert isinstance(m, nn.BatchNorm1d) and isinstance(m, CoModule)
    assert type(m).__name__ == "BatchNorm1d"
    assert list(m.state_dict()) == keys
    assert co.forward_stepping(m) is m  # idempotent
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        check_modes(
            m,
            x,
            nn.functional.batch_norm(
                x, ref.running_mean, ref.running_var, ref.weight, ref.bias, False, 0.0, ref.eps
            ),
        )


def test_forward_stepping_conv3d_k1_all_modes_and_call_mode_kwargs():
    ref = nn.Conv3d(3, 2, 1)
    expected_module = copy.deepcopy(ref)
    m = co.forward_stepping(ref)
    x = torch.randn(2, 3, 5, 4, 4)
    with torch.no_grad():
        expected = expected_module(x)
        check_modes(m, x, expected)
        with co.call_mode("forward_steps"):
            assert_close(m(x, pad_end=True), expected, **TOL)
        with co.call_mode("forward_step"):
            assert_close(m(x[:, :, 2]), expected[:, :, 2], **TOL)
        m.call_mode = "forward_step"
        assert_close(m(x[:, :, 1]), expected[:, :, 1], **TOL)
        m.call_mode = "forward"
        assert torch.equal(m(x), expected)


def test_forward_stepping_result_pickles_and_deep_copies():
    m = co.forward_stepping(randomize(nn.LayerNorm(3)))
    x = torch.randn(2, 4, 5, 3)
    expected = m.forward(x)
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert isinstance(twin, nn.LayerNorm) and isinstance(twin, CoModule)
        assert list(twin.state_dict()) == list(m.state_dict())
        assert torch.equal(twin.forward(x), expected)
        assert_close(twin.forward_step(x[:, :, 2]), expected[:, :, 2], atol=1e-6, rtol=1e-6)
    # the torch module class itself is unaffected by the wrapping of an instance
    plain = nn.LayerNorm(3)
    assert not isinstance(plain, CoModule) and not hasattr(plain, "forward_step")


def test_forward_stepping_with_another_time_dim():
    # channel-last clips (B, T, C): time is dim 1
    ref = randomize(nn.LayerNorm(4))
    m = co.forward_stepping(copy.deepcopy(ref), dim=1)
    x = torch.randn(2, 6, 4)
    expected = ref(x)
    for t in range(6):
        assert_close(m.forward_step(x[:, t]), expected[:, t], atol=1e-6, rtol=1e-6)


def test_forward_stepping_rejects_non_modules():
    with pytest.raises(TypeError):
        co.forward_stepping(lambda x: x)


def test_converted_module_inside_containers_all_modes():
    """Converted torch modules work as container children in every mode (reference bug 7.1)."""
    bn = randomize(nn.BatchNorm1d(3))
    conv = nn.Conv1d(3, 3, 3, padding=1)
    m = co.BroadcastReduce(co.Sequential(conv, bn, nn.ReLU()), co.continual(nn.Sigmoid()))
    m.eval()
    x = torch.randn(2, 3, 9)
    with torch.no_grad():
        check_modes(m, x, (bn(conv(x))).relu() + x.sigmoid())


# --------------------------------------------------------------------------------------------
# Per-frame fast paths of the common elementwise classes
# --------------------------------------------------------------------------------------------
FAST_FRAME_CASES = {
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), (2, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(4), (2, 4, 5)),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(4), (2, 4, 5, 3)),
    "BatchNorm3d-not-affine": (lambda: nn.BatchNorm3d(4, affine=False), (2, 4, 5, 3)),
    "ReLU": (nn.ReLU, (2, 4, 5, 3)),
    "SiLU": (nn.SiLU, (2, 4, 5, 3)),
    "Sigmoid": (nn.Sigmoid, (2, 4, 5, 3)),
    "Identity": (nn.Identity, (2, 4, 5, 3)),
}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", list(FAST_FRAME_CASES))
def test_fast_frames_equal_forward_on_a_one_frame_clip_bit_for_bit(name, channels_last):
    factory, frame_shape = FAST_FRAME_CASES[name]
    m = co.continual(randomize(factory()))
    assert type(m)._frame is convert._FAST_FRAMES[type(m)._co_base]
    frame = torch.randn(frame_shape)
    if channels_last and frame.dim() == 4:
        frame = frame.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = m.forward(frame.unsqueeze(2)).squeeze(2)
        got = m.forward_step(frame)
    assert torch.equal(got, expected)


def test_fast_relu_and_silu_keep_inplace_semantics():
    for kind in (nn.ReLU, nn.SiLU):
        m = co.continual(kind(inplace=True))
        frame = torch.randn(2, 3, 4)
        expected = kind()(frame)
        assert m.forward_step(frame) is frame  # in place, as forward would do
        assert torch.equal(frame, expected)


def test_subclasses_of_fast_classes_keep_their_own_forward():
    class Doubled(nn.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    m = co.forward_stepping(Doubled())
    frame = torch.randn(2, 3, 4)
    assert torch.equal(m.forward_step(frame), 2 * frame.relu())


def test_fast_batch_norm_falls_back_outside_eval_with_running_stats():
    bn = co.continual(randomize(nn.BatchNorm3d(4)))
    frame = torch.randn(3, 4, 5, 5)
    bn.train()
    with pytest.warns(UserWarning, match="train mode"):
        got = bn.forward_step(frame)
    assert_close(got, nn.functional.batch_norm(frame, None, None, bn.weight, bn.bias, True))
    bn.eval()
    with pytest.raises(co.StepShapeError, match=r"BatchNorm3d\(4.*of 4 dims.*got 3 dims"):
        bn.forward_step(torch.randn(3, 4, 5))  # the frame of a 4-D clip
    stats_free = co.continual(nn.BatchNorm2d(4, track_running_stats=False).eval())
    frame2 = torch.randn(3, 4, 6)
    assert_close(stats_free.forward_step(frame2), stats_free.forward(frame2.unsqueeze(2))[:, :, 0])
