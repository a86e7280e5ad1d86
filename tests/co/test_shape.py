"""Continual Reshape."""

import pytest
import torch

from cozoo.co.module import call_mode
from cozoo.co.shape import Reshape


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_constructor_forms_and_repr():
    r1 = Reshape((2, 20), contiguous=True)
    r2 = Reshape(2, 20)
    r3 = Reshape([2, 20])
    r4 = Reshape(torch.Size([2, 20]))
    assert r1.shape == r2.shape == r3.shape == r4.shape == (2, 20)
    assert repr(r1) == "Reshape((2, 20), contiguous=True)"
    assert repr(r2) == "Reshape((2, 20))"


def test_reference_shapes_and_values():
    x = randn(1, 2, 3, 4, 5)
    module = Reshape((2, 20))
    out = module.forward(x)
    assert out.shape == (2, 20, 3)
    assert torch.equal(module.forward_steps(x), out)
    assert module.forward_step(x[:, :, 0]).shape == (2, 20)
    for t in range(3):
        assert torch.equal(out[:, :, t], x[:, :, t].reshape(2, 20))
        assert torch.equal(module.forward_step(x[:, :, t]), out[:, :, t])


def test_minus_one_keeps_batch():
    x = randn(3, 4, 6, 2, 5)
    module = Reshape(-1, 40)
    out = module.forward(x)
    assert out.shape == (3, 40, 6)
    assert torch.equal(out, x.movedim(2, 1).reshape(3, 6, 40).transpose(1, 2))
    assert torch.equal(module.forward_step(x[:, :, 2]), out[:, :, 2])


def test_contiguous_flag():
    x = randn(2, 4, 6, 3)
    out = Reshape(2, 12, contiguous=True).forward(x)
    assert out.is_contiguous()
    assert torch.equal(out, Reshape(2, 12).forward(x))
    step = Reshape(2, 12, contiguous=True).forward_step(x.transpose(1, 3)[:, :, 0])
    assert step.is_contiguous()


def test_invalid_shapes():
    with pytest.raises(ValueError, match="at least two dims"):
        Reshape(-1)
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape(-1, -1)
    with pytest.raises(TypeError, match="shape of ints"):
        Reshape(2.0, 3)
    with pytest.raises(ValueError, match=r"clip \(B, C, T"):
        Reshape(2, 3).forward(randn(2, 3))


def test_stateless_contract():
    module = Reshape(-1, 8)
    x = randn(2, 4, 5, 2)
    before = module.forward_steps(x)
    module.clean_state(streams=[0])
    assert module.get_state() is None
    assert torch.equal(module.forward_step(x[:, :, 1], update_state=False), before[:, :, 1])
    assert module.forward_steps(x[:, :, :0]) is None
    assert module.receptive_field == 1 and module.delay == 0
    with call_mode("forward_step"):
        assert module(x[:, :, 4]).shape == (2, 8)
