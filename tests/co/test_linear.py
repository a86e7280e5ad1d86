"""Continual Linear against torch.nn.Linear."""

import pytest
import torch
from torch import nn

from cozoo.co.linear import Linear
from cozoo.co.module import call_mode


def make(bias=True, channel_dim=-1, seed=0):
    torch.manual_seed(seed)
    ref = nn.Linear(4, 3, bias=bias)
    return ref, Linear.build_from(ref, channel_dim=channel_dim)


def randn(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_reference_example():
    """The reference suite's test: channel-last clips (N, T, C) by default."""
    ref, co = make()
    sample = randn(1, 3, 4)
    target = ref(sample)
    assert torch.equal(co.forward(sample), target)
    torch.testing.assert_close(co.forward_steps(sample[:, :2, :]), target[:, :2, :])
    # One frame is a (1, 4) GEMM, the clip a (3, 4) one: BLAS may sum them in another order
    # (MKL on AVX-512 does), so the step is compared to the last few bits only.
    torch.testing.assert_close(co.forward_step(sample[:, 2, :]), target[:, 2, :])
    alt = Linear.build_from(ref, channel_dim=1)
    assert torch.allclose(alt.forward_step(sample.swapaxes(1, 2)[:, :, 2]), target[:, 2, :])


@pytest.mark.parametrize("bias", [True, False])
def test_channel_dim_1_all_modes(bias):
    """channel_dim=1: the (B, C, T, *S) layout of the other continual modules."""
    ref, co = make(bias=bias, channel_dim=1)
    x = randn(2, 4, 6, 5)
    target = ref(x.movedim(1, -1)).movedim(-1, 1)
    out = co.forward(x)
    assert out.shape == (2, 3, 6, 5)
    torch.testing.assert_close(out, target)
    assert torch.equal(co.forward_steps(x, pad_end=True), out)
    stepped = torch.stack([co.forward_step(x[:, :, t]) for t in range(6)], 2)
    torch.testing.assert_close(stepped, out)


def test_channel_dim_positive_last_equals_default():
    ref, co = make(channel_dim=2)
    x = randn(2, 5, 4)
    torch.testing.assert_close(co.forward(x), ref(x))


def test_repr_and_weights():
    ref, co = make()
    assert repr(co) == "Linear(in_features=4, out_features=3, bias=True, channel_dim=-1)"
    assert repr(Linear(2, 5, bias=False, channel_dim=1)) == (
        "Linear(in_features=2, out_features=5, bias=False, channel_dim=1)"
    )
    assert list(co.state_dict()) == ["weight", "bias"]
    assert torch.equal(co.weight, ref.weight) and torch.equal(co.bias, ref.bias)
    assert co.weight is not ref.weight  # a copy, not shared
    fresh = Linear(4, 3)
    fresh.load_state_dict(ref.state_dict())
    x = randn(2, 4)
    assert torch.equal(fresh.forward_step(x), ref(x))
    assert isinstance(co, nn.Linear)


def test_build_from_overrides_and_checks():
    ref = nn.Linear(4, 3, dtype=torch.float64)
    co = Linear.build_from(ref)
    assert co.weight.dtype == torch.float64
    with pytest.raises(TypeError, match="nn.Linear"):
        Linear.build_from(nn.Conv1d(4, 3, 1))
    with pytest.raises(TypeError, match="channel_dim"):
        Linear(4, 3, channel_dim="1")


def test_properties_and_stateless_contract():
    _, co = make(channel_dim=1)
    assert co.receptive_field == 1 and co.delay == 0
    assert co.stride == (1,) and co.padding == (0,)
    x = randn(2, 4, 6)
    before = co.forward_steps(x)
    assert co.get_state() is None
    co.clean_state(streams=[1])
    co.set_state(None)
    y = co.forward_step(x[:, :, 0], update_state=False)
    # a step is a smaller GEMM than the chunk's: equal up to BLAS summation order
    torch.testing.assert_close(y, before[:, :, 0])
    assert torch.equal(co.forward_steps(x), before)
    assert co.forward_steps(x[:, :, :0]) is None
    with call_mode("forward_step"):
        torch.testing.assert_close(co(x[:, :, 3]), before[:, :, 3])


def test_gradients_reach_weights():
    _, co = make(channel_dim=1)
    co.forward_steps(randn(2, 4, 3)).sum().backward()
    assert co.weight.grad is not None and torch.count_nonzero(co.weight.grad) > 0
